import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.product_keys import PKMConfig, PKMLayer, product_key_topm, product_key_topm_reference


@settings(max_examples=60, deadline=None)
@given(
    n_r=st.integers(1, 24), n_c=st.integers(1, 24), batch=st.integers(1, 4),
    m_frac=st.floats(0, 1), seed=st.integers(0, 2**31 - 1),
)
def test_two_stage_equals_brute_force(n_r, n_c, batch, m_frac, seed):
    g = torch.Generator().manual_seed(seed)
    m = 1 + int(m_frac * (min(n_r, n_c) - 1))
    row, col = torch.randn(batch, n_r, generator=g, dtype=torch.float64), torch.randn(batch, n_c, generator=g, dtype=torch.float64)
    s, i = product_key_topm(row, col, m)
    s_ref, i_ref = product_key_topm_reference(row, col, m)
    torch.testing.assert_close(s, s_ref, rtol=0, atol=0)
    # continuous random scores have no ties, so the address sets agree too
    assert torch.equal(i.sort(-1).values, i_ref.sort(-1).values)
    assert i.dtype == torch.int64
    torch.testing.assert_close(row.gather(-1, i // n_c) + col.gather(-1, i % n_c), s)


def test_two_stage_with_leading_dims_and_ties():
    row = torch.tensor([[[1.0, 1.0, 0.0]]])
    col = torch.tensor([[[2.0, 2.0, 0.0]]])
    s, i = product_key_topm(row, col, 3)
    assert s.shape == (1, 1, 3)
    assert s.flatten().tolist() == [3.0, 3.0, 3.0]
    assert len(set(i.flatten().tolist())) == 3


def test_topology_bias_runner_up_shares_row_or_column():
    torch.manual_seed(0)
    row, col = torch.randn(500, 32), torch.randn(500, 32)
    _, i = product_key_topm(row, col, 2)
    r, c = i // 32, i % 32
    assert bool(((r[:, 0] == r[:, 1]) | (c[:, 0] == c[:, 1])).all())


@pytest.mark.parametrize("m", [0, 6])
def test_m_out_of_range(m):
    with pytest.raises(ValueError, match="m must be in"):
        product_key_topm(torch.randn(5), torch.randn(8), m)


def test_mismatched_leading_shape():
    with pytest.raises(ValueError, match="leading shape"):
        product_key_topm(torch.randn(2, 5), torch.randn(3, 5), 2)
    with pytest.raises(TypeError, match="row_scores"):
        product_key_topm(torch.arange(5), torch.randn(5), 2)


def test_pkm_layer_shapes_gradients_and_reference():
    torch.manual_seed(0)
    cfg = PKMConfig(d_model=16, num_keys=8, key_dim=4, num_heads=2, topm=3)
    layer = PKMLayer(cfg)
    x = torch.randn(2, 5, 16)
    out = layer(x)
    assert out.output.shape == (2, 5, 16) and out.indices.shape == (2, 5, 2, 3)
    out.output.square().sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    # recompute the output from the returned selection, the plain way
    w = out.scores.softmax(-1)
    ref = (w.unsqueeze(-1) * layer.values.weight[out.indices]).sum((-2, -3))
    torch.testing.assert_close(out.output, ref)


def test_pkm_config_validation():
    with pytest.raises(ValueError, match="topm"):
        PKMConfig(d_model=8, num_keys=4, topm=5)
    with pytest.raises(ValueError, match="query_norm"):
        PKMConfig(d_model=8, query_norm="layer")
    with pytest.raises(ValueError, match="x must have trailing shape"):
        PKMLayer(PKMConfig(d_model=8, num_keys=4, topm=2))(torch.randn(3, 7))
