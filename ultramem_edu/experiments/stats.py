"""The statistics behind chapter 11's verdicts, from :mod:`scipy.stats`.

Every comparison is *paired by seed*: run ``i`` of model A and run ``i`` of model B share the seed,
hence the data order and the initial draw of every shared module, and the test is on the differences
``d_i = loss_A,i − loss_B,i``.

* :func:`paired_t` — Δ = mean(d), its 95 % t-interval (df = n − 1) and the two-sided p of the paired
  t-test. A difference is *resolved* when the interval excludes zero — at n = 3 that needs
  |Δ| > 4.30 SE, not 2 SE.
* :func:`noninferiority` — "A matches or beats B": Δ tested against a margin δ written down before
  the runs (passed when the 95 % interval lies below δ).
* :func:`tost` — "A and B train alike": two one-sided tests against ±δ (equivalence). A difference that
  is not significant is never evidence of equality; only this test is.
* :func:`holm` — the Holm–Bonferroni step-down correction of one family of p-values.
* :func:`seeds_for_power` — the paired seeds a two-sided test at level α needs for 80 % power at a
  given effect and spread (noncentral t).
* :func:`t_interval` — the 95 % t-interval of a mean, for error bars.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

from scipy import stats as _st

__all__ = ["holm_verdicts", "t_quantile", "t_sf", "paired_t", "noninferiority", "tost", "holm", "seeds_for_power", "t_interval", "power_paired"]


def _diffs(a: Iterable[float], b: Iterable[float] | None) -> list[float]:
    a = [float(x) for x in a]
    if b is None:
        d = a
    else:
        b = [float(x) for x in b]
        if len(a) != len(b):
            raise ValueError(f"paired samples must have the same length, got {len(a)} and {len(b)}")
        d = [x - y for x, y in zip(a, b)]
    if not all(math.isfinite(x) for x in d):
        raise ValueError(f"paired differences must be finite, got {d}")
    return d


def _check_level(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    return float(value)


def _mean_sd(d: Sequence[float]) -> tuple[float, float]:
    """Mean and sample sd; an sd at the level of rounding error (differences equal up to float noise) is 0."""
    n = len(d)
    mean = sum(d) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1)) if n > 1 else float("nan")
    if n > 1 and sd <= 1e-12 * max(1.0, max(abs(x) for x in d)):
        sd = 0.0
    return mean, sd


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    _check_level("q", q)
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    return float(_st.t.ppf(q, df))


def t_sf(x: float, df: int) -> float:
    """P(T > x) for Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    return float(_st.t.sf(x, df))


def t_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the ``level`` t-interval of the mean of ``values`` (df = n − 1).

    With one value the interval is (nan, nan): one run gives no error bar."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("values must not be empty")
    level = _check_level("level", level)
    mean, sd = _mean_sd(v)
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(_st.t.ppf(0.5 + level / 2, len(v) - 1)) * sd / math.sqrt(len(v))
    return mean, mean - half, mean + half


def paired_t(a: Iterable[float], b: Iterable[float] | None = None, alpha: float = 0.05) -> dict:
    """The paired t-test of Δ = a − b (or of the differences ``a`` alone when ``b`` is None).

    Returns ``{"mean", "sd", "se", "n", "ci": [low, high], "p", "resolved", "per_seed"}``: ``ci`` is the
    (1 − α) t-interval with n − 1 degrees of freedom, ``p`` the two-sided p-value of
    ``scipy.stats.ttest_1samp(d, 0)``, ``resolved`` whether the interval excludes zero (⇔ p < α).
    All-equal differences have sd 0: the interval is the point and p is 0 (≠ 0) or 1 (= 0)."""
    alpha = _check_level("alpha", alpha)
    d = _diffs(a, b)
    n = len(d)
    if n < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {n}")
    mean, sd = _mean_sd(d)
    se = sd / math.sqrt(n)
    if sd == 0:
        lo = hi = mean
        p = 1.0 if mean == 0 else 0.0
    else:
        half = float(_st.t.ppf(1 - alpha / 2, n - 1)) * se
        lo, hi = mean - half, mean + half
        p = float(_st.ttest_1samp(d, 0.0).pvalue)
    return {"mean": mean, "sd": sd, "se": se, "n": n, "ci": [lo, hi], "p": p, "alpha": alpha,
            "resolved": bool(lo > 0 or hi < 0), "per_seed": d}


def _margin_sample(a, b, margin, alpha, what: str):
    """Validated (alpha, d, n, mean, sd, se) of the paired differences a − b for a test against ``margin``."""
    alpha = _check_level("alpha", alpha)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    d = _diffs(a, b)
    n = len(d)
    if n < 2:
        raise ValueError(f"{what} needs at least 2 pairs, got {n}")
    mean, sd = _mean_sd(d)
    return alpha, d, n, mean, sd, sd / math.sqrt(n)


def noninferiority(a: Iterable[float], b: Iterable[float] | None, margin: float, alpha: float = 0.05) -> dict:
    """"A matches or beats B" (lower loss is better): the paired t-test of Δ = A − B against ``margin``.

    Two-sided against the margin, so that one p-value decides either way: ``passed`` (A is non-inferior)
    when the (1 − α) t-interval lies below the margin, ``failed`` (A is worse by more than the margin)
    when it lies above it; ``p`` is ``scipy.stats.ttest_1samp(d, margin)``'s two-sided p-value. At
    α = 0.05 this is the usual non-inferiority test at one-sided level 0.025.

    Returns ``{"mean", "sd", "se", "n", "margin", "ci": [low, high], "p", "passed", "failed"}``."""
    alpha, d, n, mean, sd, se = _margin_sample(a, b, margin, alpha, "a paired test")
    if sd == 0:
        lo = hi = mean
        p = 1.0 if mean == margin else 0.0
    else:
        half = float(_st.t.ppf(1 - alpha / 2, n - 1)) * se
        lo, hi = mean - half, mean + half
        p = float(_st.ttest_1samp(d, float(margin)).pvalue)
    return {"mean": mean, "sd": sd, "se": se, "n": n, "margin": float(margin), "ci": [lo, hi], "p": p,
            "alpha": alpha, "passed": bool(hi < margin), "failed": bool(lo > margin)}


def tost(a: Iterable[float], b: Iterable[float] | None, margin: float, alpha: float = 0.05) -> dict:
    """Equivalence by two one-sided tests: H0 |Δ| ≥ margin against |Δ| < margin.

    Returns ``{"mean", "sd", "se", "n", "margin", "ci": [low, high], "p", "equivalent"}``: ``ci`` is the
    (1 − 2α) t-interval (90 % at α = 0.05), ``p`` the larger of the two one-sided p-values, and
    ``equivalent`` ⇔ the interval lies inside (−margin, margin) ⇔ p < α."""
    alpha, d, n, mean, sd, se = _margin_sample(a, b, margin, alpha, "an equivalence test")
    if sd == 0:
        lo = hi = mean
        p = 0.0 if abs(mean) < margin else 1.0
    else:
        half = float(_st.t.ppf(1 - alpha, n - 1)) * se
        lo, hi = mean - half, mean + half
        p_low = _st.ttest_1samp(d, -float(margin), alternative="greater").pvalue
        p_high = _st.ttest_1samp(d, float(margin), alternative="less").pvalue
        p = float(max(p_low, p_high))
    return {"mean": mean, "sd": sd, "se": se, "n": n, "margin": float(margin), "ci": [lo, hi], "p": p,
            "alpha": alpha, "equivalent": bool(-margin < lo and hi < margin)}


def holm(pvalues: dict, alpha: float = 0.05) -> dict:
    """Holm–Bonferroni over one family ``{name: p}``: ``{name: {"p", "p_adjusted", "rejected"}}``.

    The adjusted p of the i-th smallest of m p-values is max over j ≤ i of min(1, (m − j + 1)·p_(j));
    a hypothesis is rejected when its adjusted p is below α (the step-down rule)."""
    alpha = _check_level("alpha", alpha)
    if not isinstance(pvalues, dict):
        raise TypeError(f"pvalues must be a dict {{name: p}}, got {type(pvalues).__name__}")
    for k, p in pvalues.items():
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"p-value of {k!r} must be in [0, 1], got {p!r}")
    order = sorted(pvalues, key=lambda k: pvalues[k])
    m = len(order)
    out, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        out[k] = {"p": float(pvalues[k]), "p_adjusted": running, "rejected": running < alpha}
    return {k: out[k] for k in pvalues}


def power_paired(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at level α with ``n`` pairs, true mean difference
    ``effect`` and standard deviation of the differences ``sd`` (noncentral t)."""
    alpha = _check_level("alpha", alpha)
    if not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    if not sd > 0:
        raise ValueError(f"sd must be positive, got {sd!r}")
    df = n - 1
    nc = abs(effect) / (sd / math.sqrt(n))
    crit = _st.t.ppf(1 - alpha / 2, df)
    return float(_st.nct.sf(crit, df, nc) + _st.nct.cdf(-crit, df, nc))


def seeds_for_power(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8, max_seeds: int = 10_000) -> int | None:
    """The smallest number of paired seeds whose two-sided test at level α has ``power`` at this effect
    and paired spread; None when the effect is 0 or more than ``max_seeds`` would be needed."""
    _check_level("power", power)
    if not math.isfinite(effect) or not math.isfinite(sd) or sd < 0:
        raise ValueError(f"effect and sd must be finite (sd >= 0), got {effect!r}, {sd!r}")
    if effect == 0:
        return None
    if sd == 0:
        return 2
    lo, hi = 2, 2
    while power_paired(effect, sd, hi, alpha) < power:
        lo, hi = hi, hi * 2
        if hi > max_seeds:
            return None
    while lo < hi:                                   # power rises with n: bisect for the first n that has it
        mid = (lo + hi) // 2
        if power_paired(effect, sd, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def holm_verdicts(rows: dict, pvalues: dict, num_claims: int, alpha: float = 0.05) -> dict:
    """Turn one pre-registered family of tests into verdicts, in place, and return ``rows``.

    ``rows`` = {claim: {"delta", "sd", ... , optional "margin"}} (a claim without its test yet is left as it
    is), ``pvalues`` = {claim: p} of the tests that ran, ``num_claims`` the size of the declared family.
    Each tested row gets ``p_holm``; once every declared claim has its test, ``status`` becomes
    "reproduced" (Holm rejects, Δ below its target: 0, or the margin of a non-inferiority claim),
    "not reproduced" (Holm rejects the other way) or "unresolved" with ``seeds_for_80_power`` at the
    Bonferroni level α/m (Holm's strictest step); before that every tested row is "pending"."""
    adjusted = holm(pvalues, alpha) if pvalues else {}
    complete = len(pvalues) == num_claims
    for cid, row in rows.items():
        if cid not in adjusted:
            continue
        row["p_holm"] = adjusted[cid]["p_adjusted"]
        if not complete:
            row["status"] = "pending"
            continue
        target = row.get("margin", 0.0)
        if adjusted[cid]["rejected"]:
            row["status"] = "reproduced" if row["delta"] < target else "not reproduced"
        else:
            row["status"] = "unresolved"
            row["seeds_for_80_power"] = (seeds_for_power(row["delta"] - target, row["sd"], alpha / num_claims)
                                         if row["sd"] > 0 else None)
    return rows
