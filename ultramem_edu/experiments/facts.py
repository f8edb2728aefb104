"""Experiment ``facts``: knowledge capacity — how many random facts each model stores.

Facts "subject relation → object" from :func:`~ultramem_edu.data.make_facts` (one uniformly random
object per (subject, relation) pair, so nothing can be inferred, only stored). A small
:class:`~ultramem_edu.model.TransformerLM` reads ``[s, r]`` and is trained with cross-entropy on the
object at the last position; afterwards :func:`~ultramem_edu.data.fact_recall_accuracy` measures
exact-match recall over *all* facts (memorisation, not generalisation). Facts stored = recall × F,
and each fact is log2(num_objects) bits.

Two curves, every model at the dense model's activated parameters per token (:mod:`.families`, each
family with its recipe, one learning rate, no weight decay — we want storage):

* recall against the number of facts F, for dense, MoE, PKM, UltraMem (several initialisations) and
  chapter 12's UltraMemV2, PEER and Memory+ (:mod:`.families_after`), the memories at ``num_values``
  values (UltraMem-equivalent: the others hold about as many value parameters);
* recall against the memory size N at F = ``sweep_subjects`` × relations (default the largest F), for PKM
  and UltraMem.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from ..data import FactsDataset, fact_recall_accuracy, make_facts
from .common import RunStore, mean_std, model_parameter_counts, publish
from .families import FamilyContext, make_family
from .specs import experiment_spec
from .trainer import make_optimizer

NAME = "facts"


def train_facts(model, facts, recipe: dict, steps: int, batch_size: int, seed: int, device: str = "cpu") -> dict:
    """AdamW with the family's recipe (no weight decay) on the facts; returns recall and final loss."""
    torch.manual_seed(seed)
    model.to(device)
    opt, sched = make_optimizer(model, recipe, steps, warmup_frac=0.02, weight_decay=0.0)
    data = FactsDataset(facts).batches(batch_size, torch.Generator().manual_seed(seed), steps)
    model.train()
    losses, t0 = [], time.perf_counter()
    for x, y in data:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = F.cross_entropy(out.logits[:, -1], y) + out.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    train_s = time.perf_counter() - t0
    model.eval()
    recall = fact_recall_accuracy(lambda x: model(x.to(device)).logits.cpu(), facts)
    tail = losses[-max(1, len(losses) // 10):]
    return {"recall": recall, "final_train_loss": sum(tail) / len(tail), "train_s": train_s, "examples_seen": steps * batch_size}


def run_facts(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
              checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
              overwrite: bool = False, shard=None, collect: bool = False, results_dir=None,
              num_subjects=None) -> dict:
    """Recall vs number of facts and vs memory size; write ``exp_facts.json`` / ``.csv``."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    if num_subjects is not None:
        spec["num_subjects"] = tuple(num_subjects)
    families = tuple(models or spec["families"])
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()
    rel, obj = spec["num_relations"], spec["num_objects"]
    recipe_lr = spec["lr"]

    def run_one(name, n_subj, num_values, seed, tag):
        facts = make_facts(n_subj, rel, obj, seed=seed)
        overrides = spec.get("family_model", {}).get(name, {})
        model_sizes = dict(spec["model"], **overrides)
        if overrides:                              # its own run files: the runs without the override stay as they were
            tag = tag.replace(name, name + "_" + "_".join(f"{k}{v}" for k, v in sorted(overrides.items())), 1)
        ctx = FamilyContext(vocab_size=facts.vocab_size, **model_sizes)
        fam = make_family(name, ctx, num_values if name not in ("dense", "moe") else None)
        recipe = dict(lr=recipe_lr, **fam.recipe)
        key = {"family": name, "description": fam.description, "recipe": recipe, "facts": [n_subj, rel, obj],
               "steps": spec["steps"], "batch_size": spec["batch_size"], "model": model_sizes, "seed": seed,
               "device": device.split(":")[0]}

        def job(ckpt):
            torch.manual_seed(seed)
            model = fam.build()
            res = train_facts(model, facts, recipe, spec["steps"], spec["batch_size"], seed, device)
            res.update(seed=seed, num_facts=n_subj * rel, facts_stored=res["recall"] * n_subj * rel,
                       params=model_parameter_counts(model), ffn_hidden=fam.ffn_hidden,
                       compute_matched=fam.compute_matched, description=fam.description)
            return res
        return store.get_or_run(f"{tag}_seed{seed}", job, key)

    def summary(runs):
        runs = [r for r in runs if r is not None]
        if not runs:
            return None
        rec = [r["recall"] for r in runs]
        return {"recall": dict(zip(("mean", "std"), mean_std(rec))), "recall_per_seed": rec,
                "facts_stored": mean_std([r["facts_stored"] for r in runs])[0], "params": runs[0]["params"],
                "ffn_hidden": runs[0]["ffn_hidden"], "compute_matched": runs[0]["compute_matched"],
                "description": runs[0]["description"], "seeds": [r["seed"] for r in runs],
                "final_train_loss": mean_std([r["final_train_loss"] for r in runs])[0]}

    rows, vs_facts = [], []
    for n_subj in spec["num_subjects"]:
        entry = {"num_subjects": n_subj, "num_facts": n_subj * rel, "bits": n_subj * rel * math.log2(obj), "models": {}}
        for name in spec.get("families_at", {}).get(n_subj, families):        # a declared cut at some counts
            if name not in families:
                continue
            s = summary([run_one(name, n_subj, spec["num_values"], seed, f"{name}_s{n_subj}") for seed in seeds])
            entry["models"][name] = s
            if s is not None:
                rows.append({"curve": "facts", "num_facts": entry["num_facts"], "model": name, "num_values":
                             spec["num_values"] if name not in ("dense", "moe") else None,
                             "recall_mean": s["recall"]["mean"], "recall_std": s["recall"]["std"],
                             "facts_stored": s["facts_stored"], "total_params": s["params"]["total"],
                             "activated_params": s["params"]["activated"]})
                if progress:
                    print(f"facts={entry['num_facts']:>6} {name:<20} recall {s['recall']['mean']:.3f} ± "
                          f"{s['recall']['std']:.3f}  params {s['params']['total']:,} (activated {s['params']['activated']:,})")
        vs_facts.append(entry)
    largest = spec.get("sweep_subjects", max(spec["num_subjects"]))   # the count the memory-size sweep stores
    vs_values = {}
    for name in spec["sweep_families"]:
        points = []
        for n in spec["values_sweep"]:
            tag = f"{name}_s{largest}" if n == spec["num_values"] else f"{name}_s{largest}_N{n}"   # reuse, not rerun
            s = summary([run_one(name, largest, n, seed, tag) for seed in seeds])
            points.append({"num_values": n, **(s or {})})
            if s is not None:
                rows.append({"curve": "values", "num_facts": largest * rel, "model": name, "num_values": n,
                             "recall_mean": s["recall"]["mean"], "recall_std": s["recall"]["std"],
                             "facts_stored": s["facts_stored"], "total_params": s["params"]["total"],
                             "activated_params": s["params"]["activated"]})
        vs_values[name] = points
    config = {k: v for k, v in spec.items() if k != "seeds"}
    return publish(NAME, out, mode, seeds, config, spec.get("note"),
                   {"results": vs_facts, "vs_num_values": vs_values, "table": rows}, rows, store.skipped, t_start,
                   device, store)
