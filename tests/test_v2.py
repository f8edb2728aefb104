"""UltraMemV2: efficient path vs the dense reference, the shared pool, Eq. 26 and its Monte Carlo check."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.layer import memory_param_groups
from ultramem_edu.mcs import _mcs_topm
from ultramem_edu.model import LMConfig, TransformerLM, default_wiring
from ultramem_edu.moe import activated_parameters_per_token, num_parameters
from ultramem_edu.v2 import (UltraMemV2Config, UltraMemV2Layer, UltraMemV2Pool, key_balance_loss,
                             measure_sigma_s_squared, value_std_eq26)

SMALL = dict(values_per_layer=16, value_dim=8, key_dim=8, topm=4, init_samples=64)


@settings(max_examples=15, deadline=None)
@given(heads=st.integers(1, 2), cores=st.sampled_from([1, 2]), pre=st.sampled_from([0, 4]),
       act=st.sampled_from(["none", "gelu"]), n_mem=st.integers(1, 3), share=st.sampled_from([0.5, 1.0]),
       seed=st.integers(0, 10_000))
def test_efficient_path_equals_dense_reference_rank1(heads, cores, pre, act, n_mem, share, seed):
    """With r = 1 and both-sign stage 1 the search is exact, so the two paths must agree exactly."""
    torch.manual_seed(seed)
    cfg = UltraMemV2Config(12, num_heads=heads, num_cores=cores, pre_value_dim=pre, pre_activation=act,
                           share_ratio=share, tucker_rank=1, tdqkr_both_signs=True, **SMALL)
    layers = cfg.build_layers(default_wiring(4, 4)[:n_mem])
    x = torch.randn(2, 3, 12, dtype=torch.float64)
    for layer in layers:
        layer.double().eval()
        a, b = layer(x), layer.forward_reference(x)
        torch.testing.assert_close(a.output, b.output)
        torch.testing.assert_close(a.scores, b.scores)
        assert a.output.shape == (2, 3, 12) and a.indices.shape == (2, 3, heads, 4)


def test_rank2_reference_differs_only_where_stage1_misses():
    torch.manual_seed(0)
    layer = UltraMemV2Config(12, **SMALL).build_layers([(0, 0)])[0].double().eval()
    x = torch.randn(40, 12, dtype=torch.float64)
    a, b = layer(x), layer.forward_reference(x)
    same = (a.indices.sort(-1).values == b.indices.sort(-1).values).all(-1).all(-1)   # (40,)
    assert same.any()
    torch.testing.assert_close(a.output[same], b.output[same])
    assert (a.scores <= b.scores + 1e-12).all()   # brute force is never worse, rank by rank


def test_gradcheck_float64():
    torch.manual_seed(1)
    cfg = UltraMemV2Config(6, values_per_layer=9, value_dim=4, pre_value_dim=3, key_dim=4, topm=2,
                           pre_activation="gelu", init_samples=16)
    layer = cfg.build_layers([(0, 0), (1, 1)])[1].double().eval()
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, v, p: layer(x).output, (x, layer.pool.values, layer.pool.pre_values),
                                    eps=1e-6, atol=1e-5)


def test_pool_windows_and_sharing():
    cfg = UltraMemV2Config(16, values_per_layer=25, share_ratio=0.5, **{k: v for k, v in SMALL.items()
                                                                       if k != "values_per_layer"})
    layers = cfg.build_layers([(k, k) for k in range(4)])
    pool = layers[0].pool
    assert all(layer.pool is pool for layer in layers)
    assert pool.values.shape == (100, 8) and cfg.window(4) == 49 and cfg.keys_per_side(4) == 14
    grid = torch.arange(14 * 14)
    for k, layer in enumerate(layers):
        rows = layer.physical_rows(grid)
        expected = (torch.arange(49) + 25 * k) % 100                   # its own wrapping window
        assert set(rows.tolist()) == set(expected.tolist())
        assert torch.bincount(layer.shuffle % 49).eq(4).all()          # key_expansion² addresses per row


def test_model_wiring_param_groups_and_counts():
    torch.manual_seed(0)
    cfg = UltraMemV2Config(16, num_layers=2, **SMALL)
    model = TransformerLM(LMConfig(vocab_size=11, d_model=16, n_layers=2, n_heads=2, seq_len=8, memory=cfg,
                                   memory_wiring=default_wiring(2, 2)))
    assert model.memory_wiring == ((0, 0), (1, 1))
    pool = model.memories[0].pool
    groups = {g["name"]: g["params"] for g in memory_param_groups(model, 1e-3)}
    assert len(groups["values"]) == 2 and groups["values"][0] is pool.values
    assert sum(p.numel() for g in groups.values() for p in g) == num_parameters(model)
    per_layer = [m.activated_parameters_per_token() for m in model.memories]
    dense_part = num_parameters(model) - num_parameters(model.memories)
    assert activated_parameters_per_token(model) == dense_part + sum(per_layer)
    assert num_parameters(model.memories) < sum(num_parameters(m) for m in model.memories)   # the pool counts once
    out = model(torch.randint(0, 11, (2, 8)), torch.randint(0, 11, (2, 8)))
    assert out.memory_aux_loss > 0                                     # the balance loss is in
    out.loss.backward()
    assert pool.values.grad.abs().sum() > 0 and pool.pre_values.grad.abs().sum() > 0


def test_balance_loss_is_one_when_uniform_and_larger_when_collapsed():
    n = 6
    flat = torch.zeros(3, 1, n)
    chosen = torch.arange(6).view(3, 1, 2)
    assert math.isclose(float(key_balance_loss(flat, chosen)), 1.0, rel_tol=1e-6)
    peaked = torch.zeros(3, 1, n)
    peaked[..., 0] = 5.0
    assert float(key_balance_loss(peaked, torch.zeros(3, 1, 2, dtype=torch.long))) > 3.0


def test_eq26_formula_and_monte_carlo_output_variance():
    """Eq. 26's algebra: Var(o) = m·H·E[s²]·D_pre·Var(Px)·σ_V⁴·D_v·σ_W² with distinct rows; measured."""
    std = value_std_eq26(4.0, 768, 32, 1, 0.1, 192, 192, 20)
    assert math.isclose(std, (0.2 * 4 * 768 / (32 * 1.1 * 192 * 192 * 20)) ** 0.25)
    torch.manual_seed(3)
    cfg = UltraMemV2Config(64, num_layers=4, values_per_layer=32 * 32, value_dim=32, pre_value_dim=32, key_dim=16,
                           topm=8, num_cores=1, init_samples=512)
    layer = cfg.build_layers([(k, k) for k in range(4)])[0].eval()
    x = torch.randn(4096, 64)
    with torch.no_grad():
        out = layer(x).output
        sub = layer.sub_scores(x)
        _, w, _ = _mcs_topm(
            sub[:, :, 0], sub[:, :, 1], layer.tucker_cores, cfg.topm, (layer.factor_u, layer.factor_t), False)
        e_s2 = float(w.pow(2).sum((1, 2, 3)).mean())                 # E[Σ_k s_k²]
        var_px = float(layer.pre_proj(x).var())
    sigma_v = float(layer.pool.values.detach().std())
    w_var = float(layer.out_proj.weight.detach().var())
    predicted = e_s2 * cfg.pre_value_dim * var_px * sigma_v ** 4 * cfg.value_dim * w_var
    assert 0.8 < float(out.var()) / predicted < 1.25
    assert 0 < layer.pool.sigma_s_sq < 1


def test_sigma_s_squared_is_measured_on_the_layer():
    torch.manual_seed(0)
    layer = UltraMemV2Config(16, **SMALL).build_layers([(0, 0)])[0]
    a, b = measure_sigma_s_squared(layer, 256, seed=0), measure_sigma_s_squared(layer, 256, seed=1)
    assert 0 < a < 1 and 0 < b < 1 and a != b


def test_input_validation():
    with pytest.raises(ValueError, match="values_per_layer"):
        UltraMemV2Config(16, values_per_layer=10)
    with pytest.raises(ValueError, match="share_ratio"):
        UltraMemV2Config(16, share_ratio=1.5)
    with pytest.raises(ValueError, match="num_cores"):
        UltraMemV2Config(16, value_dim=9, num_cores=2)
    with pytest.raises(ValueError, match="pre_activation"):
        UltraMemV2Config(16, pre_activation="relu")
    with pytest.raises(ValueError, match="topm"):
        UltraMemV2Config(16, values_per_layer=4, topm=5)
    cfg = UltraMemV2Config(16, **SMALL)
    layer = cfg.build_layers([(0, 0)])[0]
    with pytest.raises(ValueError, match="x"):
        layer(torch.randn(3, 15))
    with pytest.raises(TypeError, match="pool"):
        UltraMemV2Layer(cfg, object(), 0)
    with pytest.raises(ValueError, match="layer_index"):
        UltraMemV2Layer(cfg, UltraMemV2Pool(cfg, 1), 1)


def test_parameter_counts_without_building_match_the_built_layers():
    cfg = UltraMemV2Config(16, num_heads=2, **SMALL)
    layers = cfg.build_layers([(k, k) for k in range(3)])
    counts = cfg.parameter_counts(3)
    assert counts["pool"] == num_parameters(layers[0].pool)
    assert counts["total"] == num_parameters(torch.nn.ModuleList(layers))
    assert counts["activated"] == sum(layer.activated_parameters_per_token() for layer in layers)
