"""Experiment ``continual``: learning new facts without forgetting (chapter 14).

The protocol and the claims are :mod:`.preregistration_continual`'s; this module runs them with the
building blocks of :mod:`ultramem_edu.continual`. Per family and seed a model is pretrained on KJV
text mixed with the *old* facts (:func:`pretrain`, cached as a weights file beside the run files);
each finetuning method then teaches the *new* facts from those weights (:func:`finetune`) and records
a curve: new-fact recall, old-fact recall and held-out KJV loss against the finetuning step. The
learning rate of every (family, method) is chosen on the selection seeds; the reported seeds run at
the chosen rate; :func:`claim_table` gives the Holm-corrected verdicts.

Runs are named ``<family>_<method>_lr<lr>_seed<seed>``; each run file stores the pre-registration's
hash (``prereg_sha256``). For the chapter's figure the runs of the first reported seed also store, for
the first new fact, the slots its tokens read before and after finetuning, and every memory run the
rows of each value table that finetuning changed.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import continual as cl
from ..data import Facts, FactsDataset, batches, make_facts
from . import preregistration_continual as prereg
from . import stats
from .common import RunStore, kjv_splits, mean_std, model_parameter_counts, publish
from .report import Table
from .families import FamilyContext, make_family
from .specs import experiment_spec
from .trainer import make_optimizer

NAME = "continual"

__all__ = ["NAME", "run_continual", "split_facts", "pretrain", "finetune", "methods_for", "select_lr",
           "claim_table", "pareto_front", "run_name", "claims_report", "results_report",
           "old_recall_at"]


# ---------------------------------------------------------------------------------------- data
def split_facts(num_subjects: int, num_relations: int, num_objects: int, seed: int) -> tuple[Facts, Facts]:
    """(old, new): the facts of :func:`~ultramem_edu.data.make_facts` with their (subject, relation)
    pairs cut at random into two halves (the old half has the extra fact when F is odd); both share
    the token ranges, so every Facts holds the full vocabulary."""
    facts = make_facts(num_subjects, num_relations, num_objects, seed=seed)
    n = len(facts.triples)
    if n < 2:
        raise ValueError(f"num_subjects * num_relations must be >= 2 to split, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 7919))
    half = (n + 1) // 2
    old, new = torch.sort(perm[:half]).values, torch.sort(perm[half:]).values
    return (Facts(facts.triples[old], num_subjects, num_relations, num_objects),
            Facts(facts.triples[new], num_subjects, num_relations, num_objects))


def _facts_loss(model, x: torch.Tensor, y: torch.Tensor):
    out = model(x)
    return F.cross_entropy(out.logits[:, -1], y), out


def run_name(family: str, method: str, lr: float, seed: int) -> str:
    return f"{family}_{method}_lr{lr:g}_seed{seed}"


def methods_for(family: str) -> tuple[str, ...]:
    """The methods a family can run: a model without memory has no value table."""
    return ("full", "lora") if family not in prereg.MEMORY_FAMILIES else tuple(prereg.METHODS)


# ---------------------------------------------------------------------------------------- pretraining
def pretrain(model, text: torch.Tensor, old: Facts, offset: int, recipe: dict, pre: dict, seed: int) -> dict:
    """Train ``model`` on the mixture: per step a batch of KJV windows (``pre["text_batch"]`` ×
    ``pre["seq_len"]``) and a batch of old facts (``pre["facts_batch"]``), loss = text loss + facts
    loss + auxiliary loss. Returns the last tenth's mean losses."""
    torch.manual_seed(seed)
    steps = pre["steps"]
    opt, sched = make_optimizer(model, recipe, steps, warmup_frac=0.02)
    g_text, g_facts = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    text_batches = batches(text, pre["text_batch"], pre["seq_len"], g_text, steps)
    fact_batches = FactsDataset(old).batches(pre["facts_batch"], g_facts, steps)
    model.train()
    tail = []
    for step, ((x, y), (fx, fy)) in enumerate(zip(text_batches, fact_batches)):
        out = model(x, y)
        f_loss, f_out = _facts_loss(model, fx + offset, fy + offset)
        loss = out.loss + f_loss + f_out.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step >= steps - max(1, steps // 10):
            tail.append((out.lm_loss.item(), f_loss.item()))
    return {"text_loss": mean_std([a for a, _ in tail])[0], "facts_loss": mean_std([b for _, b in tail])[0]}


def background_frequency(model, text: torch.Tensor, old: Facts, offset: int, pre: dict, num_docs: int, seed: int):
    """df per value table: a document is one pretraining step's pair (KJV windows, old facts), drawn
    with a fixed seed; df(i) counts the documents that read slot i. Returns (dfs, num_docs)."""
    tables = cl.memory_tables(model)
    g_text, g_facts = torch.Generator().manual_seed(seed + 31), torch.Generator().manual_seed(seed + 37)
    dfs = [torch.zeros(t.num_slots, dtype=torch.int64) for t in tables]
    pairs = zip(batches(text, pre["text_batch"], pre["seq_len"], g_text, num_docs),
                FactsDataset(old).batches(pre["facts_batch"], g_facts, num_docs))
    for (x, _), (fx, _) in pairs:
        for df, c_text, c_facts in zip(dfs, cl.slot_access_counts(model, x, tables),
                                       cl.slot_access_counts(model, fx + offset, tables)):
            df += ((c_text + c_facts) > 0).long()
    return dfs, num_docs


# ---------------------------------------------------------------------------------------- finetuning
def _evaluate(model, old: Facts, new: Facts, offset: int, test: torch.Tensor, spec: dict) -> dict:
    return {"new_recall": cl.fact_recall(model, new, offset), "old_recall": cl.fact_recall(model, old, offset),
            "heldout_loss": cl.heldout_loss(model, test, spec["pretrain"]["seq_len"],
                                            max_windows=spec["heldout_windows"])}


@torch.no_grad()
def _fact_reads(model, fact: torch.Tensor, offset: int) -> list[list[list[int]]]:
    """The value-table rows each token of one fact's input [s, r] reads: per memory layer, per token,
    the rows of every head's top-m (flattened)."""
    out = model((fact[:2] + offset).unsqueeze(0), return_memory=True)
    return [cl.slot_rows(layer, m.indices)[0].reshape(2, -1).tolist() for layer, m in zip(model.memories, out.memory)]


def finetune(model, method: str, lr: float, old: Facts, new: Facts, offset: int, test: torch.Tensor, spec: dict,
             seed: int, background=None, record_reads: bool = False) -> dict:
    """Teach ``new`` to the pretrained ``model`` with ``method`` at learning rate ``lr``.

    Returns {"curve": [{"step", "new_recall", "old_recall", "heldout_loss"}...], "trainable": number of
    trainable parameters, "changed_rows": per value table the rows that differ after finetuning,
    "slots_trained": (sparse) distinct rows the masks opened, "reads": (``record_reads``) the first
    new fact's slot reads before and after}."""
    if method not in prereg.METHODS:
        raise ValueError(f"method must be one of {prereg.METHODS}, got {method!r}")
    ft = spec["finetune"]
    tables = cl.memory_tables(model) if len(model.memories) else []
    if method in ("values", "sparse") and not tables:
        raise ValueError(f"method {method!r} needs a model with memory layers")
    before = [t.params[0].detach().clone() for t in tables]
    reads_before = _fact_reads(model, new.triples[0], offset) if record_reads and tables else None
    if method == "full":
        params = cl.freeze_all_but(model, model.parameters())
    elif method == "lora":
        params = cl.apply_lora(model, rank=spec["lora_rank"], alpha=spec["lora_alpha"])
    else:
        params = cl.freeze_all_but(model, cl.value_table_parameters(model, tables))
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    model.eval()                             # no buffer moves; the same mode for every method
    curve = [dict(step=0, **_evaluate(model, old, new, offset, test, spec))]
    data = FactsDataset(new).batches(ft["batch_size"], torch.Generator().manual_seed(seed + 2), ft["steps"])
    opened = [torch.zeros(t.num_slots, dtype=torch.bool) for t in tables]
    for step, (x, y) in enumerate(data, 1):
        x, y = x + offset, y + offset
        if method == "sparse":
            dfs, num_docs = background
            res = cl.sparse_memory_finetune_step(model, opt, lambda out: F.cross_entropy(out.logits[:, -1], y), x,
                                                 dfs, num_docs, spec["top_t"], tables)
            for o, s in zip(opened, res["slots"]):
                o[s] = True
        else:
            loss, _ = _facts_loss(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if step % ft["eval_every"] == 0 or step == ft["steps"]:
            curve.append(dict(step=step, **_evaluate(model, old, new, offset, test, spec)))
    out = {"curve": curve, "trainable": sum(p.numel() for p in params),
           "changed_rows": [cl.changed_rows(b, t.params[0].detach()).tolist() for b, t in zip(before, tables)]}
    if method == "sparse":
        out["slots_trained"] = [int(o.sum()) for o in opened]
    if reads_before is not None:
        out["reads"] = {"fact": new.triples[0].tolist(), "before": reads_before,
                        "after": _fact_reads(model, new.triples[0], offset)}
    return out


# ---------------------------------------------------------------------------------------- statistics
def _end(run: dict) -> dict:
    first, last = run["curve"][0], run["curve"][-1]
    return {"learning": last["new_recall"], "forgetting": first["old_recall"] - last["old_recall"],
            "old_recall": last["old_recall"], "heldout_increase": last["heldout_loss"] - first["heldout_loss"]}


def select_lr(grid: dict) -> float | None:
    """The pre-registered choice: {lr: [runs on the selection seeds]} → the lr with the largest mean
    (new recall + old recall) at the last step, ties to the lower lr; None while a run is missing."""
    scores = {}
    for lr, runs in grid.items():
        if not runs or any(r is None for r in runs):
            return None
        scores[lr] = mean_std([r["curve"][-1]["new_recall"] + r["curve"][-1]["old_recall"] for r in runs])[0]
    best = max(scores.values())
    return min(lr for lr, s in scores.items() if s == best)


def claim_table(per_seed: dict, claims: dict | None = None, margin: float | None = None,
                alpha: float | None = None) -> dict:
    """The pre-registered claims from ``per_seed`` = {family: {method: {seed: {"learning", "forgetting"}}}}
    (the reported runs at the chosen rates). Each claim: Δ, its 95 % interval, p, the Holm-adjusted p and
    the verdict (``reproduced`` / ``not reproduced`` / ``unresolved`` with the seeds 80 % power needs);
    every claim is ``pending`` until all claims have their runs."""
    claims = prereg.CLAIMS if claims is None else claims
    margin = prereg.LEARNING_MARGIN if margin is None else margin
    alpha = prereg.ALPHA if alpha is None else alpha
    rows, pvalues = {}, {}
    for cid, c in claims.items():
        row = {"claim": c["paper"], "family": c["family"], "compared": f"{c['a']} − {c['b']}", "kind": c["kind"]}
        fam = per_seed.get(c["family"], {})
        a, b = fam.get(c["a"]), fam.get(c["b"])
        common = sorted(set(a or {}) & set(b or {}))
        if len(common) < 2:
            rows[cid] = dict(row, status="pending")
            continue
        if c["kind"] == "less":
            d = [a[s]["forgetting"] - b[s]["forgetting"] for s in common]
            test = stats.paired_t(d, None, alpha)
        elif c["kind"] == "noninferior":
            d = [b[s]["learning"] - a[s]["learning"] for s in common]
            test = stats.noninferiority(d, None, margin, alpha)
            row["margin"] = margin
        else:
            raise ValueError(f"claim {cid!r}: kind must be 'less' or 'noninferior', got {c['kind']!r}")
        row.update(delta=test["mean"], sd=test["sd"], ci95=test["ci"], p=test["p"], n=test["n"], seeds=common)
        rows[cid] = row
        pvalues[cid] = test["p"]
    return stats.holm_verdicts(rows, pvalues, len(claims), alpha)


def exploratory(per_seed: dict) -> dict:
    """Paired t-tests outside the claims: every pair of methods of a family on forgetting, learning and
    the held-out loss increase (labelled exploratory)."""
    out = {}
    for fam, methods in per_seed.items():
        names = list(methods)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                common = sorted(set(methods[a]) & set(methods[b]))
                if len(common) < 2:
                    continue
                for metric in ("forgetting", "learning", "heldout_increase"):
                    t = stats.paired_t([methods[a][s][metric] for s in common], [methods[b][s][metric] for s in common])
                    out[f"{fam}: {metric} {a} − {b}"] = {"delta": t["mean"], "ci95": t["ci"], "p": t["p"],
                                                         "n": t["n"], "label": "exploratory"}
    return out


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (learning, kept) not dominated by another (both at least as large, one
    larger), in increasing learning: the frontier of the learning–forgetting trade-off."""
    idx = []
    for i, (x, y) in enumerate(points):
        if not any((x2 >= x and y2 >= y) and (x2 > x or y2 > y) for x2, y2 in points):
            idx.append(i)
    return sorted(idx, key=lambda i: (points[i][0], -points[i][1]))


# ---------------------------------------------------------------------------------------- the experiment
def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def run_continual(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None, steps: int | None = None,
                  checkpoints=None, progress: bool = True, models=None, device: str = "cpu", scale: str | None = None,
                  overwrite: bool = False, shard=None, collect: bool = False, results_dir=None) -> dict:
    """Pretrain, select the rates on the selection seeds, finetune the reported seeds; write
    ``exp_continual.json``. The models are tiny: asked for a CUDA device, it trains its CPU sizes on the
    CPU all the same (scale ``full``, so a GPU suite reuses the CPU runs)."""
    from .common import resolve_device

    if resolve_device(device) != "cpu":
        scale, device = scale or "full", "cpu"
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    if "steps" in spec:                                          # --steps overrides the finetuning steps
        spec["finetune"]["steps"] = spec.pop("steps")
        spec["finetune"]["eval_every"] = min(spec["finetune"]["eval_every"], spec["finetune"]["steps"])
    if set(seeds) & set(spec["selection_seeds"]):
        raise ValueError(f"reported seeds {seeds} must not include the selection seeds {spec['selection_seeds']}")
    families = tuple(f for f in spec["families"] if not models or f in models)
    tok, train_ids, _, test_ids = kjv_splits()
    f_spec = spec["facts"]
    offset = tok.vocab_size
    vocab = offset + f_spec["num_subjects"] + f_spec["num_relations"] + f_spec["num_objects"]
    ctx = FamilyContext(vocab_size=vocab, **spec["model"])
    fams = {name: make_family(name, ctx, spec["num_values"] if name != "dense" else None) for name in families}
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    digest = prereg.prereg_hash()
    t_start = time.perf_counter()
    weights_dir = store.ckpt_root / "pretrained"
    weights_dir.mkdir(parents=True, exist_ok=True)
    cache: dict = {}

    def facts_of(seed):
        return split_facts(f_spec["num_subjects"], f_spec["num_relations"], f_spec["num_objects"], seed)

    def pretrained(name, seed):
        """The pretrained model of (family, seed): loaded from its weights file, or trained and saved."""
        fam = fams[name]
        path = weights_dir / f"{name}_seed{seed}.pt"
        torch.manual_seed(seed)
        model = fam.build()
        old, _ = facts_of(seed)
        if path.exists():
            model.load_state_dict(torch.load(path, weights_only=True))
            info = cache.get(path) or {"pretrain_loss": None}
        else:
            t0 = time.perf_counter()
            info = {"pretrain_loss": pretrain(model, train_ids, old, offset, dict(lr=spec["pretrain_lr"], **fam.recipe),
                                              spec["pretrain"], seed), "pretrain_s": time.perf_counter() - t0}
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(model.state_dict(), tmp)
            os.replace(tmp, path)
            cache[path] = info
        info = dict(info, weights_sha256=_sha(path))
        return model, info

    def run_at(name, method, lr, seed, record=False):
        fam = fams[name]
        key = {"family": name, "description": fam.description, "recipe": fam.recipe, "method": method, "lr": lr,
               "seed": seed, "model": spec["model"], "num_values": spec["num_values"], "facts": f_spec,
               "pretrain": spec["pretrain"], "pretrain_lr": spec["pretrain_lr"], "finetune": spec["finetune"],
               "top_t": spec["top_t"], "background_docs": spec["background_docs"], "lora": [spec["lora_rank"],
               spec["lora_alpha"]], "heldout_windows": spec["heldout_windows"], "record": record, "protocol": NAME}

        def job(_ckpt):
            model, info = pretrained(name, seed)
            old, new = facts_of(seed)
            background = None
            if method == "sparse":
                background = background_frequency(model, train_ids, old, offset, spec["pretrain"],
                                                  spec["background_docs"], seed)
            t0 = time.perf_counter()
            res = finetune(model, method, lr, old, new, offset, test_ids, spec, seed, background, record)
            res.update(family=name, method=method, lr=lr, seed=seed, prereg_sha256=digest,
                       finetune_s=time.perf_counter() - t0, threads=torch.get_num_threads(), **info)
            return res
        return store.get_or_run(run_name(name, method, lr, seed), job, key)

    entries, per_seed = {}, {}
    first = seeds[0] if seeds else None
    for name in families:                                        # selection first, for every family
        entries[name] = {"description": fams[name].description, "recipe": fams[name].recipe,
                         "params": model_parameter_counts(fams[name].build()), "methods": {}}
        for method in methods_for(name):
            grid = {lr: [run_at(name, method, lr, s) for s in spec["selection_seeds"]] for lr in spec["lrs"][method]}
            chosen = select_lr(grid)
            entries[name]["methods"][method] = {
                "selection": {f"{lr:g}": (None if any(r is None for r in runs) else mean_std(
                    [r["curve"][-1]["new_recall"] + r["curve"][-1]["old_recall"] for r in runs])[0])
                    for lr, runs in grid.items()},
                "lr": chosen}
    for name in families:
        per_seed[name] = {}
        for method in methods_for(name):
            e = entries[name]["methods"][method]
            if e["lr"] is None:
                store.missing.extend(f"{name}_{method}_lr(chosen)_seed{s}" for s in seeds)
                e.update(complete=False, seeds=[])
                continue
            runs = [run_at(name, method, e["lr"], s, record=(s == first)) for s in seeds]
            done = [r for r in runs if r is not None]
            ends = {r["seed"]: _end(r) for r in done}
            per_seed[name][method] = ends
            e.update(complete=len(done) == len(seeds), seeds=sorted(ends), per_seed=ends,
                     prereg_sha256=sorted({r.get("prereg_sha256") for r in done}),
                     finetune_s=mean_std([r["finetune_s"] for r in done])[0] if done else None,
                     trainable=done[0]["trainable"] if done else None,
                     curve_mean=_mean_curve(done) if done else None)
            if done and "slots_trained" in done[0]:
                e["slots_trained"] = mean_std([sum(r["slots_trained"]) for r in done])[0]
            if done:
                e["rows_changed"] = mean_std([sum(len(c) for c in r["changed_rows"]) for r in done])[0]
            rec = next((r for r in done if r["seed"] == first), None)
            if rec is not None:
                e["seed0"] = {k: rec[k] for k in ("curve", "changed_rows", "reads") if k in rec}
            for metric in ("learning", "forgetting", "heldout_increase"):
                if len(ends) >= 2:
                    mean, lo, hi = stats.t_interval([v[metric] for v in ends.values()])
                    e[metric] = {"mean": mean, "ci95": [lo, hi]}
                elif ends:
                    e[metric] = {"mean": next(iter(ends.values()))[metric], "ci95": None}
    claims = claim_table({f: {m: v for m, v in ms.items() if entries[f]["methods"][m].get("complete")}
                          for f, ms in per_seed.items()}, spec["claims"], spec["margin"], spec["alpha"])
    table = [{"family": f, "method": m, "lr": e["lr"], "seeds": len(e.get("seeds", [])),
              "learning": (e.get("learning") or {}).get("mean"), "forgetting": (e.get("forgetting") or {}).get("mean"),
              "heldout_increase": (e.get("heldout_increase") or {}).get("mean"), "trainable": e.get("trainable")}
             for f, ent in entries.items() for m, e in ent["methods"].items()]
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config["vocab_size"] = vocab
    results = {"models": entries, "claims": claims, "exploratory": exploratory(per_seed), "prereg_sha256": digest}
    return publish(NAME, out, mode, seeds, config, spec.get("note"), results, table, store.skipped, t_start,
                   device, store)


def _mean_curve(runs: list[dict]) -> dict:
    """The curves of several seeds averaged point by point (they share their steps)."""
    steps = [p["step"] for p in runs[0]["curve"]]
    return {"step": steps, **{k: [mean_std([r["curve"][i][k] for r in runs])[0] for i in range(len(steps))]
                              for k in ("new_recall", "old_recall", "heldout_loss")}}


# ---------------------------------------------------------------------------------------- tables for the chapter
_LABELS = {"full": "full finetuning", "lora": "LoRA", "values": "whole value table", "sparse": "sparse memory finetuning",
           "dense": "dense", "memory_plus": "Memory+", "ultramem_released": "UltraMem"}


def _p(p: float | None) -> str:
    return "—" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def claims_report(payload: dict) -> Table:
    """The pre-registered claims (a :class:`~.report.Table`: HTML in a notebook, ``to_markdown()``):
    claim · model · Δ [95 % CI] · p (Holm) · verdict."""
    rows = []
    for cid, c in payload["claims"].items():
        if "delta" in c:
            what = "forgetting, sparse − " + c["compared"].split(" − ")[1] if c["kind"] == "less" else \
                "learning, full − sparse"
            measured = f"{what}: {c['delta']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}], n = {c['n']}"
            if c["kind"] == "noninferior":
                measured += f"; margin {c['margin']:g}"
        else:
            measured = "runs not finished"
        verdict = c["status"]
        if verdict == "unresolved" and c.get("seeds_for_80_power"):
            verdict += f" (≈ {c['seeds_for_80_power']} seeds for 80 % power)"
        rows.append([c["claim"], _LABELS.get(c["family"], c["family"]), measured, _p(c.get("p_holm")), verdict])
    return Table(["the paper's claim", "model", "measured Δ [95 % CI]", "p, Holm-adjusted", "verdict"], rows,
                 "The pre-registered claims: paired over the reported seeds, Holm-corrected over all six")


def results_report(payload: dict) -> Table:
    """Per model and method at its chosen rate (a :class:`~.report.Table`): new-fact recall, forgetting of
    the old facts and the increase of the held-out KJV loss, each the mean over the reported seeds with
    its 95 % t-interval."""
    def cell(d):
        if not d:
            return "—"
        ci = d.get("ci95")
        return f"{d['mean']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
    rows = [[_LABELS.get(fam, fam), _LABELS[m], "—" if e.get("lr") is None else f"{e['lr']:g}",
             cell(e.get("learning")), cell(e.get("forgetting")), cell(e.get("heldout_increase"))]
            for fam, ent in payload["models"].items() for m, e in ent["methods"].items()]
    return Table(["model", "method", "lr", "learned (new-fact recall)", "forgot (old-fact recall lost)",
                  "held-out loss increase (nats)"], rows,
                 "At the end of finetuning: means over the reported seeds with 95 % t-intervals")


def old_recall_at(curve: dict, level: float) -> tuple[int, float] | None:
    """(step, old-fact recall) at the first evaluation of ``curve`` (a ``curve_mean``) whose new-fact
    recall reaches ``level``; None if it never does. Reads the trade-off at matched learning."""
    if not 0 <= level <= 1:
        raise ValueError(f"level must be a recall in [0, 1], got {level!r}")
    for step, new, old in zip(curve["step"], curve["new_recall"], curve["old_recall"]):
        if new >= level:
            return step, old
    return None
