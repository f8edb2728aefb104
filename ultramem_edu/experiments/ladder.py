"""Experiment ``ladder``: the ablation ladder PKM → UltraMem, one switch at a time (paper Table 2).

Each rung of :func:`~ultramem_edu.layer.ablation_ladder` is trained as a memory layer inside the same
tiny character-level LM (FFN hidden 4·D, not compute-matched: the point is the effect of each switch).
Three rungs are more than a layer-config change and are realised here:

* "half D_v, output projection" — the paper halves D_v *and doubles the values*: N goes from n² to
  n'² ≈ 2n² (both must be perfect squares; e.g. 60² → 85², ×2.007).
* "split layers + skip wiring" — one big memory of N values read and written in block 1 (a parallel
  branch, wiring ((1, 1),)) becomes two memories of ≈ N/2 values each (e.g. 2 × 60² ≈ 85²), wired
  skip-layer ((0, 1), (2, 3)). Each keeps H and m, so a token now reads twice as many rows.
* "value lr decay" — :class:`~ultramem_edu.train.TrainConfig` ``value_lr_k`` goes from 1 to k
  (the paper's text: 10; the released script: 4) for this and the later rungs.

Δ val loss per rung = loss(rung) − loss(previous rung), paired by seed, mean ± std over seeds, next to
the paper's Table 2 deltas (151M model on C4, method.md §3).
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ..layer import ablation_ladder
from ..train import TrainConfig, config_dict, evaluate, train_lm
from .common import RunStore, build_lm, kjv_tokens, mean_std, model_parameter_counts, publish, resolve_spec

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

FULL = dict(
    note='full mode sized for 2 CPU cores: 3 seeds, 150 steps per rung',
    sizes=dict(d_model=64, n_layers=4, n_heads=4, seq_len=64),
    train=dict(steps=150, batch_size=16, seq_len=64, lr=3e-3, warmup_frac=0.02, eval_every=50, eval_batches=8),
    memory=dict(key_dim=16, num_heads=2, topm=8),
    side_pkm=60, side_half=85, side_split=60,
    single_wiring=((1, 1),), split_wiring=((0, 1), (2, 3)),
    final_eval_batches=32, seeds=(0, 1, 2),
)
QUICK = dict(
    sizes=dict(d_model=32, n_layers=4, n_heads=2, seq_len=32),
    train=dict(steps=12, batch_size=8, seq_len=32, lr=3e-3, warmup_frac=0.05, eval_every=6, eval_batches=2),
    memory=dict(key_dim=8, num_heads=2, topm=4),
    side_pkm=16, side_half=23, side_split=16,
    single_wiring=((1, 1),), split_wiring=((0, 1), (2, 3)),
    final_eval_batches=2, seeds=(0,),
)
FINAL_EVAL_SEED = 12345


def ladder_rungs(spec: dict, value_lr_k: float = 10.0, conv_kernel: int = 5) -> list[dict]:
    """One dict per rung: name, memory config, wiring, value_lr_k — the changes made explicit."""
    d, n_layers = spec["sizes"]["d_model"], spec["sizes"]["n_layers"]
    base = ablation_ladder(d, conv_kernel=conv_kernel, num_values=spec["side_pkm"] ** 2, num_layers=n_layers,
                           init_samples=1024, **spec["memory"])
    rungs, num_values, wiring, k = [], spec["side_pkm"] ** 2, spec["single_wiring"], 1.0
    for name, cfg in base:
        if name.startswith("half D_v"):
            num_values = spec["side_half"] ** 2          # half D_v, twice the values
        if name.startswith("split layers"):
            num_values, wiring = spec["side_split"] ** 2, spec["split_wiring"]
        if name.startswith("value lr decay"):
            k = float(value_lr_k)
        rungs.append({"name": name, "memory": dataclasses.replace(cfg, num_values=num_values),
                      "wiring": tuple(wiring), "value_lr_k": k})
    return rungs


def run_ladder(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
               checkpoints=None, progress: bool = True, value_lr_k: float = 10.0, conv_kernel: int = 5,
               rungs: int | None = None) -> dict:
    """Train every rung for every seed; write ``exp_ladder.json`` / ``.csv``; return the payload.

    ``value_lr_k``: the value-lr multiplier k of the "value lr decay" rung (paper text 10, code 4).
    ``rungs``: train only the first this many rungs (tests).
    """
    spec, note, seeds = resolve_spec(QUICK, FULL, quick, steps, seeds)
    mode = "quick" if quick else "full"
    tok, train_ids, val_ids = kjv_tokens()
    ladder = ladder_rungs(spec, value_lr_k, conv_kernel)[:rungs]
    store = RunStore(NAME, mode, checkpoints, resume)
    t_start = time.perf_counter()

    results = []
    for index, rung in enumerate(ladder):
        def build(rung=rung):
            return build_lm("dense", tok.vocab_size, spec["sizes"], memory=rung["memory"], wiring=rung["wiring"])
        runs = []
        for seed in seeds:
            def job(ckpt, build=build, seed=seed, rung=rung, index=index):
                torch.manual_seed(seed)
                model = build()
                tc = TrainConfig(seed=seed, value_lr_k=rung["value_lr_k"], checkpoint_path=ckpt,
                                 checkpoint_every=100, **spec["train"])
                res = train_lm(model, train_ids, val_ids, tc, progress=progress, description=f"rung {index} s{seed}")
                final = evaluate(model, val_ids, tc.batch_size, tc.seq_len, spec["final_eval_batches"], FINAL_EVAL_SEED)
                return {"seed": seed, "final_val_loss": final, "tokens_per_s": res.tokens_per_s,
                        "history": [{"step": h["step"], "val_loss": h["val_loss"]} for h in res.history]}
            runs.append(store.get_or_run(f"rung{index:02d}_seed{seed}", job))
        torch.manual_seed(0)
        counts = model_parameter_counts(build())
        finals = [r["final_val_loss"] for r in runs]
        results.append({
            "rung": index, "name": rung["name"], "memory": rung["memory"], "wiring": rung["wiring"],
            "value_lr_k": rung["value_lr_k"], "params": counts,
            "val_loss": dict(zip(("mean", "std"), mean_std(finals))), "val_loss_per_seed": finals,
            "tokens_per_s": mean_std([r["tokens_per_s"] for r in runs])[0], "runs": runs,
        })
    table = []
    for i, r in enumerate(results):
        if i == 0:
            deltas = [0.0] * len(seeds)
        else:
            deltas = [a - b for a, b in zip(r["val_loss_per_seed"], results[i - 1]["val_loss_per_seed"])]
        total = [a - b for a, b in zip(r["val_loss_per_seed"], results[0]["val_loss_per_seed"])]
        r["delta"] = dict(zip(("mean", "std"), mean_std(deltas)))
        r["delta_per_seed"] = deltas
        r["delta_from_pkm"] = dict(zip(("mean", "std"), mean_std(total)))
        r["paper_delta"] = PAPER_TABLE2["deltas"].get(r["name"])
        table.append({"rung": i, "name": r["name"], "val_loss_mean": r["val_loss"]["mean"],
                      "val_loss_std": r["val_loss"]["std"], "delta_mean": r["delta"]["mean"],
                      "delta_std": r["delta"]["std"], "paper_delta": r["paper_delta"],
                      "activated_params": r["params"]["activated"], "memory_params": r["params"]["memory_total"],
                      "tokens_per_s": r["tokens_per_s"]})
    if progress:
        for row in table:
            print(f"{row['rung']:>2} {row['name']:<36} {row['val_loss_mean']:.4f}  Δ {row['delta_mean']:+.4f} ± "
                  f"{row['delta_std']:.4f}  (paper {row['paper_delta']:+.3f})")
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["train"] = config_dict(TrainConfig(**spec["train"]))
    config.update(value_lr_k=value_lr_k, conv_kernel=conv_kernel, vocab_size=tok.vocab_size,
                  final_eval={"batches": spec["final_eval_batches"], "seed": FINAL_EVAL_SEED})
    return publish(NAME, out, mode, seeds, config, note,
                   {"rungs": results, "table": table, "paper_table2": PAPER_TABLE2}, table, store.skipped, t_start)
