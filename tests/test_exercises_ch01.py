import pytest
import torch

from ultramem_edu.exercises import ch01


def _topm(scores, m):
    top = scores.topk(m, dim=-1)
    return torch.zeros_like(scores).scatter(-1, top.indices, top.values)


def test_checkers_accept_the_right_answers(capsys):
    ch01.check_scoring_flops(2 * 10**6 * 128, 2 * 2 * 1000 * 128)
    ch01.check_topm_activation(_topm)
    ch01.check_attention_scale(1.0)
    assert capsys.readouterr().out.count("Correct") == 3


@pytest.mark.parametrize(
    "dense,product_keys,hint",
    [
        (1.28e8, None, "multiply-adds"),
        (1e6, None, "dot product"),
        (5e8, None, "Not quite"),
        (2.56e8, 2.56e5, "two sets"),
        (2.56e8, 1e6, "Not quite"),
    ],
)
def test_scoring_flops_rejects_wrong_answers(dense, product_keys, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_scoring_flops(dense, product_keys)


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (lambda s, m: torch.relu(s), "exactly m"),
        (lambda s, m: _topm(s, m).softmax(-1), "exactly m"),
        (lambda s, m: _topm(-s, m), "largest"),
        (lambda s, m: s[:, :m], "shaped like"),
    ],
)
def test_topm_activation_rejects_wrong_functions(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_topm_activation(wrong)


def test_attention_scale_rejects_the_default_and_others():
    with pytest.raises(AssertionError, match="default"):
        ch01.check_attention_scale(0.25)
    with pytest.raises(AssertionError, match="no factor"):
        ch01.check_attention_scale(2.0)
    with pytest.raises(AssertionError, match="finite"):
        ch01.check_attention_scale(float("nan"))
