"""UltraMem layer on rectangular n × a·n grids, and the released code's initialisation."""
import pytest
import torch

from ultramem_edu.layer import UltraMemConfig, UltraMemLayer
from ultramem_edu.product_keys import product_key_topm_reference
from ultramem_edu.tdqkr import tdqkr_topm_reference

SMALL = dict(key_dim=8, num_heads=2, topm=4, num_layers=2, init_samples=64)


@pytest.mark.parametrize("aspect,expansion", [(2, 1), (2, 4), (8, 1)])
def test_rectangular_grid_shape_and_exact_additive_selection(aspect, expansion):
    n = 8
    cfg = UltraMemConfig.pkm(16, num_values=aspect * n * n, grid_aspect=aspect, **SMALL)
    if expansion > 1:
        cfg = UltraMemConfig(16, num_values=aspect * n * n, grid_aspect=aspect, expansion=expansion,
                             tucker_rank=None, num_cores=1, **SMALL)
    e = int(expansion ** 0.5)
    assert cfg.grid_shape == (e * n, e * aspect * n)
    torch.manual_seed(0)
    layer = UltraMemLayer(cfg).eval()
    assert layer.keys.shape == (cfg.num_heads, 1, e * n + e * aspect * n, cfg.key_dim)   # rows, then columns
    x = torch.randn(30, 16)
    with torch.no_grad():
        row, col = layer._sub_scores(x)
        out = layer(x)
    ref_scores, ref_idx = product_key_topm_reference(row[:, :, 0], col[:, :, 0], cfg.topm)
    assert torch.equal(out.indices.sort(-1).values, ref_idx.sort(-1).values)     # exact on any grid
    assert int(out.indices.max()) < cfg.grid_shape[0] * cfg.grid_shape[1]


def test_rectangular_tucker_rescoring_is_exact_at_the_returned_addresses():
    cfg = UltraMemConfig(16, num_values=2 * 64, grid_aspect=2, **SMALL)
    torch.manual_seed(1)
    layer = UltraMemLayer(cfg).eval()
    x = torch.randn(20, 16)
    with torch.no_grad():
        row, col = layer._sub_scores(x)
        out = layer(x)
        grid = torch.einsum("phai,hab,phbj->phij", row, layer.tucker_cores.sum(1), col).flatten(-2)
    torch.testing.assert_close(out.scores, grid.gather(-1, out.indices), rtol=1e-5, atol=1e-5)
    best = tdqkr_topm_reference(row, col, layer.tucker_cores.sum(1), cfg.topm)[1]
    assert best.shape == out.indices.shape


def test_grid_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="grid_aspect"):
        UltraMemConfig(16, num_values=65, grid_aspect=2, **SMALL)
    with pytest.raises(ValueError):
        UltraMemConfig(16, num_values=2 * 60, grid_aspect=2, **SMALL)          # 60 is not a square
    with pytest.raises(ValueError, match="grid_shape"):
        UltraMemConfig(16, num_values=128, grid_aspect=2, **SMALL).keys_per_side


def test_released_initialisation_matches_the_released_reset_parameters():
    # olmo/ultramem_layer.py (commit 6da52aa), reset_parameters: LN weights 1/kdim**0.33, query and keys
    # N(0, 1/kdim), values N(0, 0.02²), value projection N(0, 1/(E·D_v)), Tucker cores U(0, 1).
    cfg = UltraMemConfig(64, num_values=64 * 64, key_dim=16, num_heads=2, topm=8, num_layers=4,
                         init_score_scale="released")
    torch.manual_seed(0)
    layer = UltraMemLayer(cfg)
    with torch.no_grad():
        assert torch.allclose(layer.query_norm.weight, torch.tensor(16 ** -0.33))
        assert torch.allclose(layer.key_norm.weight, torch.tensor(16 ** -0.33))
        assert abs(float(layer.values.std()) - 0.02) < 0.001
        assert abs(float(layer.keys.std()) - 16 ** -0.5) < 0.01
        assert abs(float(layer.query.weight.std()) - 16 ** -0.5) < 0.01
        assert abs(float(layer.out_proj.weight.std()) - (4 * 32) ** -0.5) < 0.01
        assert float(layer.tucker_cores.min()) >= 0 and float(layer.tucker_cores.max()) <= 1
    with pytest.raises(ValueError, match="init_score_scale"):
        UltraMemConfig(64, num_values=64 * 64, init_score_scale="zero")
