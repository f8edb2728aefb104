"""Self-checks for chapter 2, "Product keys: searching n² values in O(n)"."""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["check_signed_product_counterexample", "check_pkm_cost"]


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
