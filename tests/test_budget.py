"""The ``budget`` experiment: lm's families again with twice the characters, at lm's chosen rates. Its
numbers are checked against lm's stored runs and against plain recomputation; its verdicts against
synthetic results whose answer is known."""
import json

import pytest

from ultramem_edu.experiments import SUITE, run
from ultramem_edu.experiments.budget import tail_drop
from ultramem_edu.experiments.common import ResumeError
from ultramem_edu.experiments.specs import SPECS
from ultramem_edu.experiments.verdicts import STATUSES, budget_verdicts

pytestmark = pytest.mark.usefixtures("one_thread")


def _kw(tmp_path, **extra):
    return dict(quick=True, out=tmp_path, checkpoints=tmp_path / "ck", progress=False, **extra)


def test_budget_doubles_lm_at_lms_chosen_rates_and_pairs_by_seed(tmp_path):
    kw = _kw(tmp_path, models=("dense", "pkm"))
    waiting = run("budget", **kw)                           # before lm has chosen a rate: nothing trains
    assert not waiting["complete"] and all(m["lr"] is None and m["runs"] == [] for m in waiting["models"].values())
    assert all("lm's choice" in r for r in waiting["runs_missing"])
    lm = run("lm", **kw)
    b = run("budget", **kw)
    assert b["complete"] and json.loads((tmp_path / "exp_budget_quick.json").read_text())["complete"]
    for name in ("dense", "pkm"):
        long_, short = b["models"][name], lm["models"][name]
        assert long_["lr"] == short["lr"]                   # lm's choice, not re-chosen
        assert long_["seeds"] == short["seeds"] == [0, 1]
        assert long_["tokens_trained"] == 2 * short["tokens_trained"]
        assert long_["short"]["test_loss_per_seed"] == short["test_loss_per_seed"]
        gains = [s - x for s, x in zip(short["test_loss_per_seed"], long_["test_loss_per_seed"])]
        assert long_["gain"]["per_seed"] == pytest.approx(gains)
        assert long_["tail_drop"] == pytest.approx(tail_drop(long_["curve"]["select_loss_mean"]))
        assert all(r["lr"] == short["lr"] for r in long_["runs"])
    d, p = b["models"]["dense"], b["models"]["pkm"]
    change = b["gap_change_vs_dense"]["pkm"]["per_seed"]
    expect = [(p["test_loss_per_seed"][i] - p["short"]["test_loss_per_seed"][i])
              - (d["test_loss_per_seed"][i] - d["short"]["test_loss_per_seed"][i]) for i in range(2)]
    assert change == pytest.approx(expect)
    assert b["comparisons"]["dense - pkm"]["per_seed"] == pytest.approx(
        [x - y for x, y in zip(d["test_loss_per_seed"], p["test_loss_per_seed"])])
    again = run("budget", resume=True, **kw)                # resumes: nothing trains twice
    assert len(again["runs_skipped"]) == 4 and again["models"]["pkm"]["test_loss_per_seed"] == p["test_loss_per_seed"]


def test_budget_refuses_an_lm_run_made_by_another_configuration(tmp_path):
    kw = _kw(tmp_path, models=("dense",))
    lm = run("lm", **kw)
    path = tmp_path / "ck" / "exp_lm" / "quick" / f"dense_lr{lm['models']['dense']['lr']:g}_seed0.json"
    stored = json.loads(path.read_text())
    path.write_text(json.dumps(dict(stored, fingerprint="0" * 16)))
    with pytest.raises(ResumeError, match="different configuration"):
        run("budget", **kw)


def test_budget_spec_is_twice_lm_and_in_the_suite():
    assert SUITE.index("budget") == SUITE.index("lm") + 1      # runs after lm, whose rates it needs
    for scale in ("quick", "full", "gpu"):
        lm, b = SPECS["lm"][scale], SPECS["budget"][scale]
        assert b["model"] == lm["model"]
        assert b["train"]["steps"] == 2 * lm["train"]["steps"]
        assert {k: v for k, v in b["train"].items() if k != "steps"} == \
            {k: v for k, v in lm["train"].items() if k != "steps"}
        assert set(b["seeds"]) <= set(lm["seeds"])


def test_tail_drop():
    assert tail_drop([5.0] * 10 + [4.0, 3.0]) == pytest.approx(1.0)      # 12 points: the last tenth is 1 step
    assert tail_drop([3.0, 2.0]) == pytest.approx(1.0) and tail_drop([2.0, 2.5]) == pytest.approx(-0.5)


def test_budget_verdicts_follow_the_stated_rules():
    def fam(long_, short, complete=True):
        return {"runs": [{}] * len(long_), "complete": complete, "seeds": list(range(len(long_))),
                "test_loss_per_seed": long_, "tokens_trained": 2000,
                "short": {"seeds": list(range(len(short))), "test_loss_per_seed": short}}
    from ultramem_edu.experiments.common import paired_delta

    models = {"dense": fam([1.40, 1.42, 1.44], [1.50, 1.52, 1.54]),
              "moe": fam([1.30, 1.33, 1.34], [1.45, 1.47, 1.50]),
              "pkm": fam([1.41, 1.46, 1.40], [1.52, 1.55, 1.53]),
              "ultramem_released": fam([1.38, 1.405, 1.42], [1.52, 1.541, 1.56])}

    def change(name):
        f, d = models[name], models["dense"]
        return paired_delta([a - b for a, b in zip(f["test_loss_per_seed"], f["short"]["test_loss_per_seed"])],
                            [a - b for a, b in zip(d["test_loss_per_seed"], d["short"]["test_loss_per_seed"])])
    b = {"models": models, "gap_change_vs_dense": {n: change(n) for n in models if n != "dense"}}
    v = budget_verdicts(b)
    assert v["budget_moe_dense"]["status"] == "agrees (exploratory)"
    assert v["budget_ultramem_dense"]["status"] == "agrees (exploratory)" and v["budget_ultramem_dense"]["delta"] < 0
    assert v["budget_ultramem_pkm"]["status"] == "unresolved" and v["budget_ultramem_pkm"]["seeds_needed"] >= 2
    assert v["budget_ultramem_gains_more"]["status"] == "agrees (exploratory)"    # gains 0.136–0.14, dense 0.10
    assert v["budget_ultramem_gains_more"]["delta"] == pytest.approx(b["gap_change_vs_dense"]["ultramem_released"]["mean"])
    assert all(x["status"] in STATUSES for x in v.values())
    models["ultramem_released"]["complete"] = False                      # a seed still training
    v = budget_verdicts(b)
    assert v["budget_ultramem_dense"]["status"] == "pending" and v["budget_ultramem_gains_more"]["status"] == "pending"
    assert v["budget_moe_dense"]["status"] == "agrees (exploratory)"
