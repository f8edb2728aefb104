"""The experiments of chapter 11, "Training tiny language models": the paper's thesis put to a test.

Run one, or the whole suite, from the command line::

    python -m ultramem_edu.experiments lm [--quick] [--resume] [--device cuda] [--shard 0/2]
    python -m ultramem_edu.experiments all --resume

or from Python with :func:`run` (``run("lm", quick=True)``). The experiments:

* ``evidence`` — the pre-registered comparison (:mod:`.preregistration`): rates chosen on selection
  seeds, eight reported seeds for the headline families at two budgets, Holm-corrected paired tests
  (:mod:`.evidence`);
* ``lm`` — every model family with its complete recipe, a learning-rate sweep chosen on a select
  split, reported on a held-out split (:mod:`.lm`);
* ``budget`` — ``lm``'s headline families again with twice the characters, at ``lm``'s chosen rates (:mod:`.budget`);
* ``scaling`` — loss against the memory size N at fixed activated compute (:mod:`.scaling`);
* ``ladder`` — the paper's ablation ladder with a power estimate per rung (:mod:`.ladder`);
* ``facts`` — knowledge capacity, against the number of facts and against N (:mod:`.facts`);
* ``topology`` — aux loss, σ₁/σ₂, stage-1 recall, retrieval topology after training (:mod:`.topology`);
* ``dynamics`` — the earlier 300-step recording, kept for the results that cite it (:mod:`.dynamics`);
* ``continual`` — chapter 14: teaching new facts by full finetuning, LoRA, the whole value table and
  sparse memory finetuning, pre-registered (:mod:`.preregistration_continual`, :mod:`.continual`).

Each writes ``<out>/exp_<name>.json`` (+ ``.csv``) with the config, seeds, commit, machine, date,
device and the characters each run trained on; each finished run is stored on its own (see
:class:`~.common.RunStore`), so a suite can be stopped and resumed, split across processes with
``--shard i/k``, and read while it runs (``--collect``). Model families live in
:data:`~.families.MODEL_FAMILIES` (add one with :func:`~.families.register_family`).
"""
from __future__ import annotations

import importlib
import inspect

__all__ = ["EXPERIMENTS", "SUITE", "run"]

# name -> (module, function)
EXPERIMENTS = {
    "evidence": ("evidence", "run_evidence"),
    "lm": ("lm", "run_lm"),
    "budget": ("budget", "run_budget"),
    "scaling": ("scaling", "run_scaling"),
    "ladder": ("ladder", "run_ladder"),
    "facts": ("facts", "run_facts"),
    "topology": ("topology", "run_topology"),
    "dynamics": ("dynamics", "run_dynamics"),
    "continual": ("continual", "run_continual"),
}
# what ``all`` runs, in this order (headline comparisons first)
SUITE = ("evidence", "lm", "budget", "scaling", "ladder", "facts", "topology", "continual")


def run(name: str, **kwargs) -> dict:
    """Run experiment ``name`` (one of :data:`EXPERIMENTS`) and return its result payload.

    Keyword arguments the experiment does not take raise a ``TypeError`` naming them, except
    ``device``/``scale``/``shard``/``collect``/``overwrite``/``results_dir`` left at their defaults.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    module, function = EXPERIMENTS[name]
    fn = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    accepted = inspect.signature(fn).parameters
    defaults = {"device": "cpu", "scale": None, "shard": None, "collect": False, "overwrite": False,
                "results_dir": None, "models": None}
    unknown = [k for k in kwargs if k not in accepted and not (k in defaults and kwargs[k] == defaults[k])]
    if unknown:
        raise TypeError(f"experiment {name!r} does not take {unknown}")
    return fn(**{k: v for k, v in kwargs.items() if k in accepted})
