"""Experiment ``dynamics`` (superseded by :mod:`.topology`, kept because ``figures/exp_dynamics.json``
and the chapter-11 exercises read it): what happens inside the memory layer while a tiny LM trains
for 300 steps, with ``value_lr_k`` = 1 for every run.

Five runs of the ``lm`` experiment's model (FFN 4·D, one memory layer wired by
:func:`~ultramem_edu.model.default_wiring`), each recording its memory layer on every training
forward pass through a forward hook (evaluation passes are ignored):

* ``ultramem`` — UltraMem with the paper's aux loss (α = 0.001, τ = 0.15) and improved init;
* ``ultramem_noaux`` — the same without the aux loss (α = 0; the released code and UltraMemV2);
* ``ultramem_aux_strong`` — α = 0.1, strong enough to move a tiny model's core;
* ``ultramem_naive_init`` — improved_init=False (values N(0, 1/D_v), default Linear init, LN weights 1);
* ``ultramem_ln_init`` — improved_init with init_score_scale="layernorm" (LN weights 1, the 1/(2L)
  bookkeeping in the value std);
* ``pkm`` — :class:`~ultramem_edu.product_keys.PKMLayer`.

Recorded every ``record_every`` steps: the singular values of each head's summed Tucker core and of
every individual core (UltraMem), the mean of the selected scores (``MemoryOutput.scores``, summed
over the h cores for UltraMem) and the std of the memory output. At initialisation and after training,
on fixed validation tokens: value usage (fraction of *physical* values read at least once, usage
entropy / log N) and top-m diversity on the address grid (:func:`~ultramem_edu.diagnostics.topm_diversity`:
distinct rows / columns per head, mean Jaccard overlap between tokens, on a subset of tokens).
Runs are resumable at run granularity (a finished run is skipped with ``resume``; an interrupted one
restarts, since the hook's records live in memory).
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch

from ..data import batches
from ..diagnostics import topm_diversity
from ..layer import UltraMemConfig, UltraMemLayer
from ..model import default_wiring
from ..product_keys import PKMConfig
from ..train import TrainConfig, config_dict, train_lm
from .common import RunStore, build_lm, kjv_tokens, publish

# The model of the earlier ``lm`` experiment this one recorded (kept so exp_dynamics.json reproduces).
LM_FULL = dict(
    sizes=dict(d_model=64, n_layers=4, n_heads=4, seq_len=64),
    train=dict(steps=300, batch_size=16, seq_len=64, lr=3e-3, warmup_frac=0.02, eval_every=50, eval_batches=8),
    ultramem=dict(num_values=96 * 96, key_dim=16, num_heads=2, topm=8),
    pkm=dict(num_keys=68, key_dim=16, num_heads=2, topm=8),
    n_memory_layers=1, n_experts=8, wide_factor=16, final_eval_batches=48, seeds=(0, 1, 2),
)
LM_QUICK = dict(
    sizes=dict(d_model=32, n_layers=2, n_heads=2, seq_len=32),
    train=dict(steps=40, batch_size=8, seq_len=32, lr=3e-3, warmup_frac=0.05, eval_every=10, eval_batches=2),
    ultramem=dict(num_values=32 * 32, key_dim=8, num_heads=2, topm=4),
    pkm=dict(num_keys=23, key_dim=8, num_heads=2, topm=4),
    n_memory_layers=1, n_experts=4, wide_factor=16, final_eval_batches=4, seeds=(0,),
)

NAME = "dynamics"
RUNS = ("ultramem", "ultramem_noaux", "ultramem_aux_strong", "ultramem_naive_init", "ultramem_ln_init", "pkm")

FULL = dict(lm=LM_FULL, steps=300, record_every=5, val_batches=8, jaccard_tokens=256, strong_alpha=0.1, seeds=(0,))
QUICK = dict(lm=LM_QUICK, steps=30, record_every=2, val_batches=2, jaccard_tokens=64, strong_alpha=0.1, seeds=(0,))


def memory_configs(spec: dict) -> dict:
    lm = spec["lm"]
    d, n_layers = lm["sizes"]["d_model"], lm["sizes"]["n_layers"]
    um = UltraMemConfig(d, num_layers=n_layers, init_samples=1024, **lm["ultramem"])
    return {
        "ultramem": um,
        "ultramem_noaux": dataclasses.replace(um, aux_alpha=0.0),
        "ultramem_aux_strong": dataclasses.replace(um, aux_alpha=spec["strong_alpha"]),
        "ultramem_naive_init": dataclasses.replace(um, improved_init=False),
        "ultramem_ln_init": dataclasses.replace(um, init_score_scale="layernorm"),
        "pkm": PKMConfig(d, **lm["pkm"]),
    }


class MemoryRecorder:
    """Forward hook: every ``every``-th training call, record the memory layer's statistics."""

    def __init__(self, every: int):
        self.every, self.calls = every, 0
        self.records: dict[str, list] = {"step": [], "score_mean": [], "score_std": [], "output_std": [],
                                         "summed_sv": [], "core_sv": []}

    def __call__(self, module, inputs, out) -> None:
        if not module.training:
            return
        step, self.calls = self.calls, self.calls + 1
        if step % self.every:
            return
        with torch.no_grad():
            r = self.records
            r["step"].append(step)
            r["score_mean"].append(float(out.scores.float().mean()))
            r["score_std"].append(float(out.scores.float().std()))
            r["output_std"].append(float(out.output.float().std()))
            if out.singular_values is not None:
                r["summed_sv"].append(out.singular_values.tolist())                    # (H, r)
                r["core_sv"].append(torch.linalg.svdvals(module.tucker_cores.detach()).tolist())  # (H, h, r)


@torch.no_grad()
def value_usage(model, val_ids: torch.Tensor, spec: dict, seed: int = 777) -> dict:
    """Usage and top-m diversity of the first memory layer on fixed validation windows."""
    lm = spec["lm"]
    was = model.training
    model.eval()
    layer = model.memories[0]
    grid, physical = [], []
    for x, _ in batches(val_ids, lm["train"]["batch_size"], lm["train"]["seq_len"], torch.Generator().manual_seed(seed),
                        spec["val_batches"]):
        idx = model(x, return_memory=True).memory[0].indices                     # (B, T, H, m)
        idx = idx.reshape(-1, *idx.shape[-2:])                                   # (Q, H, m)
        grid.append(idx)
        if isinstance(layer, UltraMemLayer) and layer.shuffle is not None:
            physical.append(layer.shuffle[idx] % layer.config.num_values)        # IVE: virtual → physical row
        else:
            physical.append(idx)
    model.train(was)
    grid, physical = torch.cat(grid), torch.cat(physical)
    if isinstance(layer, UltraMemLayer):
        n_side, num_values = layer.config.keys_per_side, layer.config.num_values
    else:
        n_side, num_values = layer.config.num_keys, layer.config.num_values
    usage = torch.bincount(physical.flatten(), minlength=num_values).double()
    p = usage[usage > 0] / usage.sum()
    entropy = float(-(p * p.log()).sum())
    div = topm_diversity(grid[: spec["jaccard_tokens"]], n_side)
    grid_usage = torch.bincount(grid.flatten(), minlength=n_side * n_side)
    return {
        "tokens": grid.shape[0], "reads": int(usage.sum()), "num_values": num_values, "grid_side": n_side,
        "fraction_values_used": float((usage > 0).double().mean()),
        "usage_entropy_normalised": entropy / math.log(num_values),
        "fraction_grid_used": float((grid_usage > 0).double().mean()),
        "distinct_rows_per_head": float(div.distinct_rows.double().mean()),
        "distinct_cols_per_head": float(div.distinct_cols.double().mean()),
        "topm": div.topm,
        "mean_jaccard": div.mean_jaccard,
        "jaccard_tokens": min(spec["jaccard_tokens"], grid.shape[0]),
    }


def run_dynamics(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
                 checkpoints=None, progress: bool = True, runs=None) -> dict:
    """The five recorded runs; write ``exp_dynamics.json`` (+ a CSV of the usage table)."""
    spec = dict(QUICK if quick else FULL)
    spec["lm"] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in spec["lm"].items()}
    if steps is not None:
        spec["steps"] = steps
    seeds = tuple(seeds if seeds is not None else spec["seeds"])
    names = tuple(runs or RUNS)
    mode = "quick" if quick else "full"
    tok, train_ids, val_ids = kjv_tokens()
    lm = spec["lm"]
    n_layers = lm["sizes"]["n_layers"]
    wiring = default_wiring(n_layers, lm["n_memory_layers"])
    configs = memory_configs(spec)
    train = dict(lm["train"], steps=spec["steps"])
    train["eval_every"] = max(1, min(train["eval_every"], spec["steps"]))
    store = RunStore(NAME, mode, checkpoints, resume)
    t_start = time.perf_counter()

    results = {}
    for name in names:
        per_seed = []
        for seed in seeds:
            def job(ckpt, name=name, seed=seed):
                torch.manual_seed(seed)
                model = build_lm("dense", tok.vocab_size, lm["sizes"], memory=configs[name], wiring=wiring)
                at_init = value_usage(model, val_ids, spec)
                recorder = MemoryRecorder(spec["record_every"])
                handle = model.memories[0].register_forward_hook(recorder)
                tc = TrainConfig(seed=seed, **train)            # no checkpoint: the hook's records are in memory
                res = train_lm(model, train_ids, val_ids, tc, progress=progress, description=f"{name} s{seed}")
                handle.remove()
                return {"seed": seed, "records": recorder.records, "usage_init": at_init,
                        "usage_trained": value_usage(model, val_ids, spec), "final_val_loss": res.final_val_loss,
                        "history": [{"step": h["step"], "val_loss": h["val_loss"]} for h in res.history]}
            per_seed.append(store.get_or_run(f"{name}_seed{seed}", job))
        results[name] = {"memory": configs[name], "runs": per_seed}
    table = []
    for name, r in results.items():
        for when in ("init", "trained"):
            u = r["runs"][0][f"usage_{when}"]
            table.append({"run": name, "when": when, "num_values": u["num_values"],
                          "fraction_values_used": u["fraction_values_used"],
                          "usage_entropy_normalised": u["usage_entropy_normalised"],
                          "distinct_rows_per_head": u["distinct_rows_per_head"],
                          "distinct_cols_per_head": u["distinct_cols_per_head"], "mean_jaccard": u["mean_jaccard"],
                          "final_val_loss": r["runs"][0]["final_val_loss"]})
            if progress:
                print(f"{name:<20} {when:<7} used {u['fraction_values_used']:.3f} entropy {u['usage_entropy_normalised']:.3f} "
                      f"rows {u['distinct_rows_per_head']:.2f} cols {u['distinct_cols_per_head']:.2f}")
    config = {"lm": {k: v for k, v in lm.items() if k != "seeds"}, "train": config_dict(TrainConfig(**train)),
              "memory_wiring": wiring, **{k: v for k, v in spec.items() if k not in ("lm", "seeds", "steps")}}
    return publish(NAME, out, mode, seeds, config, None, {"runs": results, "table": table}, table,
                   store.skipped, t_start)
