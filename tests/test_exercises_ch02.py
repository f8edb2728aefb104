import pytest
import torch

from ultramem_edu.exercises import ch02

import exercise_solutions as solutions


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


# --- coding exercise: product_key_topm --------------------------------------------------------


def _two_stage(address="row-major", sort=True, stage2=True, dtype=None):
    def product_key_topm(row, col, m):
        n_r, n_c = row.shape[-1], col.shape[-1]
        top_row, row_idx = row.topk(m, -1)
        top_col, col_idx = col.topk(m, -1)
        if not stage2:
            return top_row + top_col, row_idx * n_c + col_idx
        scores, flat = (top_row[:, :, None] + top_col[:, None, :]).flatten(1).topk(m, -1)
        i, j = row_idx.gather(-1, flat // m), col_idx.gather(-1, flat % m)
        idx = {"row-major": i * n_c + j, "n_r": i * n_r + j, "column-major": j * n_r + i, "swapped": j * n_c + i,
               "flat": flat, "split": row_idx.gather(-1, flat % m) * n_c + col_idx.gather(-1, flat // m)}[address]
        if not sort:
            scores, idx = scores.flip(-1), idx.flip(-1)
        return scores, idx if dtype is None else idx.to(dtype)
    return product_key_topm


WRONG_PRODUCT_KEY_TOPMS = [
    (_two_stage("n_r"), "multiplied the row by n_r"),
    (_two_stage("column-major"), "column-major"),
    (_two_stage("swapped"), "swapped|column-major"),
    (_two_stage("flat"), "positions among the m × m candidates"),
    (_two_stage("split"), r"\(row slot, column slot\)"),
    (_two_stage(sort=False), "wrong order"),
    (_two_stage(stage2=False), "not the m best cells"),
    (_two_stage(dtype=torch.float32), "must be integers"),
    (lambda row, col, m: _two_stage()(row, col, m)[0], "return a pair"),
    (lambda row, col, m: (torch.zeros(row.shape[0], m), torch.zeros(row.shape[0], m * m, dtype=torch.long)),
     "wrong shape"),
    (lambda row, col, m: (lambda s, i: (s, i.clone().fill_(0) + i[:, :1]))(*_two_stage()(row, col, m)), "twice"),
]


def test_product_key_topm_passes_the_solution_and_refuses_the_package(capsys):
    import ultramem_edu.product_keys

    ch02.check_product_key_topm(solutions.product_key_topm)
    assert capsys.readouterr().out.count("Correct") == 1
    for package_fn in (ultramem_edu.product_keys.product_key_topm, ultramem_edu.product_keys._product_key_topm,
                       ultramem_edu.product_keys.product_key_topm_reference):
        with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
            ch02.check_product_key_topm(package_fn)
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):                                                    # called inside the reader's function
        ch02.check_product_key_topm(lambda row, col, m: ultramem_edu.product_keys.product_key_topm(row, col, m))
    assert "Correct" not in capsys.readouterr().out


@pytest.mark.parametrize("wrong,hint", WRONG_PRODUCT_KEY_TOPMS)
def test_product_key_topm_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch02.check_product_key_topm(wrong)


def _brute_force(row, col, m):
    """Top-m over all n_r · n_c grid scores: right answers, but not the two-stage search."""
    grid = (row[:, :, None] + col[:, None, :]).flatten(1)
    return grid.topk(m, dim=-1)


def _brute_force_per_query(row, col, m):
    out = [(row[b][:, None] + col[b][None, :]).flatten().topk(m) for b in range(row.shape[0])]
    return torch.stack([s for s, _ in out]), torch.stack([i for _, i in out])


@pytest.mark.parametrize("wrong", [_brute_force, _brute_force_per_query])
def test_product_key_topm_names_brute_force(wrong):
    with pytest.raises(AssertionError, match="brute force: a tensor of .* elements was built"):
        ch02.check_product_key_topm(wrong)
