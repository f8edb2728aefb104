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


# ---------------------------------------------------------------- chapter 5: signs and reachability
import torch  # noqa: E402

from ultramem_edu.tdqkr import (  # noqa: E402
    rank1_factors,
    recall_at_m,
    stage1_reach,
    tdqkr_topm,
    tdqkr_topm_reference,
)


def _keys(seed, r=2, n=32, d=16):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(r, n, d, generator=g, dtype=torch.float64),
            torch.randn(r, n, d, generator=g, dtype=torch.float64),
            torch.rand(r, r, generator=g, dtype=torch.float64))


def test_every_cell_is_reached_by_the_query_aimed_at_it():
    row_keys, col_keys, core = _keys(0)
    reach = stage1_reach(row_keys, col_keys, core, m=8)
    assert reach.shape == (32, 32) and bool(reach.all())


def test_reach_fails_when_the_search_looks_in_the_other_corner():
    # the same aimed queries searched with the flipped pair: stage 1 looks at the opposite corner
    row_keys, col_keys, core = _keys(1)
    u, t = rank1_factors(core)
    assert not bool(stage1_reach(row_keys, col_keys, core, 8, factors=(-u, -t), aim=(u, t)).any())
    assert bool(stage1_reach(row_keys, col_keys, core, 8, factors=(-u, -t)).all())   # aimed the other way


def test_reach_finds_a_row_that_no_query_can_win():
    # row 0's keys are half of row 1's in every key set: with m = 1, row 1 beats it for any query
    # that gives row 0 a positive projection, so the check must report row 0 unreachable
    row_keys, col_keys, core = _keys(2)
    row_keys[:, 0] = 0.5 * row_keys[:, 1]
    reach = stage1_reach(row_keys, col_keys, core, m=1)
    assert not bool(reach[0].any()) and bool(reach[1:].float().mean() > 0.9)


def test_reach_validates_its_inputs():
    row_keys, col_keys, core = _keys(3)
    with pytest.raises(ValueError, match="col_keys must be"):
        stage1_reach(row_keys, col_keys[:, :, :4], core, 4)
    with pytest.raises(ValueError, match="core must be"):
        stage1_reach(row_keys, col_keys, torch.rand(3, 3, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match="m"):
        stage1_reach(row_keys, col_keys, core, 0)
    with pytest.raises(ValueError, match="aim must be"):
        stage1_reach(row_keys, col_keys, core, 4, aim=(torch.ones(3), torch.ones(3)))


def test_flipping_the_pair_matters_only_for_non_negative_projections():
    g = torch.Generator().manual_seed(11)
    Q, r, n, m = 400, 2, 32, 8
    cores = torch.rand(Q, r, r, generator=g, dtype=torch.float64)
    for kind in ("signed", "non-negative"):
        S = torch.randn(Q, 2, r, n, generator=g, dtype=torch.float64)
        S = S.abs() if kind == "non-negative" else S
        _, best = tdqkr_topm_reference(S[:, 0], S[:, 1], cores, m)
        f = rank1_factors(cores)
        kept = recall_at_m(tdqkr_topm(S[:, 0], S[:, 1], cores, m, factors=f)[1], best).mean()
        flipped = recall_at_m(tdqkr_topm(S[:, 0], S[:, 1], cores, m, factors=(-f[0], -f[1]))[1], best).mean()
        if kind == "signed":
            assert 0.4 < kept < 0.6 and 0.4 < flipped < 0.6 and abs(kept - flipped) < 0.05
        else:
            assert kept > 0.99 and flipped < 0.01


def test_a_tie_with_the_released_start_keeps_the_svds_sign():
    core = torch.rand(5, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    U, _, Vh = torch.linalg.svd(core)
    zeros = torch.zeros(5, 2, dtype=torch.float64)
    u, t = rank1_factors(core, previous=(zeros, zeros))
    assert torch.equal(u, U[..., :, 0]) and torch.equal(t, Vh[..., 0, :])


def test_the_aux_loss_weights_of_chapter_5():
    # the layer and tucker_aux_loss default to the paper's 0.001; core_spectrum_run to 0.1
    import inspect

    from ultramem_edu.diagnostics import core_spectrum_run
    from ultramem_edu.tdqkr import tucker_aux_loss

    assert UltraMemConfig(32).aux_alpha == 0.001
    assert inspect.signature(tucker_aux_loss).parameters["alpha"].default == 0.001
    assert inspect.signature(core_spectrum_run).parameters["aux_alpha"].default == 0.1


def test_narrow_keys_leave_some_cells_unreturned_for_their_aimed_query():
    row_keys, col_keys, core = _keys(0, d=8)
    reach = stage1_reach(row_keys, col_keys, core, m=8)
    assert 0.9 < float(reach.double().mean()) < 1.0


def test_notation_agrees_with_the_packages_record_of_the_released_script():
    from ultramem_edu.cost import RELEASED_V1_SCRIPT as released

    notation = (ROOT / "book" / "notation.md").read_text(encoding="utf-8")
    for key in ("d_model", "n_layers", "mem_head", "mem_knn", "mem_kdim", "mem_vdim", "mem_knum"):
        assert f"--model.{key}={released[key]}`" in notation, key
    assert f"--model.mem_insert_way='{released['mem_insert_way']}'" in notation
    for key in ("value_expand_time", "tucker_rank", "tucker_multihead"):
        assert f"{key}={released[key]}" in notation, key


# ---------------------------------------------------------------- chapters 0-5 read as a book
import json  # noqa: E402

CHAPTERS_0_5 = sorted((ROOT / "book").glob("0[0-5]_*.ipynb"))
HIDDEN = {"remove-input", "hide-input", "remove-cell", "hide-cell"}


def _code_cells(path):
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] == "code":
            yield "".join(cell["source"]), set(cell.get("metadata", {}).get("tags", []))


@pytest.mark.parametrize("path", CHAPTERS_0_5, ids=lambda p: p.stem)
def test_nbval_markers_are_tags_not_visible_comments(path):
    for source, tags in _code_cells(path):
        assert "NBVAL_CHECK_OUTPUT" not in source, (path.name, source[:80])


@pytest.mark.parametrize("path", CHAPTERS_0_5, ids=lambda p: p.stem)
def test_cells_that_only_assert_are_hidden(path):
    for source, tags in _code_cells(path):
        lines = [ln for ln in source.split("\n") if ln.strip() and not ln.lstrip().startswith("#")]
        if lines and all(ln.lstrip().startswith("assert") for ln in lines):
            assert tags & HIDDEN, (path.name, source[:80])
