"""Experiment ``scaling``: loss against memory size N at fixed activated compute (the paper's Fig. 6).

For each N in ``num_values`` (powers of two; an odd power is an n × 2n grid) PKM and UltraMem (the
paper's recipe, and the released code's) are trained with their recipes (:mod:`.families`) at one
learning rate, each narrowing its FFN until its
activated parameters per token equal the dense model's — the keys grow as √N and are all scored, so a
larger memory pays for its keys with FFN width. Dense and MoE at the same activated compute are the
horizontal references. For each family the held-out loss is fitted against log2 N (least squares over
all seeds' points, slope with a 95 % confidence interval): the paper reports that the loss falls as N
grows, i.e. a negative slope.
"""
from __future__ import annotations

import math
import time

import torch

from .common import RunStore, kjv_splits, linear_fit, mean_std, model_parameter_counts, publish
from .families import FamilyContext, make_family
from .specs import experiment_spec
from .trainer import train_run

NAME = "scaling"


def half_fits(points: list[dict]) -> dict | None:
    """Straight-line fits through the lower and the upper half of a curve's memory sizes: a curve that
    falls and then levels off shows a resolved lower-half slope and an upper-half slope whose interval
    holds zero — what one fit through every point hides. None with fewer than 3 sizes in a half."""
    half = len(points) // 2
    out = {}
    for label, part in (("lower", points[:half]), ("upper", points[half:])):
        xs = [math.log2(p["num_values"]) for p in part for _ in p["test_loss_per_seed"]]
        ys = [v for p in part for v in p["test_loss_per_seed"]]
        if len({*xs}) < 3:
            return None
        out[label] = dict(linear_fit(xs, ys), num_values=[p["num_values"] for p in part])
    return out


def run_scaling(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
                checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
                overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Train every (family, N, seed) and the references; fit loss vs log2 N; write ``exp_scaling.json``."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    families = tuple(models or spec["families"])
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    ctx = FamilyContext(vocab_size=tok.vocab_size, **spec["model"])
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()
    lr = spec["lr"]

    def run_one(fam, seed, tag):
        key = {"family": fam.name, "description": fam.description, "recipe": fam.recipe, "lr": lr, "seed": seed,
               "train": spec["train"], "model": spec["model"], "device": device.split(":")[0]}

        def job(ckpt):
            torch.manual_seed(seed)
            res = train_run(fam.build(), splits, dict(lr=lr, **fam.recipe), spec["train"], seed, ckpt, device,
                            progress, f"{tag} s{seed}")
            res.update(seed=seed)
            return res
        return store.get_or_run(f"{tag}_seed{seed}", job, key)

    def summarise(fam, runs):
        runs = [r for r in runs if r is not None]
        torch.manual_seed(0)
        out = {"description": fam.description, "ffn_hidden": fam.ffn_hidden, "compute_matched": fam.compute_matched,
               "params": model_parameter_counts(fam.build()), "seeds": [r["seed"] for r in runs],
               "test_loss_per_seed": [r["test_loss"] for r in runs],
               "tokens_trained": runs[0]["tokens_trained"] if runs else None}
        if runs:
            out["test_loss"] = dict(zip(("mean", "std"), mean_std(out["test_loss_per_seed"])))
        return out

    references = {}
    for name in spec["references"]:
        fam = make_family(name, ctx, None)
        references[name] = summarise(fam, [run_one(fam, s, name) for s in seeds])
    controls = {}                                  # e.g. dense_narrow: UltraMem's FFN at the largest N, no memory
    for name in spec.get("controls", ()):
        fam = make_family(name, ctx, max(spec["num_values"]))
        controls[name] = summarise(fam, [run_one(fam, s, f"{name}_N{max(spec['num_values'])}") for s in seeds])
        controls[name].update(num_values=max(spec["num_values"]), description=fam.description)
    curves = {}
    for name in families:
        points = []
        for n in spec["num_values"]:
            fam = make_family(name, ctx, n)
            entry = summarise(fam, [run_one(fam, s, f"{name}_N{n}") for s in seeds])
            entry["num_values"] = n
            points.append(entry)
        xs = [math.log2(p["num_values"]) for p in points for _ in p["test_loss_per_seed"]]
        ys = [v for p in points for v in p["test_loss_per_seed"]]
        fit = linear_fit(xs, ys) if len({*xs}) >= 3 and len(xs) >= 3 else None
        complete = all(len(p["test_loss_per_seed"]) == len(seeds) for p in points)
        verdict = None
        if fit is not None:
            lo, hi = fit["slope_ci95"]
            verdict = "falls" if hi < 0 else ("rises" if lo > 0 else "flat within the CI")
        curves[name] = {"points": points, "fit_vs_log2N": fit, "loss_vs_N": verdict, "complete": complete,
                        "fit_halves": half_fits(points)}
        if progress and fit is not None:
            print(f"{name:<20} slope per doubling of N {fit['slope']:+.4f} "
                  f"(95% CI {fit['slope_ci95'][0]:+.4f} .. {fit['slope_ci95'][1]:+.4f}) → {verdict}")
    table = []
    for name, c in curves.items():
        for p in c["points"]:
            table.append({"model": name, "num_values": p["num_values"], "ffn_hidden": p["ffn_hidden"],
                          "activated_params": p["params"]["activated"], "memory_params": p["params"]["memory_total"],
                          "test_loss_mean": p.get("test_loss", {}).get("mean"),
                          "test_loss_std": p.get("test_loss", {}).get("std"), "seeds": len(p["seeds"]),
                          "tokens_trained": p["tokens_trained"]})
    for name, r in {**references, **controls}.items():
        table.append({"model": name, "num_values": r.get("num_values"), "ffn_hidden": r["ffn_hidden"],
                      "activated_params": r["params"]["activated"], "memory_params": r["params"]["memory_total"],
                      "test_loss_mean": r.get("test_loss", {}).get("mean"),
                      "test_loss_std": r.get("test_loss", {}).get("std"), "seeds": len(r["seeds"]),
                      "tokens_trained": r["tokens_trained"]})
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["vocab_size"] = tok.vocab_size
    config["wiring"] = ctx.wiring
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"curves": curves, "references": references, "controls": controls, "table": table}, table,
                   store.skipped, t_start,
                   device, store)
