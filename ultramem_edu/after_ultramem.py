"""Chapter 12's models at matched activated compute, and a small preliminary comparison.

The comparison uses chapter 11's ``lm`` setting (character-level KJV, D = 64, 4 blocks, 300 steps of
16 × 64 tokens, AdamW 3e-3, constant value learning rate) and adds the three designs of chapter 12
beside chapter 11's dense, MoE and UltraMem models. Every memory model gets about the same number of
*sparse* parameters (≈ 0.3 M value-table entries) and has its FFN narrowed until its activated
parameters per token (non-embedding; every scored key counts, plus the rows read) match the dense
baseline:

* ``ultramem`` — one skip-layer UltraMem (E = 4, r = 2, h = 2), LayerNorm weights 1 at init
  (chapter 11's ``ultramem_ln``);
* ``ultramem_v2`` — UltraMemV2 in every block, one shared pool of 4 × 34² rows (D_v = D_pre = 32),
  windows of half the pool, H = 1, m = 16;
* ``peer`` — one skip-layer PEER layer of 48² single-neuron experts, 4 heads × top-8;
* ``memory_plus`` — Memory+ in blocks 1 and 2, sharing one 68² × 64 table, 2 heads × top-8.

:func:`model_builders` is what a harness needs (name → builder at the dense model's activated
compute); :func:`run_comparison` trains them over seeds and writes ``figures/exp_after_ultramem.json``.
Run it as ``python -m ultramem_edu.after_ultramem [--quick]``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from .data import CharTokenizer, load_corpus, split_corpus
from .layer import UltraMemConfig
from .memory_plus import MemoryPlusConfig
from .model import LMConfig, TransformerLM, default_wiring
from .moe import MoEConfig, activated_parameters_per_token, num_parameters
from .peer import PEERConfig
from .provenance import git_commit
from .train import TrainConfig, config_dict, evaluate, train_lm
from .v2 import UltraMemV2Config

__all__ = ["SPEC", "QUICK_SPEC", "model_builders", "parameter_counts", "match_activated", "run_comparison",
           "resolved_difference", "MODELS"]

MODELS = ("dense", "ultramem_v2", "peer", "memory_plus", "moe", "ultramem")
SPEC = dict(
    sizes=dict(d_model=64, n_layers=4, n_heads=4, seq_len=64),
    train=dict(steps=300, batch_size=16, seq_len=64, lr=3e-3, warmup_frac=0.02, eval_every=50, eval_batches=8),
    ultramem=dict(num_values=96 * 96, key_dim=16, num_heads=2, topm=8, init_score_scale="layernorm"),
    ultramem_v2=dict(values_per_layer=34 * 34, value_dim=32, pre_value_dim=32, key_dim=16, num_heads=1, topm=16),
    peer=dict(num_experts=48 * 48, key_dim=16, num_heads=4, topk=8),
    memory_plus=dict(num_values=68 * 68, key_dim=16, num_heads=2, topm=8),
    memory_plus_wiring=((1, 1), (2, 2)),
    n_experts=8, final_eval_batches=48, final_eval_seed=12345, seeds=(0, 1),
)
QUICK_SPEC = dict(
    SPEC,
    sizes=dict(d_model=32, n_layers=2, n_heads=2, seq_len=32),
    train=dict(steps=30, batch_size=8, seq_len=32, lr=3e-3, warmup_frac=0.05, eval_every=10, eval_batches=2),
    ultramem=dict(num_values=32 * 32, key_dim=8, num_heads=2, topm=4, init_score_scale="layernorm"),
    ultramem_v2=dict(values_per_layer=16 * 16, value_dim=16, pre_value_dim=16, key_dim=8, num_heads=1, topm=8),
    peer=dict(num_experts=16 * 16, key_dim=8, num_heads=2, topk=4),
    memory_plus=dict(num_values=20 * 20, key_dim=8, num_heads=2, topm=4),
    memory_plus_wiring=((0, 0), (1, 1)),
    n_experts=4, final_eval_batches=4, seeds=(0,),
)


def parameter_counts(model: TransformerLM) -> dict:
    """Total, activated-per-token (non-embedding) and memory parameters, a shared pool counted once."""
    return {
        "total": num_parameters(model),
        "activated": activated_parameters_per_token(model, exclude_embeddings=True),
        "memory_total": num_parameters(model.memories),
        "memory_activated": sum(layer.activated_parameters_per_token() for layer in model.memories),
    }


def match_activated(build: Callable[[int], TransformerLM], target: int, start: int, multiple: int = 4) -> int:
    """The largest FFN hidden width h ≤ start (a multiple of ``multiple``) whose model's activated
    parameters do not exceed ``target`` — activated counts grow linearly in h, so two probes suffice."""
    a0 = parameter_counts(build(start))["activated"]
    a1 = parameter_counts(build(start - multiple))["activated"]
    per_unit = (a0 - a1) / multiple
    h = start - math.ceil((a0 - target) / per_unit / multiple) * multiple
    if h < multiple:
        raise ValueError(f"the memory alone exceeds the activated budget {target}: FFN hidden would be {h}")
    return min(start, h)


def model_builders(vocab_size: int, spec: dict = SPEC, target: int | None = None
                   ) -> dict[str, tuple[Callable[[], TransformerLM], str]]:
    """name → (builder, description): dense, MoE and the memory models, each memory model with its FFN
    hidden width narrowed until its activated parameters per token (non-embedding) reach ``target``
    (default: the dense model's) from below, the FFN never wider than the dense 4·D."""
    s = spec["sizes"]
    d, L = s["d_model"], s["n_layers"]

    def lm(ffn_hidden=None, memory=None, wiring=(), ffn="dense", moe=None):
        return TransformerLM(LMConfig(vocab_size=vocab_size, d_model=d, n_layers=L, n_heads=s["n_heads"],
                                      seq_len=s["seq_len"], ffn=ffn, ffn_hidden=ffn_hidden, moe=moe,
                                      memory=memory, memory_wiring=tuple(wiring)))

    if target is None:
        target = parameter_counts(lm())["activated"]
    builders = {
        "dense": (lambda: lm(), f"dense, FFN hidden {4 * d}"),
        "moe": (lambda: lm(ffn="moe", moe=MoEConfig(d, n_experts=spec["n_experts"], top_k=2)),
                f"top-2 of {spec['n_experts']} experts of hidden {2 * d} in every block"),
    }
    memories = {
        "ultramem": (UltraMemConfig(d, num_layers=L, init_samples=1024, **spec["ultramem"]), default_wiring(L, 1)),
        "ultramem_v2": (UltraMemV2Config(d, num_layers=L, init_samples=1024, **spec["ultramem_v2"]),
                        default_wiring(L, L)),
        "peer": (PEERConfig(d, **spec["peer"]), default_wiring(L, 1)),
        "memory_plus": (MemoryPlusConfig(d, **spec["memory_plus"]), spec["memory_plus_wiring"]),
    }
    for name, (memory, wiring) in memories.items():
        h = match_activated(lambda h, m=memory, w=wiring: lm(h, m, w), target, start=4 * d)
        builders[name] = ((lambda h=h, m=memory, w=wiring: lm(h, m, w)),
                          f"{type(memory).__name__} wired {tuple(wiring)}, FFN hidden {h}")
    return builders


def resolved_difference(a: list[float], b: list[float]) -> bool:
    """True when the 95 % paired t-interval of a − b (run i of each shares seed i) excludes zero
    (:func:`ultramem_edu.experiments.stats.paired_t`); False with fewer than two seeds."""
    from .experiments.stats import paired_t

    if len(a) < 2 or len(a) != len(b):
        return False
    return paired_t(a, b)["resolved"]


def run_comparison(quick: bool = False, out: str | Path = "figures", models=MODELS, seeds=None,
                   progress: bool = True) -> dict:
    """Train ``models`` over ``seeds``; write ``<out>/exp_after_ultramem.json`` and return it."""
    spec = QUICK_SPEC if quick else SPEC
    seeds = tuple(spec["seeds"] if seeds is None else seeds)
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"models must be among {list(MODELS)}, got {sorted(unknown)}")
    train_text, val_text = split_corpus(load_corpus("kjv"))
    tok = CharTokenizer.from_text(train_text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    builders = model_builders(tok.vocab_size, spec)
    t_start = time.perf_counter()
    train = config_dict(TrainConfig(**spec["train"]))
    payload = {
        "experiment": "after_ultramem",
        "status": "preliminary: small budget, CPU, few seeds",
        "mode": "quick" if quick else "full",
        "complete": False,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "command": "python -m ultramem_edu.after_ultramem" + (" --quick" if quick else ""),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "threads": torch.get_num_threads()},
        "seeds": list(seeds),
        "tokens_per_run": train["steps"] * train["batch_size"] * train["seq_len"],
        "config": {"spec": json.loads(json.dumps(spec, default=list)), "train": train,
                   "vocab_size": tok.vocab_size, "corpus": "kjv (ultramem_edu.data), character level"},
        "resolution_rule": "a difference is called only when the seed ranges do not overlap and the gap "
                           "exceeds twice its standard error",
        "models": {},
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = payload["models"]
    for name in models:
        build, description = builders[name]
        runs = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = build()
            tc = TrainConfig(seed=seed, **spec["train"])
            t0 = time.perf_counter()
            res = train_lm(model, train_ids, val_ids, tc, progress=progress, description=f"{name} s{seed}")
            final = evaluate(model, val_ids, tc.batch_size, tc.seq_len, spec["final_eval_batches"],
                             spec["final_eval_seed"])
            runs.append({"seed": seed, "final_val_loss": final, "history": res.history,
                         "tokens_per_s": res.tokens_per_s, "wall_s": round(time.perf_counter() - t0, 1)})
        finals = [r["final_val_loss"] for r in runs]
        mean = sum(finals) / len(finals)
        std = math.sqrt(sum((f - mean) ** 2 for f in finals) / (len(finals) - 1)) if len(finals) > 1 else 0.0
        results[name] = {"description": description, "params": parameter_counts(build()),
                         "final_val_loss": {"mean": mean, "std": std, "per_seed": finals}, "runs": runs}
        if progress:
            print(f"{name:<12} activated {results[name]['params']['activated']:>8,} total "
                  f"{results[name]['params']['total']:>8,}  val {mean:.4f} ± {std:.4f}")
        if "dense" in results:
            base = results["dense"]["final_val_loss"]["per_seed"]
            for r in results.values():
                r["resolved_vs_dense"] = resolved_difference(r["final_val_loss"]["per_seed"], base)
        payload["complete"] = len(results) == len(models)
        payload["wall_s"] = round(time.perf_counter() - t_start, 1)
        (out / "exp_after_ultramem.json").write_text(json.dumps(payload, indent=1) + "\n")  # after every model
    return payload


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 30 steps, one seed (a smoke run)")
    parser.add_argument("--out", default="figures")
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--seeds", nargs="*", type=int, default=None)
    args = parser.parse_args(argv)
    run_comparison(args.quick, args.out, tuple(args.models), args.seeds)


if __name__ == "__main__":
    main()
