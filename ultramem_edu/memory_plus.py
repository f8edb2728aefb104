"""Memory+ (Berges et al., 2024, "Memory Layers at Scale", arXiv 2412.09764).

A product-key memory (:mod:`product_keys`) with three changes, as reimplemented in the UltraMem
authors' released ``olmo/memory_plus_layer.py``:

    q_h   = LN(W_q x)_h                       one query per head, LayerNorm'd ("qk-norm")
    S_h   = LN(K_row,h) q_row,h ⊕ LN(K_col,h) q_col,h   additive product keys, exact top-m
    w_h   = softmax(top-m scores of head h)
    y     = Σ_h Σ_i w_{h,i} V[i_{h,i}]        one table V (N, D) shared by every Memory+ layer
    out   = W_o (y ⊙ SiLU(W_s x))             the SiLU-gated output (the "swilu" projection)

The released code builds key LayerNorms but scores the un-normalised keys; here both query and keys
are normalised, as the paper's "qk-norm" describes. Initialisation follows the released code:
V ~ N(0, 1/D), W_o and W_s ~ N(0, 1/D), keys U(±1/√(2·D_k)), W_q Xavier-uniform, LN weights 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_float_tensor, check_int, is_perfect_square
from .kernels import value_lookup
from .product_keys import _product_key_topm, grid_scores_additive
from .types import MemoryOutput

__all__ = ["MemoryPlusConfig", "MemoryPlusTable", "MemoryPlusLayer"]


@dataclass
class MemoryPlusConfig:
    """A Memory+ layer (every Memory+ layer of a model shares one config and one table).

    Attributes:
        d_model: D; the values are D wide (released: vdim == hidden_size).
        num_values: N = n², rows of the shared table (perfect square).
        key_dim: D_k of one sub-key. num_heads: H, each with its own query and keys. topm: m per head.
        gate: "silu" (Memory+) or "none" (plain PKM output through W_o).
        qk_norm: LayerNorm on queries and keys.
        kernel_backend: for :func:`~ultramem_edu.kernels.value_lookup`.
    """

    d_model: int
    num_values: int = 1024
    key_dim: int = 16
    num_heads: int = 2
    topm: int = 8
    gate: str = "silu"
    qk_norm: bool = True
    kernel_backend: str = "auto"

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, 1)
        check_int("num_values", self.num_values, 1)
        if not is_perfect_square(self.num_values):
            raise ValueError(f"num_values must be a perfect square (an n×n grid), got {self.num_values}")
        check_int("key_dim", self.key_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("topm", self.topm, 1, self.num_keys)
        check_choice("gate", self.gate, ("silu", "none"))
        if not isinstance(self.qk_norm, bool):
            raise TypeError(f"qk_norm must be a bool, got {type(self.qk_norm).__name__}")
        check_choice("kernel_backend", self.kernel_backend, ("auto", "torch", "triton"))

    @property
    def num_keys(self) -> int:
        """n = √N sub-keys per side."""
        return math.isqrt(self.num_values)

    def build_layers(self, wiring) -> list["MemoryPlusLayer"]:
        """One layer per wiring pair, all reading one :class:`MemoryPlusTable`."""
        check_int("len(wiring)", len(wiring), 1)
        table = MemoryPlusTable(self)
        return [MemoryPlusLayer(self, table) for _ in wiring]


class MemoryPlusTable(nn.Module):
    """The value table V (N, D) shared by the Memory+ layers of a model."""

    def __init__(self, config: MemoryPlusConfig):
        super().__init__()
        if not isinstance(config, MemoryPlusConfig):
            raise TypeError(f"config must be a MemoryPlusConfig, got {type(config).__name__}")
        self.values = nn.Parameter(torch.randn(config.num_values, config.d_model) * config.d_model ** -0.5)

    def value_parameters(self) -> list[nn.Parameter]:
        return [self.values]

    def forward(self, *args):  # pragma: no cover - a container, never called
        raise RuntimeError("MemoryPlusTable holds parameters; call a MemoryPlusLayer")


class MemoryPlusLayer(nn.Module):
    """forward(x: (..., D)) -> MemoryOutput with output (..., D), indices/scores (..., H, m)."""

    def __init__(self, config: MemoryPlusConfig, table: MemoryPlusTable | None = None):
        super().__init__()
        if not isinstance(config, MemoryPlusConfig):
            raise TypeError(f"config must be a MemoryPlusConfig, got {type(config).__name__}")
        if table is not None and not isinstance(table, MemoryPlusTable):
            raise TypeError(f"table must be a MemoryPlusTable, got {type(table).__name__}")
        self.config = c = config
        self.table = table if table is not None else MemoryPlusTable(config)
        self.query = nn.Linear(c.d_model, c.num_heads * 2 * c.key_dim, bias=False)
        self.query_norm = nn.LayerNorm(c.key_dim, bias=False) if c.qk_norm else None
        self.key_norm = nn.LayerNorm(c.key_dim, bias=False) if c.qk_norm else None
        bound = (2 * c.key_dim) ** -0.5
        self.keys = nn.Parameter(torch.empty(2, c.num_heads, c.num_keys, c.key_dim).uniform_(-bound, bound))
        self.gate_proj = nn.Linear(c.d_model, c.d_model, bias=False) if c.gate == "silu" else None
        self.out_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        nn.init.xavier_uniform_(self.query.weight)
        for lin in (self.gate_proj, self.out_proj):
            if lin is not None:
                nn.init.normal_(lin.weight, std=c.d_model ** -0.5)

    def sub_scores(self, x: torch.Tensor) -> torch.Tensor:
        """x (B', D) -> (B', H, 2, n) row and column scores of each head."""
        c = self.config
        q = self.query(x).view(-1, c.num_heads, 2, c.key_dim)                       # (B', H, 2, D_k)
        keys = self.keys
        if c.qk_norm:
            q, keys = self.query_norm(q), self.key_norm(keys)
        return torch.einsum("bhsd,shkd->bhsk", q, keys)

    def _gated(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        if self.gate_proj is not None:
            pooled = pooled * F.silu(self.gate_proj(x))
        return self.out_proj(pooled)

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        """Efficient path: exact two-stage product-key top-m, softmax, one weighted gather-sum."""
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)
        scores, indices = _product_key_topm(sub[:, :, 0], sub[:, :, 1], c.topm)      # (B', H, m)
        weights = F.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32)).type_as(scores)
        pooled = value_lookup(self.table.values, indices.flatten(1), weights.flatten(1), backend=c.kernel_backend)
        out = self._gated(flat, pooled[:, 0])
        return MemoryOutput(output=out.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topm),
                            scores=scores.view(*lead, c.num_heads, c.topm), aux_loss=x.new_zeros(()))

    def forward_reference(self, x: torch.Tensor) -> MemoryOutput:
        """Plain path: the full n×n grid per head, its top-m, a dense (B', N) weight matrix, y = W V."""
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)
        scores, indices = grid_scores_additive(sub[:, :, 0], sub[:, :, 1]).flatten(-2).topk(c.topm, dim=-1)
        weights = F.softmax(scores, dim=-1)
        dense = flat.new_zeros(flat.shape[0], c.num_values).scatter_add(1, indices.flatten(1), weights.flatten(1))
        out = self._gated(flat, dense @ self.table.values)
        return MemoryOutput(output=out.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topm),
                            scores=scores.view(*lead, c.num_heads, c.topm), aux_loss=x.new_zeros(()))

    def activated_parameters_per_token(self) -> int:
        """Every parameter except the shared table, plus the H·m rows of width D read (at most N)."""
        c = self.config
        own = sum(p.numel() for p in self.parameters() if p is not self.table.values)
        return own + min(c.num_heads * c.topm, c.num_values) * c.d_model
