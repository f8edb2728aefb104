"""Self-checks for chapter 5, "TDQKR: Tucker-decomposed query-key retrieval"."""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..tdqkr import rank1_factors, tucker_aux_loss

__all__ = ["check_aux_loss_value", "check_sign_alignment"]

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
