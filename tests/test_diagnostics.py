"""Tests of ultramem_edu.diagnostics: hand-made selections, the retrieval example, the spectrum run."""
import math

import pytest
import torch

from ultramem_edu.diagnostics import (
    _probe_recall,
    core_spectrum_run,
    diversity_sweep,
    layer_diversity,
    retrieval_example,
    summarize_spectrum,
    topm_diversity,
)
from ultramem_edu.layer import UltraMemConfig, UltraMemLayer
from ultramem_edu.tdqkr import rank1_factors

TINY_RUN = dict(batch=32, probe=16)


# ------------------------------------------------------------------------------------- topm_diversity
def test_diversity_of_a_row_and_a_column():
    # n = 4: query 0 takes row 0 (cells 0..3), query 1 takes column 0 (cells 0, 4, 8, 12)
    idx = torch.tensor([[0, 1, 2, 3], [0, 4, 8, 12]])
    d = topm_diversity(idx, 4)
    assert d.distinct_rows.tolist() == [1, 4]
    assert d.distinct_cols.tolist() == [4, 1]
    assert d.distinct_values == 7
    assert d.fraction_used == pytest.approx(7 / 16)
    assert d.usage.tolist() == [2, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    assert d.mean_jaccard == pytest.approx(1 / 7)          # |{0}| / |7 cells|
    p = torch.tensor([2, 1, 1, 1, 1, 1, 1]) / 8.0
    assert d.entropy == pytest.approx(float(-(p * p.log()).sum()))
    assert d.topm == 4 and d.num_values == 16


def test_even_use_of_a_fraction_of_the_table_has_entropy_log_of_its_size():
    # two queries use 8 of the 16 values once each: entropy = log 8 = log(n²·fraction)
    idx = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    d = topm_diversity(idx, 4)
    assert d.entropy == pytest.approx(math.log(8))
    assert d.entropy_normalised == pytest.approx(math.log(8) / math.log(16))
    assert d.fraction_used == pytest.approx(0.5)
    assert d.mean_jaccard == 0.0
    # all 16 once: the maximum, 1 when normalised
    full = topm_diversity(torch.arange(16).view(4, 4), 4)
    assert full.entropy_normalised == pytest.approx(1.0)
    x, share = full.usage_curve(5)
    assert torch.allclose(share, x)                        # even use: the diagonal


def test_identical_sets_overlap_fully_and_order_does_not_matter():
    idx = torch.tensor([[5, 6, 9], [9, 5, 6], [6, 9, 5]])
    d = topm_diversity(idx, 4)
    assert d.mean_jaccard == pytest.approx(1.0)
    assert d.distinct_values == 3
    x, share = d.usage_curve(17)
    assert share[0] == 0 and share[-1] == pytest.approx(1.0)
    assert share[3] == pytest.approx(1.0)                  # 3 of 16 values take every selection


def test_heads_keep_their_own_counts_and_share_a_set():
    # (Q=2, H=2, m=2) on n = 3; query 0's heads pick {0, 1} and {1, 4}; query 1's {0, 1} and {0, 1}
    idx = torch.tensor([[[0, 1], [1, 4]], [[0, 1], [1, 0]]])
    d = topm_diversity(idx, 3)
    assert d.distinct_rows.shape == (2, 2)
    assert d.distinct_rows.tolist() == [[1, 2], [1, 1]]
    assert d.distinct_cols.tolist() == [[2, 1], [2, 2]]
    assert d.usage.sum() == 8
    assert d.mean_jaccard == pytest.approx(2 / 3)         # {0,1,4} vs {0,1}


def test_single_query_has_no_overlap_defined():
    assert math.isnan(topm_diversity(torch.tensor([[0, 3]]), 2).mean_jaccard)


@pytest.mark.parametrize(
    "idx, n, err",
    [
        (torch.tensor([[0, 16]]), 4, ValueError),           # out of range
        (torch.tensor([[-1, 2]]), 4, ValueError),
        (torch.tensor([0, 1]), 4, ValueError),              # 1-D
        (torch.tensor([[0.0, 1.0]]), 4, TypeError),         # not integer
        (torch.tensor([[0, 1]]), 0, ValueError),            # bad grid side
    ],
)
def test_topm_diversity_rejects_bad_input(idx, n, err):
    with pytest.raises(err):
        topm_diversity(idx, n)


def test_layer_diversity_counts_every_pick():
    cfg = UltraMemConfig(d_model=16, num_values=64, key_dim=8, num_heads=2, topm=4, num_layers=2,
                         init_samples=64)
    torch.manual_seed(0)
    layer = UltraMemLayer(cfg)
    d = layer_diversity(layer, torch.randn(10, 16))
    assert d.grid_side == cfg.keys_per_side == 16
    assert d.usage.sum() == 10 * 2 * 4
    assert d.distinct_rows.shape == (10, 2)
    assert int(d.distinct_rows.max()) <= 4 and int(d.distinct_rows.min()) >= 1


def test_diversity_sweep_covers_the_grid():
    sweep = diversity_sweep(ns=(4, 8), ms=(2, 4), queries=16)
    assert set(sweep) == {(4, 2), (4, 4), (8, 2), (8, 4)}
    for (n, m), per in sweep.items():
        assert list(per) == ["PKM", "UltraMem"]
        for d in per.values():
            assert d.grid_side == n and d.topm == m and d.usage.sum() == 16 * m
    with pytest.raises(ValueError):
        diversity_sweep(ns=(4,), ms=(5,), queries=4)       # m > n


# ------------------------------------------------------------------------------------- retrieval_example
@pytest.mark.parametrize("seed", range(5))
def test_retrieval_example_pkm_two_stage_equals_additive_brute_force(seed):
    ex = retrieval_example(n=12, m=6, r=2, seed=seed)
    assert set(ex.pkm.tolist()) == set(ex.pkm_brute.tolist())
    assert torch.allclose(ex.additive_grid, ex.row_scores[0][:, None] + ex.col_scores[0][None, :])
    # brute force really is the top of the Tucker grid
    assert torch.equal(ex.brute, ex.tucker_grid.flatten().topk(6).indices)
    hits = len(set(ex.tdqkr.tolist()) & set(ex.brute.tolist()))
    assert ex.recall == pytest.approx(hits / 6)
    for key, sel in ex.selections().items():
        assert ex.distinct_rows[key] == len({int(a) // 12 for a in sel})
        assert ex.distinct_cols[key] == len({int(a) % 12 for a in sel})


def test_retrieval_example_is_deterministic_and_core_is_uniform01():
    a, b = retrieval_example(10, 4, 3, seed=7), retrieval_example(10, 4, 3, seed=7)
    assert torch.equal(a.tdqkr, b.tdqkr) and torch.equal(a.tucker_grid, b.tucker_grid)
    assert a.core.shape == (3, 3) and bool((a.core >= 0).all() and (a.core < 1).all())
    assert not torch.equal(a.tucker_grid, retrieval_example(10, 4, 3, seed=8).tucker_grid)


def test_retrieval_example_misses_the_opposite_corner_with_signed_scores():
    # With r = 1 and a positive core the grid is c·a_i·b_j: the true top-m mixes the (+,+) corner,
    # which stage 1 searches, and the (−,−) corner, which it never sees. Over many queries the
    # recall is therefore well below 1 although the two-stage search is exact for sums.
    recalls = [retrieval_example(16, 8, 1, seed=s).recall for s in range(40)]
    assert 0.2 < sum(recalls) / len(recalls) < 0.8


def test_retrieval_example_validates():
    with pytest.raises(ValueError):
        retrieval_example(n=8, m=9)
    with pytest.raises(ValueError):
        retrieval_example(n=1)
    with pytest.raises(TypeError):
        retrieval_example(n=8, m=4, r=2.0)


# ------------------------------------------------------------------------------------- spectrum run
@pytest.fixture(scope="module")
def short_runs():
    return {
        "without": core_spectrum_run(steps=12, with_aux=False, seed=3, **TINY_RUN),
        "again": core_spectrum_run(steps=12, with_aux=False, seed=3, **TINY_RUN),
        "with_active": core_spectrum_run(steps=12, with_aux=True, aux_alpha=1.0, tau=0.0, seed=3, **TINY_RUN),
        "with_inactive": core_spectrum_run(steps=12, with_aux=True, aux_alpha=1.0, tau=10.0, seed=3, **TINY_RUN),
    }


def test_spectrum_run_shapes_and_order(short_runs):
    run = short_runs["without"]
    assert run.steps.tolist() == list(range(13))
    assert run.summed_sv.shape == (13, 1, 2)
    assert run.core_sv.shape == (13, 1, 2, 2)
    assert run.aux_loss.shape == run.task_loss.shape == run.recall.shape == run.recall_quadrant.shape == (13,)
    assert bool((run.summed_sv[..., 0] >= run.summed_sv[..., 1]).all())
    assert bool((run.core_sv[..., 0] >= run.core_sv[..., 1]).all())
    assert bool(((run.recall >= 0) & (run.recall <= 1)).all())
    assert run.aux_alpha == 0.0 and not run.with_aux
    assert run.task_loss[-1] < run.task_loss[0]             # it does learn
    s = summarize_spectrum(run)
    assert s["ratio"] == pytest.approx(s["sigma1"] / s["sigma2"])


def test_spectrum_run_is_deterministic(short_runs):
    a, b = short_runs["without"], short_runs["again"]
    assert torch.equal(a.summed_sv, b.summed_sv)
    assert torch.equal(a.recall, b.recall) and torch.equal(a.task_loss, b.task_loss)


def test_aux_loss_acts_only_above_the_margin(short_runs):
    # τ above every σ₂: the hinge is zero and the run is the run without the loss, bit for bit
    inactive = short_runs["with_inactive"]
    assert float(inactive.aux_loss.max()) == 0.0
    assert torch.equal(inactive.summed_sv, short_runs["without"].summed_sv)
    # τ = 0 with a large α: σ₂ of the summed core is pushed below the run without the loss
    active, without = short_runs["with_active"], short_runs["without"]
    assert active.summed_sv[-1, 0, 1] < without.summed_sv[-1, 0, 1]
    assert active.aux_loss[0] > 0


def test_probe_recall_in_the_quadrant_is_exact_for_a_rank1_core():
    cfg = UltraMemConfig(d_model=16, num_values=64, key_dim=8, num_heads=1, topm=4, num_layers=2,
                         init_samples=64)
    torch.manual_seed(0)
    layer = UltraMemLayer(cfg)
    with torch.no_grad():
        u = torch.tensor([0.8, 0.3])
        t = torch.tensor([0.5, 0.9])
        layer.tucker_cores.copy_(torch.outer(u, t).expand(1, 2, 2, 2) / 2)   # two halves of u tᵀ
        fu, ft = rank1_factors(layer.tucker_cores.sum(1))
        layer.factor_u.copy_(fu)
        layer.factor_t.copy_(ft)
    full, quadrant = _probe_recall(layer, torch.randn(64, 16))
    assert quadrant == pytest.approx(1.0)
    assert full < 1.0                                       # the (−,−) corner is missed
    assert layer.training                                   # mode restored


def test_spectrum_run_validates():
    with pytest.raises(ValueError):
        core_spectrum_run(steps=0)
    with pytest.raises(ValueError):
        core_spectrum_run(steps=2, aux_alpha=-1.0)
    with pytest.raises(ValueError):
        core_spectrum_run(steps=2, config=UltraMemConfig(d_model=8, num_values=16, tucker_rank=None, num_cores=1))
