"""Exploratory verdicts on the paper's claims, from the stored result files of chapter 11's earlier suite.

The experiments read here (``lm``, ``budget``, ``scaling``, ``ladder``, ``facts``, ``topology``) were run
before the pre-registration (:mod:`.preregistration`) and chose their rates on seeds they report, so none
of their verdicts is confirmatory: each is **exploratory**, tested with the paired t-test
(:mod:`.stats`) but never called "reproduced". Only :mod:`.evidence`'s claim table says that. A verdict is

* ``agrees (exploratory)`` — the 95 % paired t-interval (df = n − 1) excludes zero, with the paper's sign;
* ``disagrees (exploratory)`` — the interval excludes zero, with the opposite sign (or a resolved
  difference where the paper reports none);
* ``equivalent (exploratory)`` — for claims of "no difference": two one-sided tests against the
  pre-registered margin pass;
* ``unresolved`` — none of these; ``seeds_needed`` is the number of paired seeds that would give a
  5 %-level test 80 % power at the measured effect and spread;
* ``observed`` / ``not observed`` — a one-seed measurement against a threshold (no error bar);
* ``pending`` — the runs it needs have not finished (a partial result file).

Each verdict carries its numbers (Δ, the interval, p, n) and the characters each run trained on; no
multiplicity correction is applied here, and the chapter says so.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from . import stats
from .common import paired_delta
from .preregistration import MARGIN

__all__ = ["CLAIMS", "load_results", "compare", "lm_verdicts", "budget_verdicts", "scaling_verdicts", "ladder_verdicts",
           "facts_verdicts", "topology_verdicts", "all_verdicts", "STATUSES"]

STATUSES = ("agrees (exploratory)", "disagrees (exploratory)", "equivalent (exploratory)", "unresolved", "observed",
            "not observed", "pending")
AGREES, DISAGREES, EQUIVALENT = STATUSES[:3]

CLAIMS = {
    "scaling_pkm": "PKM: at fixed activated compute, the loss falls as the number of values N grows",
    "scaling_ultramem": "UltraMem: at fixed activated compute, the loss falls as N grows",
    "scaling_ultramem_released": "UltraMem with the released code's recipe: the loss falls as N grows",
    "scaling_ultramem_steeper": "UltraMem gains more from a larger memory than PKM (a steeper fall with log N)",
    "scaling_released_steeper": "UltraMem with the released recipe gains more from a larger memory than PKM",
    "scaling_beats_dense": "UltraMem with the largest memory beats the dense model at the same activated compute",
    "scaling_released_beats_dense": "UltraMem (released recipe) with the largest memory beats the dense model",
    "lm_moe_dense": "MoE beats dense at equal activated compute",
    "lm_ultramem_dense": "UltraMem (paper recipe, k = 10) beats dense at equal activated compute",
    "lm_ultramem_pkm": "UltraMem (paper recipe, k = 10) beats PKM (Lample et al.'s recipe)",
    "lm_ultramem_moe": "UltraMem (paper recipe, k = 10) matches or beats MoE (at 151M the paper has MoE ahead by 0.04)",
    "lm_paper_init_vs_ln": "with its value-lr multiplier, the paper's initialisation trains as well as the book's LayerNorm variant",
    "lm_k10_vs_k4": "k = 10 (the paper's text) and k = 4 (the released script) train alike",
    "budget_moe_dense": "with twice lm's characters, MoE still beats dense at equal activated compute",
    "budget_ultramem_dense": "with twice lm's characters, UltraMem (released recipe) beats dense at equal activated compute",
    "budget_ultramem_pkm": "with twice lm's characters, UltraMem (released recipe) beats PKM",
    "budget_ultramem_gains_more": "twice the characters narrow UltraMem's (released recipe) gap to dense (chapter 11's "
                                  "hypothesis, not the paper's: a value learns only when a token selects it)",
    "facts_memory_dense": "at equal activated compute, UltraMem (paper recipe) stores more facts than the dense model",
    "lm_v2_moe": "UltraMemV2 matches or beats MoE at equal activated compute (Huang et al., 2025)",
    "lm_peer_dense": "PEER beats the dense model at equal activated compute (He, 2024)",
    "lm_memory_plus_dense": "Memory+ beats the dense model at equal activated compute (Berges et al., 2024)",
    "facts_v2_moe": "UltraMemV2 stores more facts than MoE at equal activated compute (V2: stronger on memorisation)",
    "facts_memory_plus_dense": "Memory+ stores more facts than the dense model at equal activated compute (Berges et al., 2024)",
    "topology_tdqkr": "TDQKR relieves the topology bias of additive product keys (more distinct rows and columns)",
    "aux_sigma2": "the aux loss (α = 0.001, τ = 0.15) keeps σ₂ of the summed core near τ",
    "aux_v2_ratio": "without the aux loss the core still becomes near rank-1, σ₁ > 4σ₂ (UltraMemV2)",
}


def load_results(figures: str | Path, prefer_gpu: bool = True) -> dict:
    """{name: payload} for every experiment with a result file. The GPU suite's ``exp_<name>_gpu.json``
    is used when it exists and is complete (and ``prefer_gpu``), else the CPU suite's ``exp_<name>.json``;
    each payload's ``"source"`` says which file it came from."""
    figures = Path(figures)
    out = {}
    for name in ("evidence", "lm", "budget", "scaling", "ladder", "facts", "topology"):
        for stem in ((f"{name}_gpu", name) if prefer_gpu else (name,)):
            path = figures / f"exp_{stem}.json"
            if not path.exists():
                continue
            payload = json.loads(path.read_text())
            if stem.endswith("_gpu") and not payload.get("complete", False):
                continue
            payload["source"] = path.name
            out[name] = payload
            break
    return out


def _numbers(d: dict) -> dict:
    return {"delta": d["mean"], "se": d["se"], "ci95": d.get("ci95"), "p": d.get("p"), "seeds": d["n"]}


def _status_from_delta(d: dict | None, expect_negative: bool = True) -> dict:
    """An exploratory verdict from a paired Δ (expected sign: negative = the claimed winner has the lower loss)."""
    if d is None:
        return {"status": "pending"}
    if not d["resolved"]:
        return {"status": "unresolved", **_numbers(d), "seeds_needed": d["seeds_needed"], "exploratory": True}
    good = (d["mean"] < 0) == expect_negative
    return {"status": AGREES if good else DISAGREES, **_numbers(d), "exploratory": True}


def _status_no_difference(d: dict | None) -> dict:
    """A claim of no difference: a resolved difference disagrees; equivalence needs TOST against the margin."""
    if d is None:
        return {"status": "pending"}
    if d["resolved"]:
        return {"status": DISAGREES, **_numbers(d), "exploratory": True}
    t = stats.tost(d["per_seed"], None, MARGIN)
    v = {**_numbers(d), "margin": MARGIN, "tost_p": t["p"], "tost_ci90": t["ci"], "exploratory": True}
    if t["equivalent"]:
        return {"status": EQUIVALENT, **v}
    return {"status": "unresolved", **v, "seeds_needed": d["seeds_needed"],
            "note": f"no resolved difference, and no equivalence within ±{MARGIN:g} either"}


def compare(a_by_seed: dict, b_by_seed: dict, min_seeds: int = 2) -> dict | None:
    """Paired Δ = a − b over the seeds both have (None with fewer than ``min_seeds``)."""
    common = sorted(set(a_by_seed) & set(b_by_seed))
    if len(common) < min_seeds:
        return None
    return paired_delta([a_by_seed[s] for s in common], [b_by_seed[s] for s in common])


def _by_seed(seeds, values) -> dict:
    return {int(s): float(v) for s, v in zip(seeds, values)}


def _complete_losses(models: dict, name: str) -> dict | None:
    """{seed: test loss} of family ``name`` once all its declared seeds have finished, else None."""
    m = models.get(name)
    if not m or not m.get("runs") or not m.get("complete"):
        return None
    return _by_seed(m["seeds"], m["test_loss_per_seed"])


def lm_verdicts(lm: dict) -> dict:
    models = lm["models"]

    def losses(name):
        return _complete_losses(models, name)

    def verdict(claim, a, b, expect_negative=True, equivalence=False):
        la, lb = losses(a), losses(b)
        v = {"claim": CLAIMS[claim], "compared": f"{a} − {b}"}
        if la is None or lb is None:
            v["status"] = "pending"
            return v
        d = compare(la, lb)
        v.update(_status_no_difference(d) if equivalence else _status_from_delta(d, expect_negative))
        v["tokens_trained"] = models[a].get("tokens_trained")
        edges = [f"{n}'s rate is at the sweep's edge and one step beyond did better on seed 0"
                 for n in (a, b) if (models[n].get("edge_check") or {}).get("beyond_is_better")]
        if edges:
            v["edge"] = "; ".join(edges)
        return v
    out = {
        "lm_moe_dense": verdict("lm_moe_dense", "moe", "dense"),
        "lm_ultramem_dense": verdict("lm_ultramem_dense", "ultramem_paper_k10", "dense"),
        "lm_ultramem_pkm": verdict("lm_ultramem_pkm", "ultramem_paper_k10", "pkm"),
        "lm_paper_init_vs_ln": verdict("lm_paper_init_vs_ln", "ultramem_paper_k10", "ultramem_ln", equivalence=True),
        "lm_k10_vs_k4": verdict("lm_k10_vs_k4", "ultramem_paper_k10", "ultramem_paper_k4", equivalence=True),
    }
    for claim, a, b in (("lm_v2_moe", "ultramem_v2", "moe"), ("lm_peer_dense", "peer", "dense"),
                        ("lm_memory_plus_dense", "memory_plus", "dense")):
        out[claim] = verdict(claim, a, b)
    out["lm_ultramem_moe"] = verdict("lm_ultramem_moe", "ultramem_paper_k10", "moe")
    return out


def budget_verdicts(b: dict) -> dict:
    """Verdicts of the ``budget`` experiment: the lm claims again at twice the characters, and whether the
    extra characters narrow UltraMem's gap to dense (its gap change, paired by seed, expected negative)."""
    models = b["models"]

    def losses(name):
        return _complete_losses(models, name)

    out = {}
    for claim, a, c in (("budget_moe_dense", "moe", "dense"), ("budget_ultramem_dense", "ultramem_released", "dense"),
                        ("budget_ultramem_pkm", "ultramem_released", "pkm")):
        la, lc = losses(a), losses(c)
        v = {"claim": CLAIMS[claim], "compared": f"{a} − {c}"}
        v.update(_status_from_delta(compare(la, lc)) if la and lc else {"status": "pending"})
        v["tokens_trained"] = models[a].get("tokens_trained") if a in models else None
        out[claim] = v
    change = b.get("gap_change_vs_dense", {}).get("ultramem_released")
    complete = losses("ultramem_released") and losses("dense")
    v = {"claim": CLAIMS["budget_ultramem_gains_more"], "compared": "(ultramem_released − dense) long − short"}
    v.update(_status_from_delta(change) if change and complete else {"status": "pending"})
    out["budget_ultramem_gains_more"] = v
    return out


def _beats_dense(claim: str, u: dict | None, dense: dict | None, seeds) -> dict:
    """Verdict: the curve's largest memory against the dense reference (paired by seed; with one seed the
    curve's scatter about its fit is one run's noise)."""
    v = {"claim": claim}
    if not (u and u["complete"] and dense and len(dense["seeds"]) == len(seeds)):
        v["status"] = "pending"
        return v
    last = u["points"][-1]
    if len(seeds) >= 2:
        d = compare(_by_seed(last["seeds"], last["test_loss_per_seed"]),
                    _by_seed(dense["seeds"], dense["test_loss_per_seed"]))
        v.update(_status_from_delta(d), num_values=last["num_values"])
        return v
    v.update(status="pending", note="one seed per point: no paired test")
    return v


def scaling_verdicts(sc: dict) -> dict:
    curves = sc["curves"]
    out = {}
    for fam, claim in (("pkm", "scaling_pkm"), ("ultramem_paper_k10", "scaling_ultramem"),
                       ("ultramem_released", "scaling_ultramem_released")):
        c = curves.get(fam)
        if c is None and fam == "ultramem_released":
            continue                               # a curve added later: files without it say nothing of it
        v = {"claim": CLAIMS[claim]}
        if c is None or not c["complete"] or c["fit_vs_log2N"] is None:
            v["status"] = "pending"
        else:
            fit = c["fit_vs_log2N"]
            lo, hi = fit["slope_ci95"]
            v.update(slope_per_doubling=fit["slope"], ci95=[lo, hi], exploratory=True,
                     status=AGREES if hi < 0 else (DISAGREES if lo > 0 else "unresolved"),
                     tokens_trained=c["points"][0]["tokens_trained"])
            halves = c.get("fit_halves")
            if halves:
                v["halves"] = {k: {"slope": h["slope"], "ci95": h["slope_ci95"], "num_values": h["num_values"]}
                               for k, h in halves.items()}
        out[claim] = v
    p, u = curves.get("pkm"), curves.get("ultramem_paper_k10")
    for claim, fam in (("scaling_ultramem_steeper", "ultramem_paper_k10"), ("scaling_released_steeper", "ultramem_released")):
        c = curves.get(fam)
        if c is None and fam == "ultramem_released":
            continue
        v = {"claim": CLAIMS[claim]}
        if p and c and p["complete"] and c["complete"] and p["fit_vs_log2N"] and c["fit_vs_log2N"]:
            diff = c["fit_vs_log2N"]["slope"] - p["fit_vs_log2N"]["slope"]
            se = math.hypot(c["fit_vs_log2N"]["slope_se"], p["fit_vs_log2N"]["slope_se"])
            df = c["fit_vs_log2N"]["n"] + p["fit_vs_log2N"]["n"] - 4
            half = stats.t_quantile(0.975, df) * se
            v.update(slope_difference=diff, se=se, ci95=[diff - half, diff + half], exploratory=True,
                     status=(AGREES if diff < 0 else DISAGREES) if abs(diff) > half else "unresolved")
        else:
            v["status"] = "pending"
        out[claim] = v
    dense = sc["references"].get("dense")
    for claim, fam in (("scaling_beats_dense", "ultramem_paper_k10"), ("scaling_released_beats_dense", "ultramem_released")):
        u = curves.get(fam)
        if u is None and fam == "ultramem_released":
            continue
        out[claim] = _beats_dense(CLAIMS[claim], u, dense, sc["seeds"])
    return out


def ladder_verdicts(lad: dict) -> list[dict]:
    """One verdict per rung after PKM: the paper's sign (or its 0.000) against our paired Δ."""
    out = []
    n_seeds = len(lad["seeds"])
    for r in lad["rungs"][1:]:
        d, paper = r.get("delta"), r.get("paper_delta")
        v = {"rung": r["name"], "paper_delta": paper, "tokens_trained": r.get("tokens_trained")}
        if d is None or len(r["seeds"]) < n_seeds:
            v["status"] = "pending"
        elif paper == 0:
            v.update(_status_no_difference(d), note="the paper reports no change")
        else:
            v.update(_status_from_delta(d, expect_negative=paper < 0))
        out.append(v)
    return out


def facts_verdicts(facts: dict) -> dict:
    """Recall paired by seed, {claim: verdict}, at the number of facts of the memory-size sweep
    (``config["sweep_subjects"]`` × relations) when the file declares one, else at the largest number."""
    res = facts["results"]
    cfg = facts.get("config", {})
    at = cfg["sweep_subjects"] * cfg["num_relations"] if "sweep_subjects" in cfg else None
    last = next((e for e in res if e["num_facts"] == at), None) if at else (res[-1] if res else None)
    out = {}
    for claim, a, b in (("facts_memory_dense", "ultramem_paper_k10", "dense"), ("facts_v2_moe", "ultramem_v2", "moe"),
                        ("facts_memory_plus_dense", "memory_plus", "dense")):
        v = {"claim": CLAIMS[claim], "compared": f"{a} − {b}"}
        ma = last["models"].get(a) if last else None
        mb = last["models"].get(b) if last else None
        if ma is None or mb is None:
            v["status"] = "pending"
        else:
            d = compare(_by_seed(ma["seeds"], ma["recall_per_seed"]), _by_seed(mb["seeds"], mb["recall_per_seed"]))
            v.update(_status_from_delta(d, expect_negative=False), model=a, num_facts=last["num_facts"])
        out[claim] = v
    return out


def topology_verdicts(topo: dict) -> dict:
    runs = topo["runs"]
    out = {}

    def trained(name):
        r = runs.get(name)
        return r.get("topology_trained") if r else None
    p, t = trained("pkm"), trained("tdqkr")
    v = {"claim": CLAIMS["topology_tdqkr"]}
    if p and t:
        spread_p = p["distinct_rows_per_head"] + p["distinct_cols_per_head"]
        spread_t = t["distinct_rows_per_head"] + t["distinct_cols_per_head"]
        v.update(pkm_rows_plus_cols=spread_p, tdqkr_rows_plus_cols=spread_t,
                 status="observed" if spread_t > spread_p else "not observed", seeds=len(runs["tdqkr"]["runs"]))
    else:
        v["status"] = "pending"
    out["topology_tdqkr"] = v
    tau = 0.15
    v = {"claim": CLAIMS["aux_sigma2"]}
    r = runs.get("tdqkr")
    if r and r.get("runs"):
        s2 = r["runs"][0]["sv_record"]["sigma2"][-1]                       # per head, at the end
        v.update(sigma2_end_per_head=s2, tau=tau, status="observed" if max(s2) <= 2 * tau else "not observed",
                 note="every head's σ₂ within 2τ")
    else:
        v["status"] = "pending"
    out["aux_sigma2"] = v
    v = {"claim": CLAIMS["aux_v2_ratio"]}
    r = runs.get("tdqkr_noaux")
    if r and r.get("runs") and r["runs"][0]["sv_record"]["ratio"]:
        rec = r["runs"][0]["sv_record"]["ratio"]
        v.update(ratio_end_per_head=rec[-1], ratio_start_per_head=rec[0],
                 status="observed" if min(rec[-1]) > 4 else "not observed", note="every head's σ₁/σ₂ above 4")
    else:
        v["status"] = "pending"
    out["aux_v2_ratio"] = v
    return out


def all_verdicts(results: dict) -> dict:
    """Every verdict whose experiment has a result file, keyed by claim (ladder rungs as ``ladder:<rung>``)."""
    out = {}
    if "scaling" in results:
        out.update(scaling_verdicts(results["scaling"]))
    if "lm" in results:
        out.update(lm_verdicts(results["lm"]))
    if "budget" in results:
        out.update(budget_verdicts(results["budget"]))
    if "facts" in results:
        out.update(facts_verdicts(results["facts"]))
    if "topology" in results:
        out.update(topology_verdicts(results["topology"]))
    if "ladder" in results:
        for v in ladder_verdicts(results["ladder"]):
            out[f"ladder:{v['rung']}"] = v
    for v in out.values():
        assert v["status"] in STATUSES, v
    return out
