"""Experiment ``lm``: tiny character-level LMs on the KJV corpus at matched activated compute.

Five models, all with the same attention stack:

* ``dense`` — the baseline, FFN hidden 4·D;
* ``dense_wide`` — a dense model with a 4× wider FFN (more parameters *and* more compute: a
  reference point, not compute-matched);
* ``moe`` — top-2 of 8 experts of hidden 2·D (activated FFN = one dense 4·D FFN);
* ``pkm`` — the dense model plus one PKM memory layer (:class:`~ultramem_edu.product_keys.PKMLayer`);
* ``ultramem`` — the dense model plus one UltraMem layer with the paper's defaults (E=4, r=2, h=2);
* ``ultramem_ln`` — the same with ``init_score_scale="layernorm"`` (LN weights 1, the 1/(2L)
  bookkeeping in the value std; see :mod:`ultramem_edu.init`).

The memory layers are wired skip-layer style with :func:`~ultramem_edu.model.default_wiring`, and the
memory models' FFN hidden width is reduced until their activated parameters per token (non-embedding;
every key scored counts, plus the H·m value rows read) match the dense baseline. PKM and UltraMem get
about the same number of value parameters: UltraMem has twice the values at half the width.
"""
from __future__ import annotations

import dataclasses

import time

import torch

from ..layer import UltraMemConfig
from ..model import default_wiring
from ..moe import MoEConfig
from ..product_keys import PKMConfig
from ..train import TrainConfig, config_dict, evaluate, train_lm
from .common import (RunStore, build_lm, kjv_tokens, match_ffn_hidden, mean_std, model_parameter_counts, publish,
                     resolve_spec)

NAME = "lm"
MODELS = ("dense", "dense_wide", "moe", "pkm", "ultramem", "ultramem_ln")

FULL = dict(
    note='full mode sized for 2 CPU cores: 3 seeds, 300 steps',
    sizes=dict(d_model=64, n_layers=4, n_heads=4, seq_len=64),
    train=dict(steps=300, batch_size=16, seq_len=64, lr=3e-3, warmup_frac=0.02, eval_every=50, eval_batches=8),
    ultramem=dict(num_values=96 * 96, key_dim=16, num_heads=2, topm=8),
    pkm=dict(num_keys=68, key_dim=16, num_heads=2, topm=8),
    n_memory_layers=1, n_experts=8, wide_factor=16, final_eval_batches=48, seeds=(0, 1, 2),
)
QUICK = dict(
    sizes=dict(d_model=32, n_layers=2, n_heads=2, seq_len=32),
    train=dict(steps=40, batch_size=8, seq_len=32, lr=3e-3, warmup_frac=0.05, eval_every=10, eval_batches=2),
    ultramem=dict(num_values=32 * 32, key_dim=8, num_heads=2, topm=4),
    pkm=dict(num_keys=23, key_dim=8, num_heads=2, topm=4),
    n_memory_layers=1, n_experts=4, wide_factor=16, final_eval_batches=4, seeds=(0,),
)
FINAL_EVAL_SEED = 12345


def model_builders(vocab_size: int, spec: dict) -> dict:
    """{name: (builder() -> TransformerLM, description, ffn_hidden)} with the memory models matched."""
    sizes = spec["sizes"]
    d, n_layers = sizes["d_model"], sizes["n_layers"]
    wiring = default_wiring(n_layers, spec["n_memory_layers"])
    um = UltraMemConfig(d, num_layers=n_layers, init_samples=1024, **spec["ultramem"])
    pkm = PKMConfig(d, **spec["pkm"])
    dense_build = lambda: build_lm("dense", vocab_size, sizes)  # noqa: E731
    target = model_parameter_counts(dense_build())["activated"]

    def matched(memory):
        build = lambda h: build_lm("dense", vocab_size, sizes, memory=memory, wiring=wiring, ffn_hidden=h)  # noqa: E731
        h = match_ffn_hidden(build, target, start=4 * d)
        return (lambda: build(h)), h

    um_build, um_h = matched(um)
    um_ln = dataclasses.replace(um, init_score_scale="layernorm")
    um_ln_build, _ = matched(um_ln)
    pkm_build, pkm_h = matched(pkm)
    moe = MoEConfig(d, n_experts=spec["n_experts"], top_k=2)
    wide = spec["wide_factor"] * d
    return {
        "dense": (dense_build, f"dense, FFN hidden {4 * d}", 4 * d),
        "dense_wide": (lambda: build_lm("dense", vocab_size, sizes, ffn_hidden=wide),
                       f"dense, FFN hidden {wide} (more parameters and compute)", wide),
        "moe": (lambda: build_lm("moe", vocab_size, sizes, moe=moe),
                f"top-2 of {spec['n_experts']} experts, expert hidden {2 * d}", 2 * d),
        "pkm": (pkm_build, f"PKM ({pkm.num_values} values × {d}) wired {wiring}, FFN hidden {pkm_h}", pkm_h),
        "ultramem": (um_build, f"UltraMem ({um.num_values} values × {um.value_dim}, E={um.expansion}, "
                     f"r={um.tucker_rank}, h={um.num_cores}) wired {wiring}, FFN hidden {um_h}", um_h),
        "ultramem_ln": (um_ln_build, f"UltraMem as above, LayerNorm weights kept at 1 at init, FFN hidden {um_h}",
                        um_h),
    }


def run_lm(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
           checkpoints=None, progress: bool = True, models=None) -> dict:
    """Train every model for every seed; write ``exp_lm.json`` / ``.csv``; return the payload."""
    spec, note, seeds = resolve_spec(QUICK, FULL, quick, steps, seeds)
    models = tuple(models or MODELS)
    mode = "quick" if quick else "full"
    tok, train_ids, val_ids = kjv_tokens()
    builders = model_builders(tok.vocab_size, spec)
    store = RunStore(NAME, mode, checkpoints, resume)
    t_start = time.perf_counter()

    per_model = {}
    for name in models:
        build, description, ffn_hidden = builders[name]
        runs = []
        for seed in seeds:
            def job(ckpt, build=build, seed=seed, name=name):
                torch.manual_seed(seed)
                model = build()
                tc = TrainConfig(seed=seed, checkpoint_path=ckpt, checkpoint_every=100, **spec["train"])
                res = train_lm(model, train_ids, val_ids, tc, progress=progress, description=f"{name} s{seed}")
                final = evaluate(model, val_ids, tc.batch_size, tc.seq_len, spec["final_eval_batches"], FINAL_EVAL_SEED)
                return {"seed": seed, "history": res.history, "final_val_loss": final,
                        "last_eval_val_loss": res.final_val_loss, "tokens_per_s": res.tokens_per_s}
            runs.append(store.get_or_run(f"{name}_seed{seed}", job))
        counts = model_parameter_counts(build())
        finals = [r["final_val_loss"] for r in runs]
        tps = [r["tokens_per_s"] for r in runs]
        steps_axis = [h["step"] for h in runs[0]["history"]]
        curve_mean, curve_std = zip(*(mean_std([r["history"][i]["val_loss"] for r in runs]) for i in range(len(steps_axis))))
        per_model[name] = {
            "description": description, "ffn_hidden": ffn_hidden, "params": counts,
            "final_val_loss": dict(zip(("mean", "std"), mean_std(finals))), "final_val_loss_per_seed": finals,
            "tokens_per_s": dict(zip(("mean", "std"), mean_std(tps))),
            "curve": {"step": steps_axis, "val_loss_mean": list(curve_mean), "val_loss_std": list(curve_std)},
            "runs": runs,
        }
    if progress:
        print(f"{'model':<11} {'total':>9} {'activated':>9} {'memory':>8} {'val loss':>15} {'tok/s':>8}")
        for name, r in per_model.items():
            p = r["params"]
            print(f"{name:<11} {p['total']:>9,} {p['activated']:>9,} {p['memory_total']:>8,} "
                  f"{r['final_val_loss']['mean']:>7.4f} ± {r['final_val_loss']['std']:.4f} {r['tokens_per_s']['mean']:>8.0f}")
    table = [{
        "model": n, "total_params": r["params"]["total"], "non_embedding_params": r["params"]["non_embedding"],
        "activated_params": r["params"]["activated"], "memory_params": r["params"]["memory_total"],
        "ffn_hidden": r["ffn_hidden"], "val_loss_mean": r["final_val_loss"]["mean"],
        "val_loss_std": r["final_val_loss"]["std"], "tokens_per_s": r["tokens_per_s"]["mean"],
    } for n, r in per_model.items()]
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["train"] = config_dict(TrainConfig(**spec["train"]))
    config["memory_wiring"] = default_wiring(spec["sizes"]["n_layers"], spec["n_memory_layers"])
    config["vocab_size"] = tok.vocab_size
    config["final_eval"] = {"batches": spec["final_eval_batches"], "seed": FINAL_EVAL_SEED}
    return publish(NAME, out, mode, seeds, config, note, {"models": per_model, "table": table}, table,
                   store.skipped, t_start)
