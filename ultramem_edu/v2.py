"""UltraMemV2 (Huang et al., 2025, arXiv 2508.18756): the memory layer redesigned to sit in every block.

Checked against the released ``olmo/ultramem_layer_v2.py`` (repository
ZihaoHuang-notabot/Ultra-Sparse-Memory-Network). What changes against UltraMem (:mod:`layer`):

1. **Memory in every block** — the model wires one memory layer per block, in parallel with the FFN
   (``default_wiring(L, L)`` gives (k, k) for every k).
2. **One value pool for all memory layers** — the pool holds ``values_per_layer × L_mem`` rows;
   layer k reads a window of ``w = ⌊√(pool · share_ratio)⌋²`` rows starting at k·values_per_layer,
   wrapping around the pool: physical row = (row + k·values_per_layer) mod pool.
3. **IVE without projectors** — keys grow ×2 per side (``key_expansion``), so the grid has 4·w
   addresses; after the fixed shuffle, address a reads row a mod w. The released code sums the
   virtual blocks and applies *one* linear projection (value_expand_time = 1), which is the same as
   reading row a mod w directly: one weighted sum, then W_o (D_v → D).
4. **PEER-style pre-values** — every pool row also holds a pre-value p_i (D_pre); a token's
   projection P x (D_pre) dotted with it multiplies the retrieval score:

       o = W_oᵀ Σ_{i ∈ top-m} ŝ_i · act(p_i · P x) · v_i  =  W_oᵀ Vᵀ( act(P_pre P x) ⊙ ŝ ),

   ŝ the sparse selected scores (each MCS core its own value slice), act = identity
   (``mem_use_glu_act=False``, as in the released tests) or GELU.
5. **TDQKR kept** (rank r, h cores, the rank-1 stage with sign-aligned factors); a MoE-style
   **balance loss** on the row and column keys; the Tucker auxiliary loss is off (the released code
   computes it but never applies it).
6. **Initialisation** (paper Eq. 26, Appendix A.3, as implemented in the released code): query/key
   LayerNorm weights D_k^-0.4, keys N(0, 1/D_k), query projection N(0, 1/D_k), pre-value
   projection N(0, 1/D), cores U(0, 1), W_o N(0, (init_std/√(2L))²) like every residual projection
   (released: init_std = 0.0228 with OLMo's "full_megatron" init; ours 0.02, GPT-2's), and values *and*
   pre-values with std

       σ_V = (0.2 · k_inner · D / (m · H · (1 + σ_s²) · D_pre · D_v · L_mem))^{1/4},

   k_inner the FFN ratio, σ_s² the variance of the top-1 score divided by its mean, measured by
   Monte Carlo (:func:`measure_sigma_s_squared`).

Deviations (stated): the released query projection is 2·r·D_k wide but its GPU path reads only the
first 2·D_k columns; here the query is 2·D_k wide (row half, column half), shared by every head and
key set. The balance-loss coefficient of the released runs is not in the stored sources; the default
here (0.01, Switch's) is ours. The released layer's output dropout (a config rate) is left out, and its
query/key norms are whatever norm the OLMo config builds; here they are LayerNorms without bias.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_float_tensor, check_int, is_perfect_square
from .ive import make_shuffle
from .kernels import value_lookup
from .mcs import _mcs_topm, core_scores_at
from .tdqkr import rank1_factors, tucker_aux_loss, tucker_scores
from .types import MemoryOutput

__all__ = [
    "UltraMemV2Config",
    "UltraMemV2Pool",
    "UltraMemV2Layer",
    "value_std_eq26",
    "measure_sigma_s_squared",
    "key_balance_loss",
]


def _check_positive(name: str, v: object, allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} ({v!r})")
    if v < 0 or (v == 0 and not allow_zero) or not math.isfinite(v):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {v}")
    return float(v)


@dataclass
class UltraMemV2Config:
    """One UltraMemV2 memory layer (all layers of a model share one config and one pool).

    Sizes:
        d_model: D.
        num_layers: L of the model: sets W_o's std 0.02/√(2L) (the model's residual projections).
        values_per_layer: rows each memory layer adds to the shared pool (released knum², 360²).
            Must be a perfect square.
        share_ratio: the window a layer reads is ⌊√(pool·share_ratio)⌋² rows (released 0.5).
        value_dim: D_v (released 192 at D = 768). None → D/4.
        pre_value_dim: D_pre of the PEER-style pre-values (released 192); 0 turns them off. None → D_v.
        key_dim: D_k. num_heads: H (released 1). topm: m (released 32).
        key_expansion: keys per side = key_expansion·√w (released 2): key_expansion² grid addresses
            per physical row.
        tucker_rank: r (2). num_cores: h, MCS cores (released ``tucker_multihead`` 2); must divide D_v.
        tdqkr_both_signs: as in :class:`~ultramem_edu.layer.UltraMemConfig` (False = the paper).
    Scoring and losses:
        pre_activation: "none" (as in the released tests) or "gelu" on the pre-value scores.
        balance_coef: weight of :func:`key_balance_loss` (0 = off).
        aux_alpha, aux_tau: the Tucker-core auxiliary loss (released: computed, not applied → 0).
    Initialisation:
        ffn_ratio: k_inner of Eq. 26, the FFN hidden width over D.
        init_std: the model's base std (0.02 here, GPT-2's), for W_o = init_std/√(2L).
        init_samples: Monte Carlo size for σ_s². shuffle_seed, kernel_backend: as in UltraMem.
    """

    d_model: int
    num_layers: int = 4
    values_per_layer: int = 1024
    share_ratio: float = 0.5
    value_dim: int | None = None
    pre_value_dim: int | None = None
    key_dim: int = 16
    num_heads: int = 1
    topm: int = 16
    key_expansion: int = 2
    tucker_rank: int = 2
    num_cores: int = 2
    tdqkr_both_signs: bool = False
    pre_activation: str = "none"
    balance_coef: float = 0.01
    aux_alpha: float = 0.0
    aux_tau: float = 0.15
    ffn_ratio: float = 4.0
    init_std: float = 0.02
    init_samples: int = 2048
    shuffle_seed: int = 0
    kernel_backend: str = "auto"

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, 1)
        check_int("num_layers", self.num_layers, 1)
        check_int("values_per_layer", self.values_per_layer, 1)
        if not is_perfect_square(self.values_per_layer):
            raise ValueError(f"values_per_layer must be a perfect square (knum²), got {self.values_per_layer}")
        share = _check_positive("share_ratio", self.share_ratio)
        if share > 1:
            raise ValueError(f"share_ratio must be in (0, 1], got {self.share_ratio}")
        if self.value_dim is None:
            self.value_dim = max(1, self.d_model // 4)
        check_int("value_dim", self.value_dim, 1)
        if self.pre_value_dim is None:
            self.pre_value_dim = self.value_dim
        check_int("pre_value_dim", self.pre_value_dim, 0)
        check_int("key_dim", self.key_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("key_expansion", self.key_expansion, 1)
        check_int("tucker_rank", self.tucker_rank, 1)
        check_int("num_cores", self.num_cores, 1)
        if self.value_dim % self.num_cores:
            raise ValueError(f"value_dim D_v={self.value_dim} must be divisible by num_cores h={self.num_cores}")
        check_int("topm", self.topm, 1, self.key_expansion * math.isqrt(self.values_per_layer))
        check_choice("pre_activation", self.pre_activation, ("none", "gelu"))
        check_choice("kernel_backend", self.kernel_backend, ("auto", "torch", "triton"))
        _check_positive("balance_coef", self.balance_coef, allow_zero=True)
        _check_positive("aux_alpha", self.aux_alpha, allow_zero=True)
        _check_positive("aux_tau", self.aux_tau, allow_zero=True)
        _check_positive("ffn_ratio", self.ffn_ratio)
        _check_positive("init_std", self.init_std)
        check_int("init_samples", self.init_samples, 2)

    # ------------------------------------------------------------------ pool geometry
    def pool_size(self, num_memory_layers: int) -> int:
        """Rows of the shared pool: values_per_layer × L_mem."""
        check_int("num_memory_layers", num_memory_layers, 1)
        return self.values_per_layer * num_memory_layers

    def window(self, num_memory_layers: int) -> int:
        """Rows one layer reads: ⌊√(pool · share_ratio)⌋² (the released code's rule)."""
        return math.isqrt(int(self.pool_size(num_memory_layers) * self.share_ratio)) ** 2

    def keys_per_side(self, num_memory_layers: int) -> int:
        """n' = key_expansion · √window."""
        return self.key_expansion * math.isqrt(self.window(num_memory_layers))

    def parameter_counts(self, num_memory_layers: int) -> dict:
        """Counted without building anything: {"pool", "per_layer", "total", "activated"} where
        per_layer is one layer's own parameters (pool excluded), total = pool + L_mem·per_layer and
        activated = L_mem·(per_layer + min(H·m, w)·(D_v + D_pre)), the rows a token reads."""
        n_side, r = self.keys_per_side(num_memory_layers), self.tucker_rank
        per_layer = (self.d_model * 2 * self.key_dim + 2 * self.key_dim + 2 * self.num_heads * r * n_side * self.key_dim
                     + self.num_heads * self.num_cores * r * r + self.d_model * self.pre_value_dim
                     + self.value_dim * self.d_model)
        pool = self.pool_size(num_memory_layers) * (self.value_dim + self.pre_value_dim)
        read = min(self.num_heads * self.topm, self.window(num_memory_layers)) * (self.value_dim + self.pre_value_dim)
        return {"pool": pool, "per_layer": per_layer, "total": pool + num_memory_layers * per_layer,
                "activated": num_memory_layers * (per_layer + read)}

    def build_layers(self, wiring) -> list["UltraMemV2Layer"]:
        """One layer per wiring pair, all reading the same :class:`UltraMemV2Pool` (used by
        :class:`~ultramem_edu.model.TransformerLM`). The pool is initialised by Eq. 26 with σ_s²
        measured on layer 0."""
        n = len(wiring)
        check_int("len(wiring)", n, 1)
        pool = UltraMemV2Pool(self, n)
        layers = [UltraMemV2Layer(self, pool, k) for k in range(n)]
        pool.reset_parameters(measure_sigma_s_squared(layers[0], self.init_samples))
        return layers


def value_std_eq26(
    ffn_ratio: float, d_model: int, topm: int, num_heads: int, sigma_s_sq: float,
    pre_value_dim: int, value_dim: int, num_memory_layers: int,
) -> float:
    """σ_V = (0.2·k_inner·D / (m·H·(1+σ_s²)·max(D_pre, 1)·D_v·L_mem))^{1/4} (Eq. 26, released code)."""
    _check_positive("ffn_ratio", ffn_ratio)
    _check_positive("sigma_s_sq", sigma_s_sq, allow_zero=True)
    for name, v in (("d_model", d_model), ("topm", topm), ("num_heads", num_heads), ("value_dim", value_dim),
                    ("num_memory_layers", num_memory_layers)):
        check_int(name, v, 1)
    check_int("pre_value_dim", pre_value_dim, 0)
    denom = topm * num_heads * (1.0 + sigma_s_sq) * max(pre_value_dim, 1) * value_dim * num_memory_layers
    return (0.2 * ffn_ratio * d_model / denom) ** 0.25


def key_balance_loss(projected: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Switch-style balance loss over one side's n keys: n · Σ_i f_i · P_i.

    Args:
        projected: (B, H, n) the rank-1 projected key scores (uᵀS_row or tᵀS_col), with gradient.
        chosen: (B, H, c) int64 the keys stage 1 kept.
    Returns:
        scalar; 1 when selections and probabilities are uniform. P_i = mean softmax probability of
        key i over tokens and heads; f_i = share of the stage-1 selections that went to key i.
    """
    check_float_tensor("projected", projected, ndim=3, finite=False)
    n = projected.shape[-1]
    p = projected.float().softmax(-1).reshape(-1, n).mean(0)                       # (n,)
    counts = torch.bincount(chosen.reshape(-1), minlength=n).float()
    f = counts / counts.sum()
    return n * (p * f).sum()


class UltraMemV2Pool(nn.Module):
    """The value pool shared by every UltraMemV2 layer of a model.

    values (P, D_v) and pre_values (P, D_pre) (absent when D_pre = 0), P = values_per_layer·L_mem.
    It is a submodule of each layer; ``model.modules()`` visits it once, so the value learning-rate
    group (:func:`~ultramem_edu.layer.memory_param_groups`) gets each table once.
    """

    def __init__(self, config: UltraMemV2Config, num_memory_layers: int):
        super().__init__()
        if not isinstance(config, UltraMemV2Config):
            raise TypeError(f"config must be an UltraMemV2Config, got {type(config).__name__}")
        self.config = config
        self.num_memory_layers = num_memory_layers
        size = config.pool_size(num_memory_layers)
        self.values = nn.Parameter(torch.empty(size, config.value_dim))
        self.pre_values = nn.Parameter(torch.empty(size, config.pre_value_dim)) if config.pre_value_dim else None
        self.sigma_s_sq = float("nan")
        self.reset_parameters(0.0)

    @torch.no_grad()
    def reset_parameters(self, sigma_s_sq: float) -> float:
        """Values and pre-values ~ N(0, σ_V²) with σ_V from :func:`value_std_eq26`. Returns σ_V."""
        c = self.config
        std = value_std_eq26(c.ffn_ratio, c.d_model, c.topm, c.num_heads, sigma_s_sq, c.pre_value_dim,
                             c.value_dim, self.num_memory_layers)
        nn.init.normal_(self.values, std=std)
        if self.pre_values is not None:
            nn.init.normal_(self.pre_values, std=std)
        self.sigma_s_sq = sigma_s_sq
        return std

    def value_parameters(self) -> list[nn.Parameter]:
        """The pool's tables, trained with the value learning rate."""
        return [p for p in (self.values, self.pre_values) if p is not None]

    def forward(self, *args):  # pragma: no cover - a container, never called
        raise RuntimeError("UltraMemV2Pool holds parameters; call an UltraMemV2Layer")


class UltraMemV2Layer(nn.Module):
    """One UltraMemV2 memory layer, reading window k of a shared :class:`UltraMemV2Pool`.

    forward(x: (..., D)) -> :class:`~ultramem_edu.types.MemoryOutput`: output (..., D); indices and
    scores (..., H, m) on the n'×n' grid (before the shuffle); aux_loss = balance (+ Tucker) loss;
    singular_values (H, r) of the summed cores.
    """

    def __init__(self, config: UltraMemV2Config, pool: UltraMemV2Pool, layer_index: int):
        super().__init__()
        if not isinstance(config, UltraMemV2Config):
            raise TypeError(f"config must be an UltraMemV2Config, got {type(config).__name__}")
        if not isinstance(pool, UltraMemV2Pool):
            raise TypeError(f"pool must be an UltraMemV2Pool, got {type(pool).__name__}")
        check_int("layer_index", layer_index, 0, pool.num_memory_layers - 1)
        self.config = c = config
        self.pool = pool
        self.layer_index = layer_index
        L_mem = pool.num_memory_layers
        self.window = c.window(L_mem)
        self.offset = layer_index * c.values_per_layer
        self.pool_rows = c.pool_size(L_mem)
        n_side, r = c.keys_per_side(L_mem), c.tucker_rank
        self.query = nn.Linear(c.d_model, 2 * c.key_dim, bias=False)
        self.query_norm = nn.LayerNorm(c.key_dim, bias=False)
        self.key_norm = nn.LayerNorm(c.key_dim, bias=False)
        self.keys = nn.Parameter(torch.empty(2, c.num_heads, r, n_side, c.key_dim))   # side, head, set, key, dim
        self.tucker_cores = nn.Parameter(torch.empty(c.num_heads, c.num_cores, r, r))
        self.pre_proj = nn.Linear(c.d_model, c.pre_value_dim, bias=False) if c.pre_value_dim else None
        self.out_proj = nn.Linear(c.value_dim, c.d_model, bias=False)
        self.register_buffer("shuffle", make_shuffle(n_side * n_side, c.shuffle_seed + layer_index))
        self.register_buffer("factor_u", torch.zeros(c.num_heads, r))
        self.register_buffer("factor_t", torch.zeros(c.num_heads, r))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The released initialisation of everything but the pool (see the module docstring)."""
        c = self.config
        for norm in (self.query_norm, self.key_norm):
            nn.init.constant_(norm.weight, c.key_dim ** -0.4)
        nn.init.normal_(self.query.weight, std=c.key_dim ** -0.5)
        nn.init.normal_(self.keys, std=c.key_dim ** -0.5)
        if self.pre_proj is not None:
            nn.init.normal_(self.pre_proj.weight, std=c.d_model ** -0.5)
        nn.init.normal_(self.out_proj.weight, std=c.init_std / math.sqrt(2 * c.num_layers))
        nn.init.uniform_(self.tucker_cores, 0.0, 1.0)
        u, t = rank1_factors(self.tucker_cores.sum(1))
        self.factor_u.copy_(u)
        self.factor_t.copy_(t)

    # ------------------------------------------------------------------ pieces
    def sub_scores(self, x: torch.Tensor) -> torch.Tensor:
        """x (B', D) -> (B', H, 2, r, n'): row (side 0) and column (side 1) scores per head and key set."""
        c = self.config
        q = self.query_norm(self.query(x).view(-1, 2, c.key_dim))                 # (B', 2, D_k)
        return torch.einsum("bsd,shakd->bhsak", q, self.key_norm(self.keys))

    def physical_rows(self, grid_indices: torch.Tensor) -> torch.Tensor:
        """Grid addresses -> pool rows: shuffle, then (a mod w + offset) mod P."""
        return (self.shuffle[grid_indices] % self.window + self.offset) % self.pool_rows

    def _factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        u, t = rank1_factors(self.tucker_cores.sum(1), previous=(self.factor_u, self.factor_t))
        if self.training:
            self.factor_u.copy_(u)
            self.factor_t.copy_(t)
        return u, t

    def _pre_scores(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """act(p_i · P x) for the rows (B', k) -> (B', k)."""
        pre = torch.einsum("bkd,bd->bk", F.embedding(rows, self.pool.pre_values), self.pre_proj(x))
        return F.gelu(pre) if self.config.pre_activation == "gelu" else pre

    def _finish(self, x, pooled, sub, factors) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """W_o on the pooled values (B', D_v); the balance (+ Tucker) loss; the summed cores' spectrum."""
        c = self.config
        output = self.out_proj(pooled)                                             # (B', D)
        aux = x.new_zeros(())
        if c.balance_coef > 0:
            u, t = factors
            for side, f in ((0, u), (1, t)):
                proj = (f.unsqueeze(-1) * sub[:, :, side]).sum(-2)                 # (B', H, n')
                aux = aux + c.balance_coef * key_balance_loss(proj, proj.detach().topk(c.topm, -1).indices)
        summed = self.tucker_cores.sum(1)                                          # (H, r, r)
        if c.aux_alpha > 0 and c.tucker_rank > 1:
            aux = aux + tucker_aux_loss(summed, tau=c.aux_tau, alpha=c.aux_alpha)
        sigma = torch.linalg.svdvals(summed.detach().double()).to(summed.dtype)
        return output, aux, sigma

    # ------------------------------------------------------------------ forward paths
    def forward(self, x: torch.Tensor) -> MemoryOutput:
        """The efficient path: two-stage TDQKR, then one weighted gather-sum of the selected rows."""
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)                                                # (B', H, 2, r, n')
        factors = self._factors()
        scores, weights, indices = _mcs_topm(sub[:, :, 0], sub[:, :, 1], self.tucker_cores, c.topm, factors,
                                             c.tdqkr_both_signs)                  # (B',H,m), (B',H,m,h), (B',H,m)
        rows = self.physical_rows(indices).flatten(1)                              # (B', H·m)
        weights = weights.flatten(1, 2)                                            # (B', H·m, h)
        if self.pre_proj is not None:
            weights = weights * self._pre_scores(flat, rows).unsqueeze(-1)
        pooled = value_lookup(self.pool.values, rows, weights, num_blocks=1, backend=c.kernel_backend)[:, 0]
        output, aux, sigma = self._finish(flat, pooled, sub, factors)
        return MemoryOutput(output=output.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topm),
                            scores=scores.view(*lead, c.num_heads, c.topm), aux_loss=aux, singular_values=sigma)

    def forward_reference(self, x: torch.Tensor) -> MemoryOutput:
        """The plain path: the full n'×n' Tucker grid, brute-force top-m, and the dense formula
        o = W_oᵀ Vᵀ(act(P_pre P x) ⊙ ŝ) with ŝ scattered over every pool row, one core at a time.

        Equal to :meth:`forward` whenever stage 1 finds the true top-m (always for r = 1 with
        ``tdqkr_both_signs=True``). Does not update the stored rank-1 factors.
        """
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead, flat = x.shape[:-1], x.reshape(-1, c.d_model)
        sub = self.sub_scores(flat)
        factors = rank1_factors(self.tucker_cores.sum(1), previous=(self.factor_u, self.factor_t))
        grid = tucker_scores(sub[:, :, 0], sub[:, :, 1], self.tucker_cores.sum(1))          # (B', H, n', n')
        scores, indices = grid.flatten(-2).topk(c.topm, dim=-1)                             # (B', H, m)
        per_core = core_scores_at(sub[:, :, 0], sub[:, :, 1], self.tucker_cores, indices)   # (B', H, m, h)
        rows = self.physical_rows(indices).flatten(1)                                       # (B', H·m)
        dense = flat.new_zeros(flat.shape[0], self.pool_rows, c.num_cores)                  # ŝ over the pool
        dense = dense.scatter_add(1, rows.unsqueeze(-1).expand(-1, -1, c.num_cores), per_core.flatten(1, 2))
        if self.pre_proj is not None:
            pre = self.pre_proj(flat) @ self.pool.pre_values.T                              # (B', P) every row
            dense = dense * (F.gelu(pre) if c.pre_activation == "gelu" else pre).unsqueeze(-1)
        s = c.value_dim // c.num_cores
        pooled = torch.cat([dense[..., k] @ self.pool.values[:, k * s:(k + 1) * s] for k in range(c.num_cores)], -1)
        output, aux, sigma = self._finish(flat, pooled, sub, factors)
        return MemoryOutput(output=output.view(*lead, c.d_model), indices=indices.view(*lead, c.num_heads, c.topm),
                            scores=scores.view(*lead, c.num_heads, c.topm), aux_loss=aux, singular_values=sigma)

    def activated_parameters_per_token(self) -> int:
        """Every parameter of the layer except the pool (all keys are scored), plus the H·m pool rows
        read (at most the window), each D_v + D_pre wide."""
        c = self.config
        pool_ids = {id(p) for p in self.pool.parameters()}
        own = sum(p.numel() for p in self.parameters() if id(p) not in pool_ids)
        return own + min(c.num_heads * c.topm, self.window) * (c.value_dim + c.pre_value_dim)


@torch.no_grad()
def measure_sigma_s_squared(layer: UltraMemV2Layer, samples: int = 2048, seed: int = 0) -> float:
    """σ_s² of Eq. 26: the variance of the top-1 selected score divided by its mean, for standard-
    normal inputs (the post-LayerNorm hidden state) through the layer's own retrieval.

    The released code estimates it from synthetic queries and keys with the cores replaced by their
    mean 0.5; this measures the layer as built (same definition, no stand-ins).
    """
    if not isinstance(layer, UltraMemV2Layer):
        raise TypeError(f"layer must be an UltraMemV2Layer, got {type(layer).__name__}")
    check_int("samples", samples, 2)
    c = layer.config
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, c.d_model, generator=generator).to(layer.keys)
    sub = layer.sub_scores(x)
    factors = rank1_factors(layer.tucker_cores.sum(1), previous=(layer.factor_u, layer.factor_t))
    scores = _mcs_topm(sub[:, :, 0], sub[:, :, 1], layer.tucker_cores, c.topm, factors, c.tdqkr_both_signs)[0]
    top1 = scores[..., 0].double()
    return float((top1 / top1.mean()).var())
