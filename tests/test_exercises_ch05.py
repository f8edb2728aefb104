import pytest

from ultramem_edu.exercises import ch05


def _align(u, t, pu, pt):
    keep = (u - pu).abs().sum() + (t - pt).abs().sum()
    swap = (u + pu).abs().sum() + (t + pt).abs().sum()
    return (-u, -t) if swap < keep else (u, t)


def test_checkers_accept_the_right_answers(capsys):
    ch05.check_aux_loss_value(0.001 * 0.35**2)
    ch05.check_sign_alignment(_align)
    assert capsys.readouterr().out.count("Correct") == 2


@pytest.mark.parametrize(
    "value,hint",
    [
        (0.001 * 0.35, "squared"),
        (0.001 * 0.25, "margin"),
        (0.001 * (1.85**2 + 0.35**2), "starts at i = 2"),
        (0.35**2, "α/"),
        (1.0, "Not quite"),
        (float("nan"), "finite"),
    ],
)
def test_aux_loss_rejects_wrong_values(value, hint):
    with pytest.raises(AssertionError, match=hint):
        ch05.check_aux_loss_value(value)


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (lambda u, t, pu, pt: (u, t), "differs"),                                   # no alignment
        (lambda u, t, pu, pt: (u, t) if u.sum() + t.sum() >= 0 else (-u, -t), "differs"),  # sum rule
        (lambda u, t, pu, pt: (-u, t) if _align(u, t, pu, pt)[0] is not u else (u, t), "together"),
        (lambda u, t, pu, pt: [u, t], "pair of tensors"),
    ],
)
def test_sign_alignment_rejects_wrong_rules(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch05.check_sign_alignment(wrong)
