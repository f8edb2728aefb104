import pytest

from ultramem_edu.exercises import ch03

import exercise_solutions as solutions


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


# --- coding exercise: value_lr_multiplier -----------------------------------------------------


def test_value_lr_multiplier_passes_the_solution_and_refuses_the_layers(capsys):
    from ultramem_edu.layer import value_lr_multiplier

    ch03.check_value_lr_multiplier(solutions.value_lr_multiplier)
    assert capsys.readouterr().out.count("Correct") == 1
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch03.check_value_lr_multiplier(value_lr_multiplier)
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):                                                    # a name bound to it before the check
        ch03.check_value_lr_multiplier(lambda step, total, k: value_lr_multiplier(step, total, k))
    assert value_lr_multiplier(50, 100, 10.0) == 5.5                   # restored after the check


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (lambda step, T, k: k * max(0.0, 1 - step / T), "not to 0"),
        (lambda step, T, k: 1 + (k - 1) * (1 - step / T), "clamp"),
        (lambda step, T, k: 1 + (k - 1) * min(1.0, step / T), "backwards"),
        (lambda step, T, k: k, "stays at k"),
        (lambda step, T, k: 1 + (k - 1) * max(0.0, 1 - step / (2 * T)), "expected"),
        (lambda step, T, k: "fast", "return a number"),
    ],
)
def test_value_lr_multiplier_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch03.check_value_lr_multiplier(wrong)


def test_value_lr_multiplier_names_integer_division():
    def value_lr_multiplier(step, total_steps, k):
        return 1.0 + (k - 1.0) * max(0, 1 - step // total_steps)

    with pytest.raises(AssertionError, match="integer division"):
        ch03.check_value_lr_multiplier(value_lr_multiplier)
