"""Experiment ``evidence``: chapter 11's pre-registered comparison (:mod:`.preregistration`).

The protocol, the families, the seeds and the claims are the pre-registration's; this module only runs
them. Per family:

1. **Selection** — every learning rate (× value-lr option, for the families that sweep one) trains on
   each selection seed at the ``lm`` budget; the configuration with the lowest mean select-split loss
   over the selection seeds is chosen; at an edge of the rates tried the sweep extends by a doubling
   (halving) while that helps, at most :data:`~.preregistration.MAX_EDGE_STEPS` times.
2. **Reported runs** — the reported seeds train at the chosen configuration, at the ``lm`` budget and (for
   the headline families) at the ``long`` budget; the number reported is the held-out test loss.
3. **Claims** — :func:`claim_table`: the pre-registered tests, Holm-corrected; every other pair is an
   exploratory paired t-test.

Every run file stores the pre-registration's hash (``prereg_sha256``), the machine's load average when the
run started and ended (a run measured beside other work is marked ``shared``), its wall time and
characters per second. Runs are named ``<family>[_<option>]_<budget>_lr<lr>_seed<seed>``.
"""
from __future__ import annotations

import dataclasses
import os
import time

import torch

from . import preregistration as prereg
from . import stats
from .common import RunStore, kjv_splits, mean_std, model_parameter_counts, publish
from .families import FamilyContext, make_family
from .lm import num_values_for
from .specs import experiment_spec
from .trainer import train_run

NAME = "evidence"

__all__ = ["NAME", "run_evidence", "option_label", "claim_table", "exploratory_comparisons", "run_name",
           "chosen_configs", "selection"]


def option_label(option: dict | None) -> str:
    """A short name for a value-lr option: ``vlr0.001`` (constant rate) or ``vk4`` (multiplier), '' for none."""
    if not option:
        return ""
    if "value_lr" in option:
        return f"vlr{option['value_lr']:g}"
    return f"vk{option['value_lr_k']:g}"


def run_name(family: str, option: dict | None, budget: str, lr: float, seed: int) -> str:
    label = option_label(option)
    return f"{family}{'_' + label if label else ''}_{budget}_lr{lr:g}_seed{seed}"


def _with_option(fam, option: dict | None):
    """The family with the value-lr option in its recipe (its description no longer names a fixed value lr)."""
    if not option:
        return fam
    description = fam.description.replace(", values at constant lr 1e-3", "")
    return dataclasses.replace(fam, recipe=dict(option), description=f"{description}, value lr option "
                                                                         f"{option_label(option)}")


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:                                # not every platform has it
        return []


def _run_key(f, train: dict, lr: float, seed: int, spec: dict, device: str) -> dict:
    """The configuration an evidence run is fingerprinted by (:class:`~.common.RunStore`)."""
    return {"family": f.name, "description": f.description, "recipe": f.recipe, "lr": lr, "seed": seed,
            "train": train, "model": spec["model"], "device": device.split(":")[0], "protocol": NAME}


def selection(name: str, spec: dict, run_at) -> dict:
    """The sweep on the selection seeds: {"grid": {option: {lr: mean select loss or None}}, "chosen": ...}.

    ``spec`` gives ``lrs``, ``selection_seeds``, ``max_edge_steps`` and ``value_lr_options`` ({family:
    options}; a family not listed trains its recipe as it is). ``run_at(option, lr, seed)`` returns the
    finished run (a dict with ``select_loss``) or None. ``chosen`` is None until every run the choice
    depends on has finished. Other experiments choose their rates with it too (:mod:`.scaling`)."""
    options = spec.get("value_lr_options", {}).get(name, (None,))
    sel_seeds = spec["selection_seeds"]
    grid: dict[str, dict[float, float | None]] = {}

    def score(option, lr):
        runs = [run_at(option, lr, s) for s in sel_seeds]
        if any(r is None for r in runs):
            return None
        return mean_std([r["select_loss"] for r in runs])[0]

    for option in options:
        grid[option_label(option) or "recipe"] = {lr: score(option, lr) for lr in spec["lrs"]}
    out = {"grid": grid, "chosen": None, "extensions": []}
    if any(v is None for g in grid.values() for v in g.values()):
        return out
    for _ in range(spec["max_edge_steps"] + 1):
        key, lr = min(((k, lr) for k, g in grid.items() for lr in g), key=lambda kl: grid[kl[0]][kl[1]])
        tried = sorted(grid[key])
        if lr not in (tried[0], tried[-1]) or len(out["extensions"]) >= spec["max_edge_steps"]:
            break
        beyond = float(f"{(lr / 2 if lr == tried[0] else lr * 2):.6g}")
        option = next(o for o in options if (option_label(o) or "recipe") == key)
        value = score(option, beyond)
        out["extensions"].append({"option": key, "lr": beyond, "select_loss": value})
        if value is None:
            return out
        grid[key][beyond] = value
    key, lr = min(((k, lr) for k, g in grid.items() for lr in g), key=lambda kl: grid[kl[0]][kl[1]])
    option = next(o for o in options if (option_label(o) or "recipe") == key)
    out["chosen"] = {"option": option, "option_label": key, "lr": lr, "select_loss": grid[key][lr]}
    return out


def run_evidence(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
                 checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
                 overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Train the pre-registered suite (selection, then reported seeds per budget); write ``exp_evidence.json``."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    if set(seeds) & set(spec["selection_seeds"]):
        raise ValueError(f"reported seeds {seeds} must not include the selection seeds {spec['selection_seeds']}")
    headline = tuple(f for f in spec["headline"] if not models or f in models)
    exploratory = tuple(f for f in spec["exploratory"] if not models or f in models)
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    ctx = FamilyContext(vocab_size=tok.vocab_size, **spec["model"])
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    digest = prereg.prereg_hash()
    t_start = time.perf_counter()
    budgets = {"lm": spec["train"], "long": dict(spec["train"], steps=spec["long_steps"])}

    def run_at(fam, option, budget, lr, seed):
        f = _with_option(fam, option)
        train = budgets[budget]
        key = _run_key(f, train, lr, seed, spec, device)

        def job(ckpt):
            load_start = _load()
            torch.manual_seed(seed)
            res = train_run(f.build(), splits, dict(lr=lr, **f.recipe), train, seed, ckpt, device, progress,
                            f"{f.name} {budget} lr={lr:g} s{seed}")
            load_end = _load()
            res.update(seed=seed, lr=lr, budget=budget, option=option_label(option), prereg_sha256=digest,
                       load_avg_start=load_start, load_avg_end=load_end, cpu_count=os.cpu_count(),
                       threads=torch.get_num_threads(),
                       shared=bool(load_start and load_end and max(load_start[0], load_end[0]) >
                                   (os.cpu_count() or 1) - 0.5))
            return res
        return store.get_or_run(run_name(f.name, option, budget, lr, seed), job, key)

    fams = {name: make_family(name, ctx, num_values_for({"pkm_values": spec["pkm_values"],
                                                         "num_values": spec["num_values"]}, name))
            for name in headline + exploratory}
    entries = {}
    # in this order: the headline families' selections, their lm runs, their long runs, then the exploratory
    # families' selections and runs, so that the headline claims are complete first
    order = ([(n, "select") for n in headline] + [(n, "lm") for n in headline] + [(n, "long") for n in headline]
             + [(n, "select") for n in exploratory] + [(n, "lm") for n in exploratory])
    for name, budget in order:
        if budget == "select":
            fam = fams[name]
            sel = selection(name, spec, lambda o, lr, s, fam=fam: run_at(fam, o, "lm", lr, s))
            torch.manual_seed(0)
            entries[name] = {"description": fam.description, "recipe": fam.recipe, "ffn_hidden": fam.ffn_hidden,
                             "compute_matched": fam.compute_matched, "params": model_parameter_counts(fam.build()),
                             "role": "headline" if name in headline else "exploratory", "selection": sel,
                             "budgets": {}}
            continue
        entry, fam = entries[name], fams[name]
        fam_seeds = seeds if name in headline else tuple(s for s in spec["exploratory_seeds"] if s in seeds) or seeds
        chosen = entry["selection"]["chosen"]
        if chosen is None:
            store.missing.extend(f"{name}_{budget}_lr(chosen)_seed{s}" for s in fam_seeds)
            entry["budgets"][budget] = {"complete": False, "seeds": [], "declared_seeds": list(fam_seeds)}
            continue
        runs = [run_at(fam, chosen["option"], budget, chosen["lr"], s) for s in fam_seeds]
        done = [r for r in runs if r is not None]
        tests = [r["test_loss"] for r in done]
        b = {"declared_seeds": list(fam_seeds), "seeds": [r["seed"] for r in done], "test_loss_per_seed": tests,
             "complete": len(done) == len(fam_seeds), "lr": chosen["lr"], "option": chosen["option_label"],
             "tokens_trained": done[0]["tokens_trained"] if done else None,
             "wall_s_per_run": mean_std([r["wall_s"] for r in done])[0] if done else None,
             "tokens_per_s": mean_std([r["tokens_per_s"] for r in done])[0] if done else None,
             "runs_shared": sum(bool(r.get("shared")) for r in done),
             "prereg_sha256": sorted({r.get("prereg_sha256") for r in done})}
        if len(tests) >= 2:
            mean, lo, hi = stats.t_interval(tests)
            b.update(test_loss={"mean": mean, "std": mean_std(tests)[1], "ci95": [lo, hi]})
        elif tests:
            b.update(test_loss={"mean": tests[0], "std": None, "ci95": None})
        b["select_curve"] = ({"step": [h["step"] for h in done[0]["history"]],
                              "select_loss_mean": [mean_std([r["history"][i]["select_loss"] for r in done])[0]
                                                   for i in range(len(done[0]["history"]))]} if done else None)
        entry["budgets"][budget] = b

    stored = [r for r in store._seen.values() if r is not None]
    selection_walls = [r["wall_s"] for r in stored if r.get("seed") in spec["selection_seeds"]]
    payload_results = {"models": entries, "prereg_sha256": digest,
                       "runs_stored": len(stored), "runs_prereg_sha256": sorted({r.get("prereg_sha256") for r in stored}),
                       "selection_runs": {"count": len(selection_walls),
                                          "wall_s_mean": mean_std(selection_walls)[0] if selection_walls else None}}
    payload_results["claims"] = claim_table(entries, spec)
    payload_results["exploratory"] = exploratory_comparisons(entries)
    table = []
    for name, e in entries.items():
        for budget, b in e["budgets"].items():
            tl = b.get("test_loss") or {}
            table.append({"model": name, "role": e["role"], "budget": budget, "lr": b.get("lr"),
                          "option": b.get("option"), "test_loss_mean": tl.get("mean"),
                          "ci95_low": (tl.get("ci95") or [None, None])[0],
                          "ci95_high": (tl.get("ci95") or [None, None])[1], "seeds": len(b.get("seeds", [])),
                          "tokens_trained": b.get("tokens_trained"), "total_params": e["params"]["total"],
                          "activated_params": e["params"]["activated"], "wall_s_per_run": b.get("wall_s_per_run")})
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["vocab_size"] = tok.vocab_size
    config["splits"] = {k: int(v.numel()) for k, v in splits.items()}
    return publish(NAME, out, mode, seeds, config, spec.get("note"), payload_results, table, store.skipped, t_start,
                   device, store)


def chosen_configs(names, vocab_size: int, scale: str = "full", device: str = "cpu", checkpoints=None,
                   results_dir=None) -> dict:
    """{family: the configuration the evidence suite chose for it, or None while its selection runs are
    unfinished} — read from the stored selection runs at ``scale``; nothing is trained.

    A chosen configuration is ``{"option", "option_label", "lr", "select_loss"}`` (:func:`selection`);
    ``option`` is the value-lr option (a dict) or None. For families outside the pre-registration, a
    ``ValueError``."""
    spec, mode, _ = experiment_spec(NAME, False, scale, device, None, None)
    declared = spec["headline"] + spec["exploratory"]
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise ValueError(f"names: the evidence suite chooses no rate for {unknown}; it trains {list(declared)}")
    ctx = FamilyContext(vocab_size=vocab_size, **spec["model"])
    store = RunStore(NAME, mode, checkpoints, False, False, results_dir, None, collect=True)
    sizes = {"pkm_values": spec["pkm_values"], "num_values": spec["num_values"]}
    out = {}
    for name in names:
        fam = make_family(name, ctx, num_values_for(sizes, name))

        def run_at(option, lr, seed, fam=fam):
            f = _with_option(fam, option)
            return store.get_or_run(run_name(f.name, option, "lm", lr, seed),
                                    lambda ckpt: None, _run_key(f, spec["train"], lr, seed, spec, device))
        out[name] = selection(name, spec, run_at)["chosen"]
    return out


def _per_seed(entries: dict, name: str, budget: str) -> dict | None:
    """{seed: test loss} of ``name`` at ``budget`` once all its declared seeds have finished, else None."""
    b = (entries.get(name) or {}).get("budgets", {}).get(budget)
    if not b or not b.get("complete"):
        return None
    return dict(zip(b["seeds"], b["test_loss_per_seed"]))


def _paired(x: dict, y: dict) -> tuple[list[float], list[float]]:
    common = sorted(set(x) & set(y))
    return [x[s] for s in common], [y[s] for s in common]


def claim_table(entries: dict, spec: dict) -> dict:
    """The pre-registered claims: each test's numbers, the Holm-corrected verdict once every claim's runs
    have finished ("pending" before), and the seeds 80 % power would need (at the Bonferroni level α/m,
    Holm's strictest step) when unresolved."""
    margin, alpha = spec["margin"], spec["alpha"]
    rows, pvalues = {}, {}
    for cid, c in spec["claims"].items():
        row = {"claim": c["paper"], "compared": f"{c['a']} − {c['b']}", "budget": c["budget"], "kind": c["kind"]}
        if c["kind"] == "gap_change":
            parts = [_per_seed(entries, n, b) for n in (c["a"], c["b"]) for b in ("lm", "long")]
            if any(p is None for p in parts):
                rows[cid] = dict(row, status="pending")
                continue
            a_lm, b_lm, a_long, b_long = parts[0], parts[2], parts[1], parts[3]
            common = sorted(set(a_lm) & set(b_lm) & set(a_long) & set(b_long))
            d = [(a_long[s] - b_long[s]) - (a_lm[s] - b_lm[s]) for s in common]
            test = stats.paired_t(d)
        else:
            x, y = _per_seed(entries, c["a"], c["budget"]), _per_seed(entries, c["b"], c["budget"])
            if x is None or y is None:
                rows[cid] = dict(row, status="pending")
                continue
            a, b = _paired(x, y)
            test = stats.noninferiority(a, b, margin, alpha) if c["kind"] == "noninferior" else stats.paired_t(a, b, alpha)
        row.update(delta=test["mean"], sd=test["sd"], ci95=test["ci"], p=test["p"], n=test["n"])
        if c["kind"] == "noninferior":
            row["margin"] = margin
        rows[cid] = row
        pvalues[cid] = test["p"]
    return stats.holm_verdicts(rows, pvalues, len(spec["claims"]), alpha)


def exploratory_comparisons(entries: dict) -> dict:
    """Every pair of families at each budget where both have two or more common seeds: the paired t-test
    (Δ, 95 % interval, p), labelled exploratory."""
    out = {}
    for budget in ("lm", "long"):
        names = [n for n in entries if _per_seed(entries, n, budget)]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                x, y = _paired(_per_seed(entries, a, budget), _per_seed(entries, b, budget))
                if len(x) >= 2:
                    t = stats.paired_t(x, y)
                    out[f"{budget}: {a} − {b}"] = {"delta": t["mean"], "ci95": t["ci"], "p": t["p"], "n": t["n"],
                                                   "label": "exploratory"}
    return out
