"""Experiment ``ladder``: the ablation ladder PKM → UltraMem, one switch at a time (paper Table 2).

Each rung of :func:`~ultramem_edu.layer.ablation_ladder`, in the paper's order, is trained as the memory of
the same small character-level LM (FFN hidden 4·D throughout: the point is each switch's effect, not a
compute match). Two rungs are more than a layer-config change and are realised here:

* "half D_v, output projection" is the paper's rung: D_v = D/2 and twice the values, N = 2n² on an
  n × 2n grid (product keys on a rectangular grid), so the value table keeps its N·D parameters.
* "split layers + skip wiring": the one memory of 2n² values, a parallel branch of block 1 (wiring
  ((1, 1),)), becomes two memories of n² values each — exactly half each — wired skip-layer
  ((0, 1), (2, 3)). Each keeps H and m, so a token now reads twice as many rows.
* "value lr decay": the value-lr multiplier k goes from 1 to ``value_lr_k`` (paper text 10) for this
  and the later rungs.

Every rung trains at the same lr. Δ per rung = loss(rung) − loss(previous rung) on the held-out split,
paired by seed; a rung is *resolved* when the 95 % paired t-interval of Δ excludes zero, and for each unresolved rung the
number of seeds that would resolve an effect of the measured size and spread is printed (a power
estimate). Next to each Δ: the paper's Table 2 value (151M model on C4, method.md §3).
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ..layer import ablation_ladder
from .common import RunStore, build_lm, kjv_splits, mean_std, model_parameter_counts, paired_delta, publish
from .specs import experiment_spec
from .trainer import train_run

NAME = "ladder"

# The paper's Table 2 (UltraMem, Huang et al. 2025; 151M model, C4 validation loss), in ladder order.
PAPER_TABLE2 = {
    "baseline_val_loss": 2.828,
    "final_val_loss": 2.736,
    "total_delta": -0.092,
    "deltas": {
        "PKM": 0.0,
        "remove softmax": -0.006,
        "half D_v, output projection": -0.022,
        "shared query": +0.003,
        "split layers + skip wiring (model)": -0.015,
        "LayerNorm on query and keys": +0.001,
        "IVE (E=4)": -0.017,
        "TDQKR (r=2)": -0.008,
        "MCS (h=2)": -0.003,
        "improved init": -0.003,
        "value lr decay (optimiser)": -0.022,
        "causal depthwise conv": 0.000,
    },
    "source": "Huang et al., Ultra-Sparse Memory Network, ICLR 2025, Table 2 (as restated in method.md §3)",
}
SINGLE_WIRING = ((1, 1),)
SPLIT_WIRING = ((0, 1), (2, 3))


def ladder_rungs(spec: dict) -> list[dict]:
    """One dict per rung: name, memory config, wiring, value_lr_k — the changes made explicit."""
    m = spec["model"]
    side = spec["side"]
    base = ablation_ladder(m["d_model"], conv_kernel=spec["conv_kernel"], num_values=side ** 2,
                           num_layers=m["n_layers"], init_samples=1024, key_dim=m["key_dim"],
                           num_heads=m["mem_heads"], topm=m["topm"])
    rungs, split, k = [], False, 1.0
    for name, cfg in base:
        if name.startswith("split layers"):
            split = True
        if name.startswith("value lr decay"):
            k = float(spec["value_lr_k"])
        if split:                                  # two memories of half the values: n² each, square grids
            cfg = dataclasses.replace(cfg, num_values=side ** 2, grid_aspect=1)
        rungs.append({"name": name, "memory": cfg, "wiring": SPLIT_WIRING if split else SINGLE_WIRING,
                      "value_lr_k": k})
    return rungs


def run_ladder(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
               checkpoints=None, progress: bool = True, device: str = "cpu", scale: str | None = None,
               overwrite: bool = False, shard=None, collect: bool = False, results_dir=None, rungs: int | None = None,
               models=None) -> dict:
    """Train every rung for every seed; write ``exp_ladder.json`` / ``.csv``; return the payload.

    ``rungs``: train only the first this many rungs (tests).
    """
    if models is not None:
        raise ValueError("the ladder has no model families to choose; it trains its rungs (use rungs=)")
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    sizes = {k: spec["model"][k] for k in ("d_model", "n_layers", "n_heads", "seq_len")}
    ladder = ladder_rungs(spec)[:rungs]
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()

    results = []
    for index, rung in enumerate(ladder):
        def build(rung=rung):
            return build_lm("dense", tok.vocab_size, sizes, memory=rung["memory"], wiring=rung["wiring"])
        recipe = {"lr": spec["lr"], "value_lr_k": rung["value_lr_k"]}
        runs = []
        for seed in seeds:
            key = {"rung": rung["name"], "memory": rung["memory"], "wiring": rung["wiring"], "recipe": recipe,
                   "seed": seed, "train": spec["train"], "model": spec["model"], "device": device.split(":")[0]}

            def job(ckpt, build=build, seed=seed, index=index):
                torch.manual_seed(seed)
                res = train_run(build(), splits, recipe, spec["train"], seed, ckpt, device, progress,
                                f"rung {index} s{seed}")
                res.update(seed=seed)
                return res
            runs.append(store.get_or_run(f"rung{index:02d}_seed{seed}", job, key))
        torch.manual_seed(0)
        done = {r["seed"]: r for r in runs if r is not None}
        results.append({
            "rung": index, "name": rung["name"], "memory": rung["memory"], "wiring": rung["wiring"],
            "value_lr_k": rung["value_lr_k"], "params": model_parameter_counts(build()),
            "seeds": sorted(done), "test_loss_per_seed": [done[s]["test_loss"] for s in sorted(done)],
            "test_loss": dict(zip(("mean", "std"), mean_std([done[s]["test_loss"] for s in sorted(done)])))
            if done else None,
            "tokens_trained": next(iter(done.values()))["tokens_trained"] if done else None,
            "_by_seed": {s: done[s]["test_loss"] for s in done},
        })
    table = []
    for i, r in enumerate(results):
        r["paper_delta"] = PAPER_TABLE2["deltas"].get(r["name"])
        prev = results[i - 1]["_by_seed"] if i else None
        both = sorted(set(prev) & set(r["_by_seed"])) if prev is not None else []
        r["delta"] = (paired_delta([r["_by_seed"][s] for s in both], [prev[s] for s in both])
                      if len(both) >= 2 else None)
        first = results[0]["_by_seed"]
        both0 = sorted(set(first) & set(r["_by_seed"]))
        r["delta_from_pkm"] = (paired_delta([r["_by_seed"][s] for s in both0], [first[s] for s in both0])
                               if i and len(both0) >= 2 else None)
        d = r["delta"] or {}
        table.append({"rung": i, "name": r["name"], "test_loss_mean": (r["test_loss"] or {}).get("mean"),
                      "test_loss_std": (r["test_loss"] or {}).get("std"), "delta_mean": d.get("mean"),
                      "delta_se": d.get("se"), "resolved": d.get("resolved"), "seeds_needed": d.get("seeds_needed"),
                      "paper_delta": r["paper_delta"], "activated_params": r["params"]["activated"],
                      "memory_params": r["params"]["memory_total"], "seeds": len(r["seeds"]),
                      "tokens_trained": r["tokens_trained"]})
    for r in results:
        r.pop("_by_seed")
    if progress:
        for row in table:
            if row["delta_mean"] is not None:
                flag = "resolved" if row["resolved"] else f"unresolved, ~{row['seeds_needed']} seeds needed"
                print(f"{row['rung']:>2} {row['name']:<36} {row['test_loss_mean']:.4f}  Δ {row['delta_mean']:+.4f} ± "
                      f"{row['delta_se']:.4f} SE ({flag}; paper {row['paper_delta']:+.3f})")
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config.update(vocab_size=tok.vocab_size, single_wiring=SINGLE_WIRING, split_wiring=SPLIT_WIRING)
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"rungs": results, "table": table, "paper_table2": PAPER_TABLE2}, table, store.skipped, t_start,
                   device, store)
