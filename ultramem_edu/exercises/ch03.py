"""Self-checks for chapter 3, "From PKM to UltraMem's layer: one switch at a time"."""
from __future__ import annotations

import math
import random

from ..ive import keys_per_side
from ..layer import UltraMemConfig, UltraMemLayer
from ..layer import value_lr_multiplier as _reference_multiplier
from ._grading import call, current_seed, exercise, fail, seed_for

__all__ = [
    "check_keys_per_side", "check_query_weights", "check_value_lr_halfway",
    "VALUE_LR_MULTIPLIER_STUB", "check_value_lr_multiplier",
]


def check_keys_per_side(answer: int, num_values: int = 2**20, expansion: int = 4) -> None:
    """Exercise 1: keys per side n' of the virtual grid for N physical values and expansion E."""
    expected = keys_per_side(num_values, expansion)
    if answer == math.isqrt(num_values):
        raise AssertionError("That is √N, the physical grid; the keys address the E·N *virtual* values.")
    if answer == expansion * math.isqrt(num_values):
        raise AssertionError("The grid has E·N cells, so each side grows by √E, not by E.")
    if answer != expected:
        raise AssertionError(f"Not quite: the n'×n' grid must hold E·N = {expansion * num_values} virtual values.")
    print(f"Correct: n' = √(E·N) = {expected} keys per side, so 2n' = {2 * expected} sub-keys per head and key set.")


def _query_weights(shared: bool, d_model: int, key_dim: int, num_heads: int) -> int:
    config = UltraMemConfig(
        d_model=d_model, num_values=16, key_dim=key_dim, num_heads=num_heads, topm=2, expansion=1,
        tucker_rank=None, num_cores=1, shared_query=shared, init_samples=2,
    )
    return UltraMemLayer(config).query.weight.numel()


def check_query_weights(per_head: int, shared: int, d_model: int = 64, key_dim: int = 16, num_heads: int = 4) -> None:
    """Exercise 2: weights of the query Linear (no bias) with one query per head and with a shared one.

    The counts are read from a real :class:`UltraMemLayer` built with those sizes.
    """
    expected_per_head = _query_weights(False, d_model, key_dim, num_heads)
    expected_shared = _query_weights(True, d_model, key_dim, num_heads)
    if per_head == expected_per_head // 2 or shared == expected_shared // 2:
        raise AssertionError("Each query has a row half and a column half: 2·D_k outputs per query.")
    if per_head != expected_per_head:
        raise AssertionError(f"per_head: a Linear from D={d_model} to H·2·D_k outputs (H={num_heads}, D_k={key_dim}).")
    if shared != expected_shared:
        raise AssertionError(f"shared: one query of 2·D_k outputs serves all H={num_heads} heads.")
    print(
        f"Correct: {per_head} vs {shared} weights; sharing the query divides its parameters and its "
        f"FLOPs per token by H = {per_head // shared}."
    )


def check_value_lr_halfway(answer: float, k: float = 10.0) -> None:
    """Exercise 3: the value learning-rate multiplier halfway through the decay (step = T/2)."""
    expected = _reference_multiplier(50, 100, k)
    if math.isclose(answer, k / 2):
        raise AssertionError("The multiplier decays from k to 1, not to 0: halfway is the mean of k and 1.")
    if not math.isclose(answer, expected, rel_tol=1e-6):
        raise AssertionError(f"Not quite: evaluate 1 + (k − 1)·(1 − step/T) at step/T = 1/2 with k = {k:g}.")
    print(f"Correct: {expected:g}× the base learning rate halfway (k = {k:g}).")


# --- Coding exercise: the value learning-rate multiplier --------------------------------------

VALUE_LR_MULTIPLIER_STUB = '''
def value_lr_multiplier(step, total_steps, k):
    """The factor on the value table's learning rate at optimiser step ``step``.

    k times the base rate at step 0, decaying linearly to 1 times at step ``total_steps`` (T), and
    1 times from then on.

    Args:
        step: int >= 0.  total_steps: int >= 1 (T).  k: float >= 1 (the paper's text: 10).

    Returns:
        A float.
    """
    raise NotImplementedError("Exercise: write value_lr_multiplier")
'''


@exercise(3, VALUE_LR_MULTIPLIER_STUB, guarded=("ultramem_edu.layer:value_lr_multiplier",))
def check_value_lr_multiplier(value_lr_multiplier_fn) -> None:
    """Compare the reader's multiplier with :func:`ultramem_edu.layer.value_lr_multiplier`."""
    cases = [(0, 100, 10.0), (50, 100, 10.0), (25, 100, 4.0), (100, 100, 10.0), (250, 100, 10.0),
             (7, 10, 1.0), (1, 3, 2.5)]
    if current_seed() is not None:                                    # a grading seed: two more cases of its own
        rng = random.Random(seed_for(33))
        for _ in range(2):
            total = rng.randint(10, 500)
            cases.append((rng.randint(1, total - 1), total, round(rng.uniform(2.0, 12.0), 2)))
    for step, total, k in cases:
        case = f"step={step}, T={total}, k={k:g}"
        out = call(value_lr_multiplier_fn, case, step, total, k)
        try:
            got = float(out)
        except (TypeError, ValueError):
            fail(case, f"return a number, got {type(out).__name__}.")
        expected = _reference_multiplier(step, total, k)
        if math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-12):
            continue
        frac = step / total
        if math.isclose(got, 1.0 + (k - 1.0) * max(0, 1 - step // total), abs_tol=1e-9):
            fail(case, "integer division: step // total_steps is 0 until step T, so the multiplier stays at k "
                       "and then drops to 1 at once. Use true division, step / total_steps, for a linear decay.")
        if math.isclose(got, k * max(0.0, 1.0 - frac), abs_tol=1e-9):
            fail(case, "the multiplier decays from k to 1, not to 0: it is 1 + (k − 1)·(1 − step/T).")
        if math.isclose(got, 1.0 + (k - 1.0) * (1.0 - frac), abs_tol=1e-9):
            fail(case, "past step T the multiplier stays at 1: clamp the decay with max(0, 1 − step/T).")
        if math.isclose(got, 1.0 + (k - 1.0) * min(1.0, frac), abs_tol=1e-9):
            fail(case, "backwards: the multiplier starts at k (step 0) and ends at 1 (step T).")
        if math.isclose(got, k, abs_tol=1e-9):
            fail(case, "the multiplier must decay with the step; it stays at k.")
        fail(case, f"expected {expected:g}, got {got:g}.")
    print(f"Correct: value_lr_multiplier agrees with the layer's schedule on {len(cases)} cases "
          "(start, halfway, T, after T, k = 1).")

