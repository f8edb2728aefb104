"""UltraMem's memory layer, with every improvement over PKM as one config switch (method.md §3).

Forward, for an input x (..., D):

    x_q   = causal_depthwise_conv(x)                     (optional, needs x of shape (B, T, D))
    q     = LN(W_q x_q)  → q_row, q_col                  one query shared by all heads, or one per head
    S_row = LN(K_row) q_row,  S_col = LN(K_col) q_col    (H, r, n') scores per head and key set
    top-m = product keys (additive) or TDQKR (Tucker core, rank-1 stage + exact rescoring)
    MCS   : the summed core selects, each core's score weights its own value slice
    IVE   : grid address → shuffle → (virtual block, physical row); pool per block, then project
    out   = W_o · flatten(pooled (E, D_v))

:class:`UltraMemConfig` defaults are the paper's UltraMem; :meth:`UltraMemConfig.pkm` is the PKM
baseline, and :func:`ablation_ladder` walks from one to the other one switch at a time.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import init as init_
from ._checks import check_choice, check_float_tensor, check_int
from .ive import keys_per_side, make_shuffle
from .kernels import value_lookup
from .mcs import _mcs_topm
from .product_keys import _product_key_topm
from .tdqkr import rank1_factors, tucker_aux_loss
from .types import MemoryOutput

__all__ = [
    "UltraMemConfig",
    "UltraMemLayer",
    "ablation_ladder",
    "value_lr_multiplier",
    "memory_param_groups",
    "value_lr_scheduler",
]


@dataclass
class UltraMemConfig:
    """Configuration of one UltraMem layer. Defaults: UltraMem's switches (method.md §3–§7) on a
    square grid and without the query convolution; :meth:`paper` is Table 2's final layer (the
    ablation ladder's last rung), with the rectangular "half D_v, twice the values" grid and the
    convolution.

    Sizes:
        d_model: D, input/output width.
        num_values: N, physical value rows: N = a·n² on an n × a·n grid (a = grid_aspect).
        grid_aspect: a, columns per row of the physical grid: 1 (the default) is a square n×n grid,
            2 an n×2n grid — the paper's "half D_v, twice the values" doubles a square N this way.
            With IVE the virtual grid is √E·n × √E·a·n.
        value_dim: D_v; None → D/2 with an output projection (the paper's "half D_v, twice the
            values"), D without one.
        key_dim: D_k, width of one sub-key and of q_row / q_col.
        num_heads: H, key sets searched per token; their selections are pooled together.
        topm: m, values selected per head.
        num_layers: L of the surrounding model, used by the improved initialisation.
    Switches (Table 2 of the paper, in order):
        score_activation: "softmax" (PKM) or "none" (UltraMem: raw selected scores).
        output_projection: a Linear(E·D_v → D) after pooling (UltraMem) or none (PKM, D_v = D).
        shared_query: one query for all heads (UltraMem) or one per head (PKM).
        query_norm / key_norm: "layernorm"/True (UltraMem) or "batchnorm"/False (PKM).
        expansion: E, IVE's virtual blocks (paper 4; 1 = off). Must be a perfect square.
        tucker_rank: r for TDQKR (paper 2), or None for additive product keys (PKM).
        num_cores: h for MCS (paper 2; 1 = off). Needs TDQKR; must divide D_v.
        tdqkr_both_signs: stage 1 also searches the most negative rows × columns (see
            :func:`~ultramem_edu.tdqkr.tdqkr_topm`); False is the paper's search.
        improved_init: the variance-preserving initialisation of §7 (UltraMem) or PKM's.
        init_score_scale: with improved_init, where the scale sits. "released" (the authors'
            released code, ``reset_parameters`` of ``olmo/ultramem_layer.py``): query/key LayerNorm
            weights constant D_k^-0.33, values N(0, 0.02²), query Linear and keys N(0, 1/D_k), output
            projection N(0, 1/(E·D_v)) — the released code's own choice, not calibrated.
            "unit" (the paper): the
            query/key LayerNorm weights are scaled so the selected scores average 1 and the values
            carry the 1/(2L) variance. "layernorm" (the book's variant): the LayerNorm weights stay
            1 and the value std is divided by the measured RMS of the selected scores, so the
            output variance is the same 1/(2L). Same start, different training: with Adam the
            values of "unit" learn far more slowly in output terms, which the paper's value
            learning-rate multiplier is there to offset (see :mod:`ultramem_edu.init`; chapter 11
            compares the three initialisations, each with its value learning rate).
        query_conv_kernel: causal depthwise conv before the query Linear; 0 = off. Table 2's last
            row adds it for a 0.000 change and the sources give no size (unofficial code: 5).
    Auxiliary loss on the summed Tucker core (§4): aux_alpha (0 = off), aux_tau.
    Other: shuffle_seed (IVE's fixed permutation), value_init_std (None → PKM's D_v^-1/2 when
    improved_init is off), init_samples (Monte Carlo size for the LN calibration), kernel_backend.
    """

    d_model: int
    num_values: int = 1024
    grid_aspect: int = 1
    value_dim: int | None = None
    key_dim: int = 32
    num_heads: int = 2
    topm: int = 8
    num_layers: int = 4
    score_activation: str = "none"
    output_projection: bool = True
    shared_query: bool = True
    query_norm: str = "layernorm"
    key_norm: bool = True
    expansion: int = 4
    tucker_rank: int | None = 2
    num_cores: int = 2
    tdqkr_both_signs: bool = False
    improved_init: bool = True
    init_score_scale: str = "unit"
    query_conv_kernel: int = 0
    aux_alpha: float = 0.001
    aux_tau: float = 0.15
    shuffle_seed: int = 0
    value_init_std: float | None = None
    init_samples: int = 2048
    kernel_backend: str = "auto"

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, 1)
        check_int("num_values", self.num_values, 1)
        if self.value_dim is None:
            self.value_dim = self.d_model // 2 if self.output_projection else self.d_model
        check_int("value_dim", self.value_dim, 1)
        check_int("key_dim", self.key_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("num_layers", self.num_layers, 1)
        check_choice("score_activation", self.score_activation, ("none", "softmax"))
        check_choice("query_norm", self.query_norm, ("layernorm", "batchnorm", "none"))
        check_choice("kernel_backend", self.kernel_backend, ("auto", "torch", "triton"))
        check_choice("init_score_scale", self.init_score_scale, ("unit", "layernorm", "released"))
        check_int("expansion", self.expansion, 1)
        check_int("grid_aspect", self.grid_aspect, 1)
        if self.num_values % self.grid_aspect:
            raise ValueError(f"num_values N={self.num_values} must be a multiple of grid_aspect a={self.grid_aspect} "
                             "(an n × a·n grid)")
        n_side = keys_per_side(self.num_values // self.grid_aspect, self.expansion)  # checks both are perfect squares
        check_int("topm", self.topm, 1, n_side)
        if self.tucker_rank is not None:
            check_int("tucker_rank", self.tucker_rank, 1)
        check_int("num_cores", self.num_cores, 1)
        if self.num_cores > 1 and self.tucker_rank is None:
            raise ValueError("num_cores > 1 (MCS) needs a Tucker core: set tucker_rank, got tucker_rank=None")
        if self.value_dim % self.num_cores:
            raise ValueError(
                f"value_dim D_v={self.value_dim} must be divisible by num_cores h={self.num_cores}"
            )
        if self.score_activation == "softmax" and self.num_cores > 1:
            raise ValueError("score_activation='softmax' is defined for one core only, got num_cores="
                             f"{self.num_cores}")
        if not self.output_projection and (self.value_dim != self.d_model or self.expansion != 1):
            raise ValueError(
                "output_projection=False needs value_dim == d_model and expansion == 1, got "
                f"value_dim={self.value_dim}, d_model={self.d_model}, expansion={self.expansion}"
            )
        if self.improved_init and (
            self.query_norm != "layernorm" or not self.key_norm or not self.output_projection
            or self.score_activation != "none"
        ):
            raise ValueError(
                "improved_init calibrates raw scores through the query/key LayerNorm weights and scales "
                "the output projection: it needs query_norm='layernorm', key_norm=True, "
                "output_projection=True and score_activation='none', got "
                f"{self.query_norm!r}, {self.key_norm}, {self.output_projection}, {self.score_activation!r}"
            )
        check_int("query_conv_kernel", self.query_conv_kernel, 0)
        check_int("init_samples", self.init_samples, 2)
        if self.aux_alpha < 0 or self.aux_tau < 0:
            raise ValueError(f"aux_alpha and aux_tau must be >= 0, got {self.aux_alpha}, {self.aux_tau}")

    @property
    def grid_shape(self) -> tuple[int, int]:
        """(n_r', n_c') = (√E·n, √E·a·n): row and column keys of the virtual grid (address i·n_c' + j)."""
        n_r = keys_per_side(self.num_values // self.grid_aspect, self.expansion)
        return n_r, self.grid_aspect * n_r

    @property
    def keys_per_side(self) -> int:
        """n' = √(E·N): keys per side of a square virtual grid (see :attr:`grid_shape` otherwise)."""
        if self.grid_aspect != 1:
            raise ValueError(f"keys_per_side is defined for square grids; this grid is {self.grid_shape} "
                             "(grid_aspect > 1): use grid_shape")
        return keys_per_side(self.num_values, self.expansion)

    @classmethod
    def paper(cls, d_model: int, num_values: int = 2048, conv_kernel: int = 5, **overrides) -> "UltraMemConfig":
        """Table 2's final UltraMem layer: every switch of :func:`ablation_ladder`'s last rung.

        Unlike the defaults, ``num_values`` N = 2n² values of width D/2 lie on an n × 2n grid
        (``grid_aspect=2``, the "half D_v, twice the values" rung) and a causal depthwise
        convolution of width ``conv_kernel`` precedes the query (the sources give no width; 5 is
        the unofficial implementations' choice). ``ablation_ladder(d_model, num_values=n²)[-1]``
        is ``UltraMemConfig.paper(d_model, num_values=2 * n²)``.
        """
        check_int("num_values", num_values, 2)
        if num_values % 2:
            raise ValueError(f"num_values must be 2·n² (an n × 2n grid), got {num_values}")
        base = dict(num_values=num_values, grid_aspect=2, query_conv_kernel=conv_kernel)
        base.update(overrides)
        return cls(d_model=d_model, **base)

    @classmethod
    def pkm(cls, d_model: int, **overrides) -> "UltraMemConfig":
        """Lample et al.'s PKM expressed with this layer's switches (the ladder's first rung)."""
        base = dict(
            score_activation="softmax", output_projection=False, value_dim=d_model, shared_query=False,
            query_norm="batchnorm", key_norm=False, expansion=1, tucker_rank=None, num_cores=1,
            improved_init=False, query_conv_kernel=0, aux_alpha=0.0,
        )
        base.update(overrides)
        return cls(d_model=d_model, **base)


def ablation_ladder(d_model: int, conv_kernel: int = 5, **sizes) -> list[tuple[str, UltraMemConfig]]:
    """The paper's Table 2 as configs: PKM, then one switch at a time, ending at UltraMem.

    ``sizes`` (num_values, key_dim, num_heads, topm, num_layers, ...) apply to every rung. The
    "split into several layers + skip wiring" rung is a model-level change (see :mod:`model`) and
    the value-lr decay an optimiser change (:func:`value_lr_scheduler`); they are listed so the
    ladder reads like the table, with the layer config unchanged at those steps.

    The "half D_v, twice the values" rung is the paper's: D_v = D/2 and 2N values on a rectangular
    n × 2n grid (``grid_aspect=2``), so the table keeps its N·D parameters. ``num_values`` must then
    be a square n² (the PKM rungs' grid).
    """
    cfg = UltraMemConfig.pkm(d_model, **sizes)
    steps: list[tuple[str, dict]] = [
        ("PKM", {}),
        ("remove softmax", dict(score_activation="none")),
        ("half D_v, output projection", dict(output_projection=True, value_dim=d_model // 2,
                                              num_values=2 * cfg.num_values, grid_aspect=2 * cfg.grid_aspect)),
        ("shared query", dict(shared_query=True)),
        ("split layers + skip wiring (model)", {}),
        ("LayerNorm on query and keys", dict(query_norm="layernorm", key_norm=True)),
        ("IVE (E=4)", dict(expansion=4)),
        ("TDQKR (r=2)", dict(tucker_rank=2, aux_alpha=0.001)),
        ("MCS (h=2)", dict(num_cores=2)),
        ("improved init", dict(improved_init=True)),
        ("value lr decay (optimiser)", {}),
        ("causal depthwise conv", dict(query_conv_kernel=conv_kernel)),
    ]
    ladder = []
    for name, change in steps:
        cfg = dataclasses.replace(cfg, **change)
        ladder.append((name, cfg))
    return ladder


class UltraMemLayer(nn.Module):
    """The UltraMem memory layer.

    forward(x: (..., D)) -> :class:`~ultramem_edu.types.MemoryOutput` with
    output (..., D); indices, scores (..., H, m) on the n'×n' grid (before the IVE shuffle);
    aux_loss (scalar); singular_values (H, r) of the summed core, or None without TDQKR.
    With query_conv_kernel > 0, x must be (B, T, D) with time in dim 1 (the conv is causal in T).
    """

    def __init__(self, config: UltraMemConfig):
        super().__init__()
        if not isinstance(config, UltraMemConfig):
            raise TypeError(f"config must be an UltraMemConfig, got {type(config).__name__}")
        self.config = c = config
        (n_rows, n_cols), r = c.grid_shape, c.tucker_rank or 1
        self.num_queries = 1 if c.shared_query else c.num_heads
        q_width = self.num_queries * 2 * c.key_dim

        self.query_conv = (
            nn.Conv1d(c.d_model, c.d_model, c.query_conv_kernel, groups=c.d_model, padding=c.query_conv_kernel - 1)
            if c.query_conv_kernel else None
        )
        self.query = nn.Linear(c.d_model, q_width)
        if c.query_norm == "layernorm":
            self.query_norm = nn.LayerNorm(c.key_dim, bias=False)
        elif c.query_norm == "batchnorm":
            self.query_norm = nn.BatchNorm1d(q_width)
        else:
            self.query_norm = None
        self.key_norm = nn.LayerNorm(c.key_dim, bias=False) if c.key_norm else None
        # keys[side, head, key set a, key, dim]; side 0 = rows, 1 = columns. A rectangular grid
        # (grid_aspect > 1) has sides of different lengths: keys[head, key set a, key, dim] holds the
        # n_r' row keys, then the n_c' column keys.
        if n_rows == n_cols:
            self.keys = nn.Parameter(torch.empty(2, c.num_heads, r, n_rows, c.key_dim))
        else:
            self.keys = nn.Parameter(torch.empty(c.num_heads, r, n_rows + n_cols, c.key_dim))
        self.tucker_cores = (
            nn.Parameter(torch.empty(c.num_heads, c.num_cores, r, r)) if c.tucker_rank is not None else None
        )
        self.values = nn.Parameter(torch.empty(c.num_values, c.value_dim))
        self.out_proj = nn.Linear(c.expansion * c.value_dim, c.d_model, bias=False) if c.output_projection else None
        if c.expansion > 1:
            self.register_buffer("shuffle", make_shuffle(c.expansion * c.num_values, c.shuffle_seed))
        else:
            self.shuffle = None
        if c.tucker_rank is not None:
            self.register_buffer("factor_u", torch.zeros(c.num_heads, r))
            self.register_buffer("factor_t", torch.zeros(c.num_heads, r))
        self.reset_parameters()

    # ------------------------------------------------------------------ initialisation
    def reset_parameters(self) -> None:
        c = self.config
        self.query.reset_parameters()
        if self.query_conv is not None:
            self.query_conv.reset_parameters()
        for norm in (self.query_norm, self.key_norm):
            if norm is not None:
                norm.reset_parameters()
        bound = c.key_dim**-0.5
        if c.improved_init and c.init_score_scale == "released":
            nn.init.normal_(self.keys, std=bound)
        else:
            nn.init.uniform_(self.keys, -bound, bound)
        if self.tucker_cores is not None:
            nn.init.uniform_(self.tucker_cores, 0.0, 1.0)  # the released code's U(0, 1)
            with torch.no_grad():
                u, t = rank1_factors(self.tucker_cores.sum(1))
                self.factor_u.copy_(u)
                self.factor_t.copy_(t)
        if c.improved_init and c.init_score_scale == "released":
            g = c.key_dim**-0.33                                   # released: constant LN weights
            self.query_norm.weight.data.fill_(g)
            self.key_norm.weight.data.fill_(g)
            nn.init.normal_(self.query.weight, std=c.key_dim**-0.5)
            nn.init.zeros_(self.query.bias)
            nn.init.normal_(self.values, std=0.02)
            nn.init.normal_(self.out_proj.weight, std=init_.output_projection_std(c.expansion, c.value_dim))
        elif c.improved_init:
            std = init_.value_std(c.expansion, c.topm, c.num_heads, c.num_layers)
            if c.init_score_scale == "layernorm":  # LN weights stay 1: the scores' size goes into the value std
                std /= float(self._init_weights(c.init_samples, seed=0).float().pow(2).mean().sqrt())
            nn.init.normal_(self.values, std=std)
            nn.init.normal_(self.out_proj.weight, std=init_.output_projection_std(c.expansion, c.value_dim))
            if c.init_score_scale == "unit":
                self.calibrate_score_scale()
        else:
            nn.init.normal_(self.values, std=c.value_init_std or c.value_dim**-0.5)
            if self.out_proj is not None:
                self.out_proj.reset_parameters()

    @torch.no_grad()
    def calibrate_score_scale(self, samples: int | None = None, seed: int = 0) -> float:
        """Scale the query/key LayerNorm weights so the scores that weight the values average 1.

        Monte Carlo over standard-normal inputs. With MCS these are the per-core scores (each core
        weights its own value slice), so the summed selected score then averages ≈ h. Returns the
        mean measured *before* rescaling.
        """
        c = self.config
        measured = float(self._init_weights(samples or c.init_samples, seed).float().mean())
        degree = 2 if c.tucker_rank is None else 4
        g = init_.ln_scale_for_unit_mean(measured, degree)
        self.query_norm.weight.mul_(g)
        self.key_norm.weight.mul_(g)
        return measured

    @torch.no_grad()
    def _init_weights(self, samples: int, seed: int) -> torch.Tensor:
        """The scores that weight the values, (S, H, m, h), for S standard-normal inputs."""
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(samples, 1, self.config.d_model, generator=generator)    # (S, T=1, D)
        was_training = self.training
        self.eval()
        weights = self._select(self._sub_scores(x.to(self.values)))[1]
        self.train(was_training)
        return weights

    # ------------------------------------------------------------------ forward pieces
    def _sub_scores(self, x: torch.Tensor):
        """x (..., D) -> S (B', H, 2, r, n'): each head's row (side 0) and column (side 1) scores.

        On a rectangular grid (grid_aspect > 1) the two sides differ in length: a pair
        (rows (B', H, r, n_r'), columns (B', H, r, n_c')) instead."""
        c = self.config
        if self.query_conv is not None:
            if x.dim() != 3:
                raise ValueError(f"with query_conv_kernel > 0, x must be (B, T, D), got shape {tuple(x.shape)}")
            T = x.shape[1]
            x = self.query_conv(x.transpose(1, 2))[..., :T].transpose(1, 2)   # causal: trim the tail
        q = self.query(x.reshape(-1, c.d_model))                               # (B', Q*2*D_k)
        if isinstance(self.query_norm, nn.BatchNorm1d):
            q = self.query_norm(q)
        q = q.view(-1, self.num_queries, 2, c.key_dim)                         # (B', Q, 2, D_k)
        if isinstance(self.query_norm, nn.LayerNorm):
            q = self.query_norm(q)
        q = q.expand(-1, c.num_heads, -1, -1)                                  # shared query → every head
        keys = self.key_norm(self.keys) if self.key_norm is not None else self.keys
        if keys.dim() == 5:                                                    # square grid
            return torch.einsum("bhsd,shakd->bhsak", q, keys)                  # (B', H, 2, r, n')
        n_rows = c.grid_shape[0]                                               # rectangular: sides apart
        row = torch.einsum("bhd,hakd->bhak", q[:, :, 0], keys[:, :, :n_rows])  # (B', H, r, n_r')
        col = torch.einsum("bhd,hakd->bhak", q[:, :, 1], keys[:, :, n_rows:])  # (B', H, r, n_c')
        return row, col

    def _rank1_factors(self, summed_core: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """u, t of each head's summed core, sign-aligned with the previous ones (stored while training)."""
        u, t = rank1_factors(summed_core, previous=(self.factor_u, self.factor_t))
        if self.training:
            self.factor_u.copy_(u)
            self.factor_t.copy_(t)
        return u, t

    def _select(self, sub: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sub (B', H, 2, r, n') or a (rows, columns) pair -> scores (B', H, m), weights (B', H, m, h),
        grid indices (B', H, m) (address i·n_c' + j)."""
        c = self.config
        row, col = (sub[:, :, 0], sub[:, :, 1]) if isinstance(sub, torch.Tensor) else sub   # (B', H, r, n)
        if self.tucker_cores is None:
            scores, indices = _product_key_topm(row[:, :, 0], col[:, :, 0], c.topm)
            weights = scores.unsqueeze(-1)
        else:
            factors = self._rank1_factors(self.tucker_cores.sum(1))
            scores, weights, indices = _mcs_topm(row, col, self.tucker_cores, c.topm, factors, c.tdqkr_both_signs)
        if c.score_activation == "softmax":
            weights = F.softmax(scores.float(), dim=-1).type_as(scores).unsqueeze(-1)
        return scores, weights, indices

    def value_parameters(self) -> list[nn.Parameter]:
        """The value table, which trains with its own learning-rate multiplier."""
        return [self.values]

    def activated_parameters_per_token(self) -> int:
        """Parameters one token multiplies with: every parameter except the value table, of which
        only the H·m selected rows (at most N) are read; the keys are all scored, so they all count."""
        c = self.config
        others = sum(p.numel() for p in self.parameters() if p is not self.values)
        return others + min(c.num_heads * c.topm, c.num_values) * c.value_dim

    def route(self, x: torch.Tensor):
        """Everything before the value lookup: validate ``x`` (..., D), score, select, shuffle.

        Returns ``(lead, scores, weights, indices, virtual)``: the leading shape of ``x``, the selected
        summed scores (B', H, m), the per-core pooling weights (B', H·m, h), the selected logical
        addresses (B', H, m) and the virtual addresses to read (B', H·m), after IVE's shuffle.
        """
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        scores, weights, indices = self._select(self._sub_scores(x))            # (B', H, m[, h])
        virtual = self.shuffle[indices] if self.shuffle is not None else indices  # IVE shuffle
        return x.shape[:-1], scores, weights.flatten(1, 2), indices, virtual.flatten(1)

    def combine(self, pooled: torch.Tensor, lead, scores: torch.Tensor, indices: torch.Tensor) -> MemoryOutput:
        """Everything after the value lookup: project the pooled blocks (B', E, D_v) back to D and
        add the Tucker core's auxiliary loss and singular values."""
        c = self.config
        output = self.out_proj(pooled.flatten(1)) if self.out_proj is not None else pooled[:, 0]
        aux, sigma = pooled.new_zeros(()), None
        if self.tucker_cores is not None:
            summed = self.tucker_cores.sum(1)                                   # (H, r, r)
            if c.aux_alpha > 0 and c.tucker_rank > 1:
                aux = tucker_aux_loss(summed, tau=c.aux_tau, alpha=c.aux_alpha)
            sigma = torch.linalg.svdvals(summed.detach().double()).to(summed.dtype)  # no half SVD on CPU
        return MemoryOutput(
            output=output.view(*lead, c.d_model),
            indices=indices.view(*lead, c.num_heads, c.topm),
            scores=scores.view(*lead, c.num_heads, c.topm),
            aux_loss=aux,
            singular_values=sigma,
        )

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        c = self.config
        lead, scores, weights, indices, virtual = self.route(x)
        pooled = value_lookup(self.values, virtual, weights, num_blocks=c.expansion,
                              backend=c.kernel_backend)                         # (B', E, D_v)
        return self.combine(pooled, lead, scores, indices)


# ---------------------------------------------------------------------- value learning rate
def value_lr_multiplier(step: int, total_steps: int, k: float = 10.0) -> float:
    """1 + (k − 1)·max(0, 1 − step/T): k× at step 0, decaying linearly to 1× at T.

    The paper's text uses k = 10, the released training script k = 4.
    """
    check_int("step", step, 0)
    check_int("total_steps", total_steps, 1)
    if not k >= 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return 1.0 + (k - 1.0) * max(0.0, 1.0 - step / total_steps)


def _value_parameters(model: nn.Module) -> list[nn.Parameter]:
    found = []
    for module in model.modules():
        if hasattr(module, "value_parameters"):
            found.extend(module.value_parameters())
    return found


def memory_param_groups(model: nn.Module, lr: float, weight_decay: float = 0.0) -> list[dict]:
    """Two optimiser groups: every value table (no weight decay) and everything else.

    Groups carry a "name" ("main" / "values") so :func:`value_lr_scheduler` can tell them apart.
    """
    values = _value_parameters(model)
    value_ids = {id(p) for p in values}
    main = [p for p in model.parameters() if id(p) not in value_ids]
    groups = [{"name": "main", "params": main, "lr": lr, "weight_decay": weight_decay}]
    if values:
        groups.append({"name": "values", "params": values, "lr": lr, "weight_decay": 0.0})
    return groups


def value_lr_scheduler(
    optimizer: torch.optim.Optimizer, total_steps: int, k: float = 10.0, base: Iterable | None = None
) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR giving the "values" group lr × value_lr_multiplier(step), the others lr × 1.

    ``base``: an optional function step → factor (e.g. warm-up + cosine) applied to every group.
    """
    def factor(name: str):
        def f(step: int) -> float:
            b = base(step) if base is not None else 1.0
            return b * (value_lr_multiplier(step, total_steps, k) if name == "values" else 1.0)
        return f

    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, [factor(g.get("name", "main")) for g in optimizer.param_groups]
    )
