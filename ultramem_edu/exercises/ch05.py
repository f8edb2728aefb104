"""Self-checks for chapter 5, "TDQKR: Tucker-decomposed query-key retrieval"."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..tdqkr import rank1_factors, tdqkr_topm, tdqkr_topm_reference, tucker_aux_loss
from ..tdqkr import tucker_scores as _reference_tucker_scores
from ._grading import call, close, diagnose, exercise, expect_tensor, fail, seed_for

__all__ = [
    "check_aux_loss_value", "check_sign_alignment",
    "TUCKER_SCORES_STUB", "check_tucker_scores",
    "TDQKR_TWO_STAGE_STUB", "check_tdqkr_two_stage",
]

_EXERCISE_CORE = ((2.0, 0.0), (0.0, 0.5))   # singular values 2 and 0.5


def check_aux_loss_value(value: float, tau: float = 0.15, alpha: float = 0.001) -> None:
    """Exercise 1: L_aux = α/(r−1)·Σ_{i≥2} max(0, σ_i − τ)² for C = [[2, 0], [0, 0.5]], by hand.

    Answers within 1 % are accepted.
    """
    core = torch.tensor(_EXERCISE_CORE, dtype=torch.float64)
    expected = float(tucker_aux_loss(core, tau=tau, alpha=alpha))
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AssertionError(f"value must be a finite number, got {value!r}")

    def close(x: float) -> bool:
        return abs(value - x) <= 0.01 * abs(x)

    if close(expected):
        print(f"Correct: σ = (2, 0.5), only σ₂ counts: {alpha:g}/1 · (0.5 − {tau:g})² = {expected:.4g}.")
        return
    if close(alpha * (0.5 - tau)):
        raise AssertionError("The hinge is squared: max(0, σ₂ − τ)².")
    if close(alpha * 0.5**2):
        raise AssertionError("Subtract the margin τ before squaring: only the part of σ₂ above τ is penalised.")
    if close(alpha * ((2.0 - tau) ** 2 + (0.5 - tau) ** 2)):
        raise AssertionError("The sum starts at i = 2: σ₁ is the rank-1 part the loss wants to keep.")
    if close((0.5 - tau) ** 2):
        raise AssertionError("Multiply by α/(r − 1).")
    raise AssertionError("Not quite: read σ₁ ≥ σ₂ off the diagonal core, then apply the formula to σ₂ only.")


def check_sign_alignment(
    align: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Exercise 2: ``align(u, t, prev_u, prev_t)`` returns (u, t) or (−u, −t), whichever is closer in
    L1 to (prev_u, prev_t) — for one pair of (r,) vectors. Compared with
    ``rank1_factors(core, previous=...)`` along a random walk of signed cores.
    """
    g = torch.Generator().manual_seed(0)
    core = torch.randn(3, 3, generator=g, dtype=torch.float64)
    previous = rank1_factors(core)
    for step in range(50):
        core = core + 0.3 * torch.randn(3, 3, generator=g, dtype=torch.float64)
        U, _, Vh = torch.linalg.svd(core)
        raw_u, raw_t = U[:, 0].clone(), Vh[0].clone()
        if step % 2:
            raw_u, raw_t = -raw_u, -raw_t           # the SVD's sign is arbitrary: try both
        got = align(raw_u, raw_t, previous[0].clone(), previous[1].clone())
        if not (isinstance(got, tuple) and len(got) == 2 and all(isinstance(x, torch.Tensor) for x in got)):
            raise AssertionError("align must return a pair of tensors (u, t).")
        expected = rank1_factors(core, previous=previous)
        if not all(torch.allclose(a.double(), b, atol=1e-9) for a, b in zip(got, expected)):
            same = [torch.allclose(a.double(), b, atol=1e-9) for a, b in zip(got, expected)]
            opposite = [torch.allclose(a.double(), -b, atol=1e-9) for a, b in zip(got, expected)]
            if (same[0] and opposite[1]) or (opposite[0] and same[1]):
                raise AssertionError("Flip u and t together: (−u, t) is a different rank-1 matrix.")
            raise AssertionError(
                f"At step {step} your pair differs from the sign-aligned one: compare "
                "|u − u_prev|₁ + |t − t_prev|₁ with |−u − u_prev|₁ + |−t − t_prev|₁ and keep the smaller."
            )
        previous = expected
    print("Correct: along 50 random steps your rule keeps the same sign as rank1_factors(core, previous=...).")


# --- Coding exercise 3: Tucker scores ---------------------------------------------------------

TUCKER_SCORES_STUB = '''
def tucker_scores(row_scores, col_scores, core):
    """The full Tucker grid S_rowᵀ C S_col for a batch of queries.

    Args:
        row_scores: (B, r, n_r) float: the scores of the n_r row keys under each of the r key sets.
        col_scores: (B, r, n_c) float.
        core: (r, r) float, the Tucker core C.

    Returns:
        (B, n_r, n_c) with out[b, i, j] = Σ_{a, c} row_scores[b, a, i] · core[a, c] · col_scores[b, c, j].
    """
    raise NotImplementedError("Exercise: write tucker_scores")
'''


@exercise(5, TUCKER_SCORES_STUB, guarded=("ultramem_edu.tdqkr:tucker_scores",))
def check_tucker_scores(tucker_scores_fn) -> None:
    """Compare the reader's grid with :func:`ultramem_edu.tdqkr.tucker_scores`."""
    g = torch.Generator().manual_seed(seed_for(55))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    cases = [
        ("r = 2, square grid", rand(3, 2, 6), rand(3, 2, 6), rand(2, 2)),
        ("r = 2, ragged grid n_r = 4, n_c = 7", rand(2, 2, 4), rand(2, 2, 7), rand(2, 2)),
        ("r = 3", rand(2, 3, 5), rand(2, 3, 5), rand(3, 3)),
        ("r = 1 (a multiplicative product key)", rand(2, 1, 5), rand(2, 1, 6), rand(1, 1)),
        ("negative scores", -rand(2, 2, 5).abs(), -rand(2, 2, 5).abs(), rand(2, 2)),
    ]
    for case, row, col, core in cases:
        out = call(tucker_scores_fn, case, row.clone(), col.clone(), core.clone())
        b, n_r, n_c = row.shape[0], row.shape[2], col.shape[2]
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (b, n_c, n_r) and n_r != n_c:
            fail(case, f"the grid is transposed: rows first, (B, n_r, n_c) = {(b, n_r, n_c)}, got {tuple(out.shape)}.")
        expect_tensor(out, (b, n_r, n_c), case, "the grid", "(B, n_r, n_c)")
        expected = _reference_tucker_scores(row, col, core)
        mistakes = [
            (lambda: expected.transpose(-1, -2),
             "the grid is transposed: out[b, i, j] has the row i first and the column j second"),
            (lambda: _reference_tucker_scores(row, col, core.T),
             "you used Cᵀ: the core's first index pairs with the row key sets, out[i, j] = Σ row[a, i] C[a, c] col[c, j]"),
            (lambda: row.sum(1)[:, :, None] * col.sum(1)[:, None, :] * core.sum(),
             "a bilinear form is not a product of sums: each pair of key sets (a, c) has its own weight C[a, c]"),
            (lambda: row.transpose(-1, -2) @ col,
             "the core is missing: with C = I you would get Σ_a row[a, i] col[a, j]; weight the pairs by C"),
            (lambda: (core[0, 0] * row[:, 0, :, None] * col[:, 0, None, :]),
             "only the first key set of each side is used; sum over all r × r pairs of key sets"),
            (lambda: row.sum(1)[:, :, None] + col.sum(1)[:, None, :],
             "that is the additive grid of product keys; the Tucker grid multiplies row and column scores"),
        ]
        diagnose(case, out, expected, mistakes, "the grid differs from S_rowᵀ C S_col")
    print(f"Correct: tucker_scores matches S_rowᵀ C S_col on {len(cases)} cases (ragged grids, r = 1, 2, 3).")



# --- Coding exercise 4: the two-stage TDQKR search --------------------------------------------

TDQKR_TWO_STAGE_STUB = '''
def tdqkr_two_stage(row_scores, col_scores, core, m, u, t, both_signs=False):
    """TDQKR's two-stage top-m search over the Tucker grid S_rowᵀ C S_col.

    Stage 1 (approximate, rank 1): the m rows with the largest uᵀ S_row[:, i] and the m columns with
    the largest tᵀ S_col[:, j]; with ``both_signs`` also the m rows and m columns with the *smallest*
    projections (all of them when 2m exceeds the side). Stage 2 (exact): the full Tucker score of
    every candidate cell (row candidate, column candidate); keep the m best.

    Args:
        row_scores: (B, r, n_r); col_scores: (B, r, n_c); core: (r, r).
        m: 1 <= m <= min(n_r, n_c).
        u, t: (r,) each, the leading left and right singular vectors of the core (given).
        both_signs: see above.

    Returns:
        scores: (B, m), the exact Tucker scores of the chosen cells, sorted descending.
        indices: (B, m) int64, their addresses i * n_c + j.
    """
    raise NotImplementedError("Exercise: write tdqkr_two_stage")
'''


def _tdqkr_cases():
    """Random and edge cases. In the signed case the paper's search (both_signs=False) returns other
    cells than both_signs=True, so that forgetting the negative corner shows (a test keeps it so)."""
    g = torch.Generator().manual_seed(seed_for(56))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def factors(core):
        return rank1_factors(core)

    positive_core = rand(2, 2).abs() + 0.1
    cases = [
        ("random, positive scores and core", rand(3, 2, 10).abs(), rand(3, 2, 10).abs(), positive_core, 4, False),
        ("ragged grid n_r = 6, n_c = 11", rand(3, 2, 6), rand(3, 2, 11), rand(2, 2), 3, False),
        ("m = 1", rand(3, 2, 8), rand(3, 2, 8), rand(2, 2), 1, False),
        ("m = min(n_r, n_c)", rand(2, 2, 5), rand(2, 2, 7), rand(2, 2), 5, False),
        ("signed scores, both_signs=True", rand(4, 2, 12), rand(4, 2, 12), rand(2, 2), 3, True),
        ("r = 3, both_signs=True, 2m > n", rand(2, 3, 5), rand(2, 3, 5), rand(3, 3), 3, True),
        ("64 queries, both_signs=True, 2m > n (n = 5, m = 3)", rand(64, 2, 5), rand(64, 2, 5), rand(2, 2), 3, True),
    ]
    return [(case, row, col, core, m, *factors(core), both) for case, row, col, core, m, both in cases]


@exercise(5, TDQKR_TWO_STAGE_STUB, guarded=(
    "ultramem_edu.tdqkr:tdqkr_topm", "ultramem_edu.tdqkr:_tdqkr_topm", "ultramem_edu.tdqkr:tdqkr_topm_reference",
    "ultramem_edu.tdqkr:_stage1_candidates", "ultramem_edu.mcs:mcs_topm", "ultramem_edu.mcs:_mcs_topm"))
def check_tdqkr_two_stage(tdqkr_two_stage_fn) -> None:
    """Compare the reader's search with :func:`ultramem_edu.tdqkr.tdqkr_topm` (given factors)."""
    cases = _tdqkr_cases()
    for case, row, col, core, m, u, t, both in cases:
        out = call(tdqkr_two_stage_fn, case, row.clone(), col.clone(), core.clone(), m, u.clone(), t.clone(),
                   both_signs=both)
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(case, f"return a pair (scores, indices), got {type(out).__name__}.")
        scores, indices = out
        b, n_r, n_c = row.shape[0], row.shape[-1], col.shape[-1]
        expect_tensor(scores, (b, m), case, "scores", "(B, m)")
        expect_tensor(indices, (b, m), case, "indices", "(B, m)")
        if indices.is_floating_point():
            fail(case, f"indices must be integers (int64), got {indices.dtype}.")
        idx = indices.long()
        if bool((idx < 0).any() or (idx >= n_r * n_c).any()):
            fail(case, f"addresses must lie in [0, n_r * n_c) = [0, {n_r * n_c}); the address is i * n_c + j.")
        repeated = sum(len(set(x.tolist())) != m for x in idx)
        if repeated:
            n_min = min(n_r, n_c)
            if both and 2 * m > n_min:
                fail(case, f"duplicate addresses in {repeated} of {b} queries: with both_signs and 2m > n the m "
                           "largest and the m smallest projections overlap, so a row or column is a candidate twice "
                           "and its cells come back twice. When 2m >= n keep every row (column) once: "
                           "de-duplicate the candidates, or take all of them.")
            fail(case, f"an address appears twice in a row ({repeated} of {b} queries): the m results must be m "
                       "different cells.")
        grid = _reference_tucker_scores(row, col, core).flatten(1)
        at = grid.gather(-1, idx)
        if not close(scores, at):
            proj_r = (u[:, None] * row).sum(-2)
            proj_c = (t[:, None] * col).sum(-2)
            rank1 = (proj_r[:, :, None] * proj_c[:, None, :]).flatten(1).gather(-1, idx)
            sigma1 = float(torch.linalg.svdvals(core)[0])
            if close(scores, rank1) or close(scores, sigma1 * rank1):
                fail(case, "stage 2 rescores the candidates exactly, with the full core: "
                           "S_row[:, i]ᵀ C S_col[:, j], not the rank-1 product of the projections.")
            fail(case, "a returned score is not the Tucker score S_row[:, i]ᵀ C S_col[:, j] of its address "
                       "(i = address // n_c, j = address % n_c).")
        if not bool((scores[:, 1:] <= scores[:, :-1]).all()):
            fail(case, "wrong order: sort the m scores descending (topk does).")
        expected = tdqkr_topm(row, col, core, m, factors=(u, t), both_signs=both)[0]
        if close(scores, expected):
            continue
        paper = tdqkr_topm(row, col, core, m, factors=(u, t), both_signs=False)[0]
        if both and close(scores, paper):
            fail(case, "the negative corner is missing: with both_signs=True also keep the m rows and m columns "
                       "with the smallest projections (a product of two negative projections is large).")
        if close(scores, tdqkr_topm_reference(row, col, core, m)[0]):
            fail(case, "that is the brute-force top-m of the whole grid; the exercise is the two-stage search, "
                       "which rescores only the stage-1 candidates.")
        swapped = tdqkr_topm(row, col, core, m, factors=(t, u), both_signs=both)[0]
        if close(scores, swapped):
            fail(case, "u and t are swapped: rows are ranked by uᵀ S_row (left singular vector), columns by tᵀ S_col.")
        same = tdqkr_topm(row, col, core, m, factors=(u, u), both_signs=both)[0]
        if close(scores, same):
            fail(case, "columns are ranked by tᵀ S_col, the right singular vector, not by u.")
        fail(case, "the chosen cells differ from the two-stage search's: stage 1 keeps the m best rows by "
                   "uᵀ S_row and the m best columns by tᵀ S_col, stage 2 the m best of their grid.")
    print(f"Correct: tdqkr_two_stage matches the two-stage search on {len(cases)} cases "
          "(ragged grid, m = 1, m = min(n_r, n_c), signed scores with both_signs).")

