import math

import pytest
import torch

from ultramem_edu.init import ln_scale_for_unit_mean, output_projection_std, topm_mean_of_normals, value_std
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer


def test_topm_mean_of_normals_known_cases():
    g = torch.Generator().manual_seed(0)
    # the max of 2 standard normals has mean 1/√π
    est, se = topm_mean_of_normals(2, 1, samples=200_000, generator=g)
    assert abs(est - 1 / math.sqrt(math.pi)) < 4 * se
    # top-n of n is the mean of all: 0
    est, se = topm_mean_of_normals(8, 8, samples=50_000, generator=g)
    assert abs(est) < 4 * se
    # grows with n
    assert topm_mean_of_normals(1000, 8, 2000, g)[0] > topm_mean_of_normals(100, 8, 2000, g)[0]


def test_formulas():
    assert value_std(4, 16, 2, 8) == pytest.approx(math.sqrt(4 / (2 * 16 * 2 * 8)))
    assert output_projection_std(4, 64) == pytest.approx(1 / 16)
    assert ln_scale_for_unit_mean(16.0, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="measured_mean"):
        ln_scale_for_unit_mean(-1.0, 2)


@pytest.mark.parametrize(
    "expansion,rank,cores,layers", [(1, None, 1, 4), (4, None, 1, 4), (4, 2, 1, 4), (4, 2, 2, 4), (4, 2, 2, 12), (9, 2, 2, 2)]
)
def test_improved_init_selected_mean_and_output_variance(expansion, rank, cores, layers):
    torch.manual_seed(0)
    cfg = UltraMemConfig(d_model=128, num_values=1024, key_dim=32, num_heads=2, topm=16, num_layers=layers,
                         expansion=expansion, tucker_rank=rank, num_cores=cores)
    layer = UltraMemLayer(cfg)
    x = torch.randn(4096, 128, generator=torch.Generator().manual_seed(123))  # fresh samples
    with torch.no_grad():
        weights = layer._select(layer._sub_scores(x))[1]
        out = layer(x).output
    # the scores that weight the values average ≈ 1 (calibrated on other samples)
    assert weights.mean().item() == pytest.approx(1.0, abs=0.05)
    # output variance ≈ 1/(2L); the scores' own spread (E[s²] > E[s]²) makes it a little larger
    ratio = out.var().item() * 2 * layers
    assert 0.85 < ratio < 1.3, ratio


def test_naive_init_is_far_from_the_target():
    torch.manual_seed(0)
    cfg = UltraMemConfig(d_model=128, num_values=1024, key_dim=32, num_heads=2, topm=16, num_layers=4,
                         improved_init=False)
    with torch.no_grad():
        out = UltraMemLayer(cfg)(torch.randn(2048, 128)).output
    assert out.var().item() * 8 > 3


def test_layernorm_score_scale_keeps_ln_weights_and_the_output_variance():
    torch.manual_seed(0)
    cfg = UltraMemConfig(d_model=128, num_values=1024, key_dim=32, num_heads=2, topm=16, num_layers=4,
                         init_score_scale="layernorm")
    layer = UltraMemLayer(cfg)
    assert torch.equal(layer.query_norm.weight, torch.ones(32)) and torch.equal(layer.key_norm.weight, torch.ones(32))
    x = torch.randn(4096, 128, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        weights = layer._select(layer._sub_scores(x))[1]
        out = layer(x).output
    assert weights.mean().item() > 10          # the scores keep their natural size ...
    ratio = out.var().item() * 2 * 4           # ... and the values absorb it
    assert 0.85 < ratio < 1.3, ratio
    with pytest.raises(ValueError, match="init_score_scale"):
        UltraMemConfig(d_model=16, num_values=64, key_dim=8, topm=4, init_score_scale="values")
