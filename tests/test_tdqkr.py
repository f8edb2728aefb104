import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.tdqkr import (
    gather_tucker_scores,
    rank1_factors,
    recall_at_m,
    tdqkr_topm,
    tdqkr_topm_reference,
    tucker_aux_loss,
    tucker_scores,
)


def _random(seed, batch, r, n_r, n_c, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, r, n_r, generator=g, dtype=dtype),
        torch.randn(batch, r, n_c, generator=g, dtype=dtype),
        torch.rand(r, r, generator=g, dtype=dtype),
    )


def test_tucker_scores_is_the_double_sum():
    row, col, core = _random(0, 2, 3, 4, 5)
    out = tucker_scores(row, col, core)
    ref = torch.zeros(2, 4, 5, dtype=torch.float64)
    for b in range(2):
        for i in range(4):
            for j in range(5):
                ref[b, i, j] = sum(row[b, a, i] * core[a, c] * col[b, c, j] for a in range(3) for c in range(3))
    torch.testing.assert_close(out, ref)


def test_rank_one_multiplicative_product_key():
    row, col, _ = _random(1, 1, 1, 6, 7)
    out = tucker_scores(row, col, torch.ones(1, 1, dtype=torch.float64))
    torch.testing.assert_close(out, row[:, 0, :, None] * col[:, 0, None, :])


@settings(max_examples=50, deadline=None)
@given(r=st.integers(1, 4), n_r=st.integers(2, 20), n_c=st.integers(2, 20), m_frac=st.floats(0, 1),
       seed=st.integers(0, 2**31 - 1))
def test_stage_two_scores_are_exact_sorted_and_distinct(r, n_r, n_c, m_frac, seed):
    row, col, core = _random(seed, 3, r, n_r, n_c)
    core = core - 0.5  # a general core, signs mixed
    m = 1 + int(m_frac * (min(n_r, n_c) - 1))
    s, i = tdqkr_topm(row, col, core, m)
    grid = tucker_scores(row, col, core).flatten(-2)
    torch.testing.assert_close(s, grid.gather(-1, i))
    torch.testing.assert_close(s, gather_tucker_scores(row, col, core, i))
    assert bool((s[..., :-1] >= s[..., 1:]).all())
    assert all(len(set(x.tolist())) == m for x in i)


@settings(max_examples=50, deadline=None)
@given(r=st.integers(1, 4), n=st.integers(2, 20), m_frac=st.floats(0, 1), seed=st.integers(0, 2**31 - 1))
def test_rank_one_core_with_nonnegative_projections_is_exact(r, n, m_frac, seed):
    g = torch.Generator().manual_seed(seed)
    u, t = torch.rand(r, generator=g, dtype=torch.float64) + 0.1, torch.rand(r, generator=g, dtype=torch.float64) + 0.1
    core = 2.0 * torch.outer(u, t)
    row = torch.rand(2, r, n, generator=g, dtype=torch.float64)   # non-negative, so uᵀS ≥ 0 and tᵀS ≥ 0
    col = torch.rand(2, r, n, generator=g, dtype=torch.float64)
    m = 1 + int(m_frac * (n - 1))
    s, i = tdqkr_topm(row, col, core, m)
    s_ref, i_ref = tdqkr_topm_reference(row, col, core, m)
    torch.testing.assert_close(s, s_ref)
    assert torch.equal(i.sort(-1).values, i_ref.sort(-1).values)


def test_general_core_is_approximate_and_recall_is_measured():
    row, col, core = _random(3, 400, 2, 32, 32)
    core = core - 0.5
    s, i = tdqkr_topm(row, col, core, 8)
    _, i_ref = tdqkr_topm_reference(row, col, core, 8)
    recall = recall_at_m(i, i_ref).mean().item()
    # approximate: neither perfect nor useless on random cores (measured 0.49 with this seed)
    assert 0.3 < recall < 1.0, recall


def test_recall_at_m_counts_hits():
    assert recall_at_m(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[4, 5, 1, 9]])).item() == 0.5


def test_sign_alignment_keeps_the_selection_when_the_svd_flips():
    row, col, core = _random(4, 50, 2, 16, 16)
    row, col = row.abs(), col.abs()
    u, t = rank1_factors(core)
    assert u.sum() > 0 and t.sum() > 0
    s_good, i_good = tdqkr_topm(row, col, core, 6, factors=(u, t))
    # the SVD may return (−u, −t); used unaligned, stage 1 picks the bottom rows
    s_bad, _ = tdqkr_topm(row, col, core, 6, factors=(-u, -t))
    assert s_bad.sum() < s_good.sum()
    # aligned against the previous pair, the flipped pair is flipped back
    au, at = rank1_factors(core, previous=(u, t))
    torch.testing.assert_close((au, at), (u, t))
    fu, ft = rank1_factors(core, previous=(-u, -t))
    torch.testing.assert_close((fu, ft), (-u, -t))
    _, i_aligned = tdqkr_topm(row, col, core, 6, factors=rank1_factors(core, previous=(u + 0.01, t - 0.01)))
    assert torch.equal(i_aligned, i_good)


def test_batched_cores_per_head():
    g = torch.Generator().manual_seed(5)
    row, col = torch.randn(4, 3, 2, 10, generator=g), torch.randn(4, 3, 2, 10, generator=g)
    cores = torch.rand(3, 2, 2, generator=g)
    s, i = tdqkr_topm(row, col, cores, 4)
    for h in range(3):
        s_h, i_h = tdqkr_topm(row[:, h], col[:, h], cores[h], 4)
        torch.testing.assert_close(s[:, h], s_h)
        assert torch.equal(i[:, h], i_h)


def test_aux_loss_value_margin_and_gradcheck():
    core = torch.diag(torch.tensor([3.0, 0.5, 0.1], dtype=torch.float64))
    # σ = (3, 0.5, 0.1): only σ₂ exceeds τ = 0.15
    expected = 0.001 / 2 * (0.5 - 0.15) ** 2
    torch.testing.assert_close(tucker_aux_loss(core), torch.tensor(expected, dtype=torch.float64))
    below = torch.diag(torch.tensor([2.0, 0.1], dtype=torch.float64))
    assert tucker_aux_loss(below).item() == 0.0
    assert tucker_aux_loss(torch.ones(1, 1)).item() == 0.0
    g = torch.Generator().manual_seed(0)
    c = torch.randn(3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: tucker_aux_loss(x, tau=0.1, alpha=1.0), (c,))


def test_gradients_flow_through_stage_two():
    row, col, core = _random(6, 2, 2, 8, 8)
    row.requires_grad_(); col.requires_grad_(); core.requires_grad_()
    s, _ = tdqkr_topm(row, col, core, 3)
    s.sum().backward()
    assert row.grad.abs().sum() > 0 and col.grad.abs().sum() > 0 and core.grad.abs().sum() > 0


def test_bad_inputs():
    row, col, core = _random(7, 2, 2, 8, 8)
    with pytest.raises(ValueError, match="m must be in"):
        tdqkr_topm(row, col, core, 9)
    with pytest.raises(ValueError, match="square"):
        tucker_scores(row, col, torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="key sets"):
        tucker_scores(row, col, torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="finite"):
        tdqkr_topm(row, col, torch.full((2, 2), float("nan"), dtype=torch.float64), 2)
    with pytest.raises(TypeError, match="core"):
        tucker_aux_loss(torch.ones(2, 2, dtype=torch.long))


@settings(max_examples=50, deadline=None)
@given(r=st.integers(1, 3), n=st.integers(2, 20), m_frac=st.floats(0, 1), seed=st.integers(0, 2**31 - 1))
def test_both_signs_is_exact_for_any_rank_one_core(r, n, m_frac, seed):
    g = torch.Generator().manual_seed(seed)
    core = 1.5 * torch.outer(torch.randn(r, generator=g, dtype=torch.float64), torch.randn(r, generator=g, dtype=torch.float64))
    row = torch.randn(3, r, n, generator=g, dtype=torch.float64)   # signed scores
    col = torch.randn(3, r, n, generator=g, dtype=torch.float64)
    m = 1 + int(m_frac * (n - 1))
    s, i = tdqkr_topm(row, col, core, m, both_signs=True)
    s_ref, _ = tdqkr_topm_reference(row, col, core, m)
    torch.testing.assert_close(s, s_ref)
    assert all(len(set(x.tolist())) == m for x in i)


def test_both_signs_finds_the_negative_corner_the_paper_search_misses():
    # rank-1 core, signed scores: the best cells are often at (very negative row, very negative column)
    g = torch.Generator().manual_seed(11)
    row, col = torch.randn(300, 1, 32, generator=g, dtype=torch.float64), torch.randn(300, 1, 32, generator=g, dtype=torch.float64)
    core = torch.ones(1, 1, dtype=torch.float64)
    _, ref = tdqkr_topm_reference(row, col, core, 8)
    paper = recall_at_m(tdqkr_topm(row, col, core, 8)[1], ref).mean().item()
    both = recall_at_m(tdqkr_topm(row, col, core, 8, both_signs=True)[1], ref).mean().item()
    assert both == 1.0 and paper < 0.8, (paper, both)
