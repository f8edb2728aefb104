"""PEER — parameter-efficient expert retrieval (He, 2024, "Mixture of A Million Experts", arXiv 2407.04153).

N = n² experts, each a single hidden neuron: a down vector u_i ∈ R^D and an up vector v_i ∈ R^D,
expert_i(x) = σ(u_iᵀ x) v_i. Each of H heads has its own query (and, unless ``shared_keys``, its own
product keys; the PEER paper shares one set among the heads) and retrieves its own top-k experts (exact two-stage product-key search, :mod:`product_keys`); the gates are the
softmax of the head's k scores, and the heads' outputs are summed:

    y = Σ_h Σ_{i ∈ top-k_h} g_{h,i} · σ(u_iᵀ x) · v_i

Read as a memory layer, a selected slot holds *two* rows, u_i (scored against x) and v_i (mixed);
UltraMemV2's pre-values are the same idea with a projected input (:mod:`v2`). Query BatchNorm is
the PKM tradition and one of PEER's ablations; it is an option here (``query_norm``). The expert
tables are the layer's "values": they train with the value learning rate.
Initialisation (ours, stated): u ~ N(0, 1/D), v ~ N(0, 1/D), keys U(±1/√D_k).
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

__all__ = ["PEERConfig", "PEERLayer"]

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


@dataclass
class PEERConfig:
    """A PEER layer.

    Attributes:
        d_model: D.
        num_experts: N = n² single-neuron experts (perfect square).
        key_dim: D_k of one sub-key. num_heads: H (unofficial default 8). topk: k experts per head (16).
        activation: σ, "gelu" (default), "relu" or "silu".
        query_norm: "batchnorm", "layernorm" or "none".
        kernel_backend: for the weighted sum of up vectors.
        shared_keys: one set of product keys for all heads, as the PEER paper describes (each head
            still has its own query); False (the default, kept for the runs made with it) gives every
            head its own keys.
    """

    d_model: int
    num_experts: int = 1024
    key_dim: int = 16
    num_heads: int = 4
    topk: int = 8
    activation: str = "gelu"
    query_norm: str = "batchnorm"
    kernel_backend: str = "auto"
    shared_keys: bool = False

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, 1)
        if not isinstance(self.shared_keys, bool):
            raise TypeError(f"shared_keys must be a bool, got {type(self.shared_keys).__name__}")
        check_int("num_experts", self.num_experts, 1)
        if not is_perfect_square(self.num_experts):
            raise ValueError(f"num_experts must be a perfect square (an n×n grid), got {self.num_experts}")
        check_int("key_dim", self.key_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("topk", self.topk, 1, self.num_keys)
        check_choice("activation", self.activation, tuple(_ACTIVATIONS))
        check_choice("query_norm", self.query_norm, ("batchnorm", "layernorm", "none"))
        check_choice("kernel_backend", self.kernel_backend, ("auto", "torch", "triton"))

    @property
    def num_keys(self) -> int:
        return math.isqrt(self.num_experts)

    def build_layers(self, wiring) -> list["PEERLayer"]:
        """One independent layer (its own experts) per wiring pair."""
        check_int("len(wiring)", len(wiring), 1)
        return [PEERLayer(self) for _ in wiring]


class PEERLayer(nn.Module):
    """forward(x: (..., D)) -> MemoryOutput with output (..., D), indices/scores (..., H, k)."""

    def __init__(self, config: PEERConfig):
        super().__init__()
        if not isinstance(config, PEERConfig):
            raise TypeError(f"config must be a PEERConfig, got {type(config).__name__}")
        self.config = c = config
        width = c.num_heads * 2 * c.key_dim
        self.query = nn.Linear(c.d_model, width)
        self.query_norm = {"batchnorm": lambda: nn.BatchNorm1d(width),
                           "layernorm": lambda: nn.LayerNorm(c.key_dim, bias=False),
                           "none": lambda: None}[c.query_norm]()
        bound = c.key_dim ** -0.5
        key_sets = 1 if c.shared_keys else c.num_heads
        self.keys = nn.Parameter(torch.empty(2, key_sets, c.num_keys, c.key_dim).uniform_(-bound, bound))
        self.down = nn.Parameter(torch.randn(c.num_experts, c.d_model) * c.d_model ** -0.5)   # u_i
        self.up = nn.Parameter(torch.randn(c.num_experts, c.d_model) * c.d_model ** -0.5)     # v_i

    def value_parameters(self) -> list[nn.Parameter]:
        """The expert tables (u and v), trained with the value learning rate."""
        return [self.down, self.up]

    def sub_scores(self, x: torch.Tensor) -> torch.Tensor:
        """x (B', D) -> (B', H, 2, n)."""
        c = self.config
        q = self.query(x)
        if isinstance(self.query_norm, nn.BatchNorm1d):
            q = self.query_norm(q)
        q = q.view(-1, c.num_heads, 2, c.key_dim)
        if isinstance(self.query_norm, nn.LayerNorm):
            q = self.query_norm(q)
        keys = self.keys.expand(2, c.num_heads, c.num_keys, c.key_dim)      # shared keys: one set for all heads
        return torch.einsum("bhsd,shkd->bhsk", q, keys)

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        """Efficient path: per-head exact top-k, gather the k down vectors, one weighted sum of up vectors."""
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)
        scores, indices = _product_key_topm(sub[:, :, 0], sub[:, :, 1], c.topk)       # (B', H, k)
        gates = F.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
        gates = gates.type_as(scores).flatten(1)                                      # (B', H·k)
        experts = indices.flatten(1)                                                  # (B', H·k)
        hidden = _ACTIVATIONS[c.activation](torch.einsum("bkd,bd->bk", F.embedding(experts, self.down), flat))
        out = value_lookup(self.up, experts, gates * hidden, backend=c.kernel_backend)[:, 0]
        return MemoryOutput(output=out.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topk),
                            scores=scores.view(*lead, c.num_heads, c.topk), aux_loss=x.new_zeros(()))

    def forward_reference(self, x: torch.Tensor) -> MemoryOutput:
        """Plain path: every expert on every token, the full grid's top-k per head, a dense gate matrix."""
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)
        scores, indices = grid_scores_additive(sub[:, :, 0], sub[:, :, 1]).flatten(-2).topk(c.topk, dim=-1)
        gates = F.softmax(scores, dim=-1)
        dense = flat.new_zeros(flat.shape[0], c.num_experts).scatter_add(1, indices.flatten(1), gates.flatten(1))
        hidden = _ACTIVATIONS[c.activation](flat @ self.down.T)                          # (B', N) all experts
        out = (dense * hidden) @ self.up
        return MemoryOutput(output=out.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topk),
                            scores=scores.view(*lead, c.num_heads, c.topk), aux_loss=x.new_zeros(()))

    def activated_parameters_per_token(self) -> int:
        """Everything but the expert tables, plus the H·k experts used (2·D each, at most N experts)."""
        c = self.config
        own = sum(p.numel() for p in self.parameters() if p is not self.down and p is not self.up)
        return own + min(c.num_heads * c.topk, c.num_experts) * 2 * c.d_model
