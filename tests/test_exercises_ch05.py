import pytest
import torch

from ultramem_edu.exercises import ch05

import exercise_solutions as solutions


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


# --- coding exercises: tucker_scores, tdqkr_two_stage -----------------------------------------

from ultramem_edu.tdqkr import tdqkr_topm, tdqkr_topm_reference  # noqa: E402
from ultramem_edu.tdqkr import tucker_scores as package_tucker_scores  # noqa: E402


@pytest.mark.parametrize(
    "wrong,hint",
    [
        (lambda row, col, core: solutions.tucker_scores(row, col, core.T), "you used Cᵀ"),
        (lambda row, col, core: solutions.tucker_scores(row, col, core).transpose(-1, -2), "transposed"),
        (lambda row, col, core: row.transpose(-1, -2) @ col, "the core is missing"),
        (lambda row, col, core: row.sum(1)[:, :, None] * col.sum(1)[:, None, :] * core.sum(), "product of sums"),
        (lambda row, col, core: core[0, 0] * row[:, 0, :, None] * col[:, 0, None, :], "only the first key set"),
        (lambda row, col, core: row.sum(1)[:, :, None] + col.sum(1)[:, None, :], "additive grid"),
        (lambda row, col, core: solutions.tucker_scores(row, col, core)[:, :, :-1], "wrong shape"),
    ],
)
def test_tucker_scores_catches_typical_mistakes(wrong, hint):
    with pytest.raises(AssertionError, match=hint):
        ch05.check_tucker_scores(wrong)


def _search(kind):
    def tdqkr_two_stage(row, col, core, m, u, t, both_signs=False):
        if kind == "paper":
            return solutions.tdqkr_two_stage(row, col, core, m, u, t, both_signs=False)
        if kind == "brute":
            return solutions.tucker_scores(row, col, core).flatten(1).topk(m, dim=-1)
        if kind in ("uu", "tu"):
            first, second = (u, u) if kind == "uu" else (t, u)
            return solutions.tdqkr_two_stage(row, col, core, m, first, second, both_signs=both_signs)
        if kind == "duplicates":                                       # cat of both ends, never de-duplicated
            def candidates(proj):
                if not both_signs:
                    return proj.topk(m, dim=-1).indices
                return torch.cat([proj.topk(m, dim=-1).indices, proj.topk(m, dim=-1, largest=False).indices], -1)
            r = core.shape[-1]
            rows = candidates((u[:, None] * row).sum(-2))
            cols = candidates((t[:, None] * col).sum(-2))
            sub_row = row.gather(-1, rows[:, None, :].expand(-1, r, -1))
            sub_col = col.gather(-1, cols[:, None, :].expand(-1, r, -1))
            grid = (sub_row.transpose(-1, -2) @ core @ sub_col).flatten(1)
            scores, flat = grid.topk(m, dim=-1)
            c_c = cols.shape[-1]
            return scores, rows.gather(-1, flat // c_c) * col.shape[-1] + cols.gather(-1, flat % c_c)
        scores, idx = solutions.tdqkr_two_stage(row, col, core, m, u, t, both_signs)
        n_c = col.shape[-1]
        if kind == "rank1":
            pr, pc = (u[:, None] * row).sum(-2), (t[:, None] * col).sum(-2)
            rank1 = pr.gather(-1, idx // n_c) * pc.gather(-1, idx % n_c)
            rank1, order = rank1.sort(-1, descending=True)
            return rank1, idx.gather(-1, order)
        if kind == "unsorted":
            return scores.flip(-1), idx.flip(-1)
        if kind == "nr":
            return scores, (idx // n_c) * row.shape[-1] + idx % n_c
        raise ValueError(kind)
    return tdqkr_two_stage


@pytest.mark.parametrize(
    "kind,hint",
    [
        ("paper", "negative corner"),
        ("brute", "brute-force"),
        ("uu", "not by u"),
        ("tu", "swapped"),
        ("rank1", "exactly, with the full core"),
        ("unsorted", "wrong order"),
        ("nr", "Tucker score|must lie in"),
        ("duplicates", "duplicate addresses in .* queries: with both_signs and 2m > n"),
    ],
)
def test_tdqkr_two_stage_catches_typical_mistakes(kind, hint):
    with pytest.raises(AssertionError, match=hint):
        ch05.check_tdqkr_two_stage(_search(kind))


def test_tdqkr_coding_exercises_pass_their_solutions_and_refuse_the_package(capsys):
    ch05.check_tucker_scores(solutions.tucker_scores)
    ch05.check_tdqkr_two_stage(solutions.tdqkr_two_stage)
    assert capsys.readouterr().out.count("Correct") == 2
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch05.check_tucker_scores(package_tucker_scores)
    with pytest.raises(AssertionError, match="this calls the package's implementation of the exercise"):
        ch05.check_tdqkr_two_stage(lambda row, col, core, m, u, t, both_signs=False:
                                   tdqkr_topm(row, col, core, m, factors=(u, t), both_signs=both_signs))
    assert "Correct" not in capsys.readouterr().out


def test_tdqkr_cases_separate_the_paper_search_from_both_signs():
    """The signed case must make forgetting the negative corner visible, and some case must make the
    two-stage search differ from brute force (otherwise those mistakes would pass)."""
    import torch

    cases = {c[0]: c for c in ch05._tdqkr_cases()}
    _, row, col, core, m, u, t, _ = cases["signed scores, both_signs=True"]
    paper = tdqkr_topm(row, col, core, m, factors=(u, t), both_signs=False)[0]
    both = tdqkr_topm(row, col, core, m, factors=(u, t), both_signs=True)[0]
    assert not torch.allclose(paper, both)
    assert any(not torch.allclose(tdqkr_topm(r, c, k, mm, factors=(uu, tt), both_signs=bs)[0],
                                  tdqkr_topm_reference(r, c, k, mm)[0])
               for _, r, c, k, mm, uu, tt, bs in cases.values())
