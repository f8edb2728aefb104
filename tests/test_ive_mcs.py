import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.ive import ive_lookup, ive_lookup_reference, keys_per_side, make_shuffle, virtual_table
from ultramem_edu.mcs import mcs_pool, mcs_pool_reference, mcs_topm
from ultramem_edu.tdqkr import tdqkr_topm, tucker_scores


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), d_v=st.integers(1, 9), d_out=st.integers(1, 7), e=st.integers(1, 5),
       b=st.integers(1, 4), k=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_ive_efficient_equals_naive(n, d_v, d_out, e, b, k, seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, d_v, generator=g, dtype=torch.float64)
    proj = torch.randn(e, d_v, d_out, generator=g, dtype=torch.float64)
    idx = torch.randint(0, e * n, (b, k), generator=g)
    scores = torch.randn(b, k, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ive_lookup(values, proj, idx, scores), ive_lookup_reference(values, proj, idx, scores))


def test_ive_gradients_match_naive():
    g = torch.Generator().manual_seed(0)
    args = [torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randn(4, 4, 3, generator=g, dtype=torch.float64)]
    idx = torch.randint(0, 40, (5, 6), generator=g)
    s = torch.randn(5, 6, generator=g, dtype=torch.float64)
    grads = []
    for fn in (ive_lookup, ive_lookup_reference):
        leaves = [a.clone().requires_grad_() for a in args] + [s.clone().requires_grad_()]
        fn(leaves[0], leaves[1], idx, leaves[2]).pow(2).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_virtual_table_layout_and_shuffle():
    values, proj = torch.randn(4, 2), torch.randn(3, 2, 5)
    table = virtual_table(values, proj)
    torch.testing.assert_close(table[2 * 4 + 1], values[1] @ proj[2])
    perm = make_shuffle(12, seed=3)
    assert torch.equal(perm.sort().values, torch.arange(12))
    assert torch.equal(perm, make_shuffle(12, seed=3)) and not torch.equal(perm, make_shuffle(12, seed=4))


def test_keys_per_side_and_its_errors():
    assert keys_per_side(256, 4) == 32 and keys_per_side(256, 1) == 16 and keys_per_side(64, 9) == 24
    with pytest.raises(ValueError, match="num_values must be a perfect square"):
        keys_per_side(200, 4)
    with pytest.raises(ValueError, match="expansion E must be a perfect square"):
        keys_per_side(256, 2)


def test_ive_bad_inputs():
    values, proj = torch.randn(4, 2), torch.randn(3, 2, 5)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 12\)"):
        ive_lookup(values, proj, torch.tensor([[12]]), torch.ones(1, 1))
    with pytest.raises(ValueError, match="scores must have the shape"):
        ive_lookup(values, proj, torch.tensor([[1, 2]]), torch.ones(1, 3))
    with pytest.raises(TypeError, match="scores"):
        ive_lookup(values, proj, torch.tensor([[1]]), torch.ones(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="projectors"):
        ive_lookup(values, torch.randn(3, 4, 5), torch.tensor([[1]]), torch.ones(1, 1))


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 3), r=st.integers(1, 3), n=st.integers(3, 10), seed=st.integers(0, 2**31 - 1))
def test_mcs_selects_with_summed_core_and_scores_per_core(h, r, n, seed):
    g = torch.Generator().manual_seed(seed)
    row, col = torch.randn(2, r, n, generator=g, dtype=torch.float64), torch.randn(2, r, n, generator=g, dtype=torch.float64)
    cores = torch.rand(h, r, r, generator=g, dtype=torch.float64)
    m = min(3, n)
    s, per_core, idx = mcs_topm(row, col, cores, m)
    s_sum, idx_sum = tdqkr_topm(row, col, cores.sum(0), m)
    assert torch.equal(idx, idx_sum)
    torch.testing.assert_close(s, s_sum)
    torch.testing.assert_close(per_core.sum(-1), s)
    for c in range(h):  # an explicit per-core loop
        grid_c = tucker_scores(row, col, cores[c]).flatten(-2)
        torch.testing.assert_close(per_core[..., c], grid_c.gather(-1, idx))


@settings(max_examples=25, deadline=None)
@given(h=st.sampled_from([1, 2, 3]), width=st.integers(1, 4), n=st.integers(1, 8), e=st.integers(1, 4),
       b=st.integers(1, 3), k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_mcs_pool_equals_per_core_loop(h, width, n, e, b, k, seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, h * width, generator=g, dtype=torch.float64)
    idx = torch.randint(0, e * n, (b, k), generator=g)
    core_scores = torch.randn(b, k, h, generator=g, dtype=torch.float64)
    torch.testing.assert_close(mcs_pool(values, idx, core_scores, e), mcs_pool_reference(values, idx, core_scores, e))


def test_mcs_bad_inputs():
    with pytest.raises(ValueError, match="divisible by the number of cores"):
        mcs_pool(torch.randn(4, 5), torch.tensor([[1]]), torch.ones(1, 1, 2))
    with pytest.raises(ValueError, match="divisible by the number of cores"):
        mcs_pool_reference(torch.randn(4, 5), torch.tensor([[1]]), torch.ones(1, 1, 2))
