"""Self-checks for chapter 7, "Multi-core scoring (MCS)"."""
from __future__ import annotations

import math

import torch

from ..kernels.reference import value_lookup_reference
from ..mcs import mcs_pool as _reference_mcs_pool
from ..mcs import mcs_topm
from ._grading import call, diagnose, exercise, expect_tensor, seed_for

__all__ = [
    "check_core_scores", "check_equal_cores_factor", "check_core_parameters",
    "MCS_POOL_STUB", "check_mcs_pool",
]


def _number(name: str, x: object) -> float:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise AssertionError(f"{name} must be a finite number, got {x!r}")
    return float(x)


def check_core_scores(s1: float, s2: float, summed: float) -> None:
    """Exercise 1: S_c = S_row[:, i]ᵀ C_c S_col[:, j] for row (1, 2), column (3, −1), C₁ = I, C₂ = [[0,1],[1,0]]."""
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([3.0, -1.0])
    c1, c2 = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    e1, e2 = float(a @ c1 @ b), float(a @ c2 @ b)
    s1, s2, summed = _number("s1", s1), _number("s2", s2), _number("summed", summed)
    if (s1, s2) == (e2, e1):
        raise AssertionError("The two core scores are swapped: C₁ is the identity, C₂ swaps the key sets.")
    if s1 != e1 or s2 != e2:
        raise AssertionError("Not quite: S_c = Σ_{a,b} row[a]·C_c[a,b]·col[b], a bilinear form, not a product of sums.")
    if summed == (e1 + e2) / 2:
        raise AssertionError("That is the average of S₁ and S₂; the cores are summed, not averaged: the score "
                             "with C = C₁ + C₂ is S₁ + S₂.")
    if summed != e1 + e2:
        raise AssertionError("The summed score is the score with C = C₁ + C₂, which is S₁ + S₂.")
    print(f"Correct: S₁ = {e1:g}, S₂ = {e2:g}; the summed core scores {e1 + e2:g}, their sum.")


def check_equal_cores_factor(factor: float, num_cores: int = 2) -> None:
    """Exercise 2: the output of h equal cores C/h relative to one core C (same selection), h = 2."""
    factor = _number("factor", factor)
    g = torch.Generator().manual_seed(0)
    r, n, m, d_v = 2, 12, 6, 8
    rows = torch.randn(4, r, n, generator=g, dtype=torch.float64)
    cols = torch.randn(4, r, n, generator=g, dtype=torch.float64)
    core = torch.randn(r, r, generator=g, dtype=torch.float64)
    values = torch.randn(n * n, d_v, generator=g, dtype=torch.float64)
    _, w_one, idx = mcs_topm(rows, cols, core[None], m)
    _, w_many, idx_many = mcs_topm(rows, cols, (core / num_cores).expand(num_cores, r, r), m)
    assert torch.equal(idx, idx_many)
    single = _reference_mcs_pool(values, idx, w_one)
    many = _reference_mcs_pool(values, idx, w_many)
    if math.isclose(factor, num_cores):
        raise AssertionError("Each core gets C/h, so its scores shrink; the factor is below 1.")
    if not torch.allclose(many, factor * single):
        raise AssertionError("Not quite: with C_c = C/h, what is each S_c in terms of S?")
    print(f"Correct: equal cores give every slice the weights S/{num_cores}, a factor {factor:g} on the output.")


def check_core_parameters(total: int, added: int, num_heads: int = 2, rank: int = 2, num_cores: int = 2) -> None:
    """Exercise 3: Tucker-core parameters H·h·r², and the H·(h−1)·r² that MCS adds (H = 2, r = 2, h = 2)."""
    expected = num_heads * num_cores * rank**2
    if total == num_cores * rank**2:
        raise AssertionError("Every head has its own cores.")
    if total != expected:
        raise AssertionError("Not quite: count r×r cores, h per head, H heads.")
    if added != expected - num_heads * rank**2:
        raise AssertionError("Compare with h = 1: one r×r core per head.")
    print(f"Correct: {expected} core parameters, {added} of them from the extra cores.")


# --- Coding exercise: per-core pooling --------------------------------------------------------

MCS_POOL_STUB = '''
def mcs_pool(values, indices, core_scores, num_blocks=1):
    """Multi-core pooling: each core's scores weight only its own slice of the value width.

    With h cores and s = D_v / h, core c owns the columns c*s .. (c+1)*s - 1. Virtual address a
    reads physical row a mod N and is pooled into block a div N (N = values.shape[0]).

    Args:
        values: (N, D_v) float; h divides D_v.
        indices: (B, k) int64 virtual addresses in [0, num_blocks * N).
        core_scores: (B, k, h) float, core c's score of each selected address.
        num_blocks: E, the number of virtual blocks (1 without IVE).

    Returns:
        (B, E, D_v): out[b, p, c*s:(c+1)*s] = Σ_{k: a_k div N = p} core_scores[b, k, c] · values[a_k mod N, c*s:(c+1)*s].
    """
    raise NotImplementedError("Exercise: write mcs_pool")
'''


@exercise(7, MCS_POOL_STUB, guarded=(
    "ultramem_edu.kernels.value_lookup:value_lookup", "ultramem_edu.kernels.reference:value_lookup_reference",
    "ultramem_edu.mcs:mcs_pool", "ultramem_edu.mcs:mcs_pool_reference"))
def check_mcs_pool(mcs_pool_fn) -> None:
    """Compare the reader's pooling with the package's (:func:`ultramem_edu.mcs.mcs_pool`)."""
    g = torch.Generator().manual_seed(seed_for(77))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def idx(high, *shape):
        return torch.randint(0, high, shape, generator=g)

    dup = idx(2 * 20, 3, 6)
    dup[:, 2] = dup[:, 0]
    cases = [
        ("h = 2, E = 1", rand(20, 8), idx(20, 3, 5), rand(3, 5, 2), 1),
        ("h = 1 (a single core)", rand(20, 6), idx(20, 2, 4), rand(2, 4, 1), 1),
        ("h = 4, k = 1", rand(20, 8), idx(20, 3, 1), rand(3, 1, 4), 1),
        ("h = 2, E = 4 (with IVE)", rand(20, 6), idx(80, 3, 7), rand(3, 7, 2), 4),
        ("duplicate indices, E = 2", rand(20, 4), dup, rand(3, 6, 2), 2),
        ("negative scores, h = 3", rand(15, 9), idx(15, 2, 5), -rand(2, 5, 3).abs(), 1),
    ]
    for case, values, indices, core_scores, e in cases:
        out = call(mcs_pool_fn, case, values.clone(), indices.clone(), core_scores.clone(), num_blocks=e)
        b, k, h = core_scores.shape
        n, d_v = values.shape
        if isinstance(out, torch.Tensor) and e == 1 and tuple(out.shape) == (b, d_v):
            expect_tensor(out, (b, e, d_v), case, "the output (keep the block dimension, even for E = 1)", "(B, E, D_v)")
        expect_tensor(out, (b, e, d_v), case, "the output", "(B, E, D_v)")
        expected = value_lookup_reference(values, indices, core_scores, e)
        mistakes = [
            (lambda: value_lookup_reference(values, indices, core_scores.sum(-1, keepdim=True), e),
             "every slice got the summed score; core c's own score weights only its slice c"),
            (lambda: value_lookup_reference(values, indices, core_scores.mean(-1, keepdim=True), e),
             "you averaged the core scores: every slice got the mean of the h scores. Nothing is averaged in "
             "MCS: core c's own score weights its slice c, and the h slices together make the row"),
            (lambda: value_lookup_reference(values, indices, core_scores / h, e),
             "each core's score was divided by h (an average over the cores); core c's score weights its slice "
             "as it is, the cores' contributions add up"),
            (lambda: _pool_columns(values, indices, core_scores[..., torch.arange(d_v) % h], e),
             "core c owns the contiguous columns c·s .. (c+1)·s − 1, not every h-th column"),
            (lambda: value_lookup_reference(values, indices, core_scores.flip(-1), e),
             "the cores are in reverse order: core 0 weights the first slice"),
            (lambda: torch.nn.functional.pad(_reference_mcs_pool(values, indices % n, core_scores, 1), (0, 0, 0, e - 1)),
             "all hits went to block 0: virtual address a belongs to block a div N"),
            (lambda: _one_hit_per_block(values, indices, core_scores, e),
             "two selections of a bag that hit the same block overwrite each other (out[idx] += x keeps one "
             "of them); accumulate with index_add_ / scatter_add_"),
        ]
        diagnose(case, out, expected, mistakes, "the pooled output differs from the per-core reference")
    print(f"Correct: mcs_pool matches the package's pooling on {len(cases)} cases "
          "(h = 1, 2, 3, 4; E = 1, 2, 4; k = 1; duplicates; negative scores).")


def _pool_columns(values, indices, column_weights, num_blocks):
    """Pool with a weight per column: column_weights (B, k, D_v)."""
    n, d_v = values.shape
    out = values.new_zeros(indices.shape[0], num_blocks, d_v)
    weighted = values[indices % n] * column_weights
    return out.scatter_add_(1, (indices // n).unsqueeze(-1).expand(-1, -1, d_v), weighted)


def _one_hit_per_block(values, indices, core_scores, num_blocks):
    """What ``out[bags, blocks] += weighted_rows`` gives: one hit per (bag, block) survives."""
    n, d_v = values.shape
    b, k, h = core_scores.shape
    weighted = (values[indices % n].view(b, k, h, d_v // h) * core_scores.unsqueeze(-1)).view(b, k, d_v)
    out = values.new_zeros(b, num_blocks, d_v)
    out[torch.arange(b)[:, None].expand_as(indices), indices // n] += weighted
    return out

