"""Experiment ``facts``: knowledge capacity — recall of random facts vs how many there are.

Facts "subject relation → object" from :func:`~ultramem_edu.data.make_facts` (one uniformly random
object per (subject, relation) pair, so nothing can be inferred, only stored). A tiny
:class:`~ultramem_edu.model.TransformerLM` reads ``[s, r]`` and is trained with cross-entropy on the
object at the last position; afterwards :func:`~ultramem_edu.data.fact_recall_accuracy` measures
exact-match recall over *all* facts (the training set: this is memorisation, not generalisation).

Four models at the same activated compute per token: dense (FFN 4·D), top-2-of-8 MoE, and the dense
model with one UltraMem layer whose FFN is narrowed until the activated parameters match (see
:mod:`.lm`), with the paper's initialisation (``ultramem``) and with ``init_score_scale="layernorm"``
(``ultramem_ln``). Same steps, batch and learning rate for all; no weight decay (we want storage); the
UltraMem values get the paper's value-lr decay (k = 10). The number of facts grows with the number of
subjects; stored information is F·log2(num_objects) bits.
"""
from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from ..data import FactsDataset, fact_recall_accuracy, make_facts
from ..layer import UltraMemConfig, memory_param_groups, value_lr_scheduler
from ..model import default_wiring
from ..moe import MoEConfig
from ..train import cosine_with_warmup
from .common import (RunStore, build_lm, match_ffn_hidden, mean_std, model_parameter_counts, publish,
                     resolve_spec)

NAME = "facts"
MODELS = ("dense", "moe", "ultramem", "ultramem_ln")

FULL = dict(
    note='full mode sized for 2 CPU cores: 3 seeds, 3 fact counts, 600 steps',
    sizes=dict(d_model=32, n_layers=2, n_heads=2, seq_len=2),
    num_subjects=(32, 128, 512), num_relations=8, num_objects=32,
    train=dict(steps=600, batch_size=128, lr=3e-3, warmup_frac=0.02, weight_decay=0.0, value_lr_k=10.0),
    ultramem=dict(num_values=64 * 64, key_dim=8, num_heads=1, topm=8), n_experts=8, seeds=(0, 1, 2),
)
QUICK = dict(
    sizes=dict(d_model=32, n_layers=2, n_heads=2, seq_len=2),
    num_subjects=(16, 64), num_relations=4, num_objects=16,
    train=dict(steps=60, batch_size=64, lr=3e-3, warmup_frac=0.05, weight_decay=0.0, value_lr_k=10.0),
    ultramem=dict(num_values=16 * 16, key_dim=8, num_heads=1, topm=4), n_experts=4, seeds=(0,),
)


def model_builders(vocab_size: int, spec: dict) -> dict:
    sizes = spec["sizes"]
    d, n_layers = sizes["d_model"], sizes["n_layers"]
    wiring = default_wiring(n_layers, 1)
    um = UltraMemConfig(d, num_layers=n_layers, init_samples=512, **spec["ultramem"])
    target = model_parameter_counts(build_lm("dense", vocab_size, sizes))["activated"]
    build_um = lambda h: build_lm("dense", vocab_size, sizes, memory=um, wiring=wiring, ffn_hidden=h)  # noqa: E731
    h = match_ffn_hidden(build_um, target, start=4 * d)
    um_ln = dataclasses.replace(um, init_score_scale="layernorm")  # same sizes, so the same FFN width h
    moe = MoEConfig(d, n_experts=spec["n_experts"], top_k=2)
    return {
        "dense": lambda: build_lm("dense", vocab_size, sizes),
        "moe": lambda: build_lm("moe", vocab_size, sizes, moe=moe),
        "ultramem": lambda: build_um(h),
        "ultramem_ln": lambda: build_lm("dense", vocab_size, sizes, memory=um_ln, wiring=wiring, ffn_hidden=h),
    }


def train_facts(model, facts, steps: int, batch_size: int, lr: float, warmup_frac: float, weight_decay: float,
                value_lr_k: float, seed: int) -> dict:
    """AdamW on the facts (cross-entropy on the object at the last position); returns recall and loss."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(memory_param_groups(model, lr, weight_decay), lr=lr, betas=(0.9, 0.95))
    scheduler = value_lr_scheduler(optimizer, steps, k=value_lr_k, base=cosine_with_warmup(steps, warmup_frac))
    data = FactsDataset(facts).batches(batch_size, torch.Generator().manual_seed(seed), steps)
    model.train()
    losses, t0 = [], time.perf_counter()
    for x, y in data:
        out = model(x)
        loss = F.cross_entropy(out.logits[:, -1], y) + out.aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    model.eval()
    recall = fact_recall_accuracy(lambda x: model(x).logits, facts)
    tail = losses[-max(1, len(losses) // 10):]
    return {"recall": recall, "final_train_loss": sum(tail) / len(tail), "train_s": train_s,
            "examples_seen": steps * batch_size}


def run_facts(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
              checkpoints=None, progress: bool = True, num_subjects=None, models=None) -> dict:
    """Recall vs number of facts for each model; write ``exp_facts.json`` / ``.csv``."""
    spec, note, seeds = resolve_spec(QUICK, FULL, quick, steps, seeds)
    if num_subjects is not None:
        spec["num_subjects"] = tuple(num_subjects)
    models = tuple(models or MODELS)
    mode = "quick" if quick else "full"
    store = RunStore(NAME, mode, checkpoints, resume)
    t_start = time.perf_counter()

    rows, per_size = [], []
    for n_subj in spec["num_subjects"]:
        entry = {"num_subjects": n_subj, "num_facts": n_subj * spec["num_relations"],
                 "bits": n_subj * spec["num_relations"] * math.log2(spec["num_objects"]), "models": {}}
        for name in models:
            runs = []
            for seed in seeds:
                facts = make_facts(n_subj, spec["num_relations"], spec["num_objects"], seed=seed)

                def job(ckpt, name=name, seed=seed, facts=facts):
                    builders = model_builders(facts.vocab_size, spec)
                    torch.manual_seed(seed)
                    model = builders[name]()
                    res = train_facts(model, facts, seed=seed, **spec["train"])
                    res.update(seed=seed, params=model_parameter_counts(model))
                    return res
                runs.append(store.get_or_run(f"{name}_s{n_subj}_seed{seed}", job))
            recall = mean_std([r["recall"] for r in runs])
            entry["models"][name] = {"recall": dict(zip(("mean", "std"), recall)),
                                     "recall_per_seed": [r["recall"] for r in runs],
                                     "params": runs[0]["params"],
                                     "final_train_loss": mean_std([r["final_train_loss"] for r in runs])[0],
                                     "train_s": mean_std([r["train_s"] for r in runs])[0]}
            rows.append({"num_facts": entry["num_facts"], "model": name, "recall_mean": recall[0], "recall_std": recall[1],
                         "total_params": runs[0]["params"]["total"], "activated_params": runs[0]["params"]["activated"]})
            if progress:
                print(f"facts={entry['num_facts']:>5} {name:<9} recall {recall[0]:.3f} ± {recall[1]:.3f}  "
                      f"params {runs[0]['params']['total']:,} (activated {runs[0]['params']['activated']:,})")
        per_size.append(entry)
    config = {k: v for k, v in spec.items() if k != "seeds"}
    return publish(NAME, out, mode, seeds, config, note, {"results": per_size, "table": rows}, rows,
                   store.skipped, t_start)
