import pytest
import torch

from ultramem_edu.exercises import ch01

import exercise_solutions as solutions


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


# --- coding exercise: topm_read --------------------------------------------------------------


def _read(query, keys, values, m, weights_of, pick=lambda s, m: s.topk(m, dim=-1)):
    top, idx = pick(query @ keys.T, m)
    return (weights_of(top).unsqueeze(-1) * values[idx]).sum(1)


def _threshold_read(query, keys, values, m, softmax=True):
    scores = query @ keys.T
    kth = scores.topk(m, dim=-1).values[:, -1:]
    if softmax:
        return torch.where(scores >= kth, scores, float("-inf")).softmax(-1) @ values
    return torch.where(scores >= kth, scores, 0.0) @ values


WRONG_TOPM_READS = [
    (lambda q, k, v, m, softmax=True: _read(q, k, v, m, lambda s: s), "softmax of the m selected"),
    (lambda q, k, v, m, softmax=True: _read(q, k, v, m, lambda s: s.softmax(-1) if not softmax else s.softmax(-1)),
     "no softmax"),
    (lambda q, k, v, m, softmax=True: (q @ k.T).softmax(-1).gather(-1, (q @ k.T).topk(m, -1).indices)
     .unsqueeze(-1).mul(v[(q @ k.T).topk(m, -1).indices]).sum(1), "over all N scores"),
    (lambda q, k, v, m, softmax=True: _read(q / k.shape[1] ** 0.5, k, v, m,
                                            (lambda s: s.softmax(-1)) if softmax else (lambda s: s)), "1/√D_k"),
    (lambda q, k, v, m, softmax=True: _read(q, k, v, m, (lambda s: s.softmax(-1)) if softmax else (lambda s: s),
                                            pick=lambda s, m: s.topk(m, dim=-1, largest=False)), "smallest"),
    (lambda q, k, v, m, softmax=True: _read(q, k, v, m, (lambda s: s.softmax(-1)) if softmax else (lambda s: s),
                                            pick=lambda s, m: (s.gather(-1, s.abs().topk(m, -1).indices),
                                                               s.abs().topk(m, -1).indices)), r"\|score\|"),
    (_threshold_read, "threshold"),
    (lambda q, k, v, m, softmax=True: solutions.topm_read(q, k, v, m, softmax)[:, None], "wrong shape"),
    (lambda q, k, v, m, softmax=True: solutions.topm_read(q, k, v, m, softmax).tolist(), "torch.Tensor"),
    (lambda q, k, v, m, softmax=True: q @ k.T @ v, "raised RuntimeError|differs"),
]


def test_topm_read_passes_the_solution(capsys):
    ch01.check_topm_read(solutions.topm_read)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", WRONG_TOPM_READS)
def test_topm_read_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch01.check_topm_read(wrong)


# --- the named mistakes and the package's implementation -------------------------------------


def _softmax_axis(dim, before_topk=False):
    def topm_read(query, keys, values, m, softmax=True):
        scores = query @ keys.T
        if before_topk and softmax:
            weights_all = scores.softmax(dim)
            top, idx = scores.topk(m, dim=-1)
            weights = weights_all.gather(-1, idx)
        else:
            top, idx = scores.topk(m, dim=-1)
            weights = top.softmax(dim) if softmax else top
        return (weights.unsqueeze(-1) * values[idx]).sum(1)
    return topm_read


@pytest.mark.parametrize("wrong", [_softmax_axis(0), _softmax_axis(0, before_topk=True)])
def test_topm_read_names_a_softmax_over_the_wrong_axis(wrong):
    with pytest.raises(AssertionError, match="softmax ran over the wrong axis"):
        ch01.check_topm_read(wrong)


def test_topm_read_refuses_the_package_memory():
    from ultramem_edu.memory import TopMMemory, dense_topm

    def topm_read(query, keys, values, m, softmax=True):
        scores, idx = dense_topm(query, keys, m)
        weights = scores.softmax(-1) if softmax else scores
        return (weights.unsqueeze(-1) * values[idx]).sum(1)

    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch01.check_topm_read(topm_read)
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch01.check_topm_read(TopMMemory(4, 2, 2, 1).forward)
    assert dense_topm(torch.ones(1, 2), torch.eye(2), 1)[1].tolist() == [[0]]      # restored afterwards
