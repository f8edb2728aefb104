"""Chapter 11's statistics (against scipy.stats), the pre-registration and the evidence suite."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sst

from ultramem_edu.experiments import preregistration as prereg
from ultramem_edu.experiments import stats
from ultramem_edu.experiments.evidence import claim_table, option_label, run_evidence
from ultramem_edu.experiments.families import FamilyContext, make_family
from ultramem_edu.experiments.families_after import V2_RECIPES
from ultramem_edu.experiments.specs import SPECS, experiment_spec

finite = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(d=st.lists(finite, min_size=2, max_size=12).filter(lambda v: np.std(v) > 1e-6))
def test_paired_t_matches_scipy(d):
    """Δ, the 95 % t-interval and the two-sided p equal scipy's on arbitrary differences."""
    r = stats.paired_t(d)
    ref = sst.ttest_1samp(d, 0.0)
    ci = ref.confidence_interval(0.95)
    assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert r["ci"] == pytest.approx([ci.low, ci.high], rel=1e-9, abs=1e-12)
    assert r["resolved"] == (ref.pvalue < 0.05)


def test_two_se_at_three_seeds_is_not_resolved():
    """|Δ| > 2 SE at n = 3 (the old rule's "resolved") is not a 95 % test: here p ≈ 0.13."""
    d = [0.010, 0.028, 0.045]
    mean, se = np.mean(d), np.std(d, ddof=1) / math.sqrt(3)
    assert abs(mean) > 2 * se
    r = stats.paired_t(d)
    assert not r["resolved"] and r["ci"][0] < 0 < r["ci"][1]
    assert 0.05 < r["p"] == pytest.approx(sst.ttest_rel([x + 1 for x in d], [1.0] * 3).pvalue)


def test_tost_accepts_equivalence_and_refuses_no_difference():
    rng = np.random.default_rng(0)
    a = rng.normal(1.4, 0.01, 10)
    b = a + rng.normal(0.002, 0.003, 10)                  # tiny, tight difference: equivalent at margin 0.02
    r = stats.tost(a, b, 0.02)
    d = a - b
    p_ref = max(sst.ttest_1samp(d, -0.02, alternative="greater").pvalue,
                sst.ttest_1samp(d, 0.02, alternative="less").pvalue)
    assert r["equivalent"] and r["p"] == pytest.approx(p_ref)
    wide = stats.tost([0.0, 0.05, -0.05], None, 0.02)       # not significant, yet not equivalent either
    assert not stats.paired_t([0.0, 0.05, -0.05])["resolved"] and not wide["equivalent"]


def test_noninferiority_both_ways():
    passed = stats.noninferiority([0.001, 0.004, -0.002, 0.003, 0.0], None, 0.02)
    assert passed["passed"] and not passed["failed"]
    assert passed["p"] == pytest.approx(sst.ttest_1samp([0.001, 0.004, -0.002, 0.003, 0.0], 0.02).pvalue)
    failed = stats.noninferiority([0.05, 0.06, 0.055, 0.052], None, 0.02)
    assert failed["failed"] and not failed["passed"]


def test_holm_against_hand_example():
    """p = (0.01, 0.04, 0.03, 0.005), m = 4: adjusted (0.03, 0.06, 0.06, 0.02); only the two smallest rejected."""
    r = stats.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005})
    assert [round(r[k]["p_adjusted"], 10) for k in "abcd"] == [0.03, 0.06, 0.06, 0.02]
    assert [r[k]["rejected"] for k in "abcd"] == [True, False, False, True]
    with pytest.raises(ValueError, match="p-value"):
        stats.holm({"a": 1.5})


def test_power_by_simulation_and_not_the_old_rule():
    """seeds_for_power gives ≥ 80 % power (checked by simulation), and more seeds than ⌈(2s/Δ)²⌉."""
    effect, sd = 0.02, 0.02
    n = stats.seeds_for_power(effect, sd)
    assert n > math.ceil((2 * sd / effect) ** 2)
    rng = np.random.default_rng(1)
    hits = sum(sst.ttest_1samp(rng.normal(effect, sd, n), 0).pvalue < 0.05 for _ in range(4000)) / 4000
    assert 0.78 < hits
    hits_less = sum(sst.ttest_1samp(rng.normal(effect, sd, n - 1), 0).pvalue < 0.05 for _ in range(4000)) / 4000
    assert hits_less < 0.82
    assert stats.seeds_for_power(0.0, 0.01) is None


def test_t_interval_and_validation():
    mean, lo, hi = stats.t_interval([1.0, 2.0, 3.0])
    ci = sst.t.interval(0.95, 2, loc=2.0, scale=1.0 / math.sqrt(3))
    assert (lo, hi) == pytest.approx(ci)
    with pytest.raises(ValueError, match="at least 2"):
        stats.paired_t([1.0])
    with pytest.raises(ValueError, match="same length"):
        stats.paired_t([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="margin"):
        stats.tost([1.0, 2.0], None, 0)


def test_preregistration_fixes_the_protocol():
    assert not set(prereg.SELECTION_SEEDS) & set(prereg.REPORTED_SEEDS)
    assert not set(prereg.SELECTION_SEEDS) & set(prereg.EXPLORATORY_SEEDS)
    assert len(prereg.REPORTED_SEEDS) >= 8 and len(prereg.EXPLORATORY_SEEDS) >= 3
    assert len(prereg.CLAIMS) <= 8
    families = set(prereg.HEADLINE_FAMILIES)
    assert all(c["a"] in families and c["b"] in families for c in prereg.CLAIMS.values())
    assert {"value_lr": 1e-3} in prereg.VALUE_LR_OPTIONS["pkm"]          # Lample et al.'s constant among them
    assert len(prereg.prereg_hash()) == 64
    for scale in ("full", "gpu"):
        spec = SPECS["evidence"][scale]
        assert spec["seeds"] == prereg.REPORTED_SEEDS and spec["selection_seeds"] == prereg.SELECTION_SEEDS
        assert spec["long_steps"] == 2 * spec["train"]["steps"]


def test_reported_seeds_may_not_be_selection_seeds(tmp_path):
    with pytest.raises(ValueError, match="selection seeds"):
        run_evidence(quick=True, out=tmp_path, checkpoints=tmp_path, seeds=(0, 100), progress=False)


def test_v2_recipes_equal_the_released_script():
    """run_ultramem_v2.sh: mem_value_lr_times=1.0, mem_share_ratio=0.0625, mem_key_expand_time=2, mem_head=1;
    olmo/config.py: mem_key_balance_reg_coef = 0.0 by default."""
    assert V2_RECIPES["released"] == dict(value_lr_k=1.0, share_ratio=0.0625, key_expansion=2, balance_coef=0.0)
    ctx = FamilyContext(vocab_size=65, d_model=64, n_layers=4, n_heads=4, seq_len=64)
    fam = make_family("ultramem_v2_released", ctx, 2 * 64 ** 2)
    cfg = fam.memory
    assert (cfg.share_ratio, cfg.key_expansion, cfg.balance_coef, cfg.num_heads) == (0.0625, 2, 0.0, 1)
    assert fam.recipe == {"value_lr_k": 1.0} and fam.compute_matched


def test_moe_matched_holds_ultramems_total_and_dense_activated_parameters():
    from ultramem_edu.experiments.common import model_parameter_counts

    ctx = FamilyContext(vocab_size=65, d_model=64, n_layers=4, n_heads=4, seq_len=64)
    counts = {n: model_parameter_counts(make_family(n, ctx, 2 * 64 ** 2).build())
              for n in ("dense", "moe_matched", "ultramem_released")}
    assert abs(counts["moe_matched"]["total"] / counts["ultramem_released"]["total"] - 1) < 0.03
    assert abs(counts["moe_matched"]["activated"] / counts["dense"]["activated"] - 1) < 0.03


def test_peer_shared_has_one_key_set():
    ctx = FamilyContext(vocab_size=65, d_model=64, n_layers=4, n_heads=4, seq_len=64)
    model = make_family("peer_shared", ctx, 2 * 64 ** 2).build()
    assert model.memories[0].keys.shape[1] == 1


def _entries(losses: dict, budget="lm") -> dict:
    return {n: {"budgets": {budget: {"complete": True, "seeds": list(range(len(v))), "test_loss_per_seed": list(v)}}}
            for n, v in losses.items()}


def test_claim_table_verdicts_follow_holm():
    """One claim resolved after correction, one unresolved with a power estimate; pending while a family is missing."""
    spec = dict(SPECS["evidence"]["full"])
    spec["claims"] = {"x": dict(paper="A beats B", a="A", b="B", budget="lm", kind="less"),
                      "y": dict(paper="C beats B", a="C", b="B", budget="lm", kind="less")}
    base = np.linspace(1.40, 1.44, 8)
    rng = np.random.default_rng(3)
    entries = _entries({"B": base, "A": base - 0.03 + rng.normal(0, 0.003, 8), "C": base + np.array([0.03, -0.01, 0.02, 0.0, 0.025, -0.015, 0.01, 0.005])})
    rows = claim_table(entries, spec)
    assert rows["x"]["status"] == "reproduced" and rows["x"]["p_holm"] < 0.05
    assert rows["y"]["status"] == "unresolved" and rows["y"]["seeds_for_80_power"] > 8
    del entries["C"]
    assert claim_table(entries, spec)["x"]["status"] == "pending"


def test_evidence_quick_run_records_the_preregistration(tmp_path, monkeypatch):
    payload = run_evidence(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", results_dir=tmp_path / "runs",
                           progress=False, models=("dense", "pkm"))
    assert payload["prereg_sha256"] == prereg.prereg_hash()
    pkm = payload["models"]["pkm"]
    assert set(pkm["selection"]["grid"]) == {option_label(o) for o in prereg.VALUE_LR_OPTIONS["pkm"]}
    runs = list((tmp_path / "runs" / "exp_evidence" / "quick").glob("*.json"))
    assert runs and all(json.loads(p.read_text())["prereg_sha256"] == prereg.prereg_hash() for p in runs)
    reported = {json.loads(p.read_text())["seed"] for p in runs if "_seed10" not in p.name}
    assert reported == {0, 1}
    spec, _, _ = experiment_spec("evidence", True, None, "cpu", None, None)
    assert all(b["seeds"] == list(spec["seeds"]) for b in payload["models"]["dense"]["budgets"].values())

    # what the suite chose is readable without training (the scaling curves train at it), and the
    # scaling experiment in "evidence" mode trains every family at exactly that choice
    from ultramem_edu.experiments.evidence import chosen_configs
    from ultramem_edu.experiments.scaling import run_scaling

    vocab = payload["config"]["vocab_size"]
    chosen = chosen_configs(("dense", "pkm", "moe"), vocab, "quick", results_dir=tmp_path / "runs",
                            checkpoints=tmp_path / "ck")
    for name in ("dense", "pkm"):
        assert chosen[name] == payload["models"][name]["selection"]["chosen"]
    assert chosen["moe"] is None                                 # its selection never ran here
    with pytest.raises(ValueError, match="names"):
        chosen_configs(("dense_narrow",), vocab, "quick")
    monkeypatch.setitem(SPECS["scaling"], "quick", dict(SPECS["scaling"]["quick"], rates="evidence",
                        evidence_scale="quick", families=("pkm",), references=("dense", "moe"), controls=()))
    sc = run_scaling(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", results_dir=tmp_path / "runs",
                     progress=False, steps=2)
    assert sc["references"]["dense"]["lr"] == chosen["dense"]["lr"]
    assert all(p["lr"] == chosen["pkm"]["lr"] and p["option"] == chosen["pkm"]["option_label"]
               and p["seeds"] == [0] for p in sc["curves"]["pkm"]["points"])
    assert sc["references"]["moe"]["seeds"] == [] and sc["complete"] is False   # waits for its rate


def test_half_fits_show_a_plateau():
    """A curve that falls over its lower half and is flat over its upper half: the one-line fit says
    "falls", the halves say where."""
    from ultramem_edu.experiments.scaling import half_fits

    rng = np.random.default_rng(0)
    pts = []
    for k in range(8):
        level = 3.0 - 0.02 * min(k, 3)
        pts.append({"num_values": 2 ** (8 + k), "test_loss_per_seed": list(level + rng.normal(0, 0.002, 2))})
    h = half_fits(pts)
    assert h["lower"]["slope_ci95"][1] < 0 < h["upper"]["slope_ci95"][1] and h["upper"]["slope_ci95"][0] < 0
    assert h["lower"]["num_values"] == [256, 512, 1024, 2048]
    assert half_fits(pts[:4]) is None


def test_report_tables_and_progress(tmp_path):
    """The claim table lists every pre-registered claim (pending before runs); progress counts declared runs."""
    from ultramem_edu.experiments.report import claim_table_markdown, evidence_progress, fmt_test

    spec = SPECS["evidence"]["full"]
    table = claim_table_markdown(None, spec)
    assert table.count("| pending |") == len(spec["claims"]) == 8
    progress = evidence_progress(None, spec)
    sel = sum(len(spec["value_lr_options"].get(n, (None,))) * len(spec["lrs"]) * 2
              for n in spec["headline"] + spec["exploratory"])
    reported = 2 * 8 * len(spec["headline"]) + 3 * len(spec["exploratory"])
    assert progress["total"] == (0, sel + reported)
    payload = run_evidence(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", results_dir=tmp_path / "runs",
                           progress=False)
    qspec = SPECS["evidence"]["quick"]
    done, declared = evidence_progress(payload, qspec)["total"]
    assert done == declared > 0
    assert "runs not finished" not in claim_table_markdown(payload, qspec)
    assert fmt_test({"mean": 0.04, "ci95": [-0.036, 0.116], "p": 0.151, "n": 3}) == "+0.040 [-0.036, +0.116], p = 0.151, n = 3"


def test_stored_evidence_runs_were_made_under_the_committed_preregistration():
    """Every stored run of the suite carries the pre-registration's current hash, and (in a git checkout) the
    pre-registration was committed before any run file."""
    import shutil
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    runs = sorted((root / "figures" / "runs" / "exp_evidence").glob("*/*.json"))
    assert all(json.loads(p.read_text())["prereg_sha256"] == prereg.prereg_hash() for p in runs)
    if not runs or shutil.which("git") is None or not (root / ".git").exists():
        return

    def first_commit_time(path):
        out = subprocess.run(["git", "log", "--diff-filter=A", "--format=%ct", "--", str(path)], cwd=root,
                             capture_output=True, text=True).stdout.split()
        return int(out[-1]) if out else None
    prereg_time = first_commit_time(prereg.PREREG_PATH)
    assert prereg_time is not None
    for p in runs:
        t = first_commit_time(p)
        assert t is None or t >= prereg_time, p.name


@pytest.mark.parametrize("scale", ["full", "gpu"])
def test_every_facts_model_is_compute_matched(scale):
    """Knowledge capacity compares every family at the dense model's activated parameters (±3 %), UltraMem
    with one head of top-16 at these widths (two heads' keys alone exceed the dense FFN)."""
    from ultramem_edu.data import make_facts

    sp = SPECS["facts"][scale]
    facts = make_facts(64, sp["num_relations"], sp["num_objects"], seed=0)
    for name in sp["families"]:
        ctx = FamilyContext(vocab_size=facts.vocab_size, **dict(sp["model"], **sp.get("family_model", {}).get(name, {})))
        sizes = [sp["num_values"]] + (list(sp["values_sweep"]) if name in sp["sweep_families"] else [])
        for n in sizes:
            assert make_family(name, ctx, None if name in ("dense", "moe") else n).compute_matched, (scale, name, n)


def test_claim_table_says_when_a_budget_repeats_the_training_text():
    """A long-budget claim names its passes over the training split (characters trained / split length)."""
    from ultramem_edu.experiments.report import claim_table_markdown, passes_over_text

    spec = SPECS["evidence"]["full"]
    config = dict(spec, splits={"train": 2_560_000})           # lm = 2500 × 16 × 64 characters = one pass
    assert passes_over_text(config, "lm") == 1.0 and passes_over_text(config, "long") == 2.0
    rows = claim_table_markdown({"config": config, "claims": {}}, spec).splitlines()[2:]
    long_rows = [r for r in rows if "(long" in r or "(lm→long" in r]
    assert len(long_rows) == 3 and all("2.0 passes over the text" in r for r in long_rows)
    assert not any("passes" in r for r in rows if r not in long_rows)
    assert "passes" not in claim_table_markdown(None, spec)       # without the splits it claims nothing
    with pytest.raises(ValueError, match="budget"):
        passes_over_text(config, "short")
    with pytest.raises(ValueError, match="splits"):
        passes_over_text(spec, "long")


def test_evidence_results_and_comparisons_tables():
    """The per-family table shows each budget's rate, seeds finished of declared and the 95 % t-interval of
    the mean (scipy's); a family without a chosen rate says so; comparisons come out as stored."""
    from scipy import stats as st

    from ultramem_edu.experiments.report import evidence_comparisons_table, evidence_results_table

    losses = [1.40, 1.43, 1.41]
    lo, hi = st.t.interval(0.95, 2, loc=np.mean(losses), scale=st.sem(losses))
    payload = {"models": {
        "dense": {"role": "headline", "budgets": {"lm": {
            "lr": 0.012, "option": "recipe", "seeds": [0, 1, 2], "declared_seeds": list(range(8)),
            "test_loss_per_seed": losses,
            "test_loss": {"mean": float(np.mean(losses)), "ci95": [float(lo), float(hi)]}}}},
        "peer_shared": {"role": "exploratory", "budgets": {"lm": {"seeds": [], "declared_seeds": [0, 1, 2]}}}},
        "exploratory": {"long: dense − pkm": {"delta": -0.016, "ci95": [-0.027, -0.005], "p": 0.0125, "n": 8}}}
    rows = evidence_results_table(payload).rows
    assert rows[0][:5] == ["dense", "headline", "lm", "0.012 (recipe)", "3 of 8"]
    assert rows[0][5] == f"{np.mean(losses):.3f} [{lo:.3f}, {hi:.3f}]" and rows[0][6] == "1.400 1.430 1.410"
    assert rows[1][3:6] == ["not chosen yet", "0 of 3", "not finished"]
    assert evidence_comparisons_table(payload).rows == [["long", "dense − pkm", "-0.016 [-0.027, -0.005]", "0.013", "8"]]
    assert evidence_results_table(None).rows == [] and evidence_comparisons_table(None).rows == []
