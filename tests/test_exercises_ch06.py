import pytest

from ultramem_edu.exercises import ch06
from ultramem_edu.ive import make_shuffle

import exercise_solutions as solutions


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


# --- coding exercise: ive_lookup --------------------------------------------------------------

import torch  # noqa: E402

from ultramem_edu.ive import ive_lookup as package_ive_lookup  # noqa: E402


def _through_the_virtual_table(values, projectors, indices, scores):
    """Right numbers, but it builds all E·N projected rows first."""
    n = values.shape[0]
    table = torch.einsum("nd,edo->eno", values, projectors).reshape(-1, projectors.shape[2])   # (E·N, D_out)
    return (scores.unsqueeze(-1) * table[(indices // n) * n + indices % n]).sum(1)


def _pool(values, projectors, indices, scores, block, row):
    n, d_v = values.shape
    pooled = values.new_zeros(indices.shape[0], projectors.shape[0], d_v)
    pooled.scatter_add_(1, block.unsqueeze(-1).expand(-1, -1, d_v), values[row] * scores.unsqueeze(-1))
    return torch.einsum("bed,edo->bo", pooled, projectors)


WRONG_IVE_LOOKUPS = [
    (_through_the_virtual_table, "as large as the virtual table"),
    (lambda v, P, i, s: _pool(v, P, i, s, i % P.shape[0], i // P.shape[0]), "swapped"),
    (lambda v, P, i, s: _pool(v, P, i, torch.ones_like(s), i // v.shape[0], i % v.shape[0]), "not weighted"),
    (lambda v, P, i, s: _pool(v, P[:1].expand_as(P), i, s, i // v.shape[0], i % v.shape[0]), "projectors\\[0\\]"),
    (lambda v, P, i, s: (v[i % v.shape[0]] * s.unsqueeze(-1)).sum(1) @ P.sum(0), "pooled over all blocks"),
    (ch06._first_hit_only, "overwrite each other"),
    (lambda v, P, i, s: _pool(v, P, i, s, i // v.shape[0], i), "raised IndexError"),
    (lambda v, P, i, s: _pool(v, P, i, s, i // v.shape[0], i % v.shape[0])[:, None], "wrong shape"),
]


def test_ive_lookup_passes_the_solution_and_refuses_the_package(capsys):
    ch06.check_ive_lookup(solutions.ive_lookup)
    assert capsys.readouterr().out.count("Correct") == 1
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch06.check_ive_lookup(package_ive_lookup)


@pytest.mark.parametrize("wrong,hint", WRONG_IVE_LOOKUPS)
def test_ive_lookup_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch06.check_ive_lookup(wrong)
