"""Experiment ``budget``: the ``lm`` comparison's headline families again, with twice the characters.

The ``lm`` runs are still falling when they stop, and a memory value is updated only when a token selects
it, so a longer run may help the memory models more than the dense model. This experiment tests that:
``dense``, ``moe``, ``pkm`` and ``ultramem_released`` (the spec's ``families``) each train every seed of
``lm`` again, at the learning rate ``lm``'s sweep chose for them (read from ``lm``'s stored runs, never
re-chosen on these runs), for ``spec["train"]["steps"]`` steps — twice ``lm``'s, a fresh run with its own
warm-up and cosine, not a continuation.

Reported per family: the held-out test loss at both budgets (paired by seed), the gain from doubling,
and the loss still lost over the last tenth of the long run. Comparisons (paired by seed, see
:func:`.common.paired_delta`): every pair of families at the long budget, and for each family against
dense the change of its gap, ``(long_f − long_dense) − (short_f − short_dense)``: negative means the
family gained more from the extra characters than the dense model did.
"""
from __future__ import annotations

import time

from .common import (RunStore, fingerprint, kjv_splits, mean_std, model_parameter_counts, paired_delta,
                     pairwise_deltas, publish)
from .families import make_family
from .lm import choose_lr, context, family_seeds, mean_select_curve, num_values_for, run_key, run_name, runner
from .specs import experiment_spec

NAME = "budget"


def tail_drop(curve: list[float]) -> float:
    """How much a select-loss curve fell over its last tenth of evaluations (positive: still falling)."""
    tail = max(1, len(curve) // 10)
    return curve[-1 - tail] - curve[-1]


def _lm_runs(lm_spec: dict, lm_store: RunStore, fam, seeds: tuple, device: str) -> tuple[float | None, list]:
    """(the rate ``lm`` chose for ``fam``, ``lm``'s finished runs at that rate), read from ``lm``'s stored
    runs (fingerprints checked); (None, []) while ``lm``'s sweep for ``fam`` is unfinished."""
    def stored(lr, seed):
        return lm_store.load(run_name(fam.name, lr, seed),
                             fingerprint(run_key(fam, lr, seed, lm_spec["train"], lm_spec["model"], device)))
    sweep = {lr: stored(lr, seeds[0]) for lr in lm_spec["lrs"]}
    if any(r is None for r in sweep.values()):
        return None, []
    lr = choose_lr(sweep)
    runs = [sweep[lr]] + [stored(lr, s) for s in family_seeds(lm_spec, fam.name, seeds)[1:]]
    return lr, [r for r in runs if r is not None]


def run_budget(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
               checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
               overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Train the spec's families at ``lm``'s chosen rates for the long budget; write ``exp_budget.json``."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    lm_spec, lm_mode, lm_seeds = experiment_spec("lm", quick, scale, device, None, None)
    if spec["model"] != lm_spec["model"]:
        raise ValueError(f"budget's model {spec['model']} must be lm's {lm_spec['model']} at scale {lm_mode!r}")
    families = tuple(models or spec["families"])
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    ctx = context(lm_spec, tok.vocab_size)
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    lm_store = RunStore("lm", lm_mode, checkpoints, True, False, results_dir, None, True)   # read only
    run_one = runner(spec["train"], spec["model"], splits, store, device, progress)
    t_start = time.perf_counter()

    per_family = {}
    for name in families:
        fam = make_family(name, ctx, num_values_for(lm_spec, name))
        fam_seeds = tuple(s for s in family_seeds(lm_spec, name, lm_seeds) if s in seeds)
        lr, short = _lm_runs(lm_spec, lm_store, fam, lm_seeds, device)
        entry = {"description": fam.description, "recipe": fam.recipe, "ffn_hidden": fam.ffn_hidden, "lr": lr,
                 "declared_seeds": list(fam_seeds)}
        if lr is None:                             # lm's sweep has not chosen this family's rate yet
            store.missing.extend(f"{name}_lr(lm's choice)_seed{s}" for s in fam_seeds)
            entry.update(runs=[], complete=False)
            per_family[name] = entry
            continue
        long_runs = [r for r in (run_one(fam, lr, s) for s in fam_seeds) if r is not None]
        short_by_seed = {r["seed"]: r for r in short}
        entry.update(params=model_parameter_counts(fam.build()), runs=long_runs, seeds=[r["seed"] for r in long_runs],
                     complete=len(long_runs) == len(fam_seeds))
        if long_runs:
            paired = [s for s in entry["seeds"] if s in short_by_seed]
            tests = [r["test_loss"] for r in long_runs]
            curve = mean_select_curve(long_runs)
            short_curve = mean_select_curve([short_by_seed[s] for s in paired]) if paired else None
            entry.update(
                test_loss_per_seed=tests, test_loss=dict(zip(("mean", "std"), mean_std(tests))),
                tokens_trained=long_runs[0]["tokens_trained"],
                short={"seeds": paired, "tokens_trained": short[0]["tokens_trained"],
                       "test_loss_per_seed": [short_by_seed[s]["test_loss"] for s in paired],
                       "tail_drop": tail_drop(short_curve) if short_curve else None},
                gain=paired_delta([short_by_seed[s]["test_loss"] for s in paired],
                                  [r["test_loss"] for r in long_runs if r["seed"] in short_by_seed])
                if len(paired) >= 2 else None,
                curve={"step": [h["step"] for h in long_runs[0]["history"]],
                       "tokens": [h["tokens"] for h in long_runs[0]["history"]], "select_loss_mean": curve},
                tail_drop=tail_drop(curve))
        per_family[name] = entry

    def by_seed(entry, which="long"):
        if not entry.get("runs"):
            return {}
        if which == "long":
            return dict(zip(entry["seeds"], entry["test_loss_per_seed"]))
        return dict(zip(entry["short"]["seeds"], entry["short"]["test_loss_per_seed"]))

    comparisons, gap_change = pairwise_deltas({n: by_seed(e) for n, e in per_family.items()}), {}
    if "dense" in per_family:
        ld, sd = by_seed(per_family["dense"]), by_seed(per_family["dense"], "short")
        for name, entry in per_family.items():
            if name == "dense" or not entry.get("runs"):
                continue
            lf, sf = by_seed(entry), by_seed(entry, "short")
            common = sorted(set(lf) & set(sf) & set(ld) & set(sd))
            if len(common) >= 2:
                gap_change[name] = paired_delta([lf[s] - sf[s] for s in common], [ld[s] - sd[s] for s in common])
    table = []
    for n, r in per_family.items():
        row = {"model": n, "lr": r["lr"], "seeds": len(r.get("runs", [])), "tokens_trained": r.get("tokens_trained"),
               "test_loss_mean": r.get("test_loss", {}).get("mean"), "test_loss_std": r.get("test_loss", {}).get("std"),
               "short_tokens_trained": (r.get("short") or {}).get("tokens_trained"),
               "gain_mean": (r.get("gain") or {}).get("mean"), "gain_se": (r.get("gain") or {}).get("se")}
        table.append(row)
        if progress and row["test_loss_mean"] is not None:
            gain = f" gain {row['gain_mean']:+.4f} ± {row['gain_se']:.4f}" if row["gain_mean"] is not None else ""
            print(f"{n:<20} lr {row['lr']:<7g} test {row['test_loss_mean']:.4f} ± {row['test_loss_std']:.4f} "
                  f"({row['seeds']} seeds, {row['tokens_trained']:,} chars){gain}")
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config.update(vocab_size=tok.vocab_size, lm_mode=lm_mode, lm_train=lm_spec["train"], lm_lrs=lm_spec["lrs"])
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"models": per_family, "comparisons": comparisons, "gap_change_vs_dense": gap_change,
                    "table": table}, table, store.skipped, t_start, device, store)
