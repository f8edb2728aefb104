"""TDQKR — Tucker-decomposed query-key retrieval (method.md §4).

r key sets per side give score matrices S_row ∈ R^{r×n_r}, S_col ∈ R^{r×n_c}; a learned Tucker core
C ∈ R^{r×r} mixes them into the grid

    S_grid = S_rowᵀ C S_col,   score(i, j) = Σ_{a,b} S_row[a, i] C[a, b] S_col[b, j].

A bilinear form has no exact two-stage shortcut, so retrieval is approximate in stage 1 and exact in
stage 2: with C = Σ_i σ_i u_i t_iᵀ its singular value decomposition and u = u_1, t = t_1 the leading
pair (C ≈ σ₁ u tᵀ), keep the m rows with the largest uᵀS_row and the m columns with the largest
tᵀS_col; then score the m×m candidates with the full core and keep the best m. u and t carry no
gradient. :func:`stage1_reach` asks the converse question: is every cell returned for some query?
"""
from __future__ import annotations

import torch

from ._checks import check_float_tensor, check_int

__all__ = [
    "tucker_scores",
    "rank1_factors",
    "tdqkr_topm",
    "tdqkr_topm_reference",
    "gather_tucker_scores",
    "tucker_aux_loss",
    "recall_at_m",
    "stage1_reach",
]


def _check_tucker(row_scores: torch.Tensor, col_scores: torch.Tensor, core: torch.Tensor) -> None:
    check_float_tensor("row_scores", row_scores, min_ndim=2)
    check_float_tensor("col_scores", col_scores, min_ndim=2)
    check_float_tensor("core", core, min_ndim=2)
    r = core.shape[-1]
    if core.shape[-2] != r:
        raise ValueError(f"core must be square (..., r, r), got shape {tuple(core.shape)}")
    if row_scores.shape[-2] != r or col_scores.shape[-2] != r:
        raise ValueError(
            f"row_scores and col_scores must have r={r} key sets in dim -2 (..., r, n), got "
            f"{tuple(row_scores.shape)} and {tuple(col_scores.shape)}"
        )
    if row_scores.shape[:-2] != col_scores.shape[:-2]:
        raise ValueError(
            "row_scores and col_scores must share their leading shape, got "
            f"{tuple(row_scores.shape)} and {tuple(col_scores.shape)}"
        )


def tucker_scores(row_scores: torch.Tensor, col_scores: torch.Tensor, core: torch.Tensor) -> torch.Tensor:
    """The full grid S_rowᵀ C S_col.

    Args:
        row_scores: (..., r, n_r); col_scores: (..., r, n_c); core: (r, r) or broadcastable (..., r, r).
    Returns:
        (..., n_r, n_c) with out[..., i, j] = Σ_{a,b} row[..., a, i] · core[a, b] · col[..., b, j].
    """
    _check_tucker(row_scores, col_scores, core)
    return row_scores.transpose(-1, -2) @ core @ col_scores


@torch.no_grad()
def rank1_factors(
    core: torch.Tensor, previous: tuple[torch.Tensor, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Leading singular vectors (u, t) of ``core`` (..., r, r), detached, each (..., r).

    The SVD fixes u and t only up to a common sign; (−u, −t) gives the same rank-1 matrix but negates
    both rank-1 projections, so stage 1 searches the opposite corner of the grid: the bottom rows and
    columns when the projections are non-negative, an equally good corner when they are signed. With
    ``previous`` the pair closer in L1 to the previous pair is kept (the released code's rule, so the
    selection does not jump between optimiser steps; a tie, as from the released code's start at
    u = t = 0, keeps the SVD's own sign); without it the sign making Σu + Σt ≥ 0 is chosen (for a
    positive core, the Perron vectors).
    """
    check_float_tensor("core", core, min_ndim=2)
    U, _, Vh = torch.linalg.svd(core.detach().double())
    u, t = U[..., :, 0], Vh[..., 0, :]
    if previous is None:
        flip = (u.sum(-1) + t.sum(-1)) < 0
    else:
        pu, pt = (p.double() for p in previous)
        keep = (u - pu).abs().sum(-1) + (t - pt).abs().sum(-1)
        swap = (u + pu).abs().sum(-1) + (t + pt).abs().sum(-1)
        flip = swap < keep
    sign = torch.where(flip, -1.0, 1.0).unsqueeze(-1).to(u)
    return (sign * u).to(core.dtype), (sign * t).to(core.dtype)


def gather_tucker_scores(
    row_scores: torch.Tensor, col_scores: torch.Tensor, core: torch.Tensor, indices: torch.Tensor
) -> torch.Tensor:
    """Exact Tucker scores at grid addresses ``indices`` (..., k) (index = i·n_c + j) → (..., k).

    ``core`` may carry extra dims *before* (r, r) only if they match the leading dims; for several
    cores at once (MCS) use :func:`ultramem_edu.mcs.mcs_topm`.
    """
    n_c = col_scores.shape[-1]
    r = row_scores.shape[-2]
    i = (indices // n_c).unsqueeze(-2).expand(*indices.shape[:-1], r, indices.shape[-1])
    j = (indices % n_c).unsqueeze(-2).expand(*indices.shape[:-1], r, indices.shape[-1])
    a = row_scores.gather(-1, i)                                       # (..., r, k)
    b = col_scores.gather(-1, j)                                       # (..., r, k)
    return ((core @ b) * a).sum(-2)                                    # (..., k)  aᵀ C b per address


def _stage1_candidates(proj: torch.Tensor, m: int, both_signs: bool) -> torch.Tensor:
    """Indices (..., c) of the stage-1 candidates along one side: the m largest projections, and
    with ``both_signs`` also the m smallest (c = 2m, or every index when 2m exceeds the side)."""
    if not both_signs:
        return proj.topk(m, dim=-1).indices
    n = proj.shape[-1]
    order = proj.argsort(dim=-1, descending=True)
    if 2 * m >= n:
        return order
    return torch.cat([order[..., :m], order[..., n - m:]], dim=-1)   # disjoint: top m and bottom m


def tdqkr_topm(
    row_scores: torch.Tensor,
    col_scores: torch.Tensor,
    core: torch.Tensor,
    m: int,
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    both_signs: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-stage TDQKR retrieval: a rank-1 stage, then exact rescoring on the candidates.

    Args:
        row_scores: (..., r, n_r); col_scores: (..., r, n_c); core: (r, r) or (..., r, r).
        m: 1 ≤ m ≤ min(n_r, n_c).
        factors: optional (u, t), each (r,) or (..., r), e.g. sign-aligned ones from
            :func:`rank1_factors` with ``previous``; by default computed from ``core``.
        both_signs: the paper's stage 1 (False) keeps the m rows with the largest uᵀS_row and the
            m columns with the largest tᵀS_col, then rescores m × m cells. With signed scores the
            rank-1 product is also large where *both* projections are very negative, a corner that
            stage 1 never looks at. True adds the m smallest of each side (2m × 2m cells rescored),
            which makes the search exact for any rank-1 core, whatever the signs. Not in the paper.

    Returns:
        scores (..., m): the exact ``tucker_scores`` at the returned addresses, sorted descending;
        indices (..., m) int64, i·n_c + j, distinct.
    """
    _check_tucker(row_scores, col_scores, core)
    n_r, n_c = row_scores.shape[-1], col_scores.shape[-1]
    check_int("m", m, 1, min(n_r, n_c))
    u, t = rank1_factors(core) if factors is None else factors
    r = core.shape[-1]
    if u.shape[-1] != r or t.shape[-1] != r:
        raise ValueError(f"factors must be two (..., r={r}) tensors, got {tuple(u.shape)} and {tuple(t.shape)}")
    return _tdqkr_topm(row_scores, col_scores, core, m, (u, t), both_signs)


def _tdqkr_topm(
    row_scores: torch.Tensor,
    col_scores: torch.Tensor,
    core: torch.Tensor,
    m: int,
    factors: tuple[torch.Tensor, torch.Tensor],
    both_signs: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`tdqkr_topm` without input checks (factors required), for callers that validated."""
    n_c = col_scores.shape[-1]
    r = core.shape[-1]
    u, t = factors
    with torch.no_grad():  # stage 1 only chooses; it carries no gradient
        row_proj = (u.unsqueeze(-1) * row_scores).sum(-2)              # (..., n_r)  uᵀ S_row
        col_proj = (t.unsqueeze(-1) * col_scores).sum(-2)              # (..., n_c)  tᵀ S_col
        row_idx = _stage1_candidates(row_proj, m, both_signs)         # (..., c_r)  c_r = m (or 2m)
        col_idx = _stage1_candidates(col_proj, m, both_signs)         # (..., c_c)
    lead = row_scores.shape[:-2]
    c_r, c_c = row_idx.shape[-1], col_idx.shape[-1]
    sub_row = row_scores.gather(-1, row_idx.unsqueeze(-2).expand(*lead, r, c_r))   # (..., r, c_r)
    sub_col = col_scores.gather(-1, col_idx.unsqueeze(-2).expand(*lead, r, c_c))   # (..., r, c_c)
    candidates = (sub_row.transpose(-1, -2) @ core @ sub_col).flatten(-2)          # (..., c_r*c_c) stage 2, exact
    scores, flat = candidates.topk(m, dim=-1)
    indices = row_idx.gather(-1, flat // c_c) * n_c + col_idx.gather(-1, flat % c_c)
    return scores, indices


def tdqkr_topm_reference(
    row_scores: torch.Tensor, col_scores: torch.Tensor, core: torch.Tensor, m: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Brute force: the top-m of the full Tucker grid. Same return contract as :func:`tdqkr_topm`."""
    grid = tucker_scores(row_scores, col_scores, core)
    check_int("m", m, 1, min(grid.shape[-2], grid.shape[-1]))
    return grid.flatten(-2).topk(m, dim=-1)


def recall_at_m(indices: torch.Tensor, reference_indices: torch.Tensor) -> torch.Tensor:
    """Fraction of ``reference_indices`` (..., m) found in ``indices`` (..., m'), per leading entry."""
    if indices.shape[:-1] != reference_indices.shape[:-1]:
        raise ValueError(
            f"indices and reference_indices must share leading dims, got {tuple(indices.shape)} "
            f"and {tuple(reference_indices.shape)}"
        )
    hit = (reference_indices.unsqueeze(-1) == indices.unsqueeze(-2)).any(-1)
    return hit.float().mean(-1)


def tucker_aux_loss(core: torch.Tensor, tau: float = 0.15, alpha: float = 0.001) -> torch.Tensor:
    """Keep the core near rank 1 without collapsing it:

        L_aux = α/(r−1) · Σ_{i≥2} max(0, σ_i − τ)²,  σ the singular values, descending.

    Args:
        core: (r, r), or (..., r, r) in which case the losses of all cores are summed.
    Returns:
        A scalar tensor, differentiable w.r.t. ``core``; 0 for r = 1.
    """
    check_float_tensor("core", core, min_ndim=2)
    r = core.shape[-1]
    if core.shape[-2] != r:
        raise ValueError(f"core must be square (..., r, r), got shape {tuple(core.shape)}")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if r == 1:
        return core.sum() * 0.0
    half = core.dtype in (torch.float16, torch.bfloat16)               # no half-precision SVD on CPU
    sigma = torch.linalg.svdvals(core.float() if half else core)       # (..., r) descending
    return (alpha / (r - 1) * (sigma[..., 1:] - tau).clamp(min=0).pow(2).sum()).to(core.dtype)


def stage1_reach(
    row_keys: torch.Tensor,
    col_keys: torch.Tensor,
    core: torch.Tensor,
    m: int,
    factors: tuple[torch.Tensor, torch.Tensor] | None = None,
    aim: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """For every cell (i, j) of one head's grid: does the query aimed at it get it back from TDQKR?

    Stage 1 sees row i through its combined key ``Σ_a u_a row_keys[a, i]`` (its projection is
    ``uᵀ S_row[:, i] = q_row · Σ_a u_a row_keys[a, i]``), and likewise column j with t. The query
    aimed at (i, j) points each half along that combined key, the unit direction that makes the
    cell's projections largest. Each of the n_r·n_c aimed queries is searched with
    :func:`tdqkr_topm` (the paper's stage 1, with ``factors``).

    Args:
        row_keys: (r, n_r, D_k) and col_keys: (r, n_c, D_k) float, the r key sets of each side.
        core: (r, r) float, the Tucker core.
        m: 1 ≤ m ≤ min(n_r, n_c).
        factors: the (u, t) the search uses, each (r,); default :func:`rank1_factors` of ``core``.
        aim: the (u, t) the queries are aimed with; default ``factors``. Aiming with one pair and
            searching with the other, flipped, shows that the corner belongs to the query.

    Returns:
        (n_r, n_c) bool: True where the aimed query's m returned addresses include the cell. True
        proves that some query reaches the cell; False says only that the aimed query does not
        (with narrow keys, D_k small next to n, a few cells can miss it).
    """
    check_float_tensor("row_keys", row_keys, ndim=3)
    check_float_tensor("col_keys", col_keys, ndim=3)
    check_float_tensor("core", core, ndim=2)
    r, n_r, d = row_keys.shape
    if col_keys.shape[0] != r or col_keys.shape[2] != d:
        raise ValueError(f"col_keys must be (r={r}, n_c, D_k={d}) like row_keys, got {tuple(col_keys.shape)}")
    if core.shape != (r, r):
        raise ValueError(f"core must be (r, r) = ({r}, {r}), got {tuple(core.shape)}")
    n_c = col_keys.shape[1]
    check_int("m", m, 1, min(n_r, n_c))
    u, t = rank1_factors(core) if factors is None else factors
    aim_u, aim_t = (u, t) if aim is None else aim
    for name, v in (("factors", u), ("factors", t), ("aim", aim_u), ("aim", aim_t)):
        if tuple(v.shape) != (r,):
            raise ValueError(f"{name} must be two (r={r},) tensors, got shape {tuple(v.shape)}")
    combined_row = torch.einsum("a,aid->id", aim_u.to(row_keys), row_keys)     # (n_r, D_k)
    combined_col = torch.einsum("b,bjd->jd", aim_t.to(col_keys), col_keys)     # (n_c, D_k)
    i = torch.arange(n_r).repeat_interleave(n_c)                               # cell (i, j), row-major
    j = torch.arange(n_c).repeat(n_r)
    row_scores = torch.einsum("aid,qd->qai", row_keys, combined_row[i])         # (n_r·n_c, r, n_r)
    col_scores = torch.einsum("bjd,qd->qbj", col_keys, combined_col[j])         # (n_r·n_c, r, n_c)
    q = n_r * n_c
    _, idx = _tdqkr_topm(row_scores, col_scores, core.expand(q, r, r), m,
                         (u.to(core).expand(q, r), t.to(core).expand(q, r)), False)
    return (idx == (i * n_c + j).unsqueeze(-1)).any(-1).reshape(n_r, n_c)
