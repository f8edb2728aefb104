"""The chapter-11 experiments: each one's quick mode runs (with even smaller overrides here), writes a
valid JSON with the metadata fields, and ``resume`` skips finished runs."""
import json

import pytest
import torch

from ultramem_edu.experiments import EXPERIMENTS, run
from ultramem_edu.experiments.__main__ import main
from ultramem_edu.experiments.common import kjv_tokens, mean_std, model_parameter_counts
from ultramem_edu.experiments.lm import MODELS

META = ("experiment", "mode", "seeds", "git_commit", "machine", "date", "config")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _check_json(path, name):
    data = json.loads(path.read_text())
    for key in META:
        assert key in data, key
    assert data["experiment"] == name and data["mode"] == "quick"
    assert {"platform", "torch", "threads"} <= set(data["machine"])
    assert isinstance(data["git_commit"], str) and data["git_commit"]
    return data


def test_lm_quick_and_resume(tmp_path):
    kw = dict(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", steps=3, models=("dense", "ultramem"),
              progress=False)
    first = run("lm", **kw)
    data = _check_json(tmp_path / "exp_lm.json", "lm")
    assert (tmp_path / "exp_lm.csv").exists()
    assert set(data["models"]) == {"dense", "ultramem"}
    for r in data["models"].values():
        assert r["final_val_loss"]["mean"] > 0 and r["tokens_per_s"]["mean"] > 0
        assert r["curve"]["step"][0] == 0 and r["curve"]["step"][-1] == 3
    assert first["runs_skipped"] == []
    again = run("lm", resume=True, **kw)
    assert sorted(again["runs_skipped"]) == ["dense_seed0", "ultramem_seed0"]
    assert again["models"]["ultramem"]["final_val_loss"] == first["models"]["ultramem"]["final_val_loss"]


def test_lm_models_are_compute_matched():
    from ultramem_edu.experiments import lm

    tok = kjv_tokens()[0]
    builders = lm.model_builders(tok.vocab_size, lm.QUICK)
    counts = {k: model_parameter_counts(b[0]()) for k, b in builders.items()}
    dense = counts["dense"]["activated"]
    for name in ("moe", "pkm", "ultramem"):
        assert abs(counts[name]["activated"] - dense) <= 0.03 * dense, (name, counts[name], dense)
        assert counts[name]["total"] > counts["dense"]["total"]
    assert counts["dense_wide"]["activated"] > 2 * dense


def test_ladder_quick(tmp_path):
    data = run("ladder", quick=True, out=tmp_path, checkpoints=tmp_path / "ck", steps=2, rungs=5, progress=False,
               value_lr_k=4.0)
    saved = _check_json(tmp_path / "exp_ladder.json", "ladder")
    assert [r["name"] for r in saved["rungs"]][:2] == ["PKM", "remove softmax"]
    assert saved["rungs"][0]["delta"]["mean"] == 0.0
    assert saved["config"]["value_lr_k"] == 4.0
    # the split rung has two memories with about the total values of the one before
    split = saved["rungs"][4]
    assert len(split["wiring"]) == 2 and split["wiring"][0][0] < split["wiring"][0][1]
    before, after = saved["rungs"][3]["memory"]["num_values"], 2 * split["memory"]["num_values"]
    assert abs(after - before) / before < 0.05
    assert data["paper_table2"]["deltas"]["IVE (E=4)"] == -0.017


def test_ladder_value_lr_rung():
    from ultramem_edu.experiments.ladder import QUICK, ladder_rungs

    rungs = ladder_rungs(QUICK, value_lr_k=7.0)
    ks = {r["name"]: r["value_lr_k"] for r in rungs}
    assert ks["improved init"] == 1.0 and ks["value lr decay (optimiser)"] == 7.0 and ks["causal depthwise conv"] == 7.0


def test_facts_quick(tmp_path):
    run("facts", quick=True, out=tmp_path, checkpoints=tmp_path / "ck", steps=4, num_subjects=(8,),
        models=("dense", "ultramem"), progress=False)
    data = _check_json(tmp_path / "exp_facts.json", "facts")
    entry = data["results"][0]
    assert entry["num_facts"] == 8 * data["config"]["num_relations"]
    for r in entry["models"].values():
        assert 0.0 <= r["recall"]["mean"] <= 1.0


def test_dynamics_quick(tmp_path):
    run("dynamics", quick=True, out=tmp_path, checkpoints=tmp_path / "ck", steps=4, runs=("ultramem", "pkm"),
        progress=False)
    data = _check_json(tmp_path / "exp_dynamics.json", "dynamics")
    um = data["runs"]["ultramem"]["runs"][0]
    rec = um["records"]
    assert rec["step"] == [0, 2]                       # record_every=2 over 4 training calls
    assert len(rec["summed_sv"]) == 2 and len(rec["summed_sv"][0][0]) == 2      # (H, r=2)
    assert data["runs"]["pkm"]["runs"][0]["records"]["summed_sv"] == []
    for when in ("usage_init", "usage_trained"):
        assert 0.0 < um[when]["fraction_values_used"] <= 1.0
        assert 0.0 < um[when]["usage_entropy_normalised"] <= 1.0


def test_cli_and_resume(tmp_path, capsys):
    args = ["lm", "--quick", "--steps", "2", "--out", str(tmp_path), "--checkpoints", str(tmp_path / "ck"),
            "--no-progress"]
    main(args)
    main(args + ["--resume"])
    out = capsys.readouterr().out
    assert "wrote" in out
    data = json.loads((tmp_path / "exp_lm.json").read_text())
    assert len(data["runs_skipped"]) == len(MODELS)
    assert set(EXPERIMENTS) == {"lm", "ladder", "facts", "dynamics"}
    with pytest.raises(ValueError, match="unknown experiment"):
        run("nope")


def test_mean_std():
    assert mean_std([1.0]) == (1.0, 0.0)
    m, s = mean_std([1.0, 3.0])
    assert m == 2.0 and abs(s - 2 ** 0.5) < 1e-12
