"""Product keys (PKM, Lample et al. 2019): a 2-D address grid searched in O(n), not O(n²).

Two sub-key sets K_row, K_col ∈ R^{n×D_k}; logical address (i, j) is physical row i·n + j and

    s(i, j) = K_row[i]·q_row + K_col[j]·q_col.

Because the score is a *sum*, every member of the global top-m has its row among the m best rows and
its column among the m best columns (otherwise m cells beat it). So two small top-m's and one top-m
over the m×m candidate sums give the exact answer at cost O(2n·D_k + m²).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_choice, check_float_tensor, check_int
from .types import MemoryOutput

__all__ = [
    "product_key_topm",
    "product_key_topm_reference",
    "grid_scores_additive",
    "PKMConfig",
    "PKMLayer",
]


def _check_row_col(row_scores: torch.Tensor, col_scores: torch.Tensor, m: int) -> None:
    check_float_tensor("row_scores", row_scores, min_ndim=1)
    check_float_tensor("col_scores", col_scores, min_ndim=1)
    if row_scores.shape[:-1] != col_scores.shape[:-1]:
        raise ValueError(
            "row_scores and col_scores must share their leading shape, got "
            f"{tuple(row_scores.shape)} and {tuple(col_scores.shape)}"
        )
    check_int("m", m, 1, min(row_scores.shape[-1], col_scores.shape[-1]))


def grid_scores_additive(row_scores: torch.Tensor, col_scores: torch.Tensor) -> torch.Tensor:
    """The full grid s[..., i, j] = row_scores[..., i] + col_scores[..., j]: (..., n_r, n_c)."""
    return row_scores.unsqueeze(-1) + col_scores.unsqueeze(-2)


def product_key_topm(
    row_scores: torch.Tensor, col_scores: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-m of row_scores[i] + col_scores[j] over the n_r × n_c grid, in two stages.

    Args:
        row_scores: (..., n_r) float.
        col_scores: (..., n_c) float, same leading shape.
        m: 1 ≤ m ≤ min(n_r, n_c).

    Returns:
        scores (..., m) sorted descending; indices (..., m) int64, index = i·n_c + j.
    """
    _check_row_col(row_scores, col_scores, m)
    return _product_key_topm(row_scores, col_scores, m)


def _product_key_topm(row_scores: torch.Tensor, col_scores: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`product_key_topm` without input checks, for layers whose inputs are valid by construction."""
    n_c = col_scores.shape[-1]
    top_row, row_idx = row_scores.topk(m, dim=-1)                      # (..., m)  stage 1: rows
    top_col, col_idx = col_scores.topk(m, dim=-1)                      # (..., m)  stage 1: columns
    candidates = grid_scores_additive(top_row, top_col).flatten(-2)    # (..., m*m)
    scores, flat = candidates.topk(m, dim=-1)                          # (..., m)  stage 2
    i = row_idx.gather(-1, flat // m)
    j = col_idx.gather(-1, flat % m)
    return scores, i * n_c + j


def product_key_topm_reference(
    row_scores: torch.Tensor, col_scores: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: build the whole n_r × n_c grid and take its top-m. Same contract as above."""
    _check_row_col(row_scores, col_scores, m)
    return grid_scores_additive(row_scores, col_scores).flatten(-2).topk(m, dim=-1)


@dataclass
class PKMConfig:
    """Lample et al.'s product-key memory layer, the baseline of the ablation ladder.

    Attributes:
        d_model: D, input and output width (values are D wide: no output projection).
        num_keys: n, sub-keys per side; the memory holds n² values. Paper: 512.
        key_dim: D_k, width of one sub-key (the query per head is 2·D_k). Paper: 128/256 (full query).
        num_heads: H, heads with their own query and keys, sharing the values; outputs summed. Paper: 4.
        topm: m, values read per head. Paper: 32.
        query_norm: "batchnorm" (paper) or "none".
    """

    d_model: int
    num_keys: int = 32
    key_dim: int = 16
    num_heads: int = 4
    topm: int = 8
    query_norm: str = "batchnorm"

    def __post_init__(self) -> None:
        check_int("d_model", self.d_model, 1)
        check_int("num_keys", self.num_keys, 1)
        check_int("key_dim", self.key_dim, 1)
        check_int("num_heads", self.num_heads, 1)
        check_int("topm", self.topm, 1, self.num_keys)
        check_choice("query_norm", self.query_norm, ("batchnorm", "none"))

    @property
    def num_values(self) -> int:
        return self.num_keys**2


class PKMLayer(nn.Module):
    """Product-key memory layer (Lample et al. 2019).

    forward(x: (..., D)) -> MemoryOutput with output (..., D), indices/scores (..., H, m).
    """

    def __init__(self, config: PKMConfig):
        super().__init__()
        if not isinstance(config, PKMConfig):
            raise TypeError(f"config must be a PKMConfig, got {type(config).__name__}")
        self.config = c = config
        self.query = nn.Linear(c.d_model, c.num_heads * 2 * c.key_dim)
        self.query_bn = nn.BatchNorm1d(c.num_heads * 2 * c.key_dim) if c.query_norm == "batchnorm" else None
        # keys[side, head, key, dim]: side 0 = row sub-keys, side 1 = column sub-keys
        bound = c.key_dim**-0.5
        self.keys = nn.Parameter(torch.empty(2, c.num_heads, c.num_keys, c.key_dim).uniform_(-bound, bound))
        self.values = nn.EmbeddingBag(c.num_values, c.d_model, mode="sum")
        nn.init.normal_(self.values.weight, std=c.d_model**-0.5)

    def value_parameters(self) -> list[nn.Parameter]:
        return [self.values.weight]

    def activated_parameters_per_token(self) -> int:
        """Every parameter except the values, plus the H·m value rows read (at most N)."""
        c = self.config
        others = sum(p.numel() for p in self.parameters() if p is not self.values.weight)
        return others + min(c.num_heads * c.topm, c.num_values) * c.d_model

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        c = self.config
        check_float_tensor("x", x, min_ndim=1, shape=(c.d_model,))
        lead = x.shape[:-1]
        q = self.query(x.reshape(-1, c.d_model))                           # (B, H*2*D_k)
        if self.query_bn is not None:
            q = self.query_bn(q)
        q = q.view(-1, c.num_heads, 2, c.key_dim)                          # (B, H, 2, D_k)
        sub_scores = torch.einsum("bhsd,shkd->bhsk", q, self.keys)         # (B, H, 2, n)
        scores, indices = _product_key_topm(sub_scores[:, :, 0], sub_scores[:, :, 1], c.topm)  # (B, H, m)
        weights = F.softmax(scores.float(), dim=-1).type_as(scores)
        output = self.values(indices.flatten(1), per_sample_weights=weights.flatten(1))  # (B, D) heads summed
        return MemoryOutput(
            output=output.view(*lead, c.d_model),
            indices=indices.view(*lead, c.num_heads, c.topm),
            scores=scores.view(*lead, c.num_heads, c.topm),
            aux_loss=x.new_zeros(()),
        )
