import dataclasses

import pytest
import torch

from ultramem_edu.ive import ive_lookup_reference
from ultramem_edu.layer import (
    UltraMemConfig,
    UltraMemLayer,
    ablation_ladder,
    memory_param_groups,
    value_lr_multiplier,
    value_lr_scheduler,
)
from ultramem_edu.product_keys import PKMConfig, PKMLayer, product_key_topm_reference
from ultramem_edu.tdqkr import tdqkr_topm_reference

SMALL = dict(num_values=64, key_dim=8, num_heads=2, topm=4, num_layers=2)


def _reference_output(layer: UltraMemLayer, x: torch.Tensor) -> torch.Tensor:
    """The layer's output recomputed the slow way: materialised virtual table, one core at a time."""
    c = layer.config
    _, weights, indices = layer._select(layer._sub_scores(x))
    virtual = layer.shuffle[indices] if layer.shuffle is not None else indices
    virtual, weights = virtual.flatten(1), weights.flatten(1, 2)
    if layer.out_proj is None:
        return (weights[..., 0:1] * layer.values[virtual]).sum(1)
    # W_o (D, E·D_v) seen as E projectors (D_v, D)
    proj = layer.out_proj.weight.T.reshape(c.expansion, c.value_dim, c.d_model)
    s = c.value_dim // c.num_cores
    return sum(
        ive_lookup_reference(layer.values[:, k * s:(k + 1) * s], proj[:, k * s:(k + 1) * s], virtual, weights[..., k])
        for k in range(c.num_cores)
    )


@pytest.mark.parametrize("name,cfg", ablation_ladder(16, conv_kernel=3, **SMALL))
def test_every_rung_matches_the_slow_reference_and_learns(name, cfg):
    torch.manual_seed(0)
    layer = UltraMemLayer(cfg)
    x = torch.randn(3, 5, 16)
    out = layer(x)
    assert out.output.shape == (3, 5, 16)
    assert out.indices.shape == out.scores.shape == (3, 5, cfg.num_heads, cfg.topm)
    layer.eval()
    with torch.no_grad():
        flat = x if cfg.query_conv_kernel else x.reshape(-1, 16)
        torch.testing.assert_close(layer(x).output.reshape(-1, 16), _reference_output(layer, flat))
    layer.train()
    (layer(x).output.square().sum() + out.aux_loss).backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}: {pname} got no gradient"


def test_additive_selection_is_exact_and_tucker_is_rescored_exactly():
    torch.manual_seed(1)
    for rank in (None, 2):
        layer = UltraMemLayer(UltraMemConfig(d_model=16, tucker_rank=rank, num_cores=1, **SMALL))
        x = torch.randn(20, 16)
        with torch.no_grad():
            sub = layer._sub_scores(x)
            scores, _, idx = layer._select(sub)
            if rank is None:
                ref, ref_idx = product_key_topm_reference(sub[:, :, 0, 0], sub[:, :, 1, 0], 4)
                torch.testing.assert_close(scores, ref)
            else:
                grid = torch.einsum("bhai,hac,bhcj->bhij", sub[:, :, 0], layer.tucker_cores.sum(1), sub[:, :, 1])
                torch.testing.assert_close(scores, grid.flatten(-2).gather(-1, idx))
                ref, _ = tdqkr_topm_reference(sub[:, :, 0], sub[:, :, 1], layer.tucker_cores.sum(1), 4)
                assert bool((scores <= ref.max(-1, keepdim=True).values + 1e-6).all())


def test_pkm_preset_equals_pkm_layer():
    torch.manual_seed(2)
    pkm = PKMLayer(PKMConfig(d_model=16, num_keys=8, key_dim=4, num_heads=2, topm=3))
    ours = UltraMemLayer(UltraMemConfig.pkm(16, num_values=64, key_dim=4, num_heads=2, topm=3))
    with torch.no_grad():
        ours.query.load_state_dict(pkm.query.state_dict())
        ours.query_norm.load_state_dict(pkm.query_bn.state_dict())
        ours.keys.copy_(pkm.keys.unsqueeze(2))
        ours.values.copy_(pkm.values.weight)
    x = torch.randn(4, 6, 16)
    a, b = pkm(x), ours(x)
    torch.testing.assert_close(a.output, b.output)
    assert torch.equal(a.indices, b.indices)


def test_query_conv_is_causal():
    torch.manual_seed(3)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, query_conv_kernel=3, **SMALL)).eval()
    x = torch.randn(2, 7, 16)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 3, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer(x).output[:, :4], layer(y).output[:, :4])
        assert not torch.allclose(layer(x).output[:, 4:], layer(y).output[:, 4:])
    with pytest.raises(ValueError, match=r"x must be \(B, T, D\)"):
        layer(torch.randn(5, 16))


def test_rank1_factors_are_tracked_and_sign_aligned():
    torch.manual_seed(4)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    u0, t0 = layer.factor_u.clone(), layer.factor_t.clone()
    # a small optimiser-like step: the stored pair moves a little and never jumps sign
    with torch.no_grad():
        layer.tucker_cores.add_(0.01 * torch.randn_like(layer.tucker_cores))
    layer(torch.randn(3, 16))
    assert (layer.factor_u - u0).abs().max() < 0.1 and (layer.factor_t - t0).abs().max() < 0.1
    # whatever sign the SVD returns, the pair on the side of the previous one is kept
    with torch.no_grad():
        layer.factor_u.neg_()
        layer.factor_t.neg_()
    flipped = (layer.factor_u.clone(), layer.factor_t.clone())
    layer(torch.randn(3, 16))
    assert torch.allclose(layer.factor_u, flipped[0], atol=1e-5)
    assert torch.allclose(layer.factor_t, flipped[1], atol=1e-5)
    # in eval mode the stored pair is used but not updated
    layer.eval()
    with torch.no_grad():
        layer.tucker_cores.add_(0.05)
    layer(torch.randn(3, 16))
    assert torch.equal(layer.factor_u, flipped[0])


def test_outputs_expose_spectrum_and_aux_loss():
    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    out = layer(torch.randn(3, 16))
    assert out.singular_values.shape == (2, 2)
    assert bool((out.singular_values[:, 0] >= out.singular_values[:, 1]).all())
    assert out.aux_loss.requires_grad
    off = UltraMemLayer(UltraMemConfig(d_model=16, tucker_rank=None, num_cores=1, **SMALL))
    assert off(torch.randn(3, 16)).singular_values is None


def test_layer_memorises_a_small_batch():
    torch.manual_seed(5)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, num_values=256, key_dim=8, num_heads=2, topm=8, num_layers=1))
    x, y = torch.randn(64, 16), torch.randn(64, 16)
    opt = torch.optim.Adam(memory_param_groups(layer, lr=1e-2))
    first = None
    for _ in range(150):
        out = layer(x)
        loss = (out.output - y).pow(2).mean() + out.aux_loss
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first, (first, loss.item())


def test_value_lr_multiplier_and_scheduler():
    assert value_lr_multiplier(0, 100, 10) == 10.0
    assert value_lr_multiplier(50, 100, 10) == pytest.approx(5.5)
    assert value_lr_multiplier(100, 100, 4) == 1.0 == value_lr_multiplier(500, 100, 4)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    groups = memory_param_groups(layer, lr=1e-3, weight_decay=0.1)
    assert [g["name"] for g in groups] == ["main", "values"]
    assert groups[1]["params"][0] is layer.values and groups[1]["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in groups) == len(list(layer.parameters()))
    opt = torch.optim.AdamW(groups)
    sched = value_lr_scheduler(opt, total_steps=10, k=4)
    lrs = []
    for _ in range(12):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx([1e-3, 4e-3])
    assert lrs[5] == pytest.approx([1e-3, 2.5e-3])
    assert lrs[11] == pytest.approx([1e-3, 1e-3])


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(num_values=60), "num_values must be a perfect square"),
        (dict(expansion=2), "expansion E must be a perfect square"),
        (dict(value_dim=9), "divisible by num_cores"),
        (dict(topm=17), "topm must be in"),
        (dict(num_cores=2, tucker_rank=None), "needs a Tucker core"),
        (dict(score_activation="softmax"), "one core only"),
        (dict(output_projection=False), "output_projection=False needs"),
        (dict(query_norm="batchnorm"), "improved_init"),
        (dict(kernel_backend="cuda"), "kernel_backend"),
    ],
)
def test_config_errors(change, match):
    base = dict(d_model=16, **SMALL)
    base.update(change)
    with pytest.raises(ValueError, match=match):
        UltraMemConfig(**base)


def test_forward_input_errors():
    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    with pytest.raises(ValueError, match="x must have trailing shape"):
        layer(torch.randn(3, 15))
    with pytest.raises(TypeError, match="x must be a floating-point"):
        layer(torch.ones(3, 16, dtype=torch.long))
    with pytest.raises(TypeError, match="config must be an UltraMemConfig"):
        UltraMemLayer(dataclasses.asdict(UltraMemConfig(d_model=16, **SMALL)))


def test_activated_parameters_count_only_the_rows_read():
    from ultramem_edu.moe import activated_parameters_per_token, num_parameters

    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    c = layer.config
    total = num_parameters(layer)
    assert activated_parameters_per_token(layer) == total - c.num_values * c.value_dim + c.num_heads * c.topm * c.value_dim
    pkm = PKMLayer(PKMConfig(d_model=16, num_keys=8, key_dim=4, num_heads=2, topm=3))
    assert activated_parameters_per_token(pkm) == num_parameters(pkm) - 64 * 16 + 2 * 3 * 16


def test_both_signs_option_reaches_the_brute_force_top_m_for_a_rank_one_core():
    torch.manual_seed(6)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, tucker_rank=1, num_cores=1, tdqkr_both_signs=True, **SMALL))
    x = torch.randn(50, 16)
    with torch.no_grad():
        sub = layer._sub_scores(x)
        scores, _, _ = layer._select(sub)
        ref, _ = tdqkr_topm_reference(sub[:, :, 0], sub[:, :, 1], layer.tucker_cores.sum(1), 4)
    torch.testing.assert_close(scores, ref)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_layer_runs_in_half_precision(dtype):
    torch.manual_seed(7)
    layer = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL)).to(dtype)
    x = torch.randn(2, 3, 16, dtype=dtype)
    out = layer(x)
    assert out.output.dtype == dtype and bool(torch.isfinite(out.output).all())
    (out.output.float().square().sum() + out.aux_loss.float()).backward()
    assert layer.values.grad is not None
    ref = UltraMemLayer(UltraMemConfig(d_model=16, **SMALL))
    ref.load_state_dict({k: v.float() for k, v in layer.state_dict().items()})
    torch.testing.assert_close(out.output.float(), ref(x.float()).output, atol=0.1, rtol=0.1)
