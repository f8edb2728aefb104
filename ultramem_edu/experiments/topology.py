"""Experiment ``topology``: the auxiliary loss and the retrieval topology, after training.

Runs (one memory layer in the small LM, FFN 4·D, the family recipe's value lr, one lr):

* ``pkm`` — additive product keys (Lample et al.'s switches, :meth:`UltraMemConfig.pkm`);
* ``tdqkr`` — UltraMem with the paper's aux loss (α = 0.001, τ = 0.15);
* ``tdqkr_noaux`` — the same without it (α = 0: the released code, UltraMemV2);
* ``tdqkr_aux_strong`` — α = ``strong_alpha``, strong enough to move a small model's core;
* ``tdqkr_both_signs`` — stage 1 also searches the most negative rows × columns.

Recorded while training (every ``record_every`` steps): σ₁/σ₂ of each head's summed Tucker core.
Measured at initialisation and after training on ``probe_tokens`` held-out tokens:

* stage-1 recall — recall@m of the layer's selection against the brute-force top-m of the whole grid;
* distinct rows and columns per head among the m selected cells (the "cross" of the topology bias:
  an additive top-m concentrates on few rows and columns);
* value usage — the fraction of physical values read at least once;
* staircase violations — with rows and columns ranked by the stage-1 score (PKM: the row/column
  score; TDQKR: uᵀS_row, tᵀS_col), a selected cell violates the staircase when a cell that ranks at
  least as high on both axes is not selected. Additive scores never violate it (0 by construction);
  a selection that breaks it is no longer tied to the grid's rows and columns.

The paper claims TDQKR relieves PKM's topology bias; UltraMemV2 reports σ₁ > 4σ₂ without the aux loss.
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ..data import batches
from ..layer import UltraMemConfig, UltraMemLayer
from ..tdqkr import tucker_scores
from .common import RunStore, build_lm, kjv_splits, mean_std, publish
from .specs import experiment_spec
from .trainer import train_run

NAME = "topology"
RUNS = ("pkm", "tdqkr", "tdqkr_noaux", "tdqkr_aux_strong", "tdqkr_both_signs")


def memory_configs(spec: dict) -> dict:
    m = spec["model"]
    kw = dict(num_values=spec["num_values"], key_dim=m["key_dim"], num_heads=m["mem_heads"], topm=m["topm"],
              num_layers=m["n_layers"])
    um = UltraMemConfig(m["d_model"], init_samples=1024, **kw)
    return {
        "pkm": (UltraMemConfig.pkm(m["d_model"], **kw), {"value_lr": 1e-3}),
        "tdqkr": (um, {"value_lr_k": 10.0}),
        "tdqkr_noaux": (dataclasses.replace(um, aux_alpha=0.0), {"value_lr_k": 10.0}),
        "tdqkr_aux_strong": (dataclasses.replace(um, aux_alpha=spec["strong_alpha"]), {"value_lr_k": 10.0}),
        "tdqkr_both_signs": (dataclasses.replace(um, tdqkr_both_signs=True), {"value_lr_k": 10.0}),
    }


def staircase_violations(row_rank: torch.Tensor, col_rank: torch.Tensor) -> torch.Tensor:
    """Fraction of selected cells that break the staircase, per query: (..., m) ranks → (...,).

    A selected cell at ranks (a, b) (0 = best) is fine when all (a+1)(b+1) cells at ranks ≤ (a, b)
    are selected too; the selected cells are distinct, so it suffices to count them.
    """
    dominated = ((row_rank.unsqueeze(-1) <= row_rank.unsqueeze(-2)) &
                 (col_rank.unsqueeze(-1) <= col_rank.unsqueeze(-2))).sum(-2)      # (..., m) cells ≤ each cell
    return (dominated < (row_rank + 1) * (col_rank + 1)).double().mean(-1)


def _ranks(proj: torch.Tensor) -> torch.Tensor:
    """(..., n) scores → (..., n) rank of each entry (0 = largest)."""
    order = proj.argsort(dim=-1, descending=True)
    return torch.empty_like(order).scatter_(-1, order, torch.arange(proj.shape[-1]).expand_as(order))


@torch.no_grad()
def probe_topology(layer: UltraMemLayer, x: torch.Tensor) -> dict:
    """Topology statistics of ``layer`` on inputs x (P, D) (see the module docstring)."""
    was = layer.training
    layer.eval()
    c = layer.config
    n_r, n_c = c.grid_shape
    sub = layer._sub_scores(x)
    row, col = (sub[:, :, 0], sub[:, :, 1]) if isinstance(sub, torch.Tensor) else sub      # (P, H, r, n)
    _, _, chosen = layer._select(sub)                                                       # (P, H, m)
    if layer.tucker_cores is None:
        grid = row[:, :, 0, :, None] + col[:, :, 0, None, :]
        row_proj, col_proj = row[:, :, 0], col[:, :, 0]
    else:
        grid = tucker_scores(row, col, layer.tucker_cores.sum(1))
        row_proj = (layer.factor_u[None, :, :, None] * row).sum(-2)
        col_proj = (layer.factor_t[None, :, :, None] * col).sum(-2)
    best = grid.flatten(-2).topk(c.topm, dim=-1).indices                                   # (P, H, m)
    recall = (best.unsqueeze(-1) == chosen.unsqueeze(-2)).any(-1).double().mean()
    i, j = chosen // n_c, chosen % n_c
    rr, cr = _ranks(row_proj).gather(-1, i), _ranks(col_proj).gather(-1, j)
    distinct = lambda v: (1 + (v.sort(-1).values.diff(dim=-1) != 0).sum(-1)).double().mean()  # noqa: E731
    virtual = layer.shuffle[chosen] if layer.shuffle is not None else chosen
    physical = virtual % c.num_values
    used = torch.zeros(c.num_values, dtype=torch.bool)
    used[physical.flatten()] = True
    layer.train(was)
    return {"recall_vs_bruteforce": float(recall), "distinct_rows_per_head": float(distinct(i)),
            "distinct_cols_per_head": float(distinct(j)), "topm": c.topm,
            "fraction_values_used": float(used.double().mean()),
            "staircase_violations": float(staircase_violations(rr, cr).mean()), "probe_tokens": int(x.shape[0])}


def _probe_inputs(model, tokens: torch.Tensor, spec: dict, device: str) -> torch.Tensor:
    """The memory layer's inputs (pre-FFN hidden states of its block) on held-out windows: (P, D)."""
    seen = []
    layer = model.memories[0]
    handle = layer.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    T = spec["train"]["seq_len"]
    need = spec["probe_tokens"]
    was = model.training
    model.eval()
    with torch.no_grad():
        for x, _ in batches(tokens, max(1, need // T + 1), T, torch.Generator().manual_seed(777), 1):
            model(x.to(device))
    model.train(was)
    handle.remove()
    return seen[0].reshape(-1, seen[0].shape[-1])[:need].cpu()


def run_topology(quick: bool = False, out: str = "figures", resume: bool = False, seeds=None,
                 steps: int | None = None, checkpoints=None, progress: bool = True, device: str = "cpu",
                 scale: str | None = None, overwrite: bool = False, shard=None, collect: bool = False,
                 results_dir=None, models=None) -> dict:
    """The recorded runs; write ``exp_topology.json`` (+ a CSV of the after-training table)."""
    spec, mode, seeds = experiment_spec(NAME, quick, scale, device, steps, seeds)
    names = tuple(models or RUNS)
    configs = memory_configs(spec)
    for n in names:
        if n not in configs:
            raise ValueError(f"unknown topology run {n!r}; choose from {sorted(configs)}")
    tok, train_ids, select_ids, test_ids = kjv_splits()
    splits = {"train": train_ids, "select": select_ids, "test": test_ids}
    sizes = {k: spec["model"][k] for k in ("d_model", "n_layers", "n_heads", "seq_len")}
    from ..model import default_wiring
    wiring = default_wiring(sizes["n_layers"], 1)
    store = RunStore(NAME, mode, checkpoints, resume, overwrite, results_dir, shard, collect)
    t_start = time.perf_counter()

    results = {}
    for name in names:
        memory, recipe_extra = configs[name]
        recipe = dict(lr=spec["lr"], **recipe_extra)
        runs = []
        for seed in seeds:
            key = {"run": name, "memory": memory, "recipe": recipe, "seed": seed, "train": spec["train"],
                   "model": spec["model"], "probe_tokens": spec["probe_tokens"], "device": device.split(":")[0]}

            def job(ckpt, memory=memory, seed=seed, name=name, recipe=recipe):
                torch.manual_seed(seed)
                model = build_lm("dense", tok.vocab_size, sizes, memory=memory, wiring=wiring).to(device)
                layer = model.memories[0]
                probe = _probe_inputs(model, test_ids, spec, device)
                at_init = probe_topology(layer.cpu(), probe)
                layer.to(device)
                ratios, calls = [], [0]

                def hook(mod, inp, out):
                    if mod.training:
                        if calls[0] % spec["record_every"] == 0 and out.singular_values is not None:
                            sv = out.singular_values.detach().double().cpu()
                            ratios.append([calls[0], (sv[:, 0] / sv[:, 1].clamp_min(1e-12)).tolist(),
                                           sv[:, 0].tolist(), sv[:, 1].tolist()])
                        calls[0] += 1
                handle = layer.register_forward_hook(hook)
                res = train_run(model, splits, recipe, spec["train"], seed, None, device, progress, f"{name} s{seed}")
                handle.remove()
                probe = _probe_inputs(model, test_ids, spec, device)
                trained = probe_topology(layer.cpu(), probe)
                return {"seed": seed, "test_loss": res["test_loss"], "select_loss": res["select_loss"],
                        "tokens_trained": res["tokens_trained"], "topology_init": at_init,
                        "topology_trained": trained,
                        "sv_record": {"step": [r[0] for r in ratios], "ratio": [r[1] for r in ratios],
                                      "sigma1": [r[2] for r in ratios], "sigma2": [r[3] for r in ratios]}}
            runs.append(store.get_or_run(f"{name}_seed{seed}", job, key))
        runs = [r for r in runs if r is not None]
        entry = {"memory": memory, "recipe": recipe, "runs": runs}
        if runs:
            entry["test_loss"] = mean_std([r["test_loss"] for r in runs])[0]
            for when in ("init", "trained"):
                entry[f"topology_{when}"] = {k: mean_std([r[f"topology_{when}"][k] for r in runs])[0]
                                            for k in runs[0][f"topology_{when}"]}
            recs = [r["sv_record"]["ratio"] for r in runs if r["sv_record"]["ratio"]]
            if recs:
                entry["sigma_ratio_start"] = mean_std([sum(rec[0]) / len(rec[0]) for rec in recs])[0]
                entry["sigma_ratio_end"] = mean_std([sum(rec[-1]) / len(rec[-1]) for rec in recs])[0]
        results[name] = entry
    table = []
    for name, r in results.items():
        for when in ("init", "trained"):
            t = r.get(f"topology_{when}")
            if t:
                table.append({"run": name, "when": when, **{k: v for k, v in t.items()},
                              "sigma_ratio": r.get("sigma_ratio_start" if when == "init" else "sigma_ratio_end"),
                              "test_loss": r.get("test_loss") if when == "trained" else None})
    if progress:
        for row in table:
            print(f"{row['run']:<18} {row['when']:<7} recall {row['recall_vs_bruteforce']:.3f} rows "
                  f"{row['distinct_rows_per_head']:.2f} cols {row['distinct_cols_per_head']:.2f} used "
                  f"{row['fraction_values_used']:.3f} staircase {row['staircase_violations']:.3f} σ1/σ2 {row['sigma_ratio']}")
    config = {k: v for k, v in spec.items() if k != "seeds"}
    config.update(vocab_size=tok.vocab_size, wiring=wiring)
    return publish(NAME, out, mode, seeds, config, spec.get("note"), {"runs": results, "table": table}, table,
                   store.skipped, t_start, device, store)
