import pytest

from ultramem_edu.exercises import ch07


def test_checkers_accept_the_right_answers(capsys):
    ch07.check_core_scores(1.0, 5.0, 6.0)
    ch07.check_equal_cores_factor(0.5)
    ch07.check_core_parameters(16, 8)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "s1,s2,summed,hint",
    [(5.0, 1.0, 6.0, "swapped"), (3.0, 5.0, 8.0, "bilinear"), (1.0, 5.0, 5.0, "S₁ \\+ S₂"), (1.0, "5", 6.0, "finite")],
)
def test_core_scores_rejects_wrong_answers(s1, s2, summed, hint):
    with pytest.raises(AssertionError, match=hint):
        ch07.check_core_scores(s1, s2, summed)


@pytest.mark.parametrize("factor,hint", [(2.0, "below 1"), (1.0, "Not quite"), (0.25, "Not quite")])
def test_equal_cores_factor_rejects_wrong_answers(factor, hint):
    with pytest.raises(AssertionError, match=hint):
        ch07.check_equal_cores_factor(factor)


@pytest.mark.parametrize(
    "total,added,hint",
    [(8, 4, "own cores"), (12, 4, "Not quite"), (16, 16, "h = 1")],
)
def test_core_parameters_rejects_wrong_answers(total, added, hint):
    with pytest.raises(AssertionError, match=hint):
        ch07.check_core_parameters(total, added)
