"""Experiment ``scaling``: loss against memory size N at fixed activated compute (the paper's Fig. 6).

For each N in ``num_values`` (powers of two; an odd power is an n × 2n grid) PKM and UltraMem (the
paper's recipe, and the released code's) are trained with their recipes (:mod:`.families`), each
narrowing its FFN until its activated parameters per token equal the dense model's — the keys grow as
√N and are all scored, so a larger memory pays for its keys with FFN width. Dense and MoE at the same
activated compute are the horizontal references. Every family trains at the learning rate (and value-lr
option) chosen for it at one N on seeds that are never reported (``spec["rates"]``: the evidence
suite's choice, or this experiment's own sweep). For each family the held-out loss is fitted against
log2 N (least squares over all seeds' points, slope with a 95 % confidence interval): the paper reports
that the loss falls as N grows, i.e. a negative slope; :func:`half_fits` shows whether it levels off.
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


def _choose_rates(spec: dict, names, vocab_size: int, device: str, checkpoints, results_dir, sweep_run) -> dict:
    """{family: chosen {"option", "option_label", "lr", "select_loss"} or None while unfinished}.

    ``spec["rates"]``: ``"evidence"`` — the configuration the evidence suite chose for the family on its
    selection seeds (the same model and budget, at its memory size, which lies on this experiment's grid);
    ``"sweep"`` — this experiment's own sweep (``lrs`` on ``selection_seeds`` at ``sweep_at`` values,
    :func:`.evidence.selection`) through ``sweep_run(family, option, lr, seed)``."""
    from . import evidence

    mode = spec["rates"]
    if mode == "evidence":
        return evidence.chosen_configs(tuple(names), vocab_size, spec.get("evidence_scale", "full"), device,
                                       checkpoints, results_dir)
    if mode == "sweep":
        return {n: evidence.selection(n, spec, lambda o, lr, s, n=n: sweep_run(n, o, lr, s))["chosen"] for n in names}
    raise ValueError(f"spec['rates'] must be 'evidence' or 'sweep', got {mode!r}")


def run_scaling(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
                checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
                overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Choose each family's rate, train every (family, N, seed) and the references at it; fit loss vs
    log2 N; write ``exp_scaling.json``."""
    from .evidence import _with_option, option_label

    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    if set(seeds) & set(spec.get("selection_seeds", ())):
        raise ValueError(f"seeds: the reported seeds {seeds} must not include the selection seeds "
                         f"{spec['selection_seeds']}")
    families = tuple(models or spec["families"])
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    ctx = FamilyContext(vocab_size=tok.vocab_size, **spec["model"])
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()

    def tag_of(base, chosen):
        """The run's name, with its value-lr option and rate: ``<base>[_<option>]_lr<lr>``."""
        label = option_label(chosen["option"])
        return f"{base}{'_' + label if label else ''}_lr{chosen['lr']:g}"

    def run_one(fam, chosen, seed, tag):
        fam = _with_option(fam, chosen["option"])
        lr = chosen["lr"]
        key = {"family": fam.name, "description": fam.description, "recipe": fam.recipe, "lr": lr, "seed": seed,
               "train": spec["train"], "model": spec["model"], "device": device.split(":")[0]}

        def job(ckpt):
            torch.manual_seed(seed)
            res = train_run(fam.build(), splits, dict(lr=lr, **fam.recipe), spec["train"], seed, ckpt, device,
                            progress, f"{tag} s{seed}")
            res.update(seed=seed)
            return res
        return store.get_or_run(f"{tag}_seed{seed}", job, key)

    def sweep_run(name, option, lr, seed):
        fam = make_family(name, ctx, None if name in spec["references"] else spec["sweep_at"])
        chosen = {"option": option, "lr": lr}
        return run_one(fam, chosen, seed, tag_of(f"select_{name}_N{spec['sweep_at']}", chosen))

    # dense_narrow, a control without options, trains at the dense model's rate
    rate_names = tuple(dict.fromkeys(tuple(spec["references"]) + families))
    rates = _choose_rates(spec, rate_names, tok.vocab_size, device, checkpoints, results_dir, sweep_run)
    rates.update({c: rates.get("dense") for c in spec.get("controls", ())})

    def summarise(fam, runs, chosen):
        runs = [r for r in runs if r is not None]
        torch.manual_seed(0)
        out = {"description": fam.description, "ffn_hidden": fam.ffn_hidden, "compute_matched": fam.compute_matched,
               "params": model_parameter_counts(fam.build()), "seeds": [r["seed"] for r in runs],
               "test_loss_per_seed": [r["test_loss"] for r in runs],
               "tokens_trained": runs[0]["tokens_trained"] if runs else None,
               "lr": chosen["lr"] if chosen else None, "option": chosen["option_label"] if chosen else None}
        if runs:
            out["test_loss"] = dict(zip(("mean", "std"), mean_std(out["test_loss_per_seed"])))
        return out

    def runs_of(name, fam, base):
        chosen = rates.get(name)
        if chosen is None:                         # its rate is not chosen yet: nothing of it can train
            store.missing.extend(f"{base}_lr(chosen)_seed{s}" for s in seeds)
            return summarise(fam, [], None)
        return summarise(fam, [run_one(fam, chosen, s, tag_of(base, chosen)) for s in seeds], chosen)

    references = {name: runs_of(name, make_family(name, ctx, None), name) for name in spec["references"]}
    controls = {}                                  # e.g. dense_narrow: UltraMem's FFN at the largest N, no memory
    for name in spec.get("controls", ()):
        fam = make_family(name, ctx, max(spec["num_values"]))
        controls[name] = runs_of(name, fam, f"{name}_N{max(spec['num_values'])}")
        controls[name].update(num_values=max(spec["num_values"]), description=fam.description)
    curves = {}
    for name in families:
        points = []
        for n in spec["num_values"]:
            entry = runs_of(name, make_family(name, ctx, n), f"{name}_N{n}")
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
                        "fit_halves": half_fits(points), "rate": rates.get(name)}
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
    config["rates_chosen"] = rates
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"curves": curves, "references": references, "controls": controls, "table": table}, table,
                   store.skipped, t_start,
                   device, store)
