"""The chapter-11 experiments: each one's quick mode runs and writes a result file with its metadata;
resume reuses finished runs and refuses corrupt or mismatched ones; shards split a suite; the
statistics (paired Δ with a power estimate, the log-N fit, staircase violations) are checked against
plain references."""
import argparse
import json
import math
import random

import pytest
import torch

from ultramem_edu.experiments import EXPERIMENTS, SUITE, run
from ultramem_edu.experiments.__main__ import main
from ultramem_edu.experiments.common import (ResumeError, RunStore, kjv_splits, linear_fit, mean_std,
                                             model_parameter_counts, paired_delta, resolve_device)
from ultramem_edu.experiments.families import (MODEL_FAMILIES, Family, FamilyContext, grid_for, make_family,
                                               register_family)
from ultramem_edu.experiments.specs import SPECS, experiment_spec
from ultramem_edu.experiments.trainer import make_optimizer, train_run

META = ("experiment", "mode", "seeds", "git_commit", "machine", "date", "config", "device", "complete")


pytestmark = pytest.mark.usefixtures("one_thread")   # experiments may change the thread count


def _check_json(path, name, mode="quick-custom"):
    data = json.loads(path.read_text())
    for key in META:
        assert key in data, key
    assert data["experiment"] == name and data["mode"] == mode
    assert {"platform", "torch", "threads"} <= set(data["machine"])
    assert data["device"]["device"] == "cpu"
    assert isinstance(data["git_commit"], str) and data["git_commit"]
    return data


def _kw(tmp_path, **extra):
    return dict(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", progress=False, **extra)


# ------------------------------------------------------------------------------------------ lm
def test_lm_sweep_selects_on_select_split_and_reports_test(tmp_path):
    kw = _kw(tmp_path, steps=3, seeds=(0, 1), models=("dense", "pkm"))
    first = run("lm", **kw)
    data = _check_json(tmp_path / "exp_lm_quick_custom.json", "lm")
    assert (tmp_path / "exp_lm_quick_custom.csv").exists() and data["complete"]
    for name in ("dense", "pkm"):
        r = data["models"][name]
        sweep = {float(k): v for k, v in r["sweep"].items()}
        assert len(sweep) >= 3 and r["lr"] == min(sweep, key=sweep.get)        # chosen on the select split
        assert r["seeds"] == [0, 1] and len(r["test_loss_per_seed"]) == 2
        assert r["tokens_trained"] == 3 * SPECS["lm"]["quick"]["train"]["batch_size"] * 32
        assert all(run_["lr"] == r["lr"] for run_ in r["runs"])
        assert r["test_loss_per_seed"][0] != r["select_loss_per_seed"][0]   # two different splits
    assert data["models"]["pkm"]["recipe"] == {"value_lr": 1e-3}
    assert "dense - pkm" in data["comparisons"]
    again = run("lm", resume=True, **kw)
    edges = [data["models"][n]["edge_check"] for n in ("dense", "pkm")]
    for name, edge in zip(("dense", "pkm"), edges):                    # one run past an edge, reported only
        r, lrs = data["models"][name], sorted(SPECS["lm"]["quick"]["lrs"])
        if r["lr"] in (lrs[0], lrs[-1]):
            assert edge["lr"] == pytest.approx(lrs[0] ** 2 / lrs[1] if r["lr"] == lrs[0] else lrs[-1] ** 2 / lrs[-2])
            assert edge["beyond_is_better"] == (edge["select_loss"] < r["select_loss_per_seed"][0])
            assert f"{edge['lr']:g}" not in r["sweep"]                  # not part of the choice
        else:
            assert edge is None
    assert len(again["runs_skipped"]) == 2 * 3 + 2 + sum(e is not None for e in edges)
    for name in ("dense", "pkm"):
        assert again["models"][name]["test_loss_per_seed"] == first["models"][name]["test_loss_per_seed"]


def test_edge_check_runs_one_step_past_an_edge_only():
    from ultramem_edu.experiments.lm import edge_check

    spec, asked = {"lrs": (3e-3, 6e-3, 1.2e-2), "edge_check": True}, []

    def run_at(lr):
        asked.append(lr)
        return {"select_loss": 1.0 if lr > 1e-2 else 2.0}
    top = edge_check(spec, 1.2e-2, {"select_loss": 1.5}, run_at)
    assert asked == [2.4e-2] and top["side"] == "above" and top["beyond_is_better"] is True
    low = edge_check(spec, 3e-3, {"select_loss": 1.5}, run_at)
    assert asked[-1] == 1.5e-3 and low["side"] == "below" and low["beyond_is_better"] is False
    assert edge_check(spec, 6e-3, {"select_loss": 1.5}, run_at) is None            # inside the sweep
    assert edge_check(dict(spec, edge_check=False), 3e-3, {"select_loss": 1.5}, run_at) is None
    missing = edge_check(spec, 3e-3, {"select_loss": 1.5}, lambda lr: None)          # not trained yet
    assert missing["select_loss"] is None and missing["beyond_is_better"] is None and len(asked) == 2


def test_family_seeds_declares_a_cut_and_never_adds_seeds(tmp_path):
    from ultramem_edu.experiments.lm import family_seeds

    spec = {"family_seeds": {"peer": (0, 1), "odd": (5, 1), "late": (1, 2)}}
    assert family_seeds(spec, "dense", (0, 1, 2)) == (0, 1, 2)             # not cut
    assert family_seeds(spec, "peer", (0, 1, 2)) == (0, 1)
    assert family_seeds(spec, "odd", (0, 1, 2)) == (0,)                    # seed 5 was never asked for
    assert family_seeds(spec, "late", (0, 1, 2)) == (0,)                   # the sweep seed always runs
    # the quick spec cuts PEER to one seed: the family is complete with it, and the file says so
    data = run("lm", **_kw(tmp_path, steps=2, seeds=(0, 1), models=("dense", "peer")))
    peer, dense = data["models"]["peer"], data["models"]["dense"]
    assert peer["declared_seeds"] == [0] and peer["seeds"] == [0] and peer["complete"]
    assert dense["declared_seeds"] == [0, 1] and dense["seeds"] == [0, 1]
    assert data["complete"] and "dense - peer" not in data["comparisons"]   # one common seed: no Δ


def test_families_are_compute_matched_and_hold_equal_value_parameters():
    tok = kjv_splits()[0]
    spec = SPECS["lm"]["quick"]
    ctx = FamilyContext(vocab_size=tok.vocab_size, **spec["model"])
    counts = {}
    from ultramem_edu.experiments.families import CONTROL_FAMILIES

    for name in MODEL_FAMILIES:
        fam = make_family(name, ctx, spec["pkm_values"] if name == "pkm" else spec["num_values"])
        if name in CONTROL_FAMILIES:                           # a control sits below the budget on purpose
            assert not fam.compute_matched, name
            continue
        assert fam.compute_matched, name
        counts[name] = model_parameter_counts(fam.build())
    dense = counts["dense"]["activated"]
    for name, c in counts.items():
        assert abs(c["activated"] - dense) <= 0.03 * dense, (name, c, dense)
    pkm_values = spec["pkm_values"] * ctx.d_model
    um_values = spec["num_values"] * ctx.d_model // 2
    assert pkm_values == um_values


def test_released_and_paper_recipes_differ_as_stated():
    tok = kjv_splits()[0]
    ctx = FamilyContext(vocab_size=tok.vocab_size, **SPECS["lm"]["quick"]["model"])
    assert make_family("ultramem_paper_k10", ctx, 512).recipe == {"value_lr_k": 10.0}
    assert make_family("ultramem_paper_k4", ctx, 512).recipe == {"value_lr_k": 4.0}
    torch.manual_seed(0)
    released = make_family("ultramem_released", ctx, 512)
    assert released.recipe == {"value_lr_k": 4.0}
    layer = released.build().memories[0]
    k = ctx.key_dim
    torch.testing.assert_close(layer.query_norm.weight, torch.full((k,), k ** -0.33))
    torch.testing.assert_close(layer.key_norm.weight, torch.full((k,), k ** -0.33))
    assert abs(float(layer.values.detach().std()) - 0.02) < 0.002


def test_register_family_and_unknown_names():
    tok = kjv_splits()[0]
    ctx = FamilyContext(vocab_size=tok.vocab_size, **SPECS["lm"]["quick"]["model"])
    with pytest.raises(ValueError, match="unknown model family"):
        make_family("nope", ctx, 256)
    with pytest.raises(ValueError, match="already registered"):
        register_family("dense", MODEL_FAMILIES["dense"])
    register_family("dense_copy_for_test", lambda c, n: Family("x", MODEL_FAMILIES["dense"](c).build, {}, "copy", 1))
    try:
        assert make_family("dense_copy_for_test", ctx).name == "dense_copy_for_test"
    finally:
        MODEL_FAMILIES.pop("dense_copy_for_test")


def test_grid_for_accepts_squares_and_twice_squares_only():
    assert grid_for(64) == 1 and grid_for(128) == 2 and grid_for(2 ** 15) == 2
    for bad in (3, 96, 0, -4, 2.0):
        with pytest.raises(ValueError, match="num_values"):
            grid_for(bad)


# ------------------------------------------------------------------------------------------ trainer
def test_value_learning_rates_follow_the_recipes():
    tok = kjv_splits()[0]
    ctx = FamilyContext(vocab_size=tok.vocab_size, **SPECS["lm"]["quick"]["model"])
    model = make_family("pkm", ctx, 256).build()
    opt, sched = make_optimizer(model, {"lr": 3e-3, "value_lr": 1e-3}, steps=20, warmup_frac=0.1)
    seen_values, seen_main = [], []
    for _ in range(20):
        seen_values.append(opt.param_groups[1]["lr"])
        seen_main.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert opt.param_groups[1]["name"] == "values"
    assert all(v == pytest.approx(1e-3) for v in seen_values)              # constant, as Lample et al.
    assert max(seen_main) == pytest.approx(3e-3) and seen_main[0] < 3e-3    # warm-up then cosine
    model = make_family("ultramem_paper_k10", ctx, 512).build()
    opt, sched = make_optimizer(model, {"lr": 1e-3, "value_lr_k": 10.0}, steps=10, warmup_frac=0.0)
    ratio = opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"]
    assert ratio == pytest.approx(10.0)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"] == pytest.approx(1.0)


def test_train_run_resumes_from_a_checkpoint_to_the_same_result(tmp_path, monkeypatch):
    import ultramem_edu.experiments.trainer as trainer

    tok, tr, se, te = kjv_splits()
    splits = dict(train=tr, select=se, test=te)
    ctx = FamilyContext(vocab_size=tok.vocab_size, **SPECS["lm"]["quick"]["model"])
    train = dict(SPECS["lm"]["quick"]["train"], steps=6, checkpoint_every=3)
    fam = make_family("ultramem_paper_k10", ctx, 512)
    recipe = {"lr": 3e-3, **fam.recipe}
    torch.manual_seed(0)
    whole = train_run(fam.build(), splits, recipe, train, 0, None, progress=False)

    real = trainer.batches

    def interrupted(*args, **kwargs):              # the training stream (4 arguments) dies after 3 batches
        for i, item in enumerate(real(*args, **kwargs)):
            if len(args) == 4 and i == 3:
                raise KeyboardInterrupt
            yield item
    ck = tmp_path / "run.pt"
    monkeypatch.setattr(trainer, "batches", interrupted)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_run(fam.build(), splits, recipe, train, 0, str(ck), progress=False)
    monkeypatch.setattr(trainer, "batches", real)
    assert torch.load(ck, weights_only=False)["step"] == 3
    torch.manual_seed(1)                            # a different fresh init: the checkpoint must win
    resumed = train_run(fam.build(), splits, recipe, train, 0, str(ck), progress=False)
    assert resumed["test_loss"] == pytest.approx(whole["test_loss"], abs=1e-5)
    assert [h["step"] for h in resumed["history"]] == [h["step"] for h in whole["history"]]


def test_train_run_rejects_bad_recipes_and_checkpoints(tmp_path):
    tok, tr, se, te = kjv_splits()
    splits = dict(train=tr, select=se, test=te)
    ctx = FamilyContext(vocab_size=tok.vocab_size, **SPECS["lm"]["quick"]["model"])
    model = make_family("dense", ctx).build()
    train = dict(SPECS["lm"]["quick"]["train"], steps=2)
    with pytest.raises(ValueError, match="recipe must give 'lr'"):
        train_run(model, splits, {}, train, 0, progress=False)
    with pytest.raises(ValueError, match="unknown recipe keys"):
        train_run(model, splits, {"lr": 1e-3, "momentum": 0.9}, train, 0, progress=False)
    with pytest.raises(ValueError, match="value_lr_k"):
        train_run(model, splits, {"lr": 1e-3, "value_lr_k": 0.5}, train, 0, progress=False)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be resumed"):
        train_run(model, splits, {"lr": 1e-3}, train, 0, str(bad), progress=False)


# ------------------------------------------------------------------------------------------ run store
def test_resume_refuses_corrupt_and_mismatched_files_and_never_overwrites(tmp_path):
    store = RunStore("t", "quick", tmp_path, resume=False)
    assert store.get_or_run("a", lambda ck: {"x": 1}, key={"cfg": 1})["x"] == 1
    with pytest.raises(FileExistsError, match="--resume"):
        RunStore("t", "quick", tmp_path).get_or_run("a", lambda ck: {"x": 2}, key={"cfg": 1})
    again = RunStore("t", "quick", tmp_path, resume=True)
    assert again.get_or_run("a", lambda ck: {"x": 3}, key={"cfg": 1})["x"] == 1 and again.skipped == ["a"]
    with pytest.raises(ResumeError, match="different configuration"):
        RunStore("t", "quick", tmp_path, resume=True).get_or_run("a", lambda ck: {"x": 4}, key={"cfg": 2})
    over = RunStore("t", "quick", tmp_path, overwrite=True)
    assert over.get_or_run("a", lambda ck: {"x": 5}, key={"cfg": 2})["x"] == 5
    store.result_path("a").write_text("{not json")
    with pytest.raises(ResumeError, match="corrupt"):
        RunStore("t", "quick", tmp_path, resume=True).get_or_run("a", lambda ck: {"x": 6}, key={"cfg": 2})


def test_shards_partition_the_runs_and_collect_reports_what_is_missing(tmp_path):
    names = [f"run{i}" for i in range(40)]
    owners = [[n for n in names if RunStore("s", "q", tmp_path / str(i), shard=(i, 3)).mine(n)] for i in range(3)]
    assert sorted(sum(owners, [])) == sorted(names) and all(owners)
    store = RunStore("s", "q", tmp_path, shard=(0, 2))
    got = {n: store.get_or_run(n, lambda ck, n=n: {"n": n}) for n in names[:10]}
    assert {n for n, r in got.items() if r is None} == set(store.missing)
    collect = RunStore("s", "q", tmp_path, collect=True)
    seen = {n: collect.get_or_run(n, lambda ck: pytest.fail("collect must not train")) for n in names[:10]}
    assert {n for n, r in seen.items() if r is not None} == set(store.ran)
    with pytest.raises(ValueError, match="shard"):
        RunStore("s", "q", tmp_path, shard=(2, 2))


def test_partial_results_are_published_and_labelled(tmp_path):
    kw = _kw(tmp_path, steps=2, seeds=(0,))
    part = run("scaling", collect=True, **kw)
    assert part["complete"] is False and part["runs_missing"]
    assert all(len(p["test_loss_per_seed"]) == 0 for c in part["curves"].values() for p in c["points"])


# ------------------------------------------------------------------------------------------ experiments
def test_scaling_quick_fits_loss_against_log_n(tmp_path):
    data = run("scaling", **_kw(tmp_path, steps=2, seeds=(0,)))
    data = _check_json(tmp_path / "exp_scaling_quick_custom.json", "scaling")
    for name, curve in data["curves"].items():
        ns = [p["num_values"] for p in curve["points"]]
        assert ns == sorted(ns) and len(ns) >= 3
        fit = curve["fit_vs_log2N"]
        lo, hi = fit["slope_ci95"]
        assert lo <= fit["slope"] <= hi
        assert curve["loss_vs_N"] in ("falls", "rises", "flat within the CI")
        for p in curve["points"]:
            assert p["compute_matched"] and p["tokens_trained"] > 0
    assert set(data["references"]) == {"dense", "moe"}
    # each family at its own rate, chosen on the selection seed at one N; the selection is never reported
    spec = SPECS["scaling"]["quick"]
    for name, curve in data["curves"].items():
        rate = curve["rate"]
        assert rate["lr"] in {*spec["lrs"], spec["lrs"][0] / 2, spec["lrs"][-1] * 2}    # one edge step at most
        assert all(p["lr"] == rate["lr"] and p["option"] == rate["option_label"] for p in curve["points"])
    assert data["controls"]["dense_narrow"]["lr"] == data["references"]["dense"]["lr"]
    runs = list((tmp_path / "ck" / "exp_scaling" / "quick-custom").glob("*.json"))
    selected = [json.loads(p.read_text())["seed"] for p in runs if p.name.startswith("select_")]
    assert selected and set(selected) == set(spec["selection_seeds"])
    assert all("_lr" in p.name for p in runs)
    with pytest.raises(ValueError, match="selection seeds"):
        run("scaling", **_kw(tmp_path / "bad", steps=2, seeds=(100,)))
    narrow, um = data["controls"]["dense_narrow"], data["curves"]["ultramem_paper_k10"]["points"][-1]
    assert narrow["num_values"] == um["num_values"] and narrow["ffn_hidden"] == um["ffn_hidden"]
    assert narrow["params"]["memory_total"] == 0 and not narrow["compute_matched"]
    assert narrow["params"]["activated"] < data["references"]["dense"]["params"]["activated"]


def test_full_scaling_spans_six_powers_of_two_at_fixed_compute():
    ns = SPECS["scaling"]["full"]["num_values"]
    assert math.log2(max(ns) / min(ns)) >= 6 and all(2 ** round(math.log2(n)) == n for n in ns)


def test_ladder_quick_has_the_papers_rungs_and_power_estimates(tmp_path):
    from ultramem_edu.experiments.ladder import PAPER_TABLE2, ladder_rungs

    data = run("ladder", **_kw(tmp_path, steps=2, seeds=(0, 1), rungs=3))
    assert len(data["rungs"]) == 3
    for r in data["table"][1:]:
        assert r["delta_se"] is not None and isinstance(r["resolved"], bool)
        if not r["resolved"]:
            assert r["seeds_needed"] is None or r["seeds_needed"] >= 2
    rungs = ladder_rungs(SPECS["ladder"]["quick"])
    assert [r["name"] for r in rungs] == list(PAPER_TABLE2["deltas"])
    side = SPECS["ladder"]["quick"]["side"]
    pkm, half = rungs[0]["memory"], rungs[2]["memory"]
    assert half.num_values == 2 * pkm.num_values and half.grid_shape == (side, 2 * side)
    assert half.num_values * half.value_dim == pkm.num_values * pkm.value_dim   # the paper's trade
    split = rungs[4]
    assert len(split["wiring"]) == 2 and split["memory"].num_values == side ** 2     # 2 × n² = n × 2n
    assert [r["value_lr_k"] for r in rungs][9:] == [1.0, 10.0, 10.0]


def test_facts_quick_curves(tmp_path):
    data = run("facts", **_kw(tmp_path, steps=5, seeds=(0,)))
    data = _check_json(tmp_path / "exp_facts_quick_custom.json", "facts")
    for entry in data["results"]:
        for name, m in entry["models"].items():
            assert 0 <= m["recall"]["mean"] <= 1
            assert m["facts_stored"] == pytest.approx(m["recall"]["mean"] * entry["num_facts"])
    for name, points in data["vs_num_values"].items():
        assert [p["num_values"] for p in points] == list(SPECS["facts"]["quick"]["values_sweep"])


def test_topology_quick(tmp_path):
    data = run("topology", **_kw(tmp_path, steps=4, seeds=(0,)))
    data = _check_json(tmp_path / "exp_topology_quick_custom.json", "topology")
    pkm = data["runs"]["pkm"]
    for when in ("init", "trained"):                      # additive product keys: exact, and a staircase
        assert pkm[f"topology_{when}"]["recall_vs_bruteforce"] > 0.999          # exact, up to tied scores
        assert pkm[f"topology_{when}"]["staircase_violations"] == 0.0
    assert data["runs"]["tdqkr_both_signs"]["topology_init"]["staircase_violations"] > 0
    record = data["runs"]["tdqkr"]["runs"][0]["sv_record"]
    assert record["step"][0] == 0 and all(r >= 1 for rs in record["ratio"] for r in rs)   # σ₁ ≥ σ₂


def test_staircase_violations_against_a_loop():
    from ultramem_edu.experiments.topology import staircase_violations

    rng = random.Random(0)
    for _ in range(50):
        m, n = rng.randint(1, 6), 8
        cells = rng.sample([(a, b) for a in range(n) for b in range(n)], m)
        rr = torch.tensor([a for a, _ in cells])
        cr = torch.tensor([b for _, b in cells])
        chosen = set(cells)
        bad = sum(any((a2, b2) not in chosen for a2 in range(a + 1) for b2 in range(b + 1)) for a, b in cells)
        assert float(staircase_violations(rr, cr)) == pytest.approx(bad / m)


# ------------------------------------------------------------------------------------------ statistics
def test_paired_delta_and_power_estimate():
    """paired_delta is the paired t-test: resolved only when the 95 % t-interval excludes 0, and its power
    estimate is the noncentral-t one (:mod:`.stats`), not the old ⌈(2s/Δ)²⌉."""
    from scipy import stats as sst

    from ultramem_edu.experiments.stats import power_paired

    d = paired_delta([1.0, 1.1, 0.9, 1.0], [1.2, 1.3, 1.1, 1.2])
    assert d["mean"] == pytest.approx(-0.2) and d["resolved"] and d["se"] == pytest.approx(0.0)
    noisy = paired_delta([1.0, 1.2, 0.8], [1.05, 1.05, 1.0])
    mean, std = mean_std(noisy["per_seed"])
    assert noisy["se"] == pytest.approx(std / math.sqrt(3))
    assert noisy["p"] == pytest.approx(sst.ttest_rel([1.0, 1.2, 0.8], [1.05, 1.05, 1.0]).pvalue)
    assert not noisy["resolved"] and noisy["ci95"][0] < 0 < noisy["ci95"][1]
    n = noisy["seeds_needed"]
    assert power_paired(mean, std, n) >= 0.8 > power_paired(mean, std, n - 1)
    assert n > math.ceil((2 * std / abs(mean)) ** 2)          # the old rule's count gives about 50 % power


def test_linear_fit_against_numpy():
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.arange(8, 15, dtype=float).repeat(2)
    y = 3.0 - 0.05 * x + rng.normal(0, 0.01, x.size)
    fit = linear_fit(x.tolist(), y.tolist())
    slope, intercept = np.polyfit(x, y, 1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    resid = y - (intercept + slope * x)
    se = math.sqrt((resid ** 2).sum() / (x.size - 2) / ((x - x.mean()) ** 2).sum())
    assert fit["slope_se"] == pytest.approx(se)
    assert fit["residual_std"] == pytest.approx(math.sqrt((resid ** 2).sum() / (x.size - 2)))
    assert fit["slope_ci95"][1] < 0                       # a clear fall is called a fall
    with pytest.raises(ValueError, match="at least 3"):
        linear_fit([1, 2], [1, 2])


# ------------------------------------------------------------------------------------------ CLI, errors
def test_cli_runs_quick_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "cli"
    main(["topology", "--quick", "--out", str(out), "--checkpoints", str(tmp_path / "ck"), "--no-progress",
          "--steps", "2"])
    assert "exp_topology_quick_custom.json (complete)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["topology", "--quick", "--out", str(out), "--checkpoints", str(tmp_path / "ck"), "--no-progress",
              "--steps", "2"])                                            # exists, neither resume nor overwrite
    assert "--resume" in capsys.readouterr().err
    main(["topology", "--quick", "--out", str(out), "--checkpoints", str(tmp_path / "ck"), "--no-progress",
          "--steps", "2", "--resume"])
    with pytest.raises(SystemExit):
        main(["nonsense", "--quick"])
    assert "unknown experiment 'nonsense'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["lm", "--shard", "3/2"])
    with pytest.raises(SystemExit):
        main(["lm", "--quick", "--scale", "full", "--out", str(out)])


def test_run_and_specs_reject_bad_names_and_impossible_configs():
    with pytest.raises(ValueError, match="unknown experiment"):
        run("nonsense")
    with pytest.raises(TypeError, match="does not take"):
        run("topology", quick=True, rungs=3)
    with pytest.raises(ValueError, match="scale"):
        experiment_spec("lm", False, "huge", "cpu", None, None)
    with pytest.raises(ValueError, match="steps"):
        experiment_spec("lm", True, None, "cpu", 0, None)
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            resolve_device("cuda")
    if torch.cuda.is_available():
        spec, mode, seeds = experiment_spec("lm", False, None, "cuda", None, None)
    else:
        with pytest.raises(ValueError, match="cuda"):
            experiment_spec("lm", False, None, "cuda", None, None)
        spec, mode, seeds = experiment_spec("lm", False, "gpu", "cpu", None, None)
    assert mode == "gpu" and spec["model"]["d_model"] == 2 * SPECS["lm"]["full"]["model"]["d_model"]
    for name in SUITE:                                    # the GPU scale trains 10× the characters per run
        full, gpu = SPECS[name]["full"], SPECS[name]["gpu"]
        if "train" in full:
            chars = lambda s: s["train"]["steps"] * s["train"]["batch_size"] * s["train"]["seq_len"]  # noqa: E731
            assert chars(gpu) == pytest.approx(10 * chars(full), rel=0.01), name
    assert set(SUITE) <= set(EXPERIMENTS)


# ------------------------------------------------------------------------------------------ verdicts
def test_verdicts_follow_the_stated_rules():
    from ultramem_edu.experiments.verdicts import STATUSES, compare, lm_verdicts, scaling_verdicts

    def fam(losses, complete=True):
        return {"runs": [{}] * len(losses), "complete": complete, "seeds": list(range(len(losses))),
                "test_loss_per_seed": losses, "tokens_trained": 1000}
    lm = {"models": {"dense": fam([2.0, 2.1, 2.2]), "moe": fam([1.9, 2.0, 2.1]),             # −0.1, resolved
                     "pkm": fam([2.0, 2.2, 2.1]), "ultramem_paper_k10": fam([2.05, 2.05, 2.3]),  # noisy
                     "ultramem_paper_k4": fam([2.0, 2.1], complete=False), "ultramem_ln": fam([2.3, 2.4, 2.5])}}
    v = lm_verdicts(lm)
    assert v["lm_moe_dense"]["status"] == "agrees (exploratory)" and v["lm_moe_dense"]["delta"] == pytest.approx(-0.1)
    assert v["lm_moe_dense"]["exploratory"] and not any(x["status"] == "reproduced" for x in v.values())
    assert v["lm_ultramem_dense"]["status"] == "unresolved" and v["lm_ultramem_dense"]["seeds_needed"] >= 2
    assert v["lm_k10_vs_k4"]["status"] == "pending"                      # a family still training
    assert v["lm_paper_init_vs_ln"]["status"] == "disagrees (exploratory)"   # a resolved gap refutes "as well as"
    lm["models"]["ultramem_paper_k4"] = fam([2.0, 2.1, 2.2])             # Δ +0.05, −0.05, +0.10: unresolved
    alike = lm_verdicts(lm)["lm_k10_vs_k4"]
    assert alike["status"] == "unresolved" and "no equivalence" in alike["note"]   # not significant ≠ equal
    lm["models"]["ultramem_paper_k4"] = fam([2.051, 2.049, 2.3005])       # Δ within ±0.002: TOST accepts
    alike = lm_verdicts(lm)["lm_k10_vs_k4"]
    assert alike["status"] == "equivalent (exploratory)" and alike["tost_p"] < 0.05 < alike["p"]
    lm["models"]["ultramem_paper_k4"] = fam([2.0, 2.1], complete=False)
    assert all(x["status"] in STATUSES for x in v.values())
    assert v["lm_v2_moe"]["status"] == "pending" and v["lm_peer_dense"]["status"] == "pending"
    lm["models"].update(ultramem_v2=fam([1.92, 1.98, 2.14]), peer=fam([1.8, 1.9, 2.0]))
    v = lm_verdicts(lm)
    assert v["lm_v2_moe"]["status"] == "unresolved" and v["lm_v2_moe"]["seeds_needed"] > 3
    assert v["lm_peer_dense"]["status"] == "agrees (exploratory)" and v["lm_peer_dense"]["delta"] == pytest.approx(-0.2)
    assert "edge" not in v["lm_moe_dense"]
    lm["models"]["dense"]["edge_check"] = {"beyond_is_better": True}
    assert "dense's rate is at the sweep's edge" in lm_verdicts(lm)["lm_moe_dense"]["edge"]
    assert compare({0: 1.0}, {0: 2.0}) is None                           # one seed: no standard error

    def curve(slope, noise, complete=True):
        pts = []
        for k, n in enumerate((256, 512, 1024, 2048)):
            ys = [3.0 + slope * k + noise * (-1) ** (k + s) for s in range(2)]
            pts.append({"num_values": n, "seeds": [0, 1], "test_loss_per_seed": ys, "tokens_trained": 10})
        from ultramem_edu.experiments.common import linear_fit
        xs = [math.log2(p["num_values"]) for p in pts for _ in p["seeds"]]
        fit = linear_fit(xs, [y for p in pts for y in p["test_loss_per_seed"]])
        return {"points": pts, "fit_vs_log2N": fit, "complete": complete}
    sc = {"curves": {"pkm": curve(0.0, 0.05), "ultramem_paper_k10": curve(-0.05, 0.001)}, "seeds": [0, 1],
          "references": {"dense": {"seeds": [0, 1], "test_loss_per_seed": [3.0, 3.0]}}}
    v = scaling_verdicts(sc)
    assert v["scaling_ultramem"]["status"] == "agrees (exploratory)" and v["scaling_pkm"]["status"] == "unresolved"
    assert v["scaling_ultramem_steeper"]["status"] in ("agrees (exploratory)", "unresolved")
    assert v["scaling_beats_dense"]["status"] == "agrees (exploratory)"   # 2.85 vs 3.0 in both seeds
    sc["curves"]["pkm"]["complete"] = False
    assert scaling_verdicts(sc)["scaling_pkm"]["status"] == "pending"
    assert "scaling_ultramem_released" not in scaling_verdicts(sc)          # a file without that curve
    sc["curves"]["ultramem_released"] = curve(-0.05, 0.001)
    assert scaling_verdicts(sc)["scaling_ultramem_released"]["status"] == "agrees (exploratory)"
    sc["curves"]["pkm"]["complete"] = True
    steeper = scaling_verdicts(sc)["scaling_released_steeper"]
    assert steeper["status"] == "agrees (exploratory)" and steeper["slope_difference"] == pytest.approx(
        sc["curves"]["ultramem_released"]["fit_vs_log2N"]["slope"] - sc["curves"]["pkm"]["fit_vs_log2N"]["slope"])

    # one seed per point: no paired test, so no verdict
    def one_seed(c):
        pts = [dict(p, seeds=[0], test_loss_per_seed=p["test_loss_per_seed"][:1]) for p in c["points"]]
        from ultramem_edu.experiments.common import linear_fit
        fit = linear_fit([math.log2(p["num_values"]) for p in pts], [p["test_loss_per_seed"][0] for p in pts])
        return {"points": pts, "fit_vs_log2N": fit, "complete": True}
    sc1 = {"curves": {"pkm": one_seed(curve(0.0, 0.05)), "ultramem_paper_k10": one_seed(curve(-0.05, 0.001))},
           "seeds": [0], "references": {"dense": {"seeds": [0], "test_loss_per_seed": [3.0]}}}
    b = scaling_verdicts(sc1)["scaling_beats_dense"]
    assert b["status"] == "pending" and "one seed" in b["note"]


def test_verdicts_on_a_quick_suite(tmp_path):
    from ultramem_edu.experiments.verdicts import STATUSES, all_verdicts

    results = {}
    for name in ("topology", "ladder"):
        results[name] = run(name, **_kw(tmp_path, steps=2, seeds=(0, 1), **({"rungs": 3} if name == "ladder" else {})))
    v = all_verdicts(json.loads(json.dumps(results, default=str)))
    assert {"topology_tdqkr", "aux_sigma2", "aux_v2_ratio"} <= set(v)
    assert [k for k in v if k.startswith("ladder:")] == ["ladder:remove softmax", "ladder:half D_v, output projection"]
    assert all(x["status"] in STATUSES for x in v.values())


def test_gpu_script_refuses_clearly_without_cuda(tmp_path):
    import subprocess
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run the GPU suite")
    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_experiments.sh"
    import sys
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120,
                         env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "no CUDA device" in out.stderr


def test_facts_and_topology_verdicts_on_synthetic_results():
    from ultramem_edu.experiments.verdicts import facts_verdicts, topology_verdicts

    def m(recalls):
        return {"seeds": list(range(len(recalls))), "recall_per_seed": recalls}
    facts = {"results": [{"num_facts": 100, "models": {"dense": m([0.2, 0.25, 0.22]),
                                                        "ultramem_paper_k10": m([0.6, 0.7, 0.65])}}]}
    v = facts_verdicts(facts)
    key = "facts_memory_dense"
    assert v[key]["status"] == "agrees (exploratory)" and v[key]["delta"] == pytest.approx((0.4 + 0.45 + 0.43) / 3)
    assert v["facts_v2_moe"]["status"] == "pending"                      # neither model in the file
    facts["results"][0]["models"].update(ultramem_v2=m([0.5, 0.4, 0.45]), moe=m([0.6, 0.52, 0.57]))
    v2 = facts_verdicts(facts)["facts_v2_moe"]                           # V2 resolved behind MoE
    assert v2["status"] == "disagrees (exploratory)" and v2["delta"] == pytest.approx(-0.1133333, abs=1e-6)
    facts["results"][0]["models"]["ultramem_paper_k10"] = m([0.2, 0.26, 0.21])
    assert facts_verdicts(facts)[key]["status"] == "unresolved"
    facts["results"][0]["models"]["ultramem_paper_k10"] = None
    assert facts_verdicts(facts)[key]["status"] == "pending"
    # a declared sweep count picks its row, not the last one
    facts["results"][0]["models"]["ultramem_paper_k10"] = m([0.6, 0.7, 0.65])
    facts["results"].append({"num_facts": 400, "models": {"dense": m([0.03, 0.03, 0.04]),
                                                          "ultramem_paper_k10": m([0.03, 0.04, 0.03])}})
    assert facts_verdicts(facts)[key]["num_facts"] == 400
    facts["config"] = {"sweep_subjects": 25, "num_relations": 4}
    assert facts_verdicts(facts)[key]["num_facts"] == 100
    assert facts_verdicts(facts)[key]["status"] == "agrees (exploratory)"

    def run_(rows, cols, s1, s2, second=None):
        other = second if second is not None else s1 / s2
        return {"topology_trained": {"distinct_rows_per_head": rows, "distinct_cols_per_head": cols},
                "runs": [{"sv_record": {"sigma2": [[s2, s2]], "ratio": [[2.0, 2.0], [s1 / s2, other]]}}]}
    topo = {"runs": {"pkm": run_(3, 3, 1, 1), "tdqkr": run_(5, 4, 1.0, 0.2), "tdqkr_noaux": run_(5, 5, 2.0, 0.4)}}
    v = topology_verdicts(topo)
    assert v["topology_tdqkr"]["status"] == "observed" and v["aux_sigma2"]["status"] == "observed"
    assert v["aux_v2_ratio"]["status"] == "observed" and v["aux_v2_ratio"]["ratio_end_per_head"] == [5.0, 5.0]
    topo["runs"]["tdqkr_noaux"] = run_(5, 5, 2.0, 0.4, second=2.2)       # one head near rank 1, one not
    assert topology_verdicts(topo)["aux_v2_ratio"]["status"] == "not observed"


def test_claims_let_each_run_be_trained_by_one_process(tmp_path, monkeypatch):
    import os

    from ultramem_edu.experiments import common

    a = RunStore("c", "q", tmp_path, resume=True, shard="claim")
    b = RunStore("c", "q", tmp_path, resume=True, shard="claim")

    def while_a_trains(ck):
        # b, acting as another live process (the parent's id), must leave a run that a holds
        assert a.claim_path("r0").exists()
        with monkeypatch.context() as m:
            m.setattr(common.os, "getpid", os.getppid)
            assert b.get_or_run("r0", lambda ck: pytest.fail("r0 is a's")) is None
            assert b.claimed_elsewhere == ["r0"] and b.missing == ["r0"]
            assert b.get_or_run("r1", lambda ck: {"by": "b"})["by"] == "b"
        return {"by": "a"}

    assert a.get_or_run("r0", while_a_trains)["by"] == "a"
    assert not a.claim_path("r0").exists() and not b.claim_path("r1").exists()     # released when done
    assert b.get_or_run("r0", lambda ck: pytest.fail("r0 is finished"))["by"] == "a"
    with pytest.raises(RuntimeError, match="boom"):                                # released on failure too
        a.get_or_run("r2", lambda ck: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not a.claim_path("r2").exists()


def test_a_claim_of_a_dead_process_is_taken_over_and_one_of_another_host_is_left(tmp_path):
    import platform
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store = RunStore("c", "q", tmp_path, resume=True, shard="claim")
    store.claim_path("stale").write_text(json.dumps({"pid": int(dead.stdout), "host": platform.node()}))
    assert store.get_or_run("stale", lambda ck: {"x": 1})["x"] == 1
    store.claim_path("remote").write_text(json.dumps({"pid": 1, "host": platform.node() + "-elsewhere"}))
    assert store.get_or_run("remote", lambda ck: pytest.fail("another host holds it")) is None
    assert store.claimed_elsewhere == ["remote"]
    with pytest.raises(ValueError, match="claim"):
        RunStore("c", "q", tmp_path, shard="half")


def test_claiming_processes_share_a_suite_without_training_a_run_twice(tmp_path):
    import subprocess
    import sys

    code = ("import json, os, pathlib, sys, time\n"
            "from ultramem_edu.experiments.common import RunStore\n"
            "root = pathlib.Path(sys.argv[1])\n"
            "s = RunStore('c', 'q', root, resume=True, shard='claim')\n"
            "(root / f'ready{os.getpid()}').touch()\n"
            "while len(list(root.glob('ready*'))) < 3:\n"      # all three start together
            "    time.sleep(0.01)\n"
            "for i in range(24):\n"
            "    s.get_or_run(f'r{i}', lambda ck: (time.sleep(0.1), {'pid': os.getpid()})[1])\n"
            "print(json.dumps(s.ran))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(3)]
    ran = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(sum(ran, [])) == sorted(f"r{i}" for i in range(24))      # every run once, none twice
    assert sum(1 for r in ran if r) >= 2                                     # the work was shared
    assert not list((tmp_path / "exp_c" / "q").glob("*.claim"))


def test_the_cli_reads_shard_claim():
    from ultramem_edu.experiments.__main__ import _shard

    assert _shard("claim") == "claim" and _shard("1/2") == (1, 2)
    with pytest.raises(argparse.ArgumentTypeError, match="claim"):
        _shard("all")
