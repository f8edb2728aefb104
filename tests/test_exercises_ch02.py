import pytest

from ultramem_edu.exercises import ch02


def test_checkers_accept_the_right_answers(capsys):
    ch02.check_signed_product_counterexample([1.0, -3.0, 0.5], [1.0, -3.0, 0.5], m=1)
    ch02.check_signed_product_counterexample([2.0, 1.0, -5.0, -4.0], [3.0, -6.0, 0.0, 1.0], m=2)
    ch02.check_pkm_cost(2 * 1024 * 128 + 32**2, 2 * 512**2 * 128)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "row,col,m,hint",
    [
        ([1.0, 2.0, 3.0], [0.5, 4.0, 1.0], 1, "non-negative"),
        ([1.0, -0.1, 0.5], [1.0, -0.2, 0.5], 1, "finds the true top"),
        ([1.0, -3.0], [1.0, -3.0], 2, "m must be"),
        ([[1.0, 2.0]], [1.0, -3.0], 1, "1-D"),
        ([1.0, float("nan"), 2.0], [1.0, -3.0, 0.0], 1, "finite"),
    ],
)
def test_counterexample_rejects_non_counterexamples(row, col, m, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_signed_product_counterexample(row, col, m)


@pytest.mark.parametrize(
    "pk,dense,hint",
    [
        (2 * 1024 * 128, 2 * 512**2 * 128, "m² candidate sums"),
        (1024 * 128 + 1024, 2 * 512**2 * 128, "both sub-key sets"),
        (2 * 1024 * 128 + 2 * 32 * 128, 2 * 512**2 * 128, "no dot products"),
        (1e6, 2 * 512**2 * 128, "Not quite"),
        (2 * 1024 * 128 + 1024, 512**2 * 128, "multiply-adds"),
        (2 * 1024 * 128 + 1024, 2 * 512 * 128, "Not quite"),
    ],
)
def test_pkm_cost_rejects_wrong_answers(pk, dense, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_pkm_cost(pk, dense)
