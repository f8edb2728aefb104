"""Self-checks for chapter 8, "Initialisation: keeping the memory's output at 1/(2L)"."""
from __future__ import annotations

import math

from ..init import ln_scale_for_unit_mean, value_std

__all__ = ["check_value_std", "check_ln_scale", "check_topm_mean"]

# Mean of the top 8 of 256 standard normals: topm_mean_of_normals(256, 8, samples=200_000) gave
# 2.2258 with a standard error of 0.0004.
_TOP8_OF_256 = 2.2258


def _number(name: str, x: object) -> float:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        raise AssertionError(f"{name} must be a finite number, got {x!r}")
    return float(x)


def check_value_std(std: float, expansion: int = 4, topm: int = 16, num_heads: int = 2, num_layers: int = 24) -> None:
    """Exercise 1: the value std √(E/(2·m·H·L)) for E = 4, m = 16, H = 2, L = 24."""
    std = _number("std", std)
    expected = value_std(expansion, topm, num_heads, num_layers)
    if math.isclose(std, expected**2, rel_tol=1e-3):
        raise AssertionError("That is the variance E/(2mHL); the std is its square root.")
    if math.isclose(std, math.sqrt(1 / (2 * topm * num_heads * num_layers)), rel_tol=1e-3):
        raise AssertionError("Each block gets only about m·H/E scores: the variance carries a factor E.")
    if not math.isclose(std, expected, rel_tol=1e-3):
        raise AssertionError("Not quite: m·H/E scores of about 1 per block, and a block should have variance 1/(2L).")
    print(f"Correct: σ_v = √(E/(2mHL)) = {expected:.4f}.")


def check_ln_scale(g_tucker: float, g_additive: float, measured_mean: float = 16.0) -> None:
    """Exercise 2: the LN-weight factor for a measured selected mean of 16, Tucker and additive scores."""
    g_tucker, g_additive = _number("g_tucker", g_tucker), _number("g_additive", g_additive)
    tucker, additive = ln_scale_for_unit_mean(measured_mean, 4), ln_scale_for_unit_mean(measured_mean, 2)
    if math.isclose(g_tucker, additive) and math.isclose(g_additive, tucker):
        raise AssertionError("Swapped: a Tucker score is row·core·column, so it scales as g⁴; additive as g².")
    if math.isclose(g_tucker, 1 / measured_mean) or math.isclose(g_additive, 1 / measured_mean):
        raise AssertionError("Both LN weights are scaled, and a score is a product of scaled pieces: use a root.")
    if not math.isclose(g_tucker, tucker, rel_tol=1e-3):
        raise AssertionError("Tucker: both LN weights scaled by g scale each row/column score by g², the product by g⁴.")
    if not math.isclose(g_additive, additive, rel_tol=1e-3):
        raise AssertionError("Additive: row and column scores each scale by g², and so does their sum.")
    print(f"Correct: g = {tucker:g} for Tucker scores (g⁴ = 1/{measured_mean:g}) and {additive:g} for additive ones.")


def check_topm_mean(estimate: float) -> None:
    """Exercise 3: a Monte Carlo estimate of the mean of the top 8 of 256 standard normals (±0.02)."""
    estimate = _number("estimate", estimate)
    if math.isclose(estimate, math.sqrt(2 * math.log(256 / 8)), abs_tol=0.01):
        raise AssertionError("That is the guide √(2 ln(n/m)); estimate the mean itself with topm_mean_of_normals.")
    if abs(estimate - _TOP8_OF_256) > 0.02:
        raise AssertionError("Not quite: use topm_mean_of_normals(256, 8, samples=...) with at least 4000 samples.")
    print(f"Correct: about {_TOP8_OF_256:.3f}, well below the guide √(2 ln 32) = {math.sqrt(2 * math.log(32)):.3f}.")
