import math

import pytest
import torch

from ultramem_edu.exercises import ch08
from ultramem_edu.init import topm_mean_of_normals

import exercise_solutions as solutions


def test_checkers_accept_the_right_answers(capsys):
    ch08.check_value_std(math.sqrt(4 / (2 * 16 * 2 * 24)))
    ch08.check_ln_scale(0.5, 0.25)
    ch08.check_topm_mean(topm_mean_of_normals(512, 4, samples=4000, generator=torch.Generator().manual_seed(0))[0])
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "std,hint",
    [(4 / (2 * 16 * 2 * 24), "variance"), (math.sqrt(1 / (2 * 16 * 2 * 24)), "factor E"), (0.1, "Not quite")],
)
def test_value_std_rejects_wrong_answers(std, hint):
    with pytest.raises(AssertionError, match=hint):
        ch08.check_value_std(std)


@pytest.mark.parametrize(
    "g_tucker,g_additive,hint",
    [(0.25, 0.5, "Swapped"), (1 / 16, 0.25, "root"), (0.6, 0.25, "Tucker"), (0.5, 0.3, "Additive")],
)
def test_ln_scale_rejects_wrong_answers(g_tucker, g_additive, hint):
    with pytest.raises(AssertionError, match=hint):
        ch08.check_ln_scale(g_tucker, g_additive)


@pytest.mark.parametrize("estimate,hint", [(math.sqrt(2 * math.log(128)), "guide"), (2.5, "Not quite"),
                                           (2.2259, "n = 256"), (float("nan"), "finite")])
def test_topm_mean_rejects_wrong_answers(estimate, hint):
    with pytest.raises(AssertionError, match=hint):
        ch08.check_topm_mean(estimate)


# --- coding exercise: topm_mean_monte_carlo ---------------------------------------------------

from ultramem_edu.init import topm_mean_of_normals  # noqa: E402


def _estimator(kind):
    def topm_mean_monte_carlo(n, m, samples, generator):
        draws = torch.randn(samples, n, generator=generator, dtype=torch.float64)
        per_set = {
            "std": lambda: draws.topk(m, -1).values.mean(-1),
            "smallest": lambda: draws.topk(m, -1, largest=False).values.mean(-1),
            "axis": lambda: draws.topk(m, 0).values.mean(0),
            "abs": lambda: draws.abs().topk(m, -1).values.mean(-1),
            "mth": lambda: draws.topk(m, -1).values[:, -1],
        }[kind]()
        se = per_set.std() if kind == "std" else per_set.std() / math.sqrt(per_set.numel())
        return float(per_set.mean()), float(se)
    return topm_mean_monte_carlo


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (_estimator("std"), "divide by √samples"),
        (_estimator("smallest"), "smallest"),
        (_estimator("axis"), "within each set"),
        (_estimator("abs"), "absolute values"),
        (_estimator("mth"), "more than 5 standard errors"),
        (lambda n, m, samples, generator: (math.sqrt(2 * math.log(n / m)) if m < n else 0.0, 0.01), "guide|standard error"),
        (lambda n, m, samples, generator: 1.0, "return a pair"),
    ],
)
def test_topm_mean_monte_carlo_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch08.check_topm_mean_monte_carlo(wrong)


def test_topm_mean_monte_carlo_passes_the_solution_and_refuses_the_package(capsys):
    ch08.check_topm_mean_monte_carlo(solutions.topm_mean_monte_carlo)
    assert capsys.readouterr().out.count("Correct") == 1
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch08.check_topm_mean_monte_carlo(lambda n, m, samples, generator: topm_mean_of_normals(n, m, samples, generator))
