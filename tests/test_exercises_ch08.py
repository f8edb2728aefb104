import math

import pytest
import torch

from ultramem_edu.exercises import ch08
from ultramem_edu.init import topm_mean_of_normals


def test_checkers_accept_the_right_answers(capsys):
    ch08.check_value_std(math.sqrt(4 / (2 * 16 * 2 * 24)))
    ch08.check_ln_scale(0.5, 0.25)
    ch08.check_topm_mean(topm_mean_of_normals(256, 8, samples=4000, generator=torch.Generator().manual_seed(0))[0])
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


@pytest.mark.parametrize("estimate,hint", [(math.sqrt(2 * math.log(32)), "guide"), (2.0, "Not quite"), (float("nan"), "finite")])
def test_topm_mean_rejects_wrong_answers(estimate, hint):
    with pytest.raises(AssertionError, match=hint):
        ch08.check_topm_mean(estimate)
