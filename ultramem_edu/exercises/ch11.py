"""Self-checks for chapter 11, "Training tiny language models"."""
from __future__ import annotations

import math

from ..layer import UltraMemConfig, UltraMemLayer, value_lr_multiplier
from ..moe import num_parameters

__all__ = ["check_memory_activated", "check_value_lr", "check_seeds_needed", "check_output_speed_ratio"]


def _memory_counts(config: UltraMemConfig) -> tuple[int, int, int]:
    layer = UltraMemLayer(config)
    table = layer.values.numel()
    read = config.num_heads * config.topm * config.value_dim
    return num_parameters(layer), table, read


def check_memory_activated(answer: int, config: UltraMemConfig | None = None) -> None:
    """Exercise 1: activated parameters per token of one UltraMem layer.

    Convention of the chapter: everything but the value table counts (every key is scored, the
    projections are dense), plus the H·m value rows of width D_v that are read.
    Default layer: the ``lm`` experiment's, UltraMemConfig(64, num_values=96², key_dim=16,
    num_heads=2, topm=8, num_layers=4).
    """
    if config is None:
        config = UltraMemConfig(64, num_values=96 * 96, key_dim=16, num_heads=2, topm=8, num_layers=4, init_samples=64)
    total, table, read = _memory_counts(config)
    expected = total - table + read
    if answer == total:
        raise AssertionError("That is every parameter of the layer; only H·m rows of the value table are read per token.")
    if answer == total - table:
        raise AssertionError("Close: add the value rows a token actually reads, H·m rows of D_v.")
    if answer == total - table + config.num_heads * config.topm * config.expansion * config.value_dim:
        raise AssertionError("IVE's E virtual blocks are never materialised: a token reads H·m *physical* rows of D_v.")
    if answer != expected:
        raise AssertionError(f"Not quite: count the query, keys (2·H·r·n'·D_k), cores, norms and output projection, "
                             f"then add H·m·D_v = {read}.")
    print(f"Correct: {expected:,} activated parameters, of {total:,} in the layer ({expected / total:.1%}).")


def check_value_lr(answer: float, step: int = 75, total_steps: int = 150, k: float = 10.0) -> None:
    """Exercise 2: the value table's learning-rate multiplier at ``step`` of ``total_steps`` with k."""
    expected = value_lr_multiplier(step, total_steps, k)
    if math.isclose(answer, k * (1 - step / total_steps)):
        raise AssertionError("The multiplier decays to 1×, not to 0: it is 1 + (k − 1)·(1 − step/T).")
    if not math.isclose(answer, expected, rel_tol=1e-6):
        raise AssertionError(f"Not quite: 1 + (k − 1)·max(0, 1 − step/T) with k={k}, step={step}, T={total_steps}.")
    print(f"Correct: the values train at {expected:g}× the base learning rate at step {step}.")


def check_seeds_needed(answer: int, seed_std: float, target_sem: float) -> None:
    """Exercise 3: seeds n so that the standard error seed_std/√n of a mean is at most target_sem."""
    if seed_std <= 0 or target_sem <= 0:
        raise ValueError("seed_std and target_sem must be > 0")
    expected = max(1, math.ceil((seed_std / target_sem) ** 2 - 1e-9))
    if answer == math.ceil(seed_std / target_sem):
        raise AssertionError("The standard error falls as 1/√n, so n grows with the *square* of std/target.")
    if answer != expected:
        raise AssertionError("Not quite: the smallest n with seed_std/√n ≤ target_sem.")
    print(f"Correct: {expected} seeds bring the standard error to {seed_std / math.sqrt(expected):.4f} ≤ {target_sem}.")


def check_output_speed_ratio(answer: float, dynamics: dict) -> None:
    """Exercise 4: how many times faster one Adam step on the values moves the memory's output with
    ``init_score_scale="layernorm"`` than with the paper's init, from the ``dynamics`` results.

    A value row enters the output multiplied by its score, and Adam moves every entry by about the
    learning rate whatever its size, so the factor is the ratio of the selected scores at step 0.
    """
    records = {n: dynamics["runs"][n]["runs"][0]["records"] for n in ("ultramem_ln_init", "ultramem")}
    expected = records["ultramem_ln_init"]["score_mean"][0] / records["ultramem"]["score_mean"][0]
    if not (math.isfinite(answer) and answer > 0):
        raise AssertionError("The answer is a positive factor.")
    if math.isclose(answer, 1 / expected, rel_tol=0.05):
        raise AssertionError("Inverted: the layer-norm run has the *larger* scores, so its output moves faster.")
    if math.isclose(answer, 1.0, rel_tol=0.05):
        raise AssertionError("Both layers start with the same output variance, but not with the same scores: "
                             "a step of lr on a value row moves the output by lr × score.")
    if not math.isclose(answer, expected, rel_tol=0.05):
        raise AssertionError("Not quite: divide the step-0 score_mean of 'ultramem_ln_init' by that of 'ultramem'.")
    print(f"Correct: about {expected:.0f}× — the same Adam step moves the layer-norm run's output that much more.")
