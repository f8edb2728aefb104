"""MCS — multi-core scoring (method.md §6).

The Tucker core is a sum of h cores, C = Σ_c C_c. The *summed* core chooses the top-m addresses;
then core c's own score S_c = S_rowᵀ C_c S_col weights its own slice of the value width,
V[:, c·D_v/h : (c+1)·D_v/h], and the slices are concatenated. With IVE the physical values are split.
"""
from __future__ import annotations

import torch

from ._checks import check_float_tensor, check_index_tensor, check_int
from .kernels import value_lookup
from .tdqkr import _check_tucker, _tdqkr_topm, gather_tucker_scores, rank1_factors

__all__ = ["mcs_topm", "core_scores_at", "mcs_pool", "mcs_pool_reference"]


def mcs_topm(
    row_scores: torch.Tensor,
    col_scores: torch.Tensor,
    cores: torch.Tensor,
    m: int,
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    both_signs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Select with the summed core, score with each core.

    Args:
        row_scores: (..., r, n_r); col_scores: (..., r, n_c).
        cores: (h, r, r), or (..., h, r, r) broadcastable against the leading dims (e.g. per head).
        m: values kept. factors, both_signs: as in :func:`~ultramem_edu.tdqkr.tdqkr_topm`.

    Returns:
        scores (..., m): summed-core scores, descending; core_scores (..., m, h): each core's score at
        the same addresses (they sum to ``scores``); indices (..., m) int64 grid addresses.
    """
    check_float_tensor("cores", cores, min_ndim=3)
    summed = cores.sum(-3)
    _check_tucker(row_scores, col_scores, summed)
    check_int("m", m, 1, min(row_scores.shape[-1], col_scores.shape[-1]))
    if factors is None:
        factors = rank1_factors(summed)
    return _mcs_topm(row_scores, col_scores, cores, m, factors, both_signs)


def _mcs_topm(row_scores, col_scores, cores, m, factors, both_signs):
    """:func:`mcs_topm` without input checks (factors required), for callers that validated."""
    scores, indices = _tdqkr_topm(row_scores, col_scores, cores.sum(-3), m, factors, both_signs)
    return scores, core_scores_at(row_scores, col_scores, cores, indices), indices


def core_scores_at(
    row_scores: torch.Tensor, col_scores: torch.Tensor, cores: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """Each core's own score S_c = S_rowᵀ C_c S_col at the grid addresses ``indices`` (..., m).

    row_scores (..., r, n_r), col_scores (..., r, n_c), cores (..., h, r, r) → (..., m, h).
    """
    per_core = gather_tucker_scores(
        row_scores.unsqueeze(-3), col_scores.unsqueeze(-3), cores, indices.unsqueeze(-2)
    )                                                                  # (..., h, m)  one row per core
    return per_core.transpose(-1, -2)


def mcs_pool(
    values: torch.Tensor, indices: torch.Tensor, core_scores: torch.Tensor, num_blocks: int = 1
) -> torch.Tensor:
    """Each core's scores pool its own column slice of the values: (B, num_blocks, D_v).

    values (N, D_v); indices (B, k) virtual addresses; core_scores (B, k, h) with h | D_v.
    This is exactly :func:`ultramem_edu.kernels.value_lookup` with h cores.
    """
    return value_lookup(values, indices, core_scores, num_blocks=num_blocks)


def mcs_pool_reference(
    values: torch.Tensor, indices: torch.Tensor, core_scores: torch.Tensor, num_blocks: int = 1
) -> torch.Tensor:
    """An explicit loop over cores, bags and selections. Same contract as :func:`mcs_pool`."""
    check_float_tensor("values", values, ndim=2)
    check_int("num_blocks", num_blocks, 1)
    n, d_v = values.shape
    check_index_tensor("indices", indices, high=num_blocks * n, ndim=2)
    check_float_tensor("core_scores", core_scores, ndim=3, shape=(indices.shape[1], None))
    h = core_scores.shape[-1]
    if d_v % h:
        raise ValueError(f"the value width D_v={d_v} must be divisible by the number of cores h={h}")
    s = d_v // h
    out = values.new_zeros(indices.shape[0], num_blocks, d_v)
    for c in range(h):
        for b in range(indices.shape[0]):
            for k in range(indices.shape[1]):
                a = int(indices[b, k])
                out[b, a // n, c * s:(c + 1) * s] += core_scores[b, k, c] * values[a % n, c * s:(c + 1) * s]
    return out
