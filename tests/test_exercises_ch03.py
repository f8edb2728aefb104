import pytest

from ultramem_edu.exercises import ch03


def test_checkers_accept_the_right_answers(capsys):
    ch03.check_keys_per_side(2048)
    ch03.check_keys_per_side(96, num_values=1024, expansion=9)
    ch03.check_query_weights(64 * 4 * 2 * 16, 64 * 2 * 16)
    ch03.check_value_lr_halfway(5.5)
    ch03.check_value_lr_halfway(2.5, k=4)
    assert capsys.readouterr().out.count("Correct") == 5


@pytest.mark.parametrize("answer,hint", [(1024, "√N"), (4096, "√E"), (2000, "Not quite")])
def test_keys_per_side_rejects_wrong_answers(answer, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_keys_per_side(answer)


@pytest.mark.parametrize(
    "per_head,shared,hint",
    [
        (64 * 4 * 16, 64 * 16, "row half"),
        (64 * 2 * 16, 64 * 2 * 16, "per_head"),
        (64 * 4 * 2 * 16, 64 * 4 * 2 * 16, "shared"),
    ],
)
def test_query_weights_rejects_wrong_answers(per_head, shared, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_query_weights(per_head, shared)


@pytest.mark.parametrize("answer,k,hint", [(5.0, 10.0, "not to 0"), (5.5, 4.0, "Not quite"), (10.0, 10.0, "Not quite")])
def test_value_lr_halfway_rejects_wrong_answers(answer, k, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_value_lr_halfway(answer, k=k)
