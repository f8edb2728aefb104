"""Initialisation (method.md §7): treat the memory like an MLP branch of a pre-LN transformer.

Target: the layer's output variance ≈ 1/(2L) for L transformer layers.
- The top-m selected scores should average ≈ 1: the query-LN and key-LN weights are scaled until a
  Monte Carlo estimate of the selected-score mean is 1 (the layer's scores are correlated draws
  with statistics of their own, so the independent-normal numbers below are only a guide).
- Values ~ N(0, E/(2·m·H·L)): each of the E virtual blocks receives ≈ m·H/E scores of ≈ 1, so a
  pooled block has variance ≈ (m·H/E)·E/(2·m·H·L) = 1/(2L).
- The output projection (E·D_v → D) has std 1/√(E·D_v), which keeps that variance.
(The released code instead draws the values with std 0.02 and sets both LayerNorm weights to the
constant D_k^-0.33: ``reset_parameters`` of ``olmo/ultramem_layer.py``, commit 6da52aa.)

Training caveat (measured, not in the paper). With Adam the update of a value row is ≈ lr whatever
its scale, so how fast the memory's *output* learns is set by lr × (selected score), and how far a
row moves relative to its random init by lr / std(V). This initialisation puts the output scale in
the values (std ≈ 0.18, scores ≈ 1), the released code's in the scores (LN weights D_k^-0.33, std 0.02).
At equal output variance the two are not equivalent in training. In an early, short measurement
(D=64, N=96², E=4, r=2, h=2, lr 3e-3, 300 steps = 0.3 M characters, *without* the value lr
multiplier, value_lr_k=1) this init reached val 2.50/2.51 (seeds 0/1) with 2.9 % of values ever
read, while LN weights 1 and values ×1/85 (same output variance) reached 2.27/2.30 with 15 %: all
tokens pick the same values early (the memory's input is nearly token-independent at first), and
with a slow value table those rows stay the only useful ones. The paper pairs this init with its
value learning-rate multiplier (:func:`~ultramem_edu.layer.value_lr_scheduler`, k = 10), which is
meant to offset exactly that; how well it does at a longer budget is what chapter 11's ``lm``
experiment measures, with the complete recipes. The option
``UltraMemConfig(init_score_scale="layernorm")`` keeps the same 1/(2L) bookkeeping with the LayerNorm
weights left at 1 and the value std divided by the RMS of the selected scores.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_int

__all__ = [
    "topm_mean_of_normals",
    "normal_order_statistic_means",
    "topm_mean_exact",
    "topm_threshold",
    "value_std",
    "output_projection_std",
    "ln_scale_for_unit_mean",
]


def topm_mean_of_normals(
    n: int, m: int, samples: int = 20_000, generator: torch.Generator | None = None
) -> tuple[float, float]:
    """Monte Carlo mean of the m largest of n i.i.d. standard normals.

    Returns (estimate, standard error of the estimate). It grows roughly like √(2 ln(n/m)).
    """
    check_int("n", n, 1)
    check_int("m", m, 1, n)
    check_int("samples", samples, 2)
    draws = torch.randn(samples, n, generator=generator, dtype=torch.float64)
    per_sample = draws.topk(m, dim=-1).values.mean(-1)                # (samples,)
    return float(per_sample.mean()), float(per_sample.std() / math.sqrt(samples))


def normal_order_statistic_means(n: int, m: int) -> torch.Tensor:
    """E[X_(k)] for k = 1..m, the k-th largest of n i.i.d. standard normals, by numerical integration.

    The k-th largest has density n!/((k-1)!(n-k)!) Φ(x)^(n-k) (1-Φ(x))^(k-1) φ(x); its mean is
    integrated with the trapezoid rule on [-12, 12] in float64 (error far below 1e-8 for the sizes
    of this book). Closed forms exist only for n <= 5 (e.g. 1/√π for the larger of two, 3/(2√π) for
    the largest of three).

    Returns:
        (m,) float64 tensor, largest first.
    """
    check_int("n", n, 1)
    check_int("m", m, 1, n)
    x = torch.linspace(-12.0, 12.0, 240_001, dtype=torch.float64)
    log_phi = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
    log_below, log_above = torch.special.log_ndtr(x), torch.special.log_ndtr(-x)
    means = []
    for k in range(1, m + 1):
        log_c = math.lgamma(n + 1) - math.lgamma(k) - math.lgamma(n - k + 1)
        density = torch.exp(log_c + (n - k) * log_below + (k - 1) * log_above + log_phi)
        means.append(torch.trapezoid(x * density, x))
    return torch.stack(means)


def topm_mean_exact(n: int, m: int) -> float:
    """The mean of the m largest of n i.i.d. standard normals, in expectation (numerical integration).

    The quantity :func:`topm_mean_of_normals` estimates by Monte Carlo.
    """
    return float(normal_order_statistic_means(n, m).mean())


def topm_threshold(n: int, m: int) -> float:
    """Φ⁻¹(1 - m/n): the score above which, on average, m of n standard normal draws fall.

    The mean of the m largest lies above it; the leading-order formula √(2 ln(n/m)) lies above both
    (n = 256, m = 8: threshold 1.86, mean 2.23, formula 2.63).
    """
    check_int("n", n, 2)
    check_int("m", m, 1, n - 1)
    return float(torch.special.ndtri(torch.tensor(1 - m / n, dtype=torch.float64)))


def value_std(expansion: int, topm: int, num_heads: int, num_layers: int) -> float:
    """Std of the value table, √(E / (2·m·H·L))."""
    for name, v in (("expansion", expansion), ("topm", topm), ("num_heads", num_heads), ("num_layers", num_layers)):
        check_int(name, v, 1)
    return math.sqrt(expansion / (2 * topm * num_heads * num_layers))


def output_projection_std(expansion: int, value_dim: int) -> float:
    """Std of the output projection's weights, 1/√(E·D_v)."""
    check_int("expansion", expansion, 1)
    check_int("value_dim", value_dim, 1)
    return 1.0 / math.sqrt(expansion * value_dim)


def ln_scale_for_unit_mean(measured_mean: float, degree: int) -> float:
    """The factor κ to put on *both* the query-LN and key-LN weights so the selected mean becomes 1.

    A row or column score is q·k, so it scales as κ² when both LN weights are scaled by κ. Additive
    product-key scores (row + col) therefore scale as κ² (degree 2); Tucker scores (row · C · col)
    as κ⁴ (degree 4). Scaling all scores by a positive constant does not change which are selected.
    """
    if not measured_mean > 0:
        raise ValueError(f"measured_mean must be > 0 to be rescaled to 1, got {measured_mean}")
    check_int("degree", degree, 1)
    return measured_mean ** (-1.0 / degree)
