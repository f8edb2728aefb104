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


# --- coding exercise: mcs_pool ----------------------------------------------------------------

import torch  # noqa: E402

import exercise_solutions as solutions  # noqa: E402

from ultramem_edu.mcs import mcs_pool as package_mcs_pool  # noqa: E402
from ultramem_edu.mcs import mcs_pool_reference  # noqa: E402


def _interleaved(values, indices, core_scores, num_blocks=1):
    n, d_v = values.shape
    b, k, h = core_scores.shape
    rows = values[indices % n].view(b, k, d_v // h, h) * core_scores.unsqueeze(-2)   # column t*h + c -> core c
    out = values.new_zeros(b, num_blocks, d_v)
    return out.scatter_add_(1, (indices // n).unsqueeze(-1).expand(-1, -1, d_v), rows.reshape(b, k, d_v))


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (lambda v, i, c, num_blocks=1: solutions.mcs_pool(v, i, c.sum(-1, keepdim=True), num_blocks), "summed score"),
        (_interleaved, "contiguous columns"),
        (lambda v, i, c, num_blocks=1: solutions.mcs_pool(v, i, c.flip(-1), num_blocks), "reverse order"),
        (lambda v, i, c, num_blocks=1: torch.nn.functional.pad(
            solutions.mcs_pool(v, i % v.shape[0], c, 1), (0, 0, 0, num_blocks - 1)), "block 0"),
        (ch07._one_hit_per_block, "overwrite each other"),
        (lambda v, i, c, num_blocks=1: solutions.mcs_pool(v, i, c, num_blocks)[:, 0], "keep the block dimension"),
        (lambda v, i, c, num_blocks=1: solutions.mcs_pool(v, i, c, num_blocks) * 2, "differs"),
    ],
)
def test_mcs_pool_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch07.check_mcs_pool(wrong)


def test_mcs_pool_passes_the_solution_and_refuses_the_package(capsys):
    ch07.check_mcs_pool(solutions.mcs_pool)
    assert capsys.readouterr().out.count("Correct") == 1
    for package_fn in (package_mcs_pool, mcs_pool_reference):
        with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
            ch07.check_mcs_pool(package_fn)


def _averaged_pool(values, indices, core_scores, num_blocks=1):
    n, d_v = values.shape
    weighted = values[indices % n] * core_scores.mean(-1, keepdim=True)            # (B, k, D_v)
    out = values.new_zeros(indices.shape[0], num_blocks, d_v)
    return out.index_put_((torch.arange(indices.shape[0])[:, None].expand_as(indices), indices // n), weighted,
                          accumulate=True)


def _divided_pool(values, indices, core_scores, num_blocks=1):
    return solutions.mcs_pool(values, indices, core_scores / core_scores.shape[-1], num_blocks)


@pytest.mark.parametrize("wrong", [_averaged_pool, _divided_pool])
def test_mcs_pool_names_averaged_core_scores(wrong):
    with pytest.raises(AssertionError, match="averag"):
        ch07.check_mcs_pool(wrong)


def test_core_scores_names_the_average():
    with pytest.raises(AssertionError, match="average of S₁ and S₂"):
        ch07.check_core_scores(1.0, 5.0, 3.0)
