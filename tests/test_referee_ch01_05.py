"""Claims of chapters 1-5 and of the notation page that rest on package code or on the released sizes."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ultramem_edu.layer import UltraMemConfig, UltraMemLayer, ablation_ladder

ROOT = Path(__file__).resolve().parents[1]


def _differences(a, b):
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("d_model, n", [(64, 32), (32, 16)])
def test_paper_preset_is_the_ladders_last_rung(d_model, n):
    sizes = dict(key_dim=16, num_heads=2, topm=8, num_layers=4)
    last = ablation_ladder(d_model, num_values=n * n, **sizes)[-1][1]
    assert UltraMemConfig.paper(d_model, num_values=2 * n * n, **sizes) == last
    assert last.grid_shape == (2 * n, 4 * n)                     # IVE on the n × 2n grid: √E·n × √E·2n


def test_default_config_differs_from_the_paper_preset_in_grid_and_convolution_only():
    # chapter 3: the defaults are UltraMem's switches on a square grid without the convolution
    default, paper = UltraMemConfig(64), UltraMemConfig.paper(64)
    assert _differences(default, paper) == {"num_values", "grid_aspect", "query_conv_kernel"}
    assert (default.grid_aspect, default.query_conv_kernel) == (1, 0)
    assert (paper.grid_aspect, paper.query_conv_kernel) == (2, 5)
    # the paper's trade: twice the values of half the width keep N·D_v of a D-wide PKM table
    pkm = UltraMemConfig.pkm(64)
    assert paper.num_values * paper.value_dim == pkm.num_values * pkm.value_dim
    layer = UltraMemLayer(dataclasses.replace(paper, init_samples=64))
    assert layer.query_conv is not None and tuple(layer.values.shape) == (2048, 32)


def test_paper_preset_rejects_an_odd_table():
    with pytest.raises(ValueError, match="num_values must be 2"):
        UltraMemConfig.paper(64, num_values=1025)


def test_notation_states_the_released_sizes():
    notation = (ROOT / "book" / "notation.md").read_text(encoding="utf-8")
    for flag in ("mem_head=2", "mem_knn=80", "mem_kdim=192", "mem_vdim=384", "mem_knum=808",
                 "d_model=768", "n_layers=20", "mem_value_lr_times=4.0", "2:5/6:9/10:13/14:17"):
        assert flag in notation, flag
    assert "do not state" not in notation                         # the sizes are stated now
    assert "808^2 = 652\\,864" in notation and 808**2 == 652_864
    assert "n' = 2 \\cdot 808 = 1616" in notation
