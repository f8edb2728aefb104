"""Experiment ``lm``: every model family with its complete recipe, at equal activated compute.

Families (see :mod:`.families`): ``dense``, ``moe`` (top-2 of 8), ``pkm`` (Lample et al.'s recipe,
values at a constant lr 10⁻³), UltraMem with the paper's initialisation and k = 10 / k = 4, with the
released code's initialisation (k = 4), and with the book's LayerNorm variant (k = 10); and chapter 12's
UltraMemV2 (k = 4), PEER, Memory+ (values at a constant lr 10⁻³) and Engram (:mod:`.families_after`). Every memory
model narrows its FFN until its activated parameters per token match the dense model's. PKM and
UltraMem hold the same number of value *parameters*: UltraMem twice the values at half the width.

Protocol: each family trains once per learning rate of ``lrs`` (seed ``seeds[0]``); the rate with the
lowest loss on the *select* split is the family's; the remaining seeds train at that rate; the number
reported is the loss on the held-out *test* split, mean ± std over seeds (fewer for a family the spec's
``family_seeds`` cuts, declared in the result file), with the characters each run
trained on. A family whose rate is at an edge of the sweep gets one more seed-0 run a sweep step beyond
it (:func:`edge_check`), reported next to its number, not used to choose. Differences to dense and between families are paired by seed (:func:`.common.paired_delta`).
"""
from __future__ import annotations

import time

import torch

from .common import RunStore, kjv_splits, mean_std, model_parameter_counts, pairwise_deltas, publish
from .families import FamilyContext, make_family
from .specs import experiment_spec
from .trainer import train_run

NAME = "lm"
FAMILIES = ("dense", "moe", "pkm", "ultramem_paper_k10", "ultramem_paper_k4", "ultramem_released", "ultramem_ln",
            "ultramem_v2", "peer", "memory_plus", "engram")


def context(spec: dict, vocab_size: int) -> FamilyContext:
    return FamilyContext(vocab_size=vocab_size, **spec["model"])


def num_values_for(spec: dict, family: str) -> int | None:
    """The memory size ``family`` trains with in ``spec`` (None for the families without a memory)."""
    if family == "pkm":
        return spec["pkm_values"]
    if family.startswith("ultramem") or family not in ("dense", "moe"):
        return spec["num_values"]
    return None


def family_seeds(spec: dict, family: str, seeds: tuple) -> tuple:
    """The seeds ``family`` trains: the spec's ``family_seeds`` entry if it has one (a declared cut, never
    more seeds than asked for), else ``seeds``. Seed ``seeds[0]`` always runs the sweep."""
    own = tuple(spec.get("family_seeds", {}).get(family, seeds))
    kept = tuple(s for s in seeds if s in own)
    return kept if kept and kept[0] == seeds[0] else seeds[:1]


def run_name(family: str, lr: float, seed: int) -> str:
    """The file name (without ``.json``) of one run: ``<family>_lr<lr>_seed<seed>``."""
    return f"{family}_lr{lr:g}_seed{seed}"


def run_key(fam, lr: float, seed: int, train: dict, model: dict, device: str) -> dict:
    """Everything that determines one run's result: its fingerprint is stored with it and checked on resume."""
    return {"family": fam.name, "description": fam.description, "recipe": fam.recipe, "lr": lr, "seed": seed,
            "train": train, "model": model, "device": device.split(":")[0]}


def runner(train: dict, model: dict, splits: dict, store: RunStore, device: str, progress: bool):
    """``run_one(fam, lr, seed)``: the stored result of that run in ``store``, or train it (see
    :meth:`.common.RunStore.get_or_run`: None when it is not this process's to train)."""
    def run_one(fam, lr, seed):
        def job(ckpt):
            torch.manual_seed(seed)
            res = train_run(fam.build(), splits, dict(lr=lr, **fam.recipe), train, seed, ckpt, device, progress,
                            f"{fam.name} lr={lr:g} s{seed}")
            res.update(seed=seed, lr=lr)
            return res
        return store.get_or_run(run_name(fam.name, lr, seed), job, run_key(fam, lr, seed, train, model, device))
    return run_one


def mean_select_curve(runs: list[dict]) -> list[float]:
    """The select-split loss at each evaluation of ``runs`` (same schedule), averaged over the runs."""
    return [mean_std([r["history"][i]["select_loss"] for r in runs])[0] for i in range(len(runs[0]["history"]))]


def choose_lr(sweep: dict) -> float:
    """The rate of ``sweep`` ({lr: finished run}) with the lowest loss on the select split."""
    return min(sweep, key=lambda lr: sweep[lr]["select_loss"])


def edge_check(spec: dict, best: float, chosen: dict, run_at) -> dict | None:
    """With ``spec["edge_check"]``: if the chosen rate is the sweep's smallest or largest, train seed 0 one
    sweep step beyond it (``run_at(lr)``) and report whether that rate does better on the select split.

    A diagnostic, not a new choice: the family keeps its rate (its other seeds trained at it), and a
    ``beyond_is_better`` result says its number is an upper bound on what a wider sweep would reach.
    None when the check is off or the rate is inside the sweep; ``select_loss`` None while the run is missing.
    """
    lrs = sorted(spec["lrs"])
    if not spec.get("edge_check") or best not in (lrs[0], lrs[-1]) or len(lrs) < 2:
        return None
    beyond = float(f"{best * lrs[0] / lrs[1] if best == lrs[0] else best * lrs[-1] / lrs[-2]:.6g}")
    result = run_at(beyond)
    out = {"lr": beyond, "side": "below" if best == lrs[0] else "above",
           "chosen_select_loss": chosen["select_loss"], "select_loss": None, "beyond_is_better": None}
    if result is not None:
        out.update(select_loss=result["select_loss"], beyond_is_better=result["select_loss"] < chosen["select_loss"])
    return out


def run_lm(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
           checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
           overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Train every family (lr sweep, then seeds at the chosen lr); write ``exp_lm.json`` / ``.csv``."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    families = tuple(models or spec.get("families", FAMILIES))
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    ctx = context(spec, tok.vocab_size)
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()

    run_one = runner(spec["train"], spec["model"], splits, store, device, progress)

    per_family = {}
    for name in families:
        fam = make_family(name, ctx, num_values_for(spec, name))
        fam_seeds = family_seeds(spec, name, seeds)
        sweep = {lr: run_one(fam, lr, seeds[0]) for lr in spec["lrs"]}
        done = {lr: r for lr, r in sweep.items() if r is not None}
        entry = {"description": fam.description, "recipe": fam.recipe, "ffn_hidden": fam.ffn_hidden,
                 "compute_matched": fam.compute_matched, "memory": fam.memory,
                 "sweep": {f"{lr:g}": (r["select_loss"] if r else None) for lr, r in sweep.items()},
                 "sweep_complete": len(done) == len(sweep), "declared_seeds": list(fam_seeds)}
        torch.manual_seed(0)
        entry["params"] = model_parameter_counts(fam.build())
        if len(done) == len(sweep):
            best = choose_lr(done)
            runs = [sweep[best]] + [run_one(fam, best, s) for s in fam_seeds[1:]]
            runs = [r for r in runs if r is not None]
            tests = [r["test_loss"] for r in runs]
            entry.update(lr=best, runs=runs, seeds=[r["seed"] for r in runs], test_loss_per_seed=tests,
                         test_loss=dict(zip(("mean", "std"), mean_std(tests))),
                         select_loss_per_seed=[r["select_loss"] for r in runs],
                         tokens_trained=runs[0]["tokens_trained"],
                         tokens_per_s=mean_std([r["tokens_per_s"] for r in runs])[0],
                         complete=len(runs) == len(fam_seeds))
            entry["edge_check"] = edge_check(spec, best, done[best], lambda lr: run_one(fam, lr, seeds[0]))
            entry["curve"] = {"step": [h["step"] for h in runs[0]["history"]],
                              "tokens": [h["tokens"] for h in runs[0]["history"]],
                              "select_loss_mean": mean_select_curve(runs)}
        else:                                      # the other seeds wait for the sweep to choose their lr
            entry.update(lr=None, runs=[], complete=False)
            store.missing.extend(f"{name}_lr(chosen)_seed{s}" for s in fam_seeds[1:])
        per_family[name] = entry

    comparisons = pairwise_deltas({n: dict(zip(e["seeds"], e["test_loss_per_seed"]))
                                   for n, e in per_family.items() if e.get("runs")})
    table = []
    for n, r in per_family.items():
        row = {"model": n, "total_params": r["params"]["total"], "activated_params": r["params"]["activated"],
               "memory_params": r["params"]["memory_total"], "ffn_hidden": r["ffn_hidden"], "lr": r["lr"],
               "test_loss_mean": r.get("test_loss", {}).get("mean"), "test_loss_std": r.get("test_loss", {}).get("std"),
               "seeds": len(r.get("runs", [])), "tokens_trained": r.get("tokens_trained")}
        table.append(row)
        if progress and row["test_loss_mean"] is not None:
            print(f"{n:<20} lr {row['lr']:<7g} test {row['test_loss_mean']:.4f} ± {row['test_loss_std']:.4f} "
                  f"({row['seeds']} seeds, {row['tokens_trained']:,} chars) activated {row['activated_params']:,}")
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["vocab_size"] = tok.vocab_size
    config["wiring"] = ctx.wiring
    config["splits"] = {k: int(v.numel()) for k, v in splits.items()}
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"models": per_family, "comparisons": comparisons, "table": table}, table, store.skipped, t_start,
                   device, store)
