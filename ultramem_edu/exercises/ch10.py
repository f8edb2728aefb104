"""Self-checks for chapter 10, "Inference cost: memory access of dense vs MoE vs UltraMem"."""
from __future__ import annotations

import math

from ..cost import expected_distinct, paper_1p6b_configs

__all__ = ["check_expected_experts", "check_expected_rows", "check_ratio_ceiling"]


def _number(name: str, x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise AssertionError(f"{name} must be a finite number, got {x!r}")
    return float(x)


def check_expected_experts(answer: float, batch_size: int = 8, num_experts: int = 16, top_k: int = 2) -> None:
    """Exercise 1: expected distinct experts read by one decode step of B = 8 tokens, top-2 of 16."""
    answer = _number("answer", answer)
    want = expected_distinct(num_experts, top_k, batch_size)
    if math.isclose(answer, min(top_k * batch_size, num_experts)):
        raise AssertionError("That is the worst case, every pick distinct. Tokens share experts: an expert is "
                             "missed by one token with probability 1 - k/N.")
    if math.isclose(answer, num_experts * (1 - (1 - 1 / num_experts) ** batch_size), rel_tol=1e-6):
        raise AssertionError("Each token picks k = 2 distinct experts, so one token misses a given expert with "
                             "probability 1 - k/N, not 1 - 1/N.")
    if not math.isclose(answer, want, rel_tol=1e-3):
        raise AssertionError("Not quite: E[distinct] = N·(1 - (1 - k/N)^B).")
    print(f"Correct: {want:.2f} of {num_experts} experts, {want / num_experts:.0%} of the MoE's weights, "
          f"for {batch_size} tokens.")


def check_expected_rows(answer: float, batch_size: int = 64) -> None:
    """Exercise 2: expected distinct value rows one memory layer of the paper-scale UltraMem reads at B = 64."""
    answer = _number("answer", answer)
    mem = paper_1p6b_configs()["ultramem"].memory
    draws = batch_size * mem.top_m * mem.num_heads
    want = float(mem.rows_touched(batch_size))
    if math.isclose(answer, draws):
        raise AssertionError(f"Close, but {draws} = B·m·H counts a row twice when two selections hit it; "
                             "use the expectation N·(1 - (1 - 1/N)^(B·m·H)).")
    if not math.isclose(answer, want, rel_tol=1e-4):
        raise AssertionError(f"Not quite: N = {mem.num_values:,} physical rows, B·m·H = {draws} draws of one "
                             "row each.")
    print(f"Correct: {want:,.1f} rows of {mem.num_values:,} ({want / mem.num_values:.2%}); only "
          f"{draws - want:.1f} of the {draws} selections land on a row already read.")


def check_ratio_ceiling(answer: float) -> None:
    """Exercise 3: the largest MoE/UltraMem bytes ratio the paper-scale model allows, at any batch size."""
    answer = _number("answer", answer)
    cfg = paper_1p6b_configs()
    moe, um = cfg["moe"], cfg["ultramem"]
    always = um.params - um.num_memory_layers * um.memory.value_params
    want = moe.params / always
    if math.isclose(answer, moe.params / um.params, rel_tol=0.02):
        raise AssertionError("That divides by UltraMem's total parameters; UltraMem never reads all its values at "
                             "small B. Divide by what it reads at every B: everything but the value tables.")
    if not math.isclose(answer, want, rel_tol=0.02):
        raise AssertionError("Not quite: MoE reads at most all its weights; UltraMem reads at least everything "
                             "except its value tables.")
    print(f"Correct: {moe.params / 1e9:.2f}B / {always / 1e9:.2f}B = {want:.2f}; Fig. 1c's 18.8 is above it.")
