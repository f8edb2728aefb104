"""Self-checks for chapter 2, "Product keys: searching n² values in O(n)"."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..product_keys import product_key_topm as _package_topm
from ._grading import LargestTensor, call, close, exercise, expect_tensor, fail, seed_for

__all__ = [
    "check_signed_product_counterexample", "check_pkm_cost",
    "PRODUCT_KEY_TOPM_STUB", "check_product_key_topm",
]


def _close(answer: float, expected: float, rel: float = 0.01) -> bool:
    return math.isfinite(answer) and abs(answer - expected) <= rel * abs(expected)


def _as_scores(name: str, values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    try:
        t = torch.as_tensor(values, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise AssertionError(f"{name} must be a 1-D list or tensor of numbers ({err})") from None
    if t.dim() != 1 or t.numel() < 2:
        raise AssertionError(f"{name} must be a 1-D list of at least 2 numbers, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise AssertionError(f"{name} must hold finite numbers")
    return t


def check_signed_product_counterexample(
    row_scores: Sequence[float] | torch.Tensor, col_scores: Sequence[float] | torch.Tensor, m: int
) -> None:
    """Exercise 1: row and column scores for which the two-stage search *misses* part of the true top-m
    when the grid score is the product ``row_scores[i] * col_scores[j]`` instead of the sum.

    The two-stage search is the chapter's: the m best rows, the m best columns, then the m best
    products among the m × m candidates. It is compared with the m best products of the whole grid.
    """
    row, col = _as_scores("row_scores", row_scores), _as_scores("col_scores", col_scores)
    if not isinstance(m, int) or not 1 <= m < min(row.numel(), col.numel()):
        raise AssertionError(
            f"m must be an int with 1 <= m < min(len(row_scores), len(col_scores)) = "
            f"{min(row.numel(), col.numel())}, got {m!r} (with m = n every row is a candidate)"
        )
    grid = row[:, None] * col[None, :]                                 # (n_r, n_c)
    best = grid.flatten().topk(m).values
    r_idx, c_idx = row.topk(m).indices, col.topk(m).indices
    two_stage = grid[r_idx][:, c_idx].flatten().topk(m).values
    if bool((row >= 0).all() and (col >= 0).all()):
        raise AssertionError(
            "With non-negative scores the product grows with each factor, so the chapter's argument "
            "still holds and the two-stage search is exact. Use negative scores."
        )
    if torch.isclose(best, two_stage, rtol=1e-9, atol=1e-12).all():
        raise AssertionError(
            f"Here the two-stage search finds the true top-{m} (scores {best.tolist()}). Think of two "
            "large negative scores: their product is large and positive, but their row and column "
            "are not among the best m."
        )
    print(f"Correct: the true top-{m} products are {best.tolist()}, the two-stage search returns "
          f"{two_stage.tolist()} — a product of two negative scores hides outside the best rows and columns.")


def check_pkm_cost(product_keys: float, dense: float, n: int = 512, m: int = 32, key_dim: int = 128) -> None:
    """Exercise 2: FLOPs per query and head to find the top-m of n² values.

    Conventions of the chapter: a multiply-add is 2 FLOPs; product keys score 2n sub-keys of width
    D_k and add m² candidate pairs (1 FLOP each); a dense memory scores n² keys of width D_k.
    Answers within 0.1 % (product keys) and 1 % (dense) are accepted.
    """
    expected_pk = 2 * (2 * n) * key_dim + m * m
    expected_dense = 2 * n * n * key_dim
    if not isinstance(product_keys, (int, float)) or not isinstance(dense, (int, float)):
        raise AssertionError("Give both answers as numbers of FLOPs.")
    if not _close(product_keys, expected_pk, rel=1e-3):   # m² is < 1 % of the total: compare tightly
        if _close(product_keys, 2 * n * key_dim + m * m, rel=1e-3):
            raise AssertionError("Score both sub-key sets (2n keys) and count a multiply-add as 2 FLOPs.")
        if _close(product_keys, 2 * (2 * n) * key_dim, rel=1e-3):
            raise AssertionError("Almost: add the m² candidate sums of stage 2 (1 FLOP each).")
        if _close(product_keys, 2 * (2 * n) * key_dim + 2 * m * key_dim, rel=1e-3):
            raise AssertionError("Stage 2 computes no dot products: it adds two known scores for each of the m² pairs.")
        raise AssertionError(f"Not quite: 2n = {2 * n} dot products of width D_k = {key_dim}, plus m² = {m * m} sums.")
    if _close(dense, n * n * key_dim):
        raise AssertionError("That is the number of multiply-adds of the dense search; count each as 2 FLOPs.")
    if not _close(dense, expected_dense):
        raise AssertionError(f"Not quite: a dense memory scores all n² = {n * n} keys of width D_k = {key_dim}.")
    print(f"Correct: product keys {expected_pk:,} FLOPs, dense {expected_dense:,} FLOPs — "
          f"{expected_dense / expected_pk:.0f}× less for the same {n * n:,} values.")


# --- Coding exercise: the two-stage product-key top-m -----------------------------------------

PRODUCT_KEY_TOPM_STUB = '''
def product_key_topm(row_scores, col_scores, m):
    """The exact top-m of the grid s(i, j) = row_scores[:, i] + col_scores[:, j], in two stages.

    Stage 1: the m best rows and the m best columns. Stage 2: the m best of the m × m candidate sums.

    Args:
        row_scores: (B, n_r) float.
        col_scores: (B, n_c) float.
        m: 1 <= m <= min(n_r, n_c).

    Returns:
        scores: (B, m) float, the m best grid scores, sorted descending.
        indices: (B, m) int64, their addresses i * n_c + j (row-major on the n_r × n_c grid).
    """
    raise NotImplementedError("Exercise: write product_key_topm")
'''


def _same_sets(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a.sort(-1).values, b.sort(-1).values)


def _address_mistakes(row, col, m):
    """(addresses, message) for the typical address bugs, computed from the correct (i, j)."""
    n_r, n_c = row.shape[-1], col.shape[-1]
    _, row_idx = row.topk(m, dim=-1)
    _, col_idx = col.topk(m, dim=-1)
    _, flat = (row.gather(-1, row_idx)[:, :, None] + col.gather(-1, col_idx)[:, None, :]).flatten(1).topk(m, dim=-1)
    i, j = row_idx.gather(-1, flat // m), col_idx.gather(-1, flat % m)
    yield i * n_r + j, ("off in the address: you multiplied the row by n_r; the address is i * n_c + j "
                        "(each row of the grid has n_c cells)")
    yield j * n_r + i, "the address is row-major, i * n_c + j, not column-major j * n_r + i"
    yield j * n_c + i, "rows and columns are swapped: i comes from row_scores, j from col_scores"
    yield flat, ("these are positions among the m × m candidates; map them back to the grid: "
                 "i = row_idx[flat // m], j = col_idx[flat % m], address i * n_c + j")
    yield row_idx.gather(-1, flat % m) * n_c + col_idx.gather(-1, flat // m), (
        "the candidate position flat splits as (flat // m, flat % m) = (row slot, column slot)")


@exercise(2, PRODUCT_KEY_TOPM_STUB, guarded=(
    "ultramem_edu.product_keys:product_key_topm", "ultramem_edu.product_keys:_product_key_topm",
    "ultramem_edu.product_keys:product_key_topm_reference"))
def check_product_key_topm(product_key_topm_fn) -> None:
    """Compare the reader's two-stage search with brute force on random and edge-case grids.

    Checked per case: two (B, m) tensors, integer addresses in range and distinct, scores sorted
    descending, each score equal to the grid score at its address, and the m scores equal to the
    m best of the whole grid (compared as scores, so that any order among ties passes). Then, on a
    64 × 64 grid, that no tensor as large as one query's whole grid is built: the search is in two
    stages, not a top-m over all n_r · n_c scores.
    """
    g = torch.Generator().manual_seed(seed_for(22))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    ties = torch.randint(-3, 4, (3, 12), generator=g).double()
    cases = [
        ("random, square grid", rand(4, 10), rand(4, 10), 4),
        ("ragged grid, n_r = 5, n_c = 9", rand(3, 5), rand(3, 9), 3),
        ("ragged grid, n_r = 9, n_c = 5", rand(3, 9), rand(3, 5), 3),
        ("m = 1", rand(4, 8), rand(4, 8), 1),
        ("m = min(n_r, n_c)", rand(2, 6), rand(2, 7), 6),
        ("negative scores", -rand(3, 8).abs() - 1, -rand(3, 8).abs() - 1, 4),
        ("many ties (integer scores)", ties[:, :6], ties[:, 6:], 5),
    ]
    for case, row, col, m in cases:
        out = call(product_key_topm_fn, case, row.clone(), col.clone(), m)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise AssertionError(f"On the case '{case}': return a pair (scores, indices), got {type(out).__name__}.")
        scores, indices = out
        b, n_r, n_c = row.shape[0], row.shape[1], col.shape[1]
        expect_tensor(scores, (b, m), case, "scores", "(B, m)")
        expect_tensor(indices, (b, m), case, "indices", "(B, m)")
        if indices.is_floating_point() or indices.dtype == torch.bool:
            fail(case, f"indices must be integers (int64, as topk returns), got {indices.dtype}.")
        idx = indices.long()
        for wrong, message in _address_mistakes(row, col, m):
            if _same_sets(idx, wrong) and not _same_sets(wrong, _package_topm(row, col, m)[1]):
                fail(case, message)
        if bool((idx < 0).any() or (idx >= n_r * n_c).any()):
            fail(case, f"addresses must lie in [0, n_r * n_c) = [0, {n_r * n_c}), got {idx.min()}..{idx.max()}.")
        if any(len(set(r.tolist())) != m for r in idx):
            fail(case, "an address appears twice in a row: the m results must be m different cells.")
        grid = (row[:, :, None] + col[:, None, :]).flatten(1)          # (B, n_r*n_c)
        if not close(scores, grid.gather(-1, idx)):
            fail(case, "the score you return at an address is not row_scores[i] + col_scores[j] there, "
                       "with i = address // n_c, j = address % n_c.")
        if not bool((scores[:, 1:] <= scores[:, :-1]).all()):
            fail(case, "wrong order: sort the m scores descending (topk does).")
        best = grid.topk(m, dim=-1).values
        if not close(scores, best):
            fail(case, "these are not the m best cells of the grid; stage 1 keeps the m best rows and the m "
                       "best columns, stage 2 the m best of their m × m sums.")
    case, n, m = "two stages on a 64 × 64 grid, B = 2, m = 4", 64, 4
    row, col = rand(2, n), rand(2, n)
    with LargestTensor() as largest:
        call(product_key_topm_fn, case, row, col, m)
    if largest.numel >= n * n:
        fail(case, f"brute force: a tensor of {largest.numel:,} elements was built, as large as a query's whole "
                   f"n_r × n_c grid ({n * n:,} scores). The exercise is the two-stage search: the m best rows and "
                   f"the m best columns, then the m best of their m × m = {m * m} sums, never all n_r · n_c scores.")
    print(f"Correct: product_key_topm finds the exact top-m on {len(cases)} cases "
          "(ragged grids, m = 1, m = min(n_r, n_c), negative scores, ties) in two stages.")

