"""The sizes and budgets of every chapter-11 experiment, at three scales.

* ``quick`` — tiny models, a few steps: the tests run it (whole suite well under 2 minutes).
* ``full`` — the CPU suite, about five hours on 2 cores (one thread per process, two
  processes): D = 64, 4 layers, 64-character windows, batch 16, 1.0–5.1 M characters per run.
* ``gpu`` — ``--device cuda``: twice as wide (D = 128), ten times the characters per run (batch ×25,
  steps ÷2.5: a small model on a GPU is bound by kernel launches, not by the batch);
  :file:`scripts/gpu_experiments.sh` runs it as parallel shards on one GPU.

A spec is plain data; :func:`experiment_spec` returns a private copy with ``steps`` / ``seeds``
overrides applied and says which mode (``quick``, ``full``, ``gpu``, or ``custom`` when overridden)
the result files are filed under.
"""
from __future__ import annotations

import copy

from .preregistration import SELECTION_SEEDS

__all__ = ["SPECS", "SCALES", "experiment_spec"]

SCALES = ("quick", "full", "gpu")

_MODEL_FULL = dict(d_model=64, n_layers=4, n_heads=4, seq_len=64, key_dim=16, mem_heads=2, topm=8, n_experts=8)
_MODEL_GPU = dict(_MODEL_FULL, d_model=128)
_MODEL_QUICK = dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, key_dim=8, mem_heads=2, topm=4, n_experts=4)


def _train(steps, batch, seq, every, batches=8, final=64):
    return dict(steps=steps, batch_size=batch, seq_len=seq, warmup_frac=0.02, eval_every=every,
                eval_batches=batches, final_eval_batches=final)


def _evidence(model, train, long_steps, num_values, pkm_values, **overrides):
    """The pre-registered suite at one scale: seeds, rates, families, margin and claims from
    :mod:`.preregistration`; sizes and budgets from the scale."""
    from . import preregistration as p

    spec = dict(model=model, train=train, long_steps=long_steps, num_values=num_values, pkm_values=pkm_values,
                lrs=p.LRS, max_edge_steps=p.MAX_EDGE_STEPS, selection_seeds=p.SELECTION_SEEDS, seeds=p.REPORTED_SEEDS,
                exploratory_seeds=p.EXPLORATORY_SEEDS, headline=p.HEADLINE_FAMILIES,
                exploratory=p.EXPLORATORY_FAMILIES, value_lr_options=p.VALUE_LR_OPTIONS, margin=p.MARGIN,
                alpha=p.ALPHA, claims=p.CLAIMS)
    spec.update(overrides)
    return spec


SPECS = {
    "evidence": {
        "quick": _evidence(_MODEL_QUICK, _train(16, 8, 32, 8, 2, 4), 32, 2 * 16 ** 2, 16 ** 2,
                           lrs=(1e-3, 3e-3), selection_seeds=(100,), seeds=(0, 1), exploratory_seeds=(0, 1),
                           max_edge_steps=1, exploratory=("moe",)),
        "full": _evidence(_MODEL_FULL, _train(2500, 16, 64, 250), 5000, 2 * 64 ** 2, 64 ** 2,
                          note="CPU suite, pre-registered: D=64, 4 layers; lm budget 2500 steps x 16 x 64 = 2.56 M "
                               "characters, long budget 5000 steps = 5.12 M (1.3 passes over the training split); "
                               "rates chosen on seeds 100-101, seeds 0-7 reported (headline), 0-2 (exploratory)"),
        "gpu": _evidence(_MODEL_GPU, _train(1000, 400, 64, 200, 8, 64), 2000, 2 * 128 ** 2, 128 ** 2,
                         note="GPU suite, pre-registered: D=128; lm budget 1000 steps x 400 x 64 = 25.6 M "
                              "characters, long 2000 steps = 51.2 M; the same seeds as the CPU suite"),
    },
    "lm": {
        "quick": dict(model=_MODEL_QUICK, train=_train(16, 8, 32, 8, 2, 4), lrs=(1e-3, 3e-3, 6e-3),
                      num_values=2 * 16 ** 2, pkm_values=16 ** 2, seeds=(0, 1), family_seeds={"peer": (0,)},
                      edge_check=True),
        "full": dict(model=_MODEL_FULL, train=_train(2500, 16, 64, 250), lrs=(3e-3, 6e-3, 1.2e-2),
                     num_values=2 * 64 ** 2, pkm_values=64 ** 2, seeds=(0, 1, 2), edge_check=True,
                     note="CPU suite: D=64, 4 layers, 2500 steps x 16 x 64 = 2.56 M characters per run; "
                          "lr sweep on seed 0, seeds 1-2 at the chosen lr"),
        "gpu": dict(model=_MODEL_GPU, train=_train(1000, 400, 64, 200, 8, 64), lrs=(3e-3, 6e-3, 1.2e-2),
                    num_values=2 * 128 ** 2, pkm_values=128 ** 2, seeds=(0, 1, 2),
                    note="GPU suite: D=128, 4 layers, 1000 steps x 400 x 64 = 25.6 M characters per run"),
    },
    "budget": {
        "quick": dict(model=_MODEL_QUICK, train=_train(32, 8, 32, 8, 2, 4), families=("dense", "pkm"), seeds=(0, 1)),
        "full": dict(model=_MODEL_FULL, train=_train(5000, 16, 64, 250), families=("dense", "moe", "pkm", "ultramem_released"),
                     seeds=(0, 1, 2),
                     note="CPU suite: lm's dense, MoE, PKM and UltraMem (released recipe) at lm's chosen rates, "
                          "5000 steps x 16 x 64 = 5.12 M characters per run (twice lm's; 1.3 passes over the "
                          "training split), 3 seeds"),
        "gpu": dict(model=_MODEL_GPU, train=_train(2000, 400, 64, 200, 8, 64),
                    families=("dense", "moe", "pkm", "ultramem_released"), seeds=(0, 1, 2),
                    note="GPU suite: lm's families at lm's chosen rates, 2000 steps x 400 x 64 = 51.2 M characters"),
    },
    "scaling": {
        "quick": dict(model=_MODEL_QUICK, train=_train(12, 8, 32, 6, 2, 4), rates="sweep", lrs=(1e-3, 3e-3),
                      selection_seeds=(100,), sweep_at=2 ** 7, max_edge_steps=1,
                      num_values=(2 ** 6, 2 ** 7, 2 ** 8), families=("pkm", "ultramem_paper_k10"),
                      references=("dense", "moe"), controls=("dense_narrow",), seeds=(0,)),
        # the lm budget, so that the evidence suite's selection (same model, same budget, its memory sizes
        # 2^12 for PKM and 2^13 for UltraMem on this grid) is a sweep at one N for these curves
        "full": dict(model=_MODEL_FULL, train=_train(2500, 16, 64, 500, 8, 64), rates="evidence",
                     evidence_scale="full", selection_seeds=SELECTION_SEEDS,
                     num_values=tuple(2 ** k for k in range(8, 16)),
                     families=("pkm", "ultramem_paper_k10", "ultramem_released"),
                     references=("dense", "moe"), controls=("dense_narrow",), seeds=(0, 1),
                     note="CPU suite: N = 2^8 .. 2^15 values, 2500 steps x 16 x 64 = 2.56 M characters per run, "
                          "each family at the rate (and value-lr option) the evidence suite chose for it on seeds "
                          "100-101 at one N (2^12 for PKM, 2^13 for UltraMem), 2 seeds per point"),
        "gpu": dict(model=_MODEL_GPU, train=_train(1000, 400, 64, 200, 8, 64), rates="evidence",
                    evidence_scale="gpu", selection_seeds=SELECTION_SEEDS,
                    num_values=tuple(2 ** k for k in range(10, 18)),
                    families=("pkm", "ultramem_paper_k10", "ultramem_released"),
                    references=("dense", "moe"), seeds=(0, 1),
                    note="GPU suite: N = 2^10 .. 2^17, 1000 steps x 400 x 64 = 25.6 M characters per run, each "
                         "family at the evidence suite's chosen rate (swept at 2^14 for PKM, 2^15 for UltraMem)"),
    },
    "ladder": {
        "quick": dict(model=dict(_MODEL_QUICK, n_layers=4), train=_train(10, 8, 32, 5, 2, 4), lr=3e-3,
                      side=8, seeds=(0, 1), value_lr_k=10.0, conv_kernel=5),
        "full": dict(model=_MODEL_FULL, train=_train(1000, 16, 64, 500, 8, 64), lr=3e-3, side=64,
                     seeds=(0, 1, 2), value_lr_k=10.0, conv_kernel=5,
                     note="CPU suite: PKM N = 64^2 values, 1000 steps x 16 x 64 = 1.02 M characters per rung "
                          "and seed, 3 seeds"),
        "gpu": dict(model=_MODEL_GPU, train=_train(400, 400, 64, 200, 8, 64), lr=3e-3, side=128,
                    seeds=(0, 1, 2, 3), value_lr_k=10.0, conv_kernel=5,
                    note="GPU suite: PKM N = 128^2, 400 steps x 400 x 64 = 10.2 M characters, 4 seeds"),
    },
    "facts": {
        "quick": dict(model=dict(_MODEL_QUICK, seq_len=2, n_layers=2), num_subjects=(16, 64), num_relations=4,
                      num_objects=16, steps=40, batch_size=64, lr=3e-3, num_values=2 ** 8,
                      values_sweep=(2 ** 6, 2 ** 8),
                      families=("dense", "moe", "pkm", "ultramem_paper_k10", "ultramem_v2", "peer", "memory_plus"),
                      sweep_families=("pkm", "ultramem_paper_k10"), seeds=(0,)),
        "full": dict(model=dict(_MODEL_FULL, d_model=32, n_layers=2, n_heads=2, seq_len=2, key_dim=8),
                     num_subjects=(64, 256, 1024, 4096), num_relations=8, num_objects=32, steps=3000,
                     batch_size=128, lr=3e-3, num_values=2 ** 14, values_sweep=tuple(2 ** k for k in range(8, 16, 2)),
                     sweep_subjects=1024,
                     families_at={4096: ("dense", "moe", "pkm", "ultramem_paper_k10", "ultramem_released",
                                         "ultramem_ln")},
                     families=("dense", "moe", "pkm", "ultramem_paper_k10", "ultramem_released", "ultramem_ln",
                               "ultramem_v2", "peer", "memory_plus"),
                     sweep_families=("pkm", "ultramem_paper_k10"), seeds=(0, 1),
                     # at D = 32 two heads of UltraMem's keys alone cost more than the dense model's FFN:
                     # one head of top-16 reads as many rows per token and fits the activated budget
                     family_model={n: dict(mem_heads=1, topm=16)
                                   for n in ("ultramem_paper_k10", "ultramem_released", "ultramem_ln")},
                     note="CPU suite: 512 .. 32768 facts (5 bits each), 3000 steps x 128 facts, D=32, 2 layers; "
                          "the memory-size sweep at 8192 facts (at 32768 every model is near chance, and only "
                          "chapter 11's own six families were run there); UltraMem with one head of top-16 so "
                          "that every model is at the dense model's activated parameters"),
        "gpu": dict(model=dict(_MODEL_GPU, d_model=64, n_layers=2, n_heads=2, seq_len=2, key_dim=16),
                    family_model={n: dict(mem_heads=1, topm=16)
                                  for n in ("ultramem_paper_k10", "ultramem_released", "ultramem_ln")},
                    num_subjects=(256, 1024, 4096, 16384), num_relations=8, num_objects=32, steps=1500,
                    batch_size=2048, lr=3e-3, num_values=2 ** 16, values_sweep=tuple(2 ** k for k in range(10, 18, 2)),
                    families=("dense", "moe", "pkm", "ultramem_paper_k10", "ultramem_released", "ultramem_ln",
                               "ultramem_v2", "peer", "memory_plus"),
                    sweep_families=("pkm", "ultramem_paper_k10"), seeds=(0, 1)),
    },
    "topology": {
        "quick": dict(model=_MODEL_QUICK, train=_train(16, 8, 32, 8, 2, 4), lr=3e-3, num_values=16 ** 2,
                      record_every=4, probe_tokens=64, strong_alpha=0.1, seeds=(0,)),
        "full": dict(model=_MODEL_FULL, train=_train(2000, 16, 64, 500, 8, 64), lr=3e-3, num_values=64 ** 2,
                     record_every=20, probe_tokens=512, strong_alpha=0.1, seeds=(0,),
                     note="CPU suite: N = 64^2, 2000 steps x 16 x 64 = 2.05 M characters per run"),
        "gpu": dict(model=_MODEL_GPU, train=_train(800, 400, 64, 200, 8, 64), lr=3e-3, num_values=128 ** 2,
                    record_every=20, probe_tokens=1024, strong_alpha=0.1, seeds=(0, 1)),
    },
}


def _continual(model, num_values, facts, pretrain, finetune, heldout_windows, **overrides):
    """Chapter 14's pre-registered experiment at one scale: seeds, rates, families, methods, t, margin
    and claims from :mod:`.preregistration_continual`; sizes and budgets from the scale."""
    from . import preregistration_continual as p

    spec = dict(model=model, num_values=num_values, facts=facts, pretrain=pretrain, finetune=finetune,
                heldout_windows=heldout_windows, pretrain_lr=p.PRETRAIN_LR, top_t=p.TOP_T,
                background_docs=p.BACKGROUND_DOCS, lora_rank=p.LORA_RANK, lora_alpha=p.LORA_ALPHA,
                lrs=dict(p.LRS), selection_seeds=p.SELECTION_SEEDS, seeds=p.REPORTED_SEEDS, families=p.FAMILIES,
                margin=p.LEARNING_MARGIN, alpha=p.ALPHA, claims=p.CLAIMS)
    spec.update(overrides)
    return spec


_CONTINUAL_MODEL = dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, key_dim=8, mem_heads=2, topm=4)
SPECS["continual"] = {
    "quick": _continual(_CONTINUAL_MODEL, 2 * 8 ** 2, dict(num_subjects=8, num_relations=4, num_objects=8),
                        dict(steps=12, text_batch=4, facts_batch=8, seq_len=32), dict(steps=4, batch_size=8, eval_every=2),
                        2, selection_seeds=(100,), seeds=(0, 1), background_docs=2, top_t=8),
    "full": _continual(_CONTINUAL_MODEL, 2 * 16 ** 2, dict(num_subjects=32, num_relations=8, num_objects=16),
                       dict(steps=600, text_batch=8, facts_batch=32, seq_len=32),
                       dict(steps=150, batch_size=32, eval_every=15), 16,
                       note="CPU, pre-registered: D=32, 2 blocks; 256 facts (128 old, 128 new); pretraining 600 "
                            "steps x (8 x 32 characters + 32 old facts); finetuning 150 steps x 32 new facts; "
                            "rates chosen on seeds 100-101, seeds 0-5 reported"),
    "gpu": _continual(_CONTINUAL_MODEL, 2 * 16 ** 2, dict(num_subjects=32, num_relations=8, num_objects=16),
                      dict(steps=600, text_batch=8, facts_batch=32, seq_len=32),
                      dict(steps=150, batch_size=32, eval_every=15), 16,
                      note="the CPU experiment's sizes: the models are too small to gain from a GPU"),
}
SPECS["continual"]["quick"]["lrs"] = {m: lrs[1:] for m, lrs in SPECS["continual"]["quick"]["lrs"].items()}


def experiment_spec(name: str, quick: bool, scale: str | None, device: str, steps: int | None, seeds):
    """(spec, mode, seeds) for experiment ``name``: the scale is ``quick`` if asked, else ``scale``, else
    ``gpu`` on a CUDA device and ``full`` on the CPU. Overrides of steps or seeds file the results under
    mode ``<scale>-custom`` so they never mix with the declared suite's runs."""
    if name not in SPECS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(SPECS)}")
    from .common import resolve_device

    resolve_device(device)                       # a clear error for "tpu", or "cuda" on a machine without one
    if scale is None:
        scale = "quick" if quick else ("gpu" if str(device).startswith("cuda") else "full")
    elif quick and scale != "quick":
        raise ValueError(f"quick=True contradicts scale={scale!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    spec = copy.deepcopy(SPECS[name][scale])
    mode = scale
    if steps is not None:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        if "train" in spec:
            spec["train"]["steps"] = steps
            spec["train"]["eval_every"] = max(1, min(spec["train"]["eval_every"], steps))
        else:
            spec["steps"] = steps
        mode = f"{scale}-custom"
    if seeds is not None:
        seeds = tuple(seeds)
        if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative ints, got {seeds!r}")
        if seeds != tuple(spec["seeds"]):
            mode = f"{scale}-custom"
    else:
        seeds = tuple(spec["seeds"])
    if mode != scale:
        spec.pop("note", None)
    return spec, mode, seeds
