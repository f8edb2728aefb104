import pytest

from ultramem_edu.exercises import ch04
from ultramem_edu.model import default_wiring


def test_checkers_accept_the_right_answers(capsys):
    ch04.check_wiring(default_wiring(12, 3))
    ch04.check_wiring([(0, 2), (4, 7), (8, 11)])
    ch04.check_step_time(20 + 4 * (5.0 - 3.6), 20 + 4 * 5.0)
    ch04.check_split_keys(1024, 4 * 2 * 1024, 2 * 2048)
    assert capsys.readouterr().out.count("Correct") == 4


@pytest.mark.parametrize(
    "wiring,hint",
    [("1:3", "tuple"), (((1, 3), (4, 6)), "3 pairs"), (((1, 3), (4, 6), (8, 12)), "0-based"),
     (((1, 3), (6, 4), (8, 10)), "i > j"), (((1, 1), (4, 6), (8, 10)), "at least 2"),
     (((1, 3), (5, 6), (8, 10)), "at least 2"), (((0, 4), (3, 6), (8, 10)), "overlap"),
     (((1, 3), (3, 6), (8, 10)), "overlap"), (((1, 3.0), (4, 6), (7, 9)), "integers"), (((1,), (4, 6), (7, 9)), "pair")],
)
def test_wiring_rejects_wrong_answers(wiring, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_wiring(wiring)


@pytest.mark.parametrize(
    "overlapped,serial,hint",
    [(25.6, 20.0, "Serial"), (20.0, 40.0, "stalls"), (28.0, 40.0, "FFN"), (24.0, 40.0, "Not quite")],
)
def test_step_time_rejects_wrong_answers(overlapped, serial, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_step_time(overlapped, serial)


@pytest.mark.parametrize(
    "per_side,small,big,hint",
    [(512, 4096, 4096, "IVE"), (2048, 8192, 4096, "Not quite"),
     (1024, 8192, 2048, "both sides"), (1024, 8192, 5000, "Not quite"), (1024, 2048, 4096, "one small"),
     (1024, 4096, 4096, "Not quite")],
)
def test_split_keys_rejects_wrong_answers(per_side, small, big, hint):
    with pytest.raises(AssertionError, match=hint):
        ch04.check_split_keys(per_side, small, big)

