"""Self-checks for chapter 7, "Multi-core scoring (MCS)"."""
from __future__ import annotations

import math

import torch

from ..mcs import mcs_pool, mcs_topm

__all__ = ["check_core_scores", "check_equal_cores_factor", "check_core_parameters"]


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
    single = mcs_pool(values, idx, w_one)
    many = mcs_pool(values, idx, w_many)
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
