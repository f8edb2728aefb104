import pytest

from ultramem_edu.exercises import ch06
from ultramem_edu.ive import make_shuffle


def test_checkers_accept_the_right_answers(capsys):
    a = int(make_shuffle(1024, seed=0)[31 * 32 + 8])
    ch06.check_keys_and_virtual(3072, 9 * 2**20)
    ch06.check_block_and_row(a // 256, a % 256)
    ch06.check_projection_flops(2 * 4 * 2**20 * 512 * 1024, 2 * 4 * 8 * 512 * 1024)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "n_side,virtual,hint",
    [(1024, 9 * 2**20, "without"), (9 * 1024, 9 * 2**20, "√E"), (3000, 9 * 2**20, "Not quite"),
     (3072, 2**20, "physical"), (3072, 3072, "Not quite")],
)
def test_keys_and_virtual_rejects_wrong_answers(n_side, virtual, hint):
    with pytest.raises(AssertionError, match=hint):
        ch06.check_keys_and_virtual(n_side, virtual)


def test_block_and_row_rejects_wrong_answers():
    g = 31 * 32 + 8
    a = int(make_shuffle(1024, seed=0)[g])
    with pytest.raises(AssertionError, match="shuffle"):
        ch06.check_block_and_row(g // 256, g % 256)
    with pytest.raises(AssertionError, match="swapped"):
        ch06.check_block_and_row(a % 256, a // 256)
    with pytest.raises(AssertionError, match="Not quite"):
        ch06.check_block_and_row((a // 256 + 1) % 4, a % 256)


@pytest.mark.parametrize(
    "naive,efficient,hint",
    [(4 * 2**20 * 512 * 1024, 2 * 4 * 8 * 512 * 1024, "multiply-adds"),
     (1e9, 2 * 4 * 8 * 512 * 1024, "Naive"),
     (2 * 4 * 2**20 * 512 * 1024, 2 * 8 * 512 * 1024, "E vectors"),
     (2 * 4 * 2**20 * 512 * 1024, 1e5, "Efficient")],
)
def test_projection_flops_rejects_wrong_answers(naive, efficient, hint):
    with pytest.raises(AssertionError, match=hint):
        ch06.check_projection_flops(naive, efficient)
