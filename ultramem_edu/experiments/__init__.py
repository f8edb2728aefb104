"""The experiments of chapter 11, "Training tiny language models".

Run one from the command line::

    python -m ultramem_edu.experiments lm [--quick] [--out figures/] [--resume]
    python -m ultramem_edu.experiments all --resume

or from Python with :func:`run` (``run("lm", quick=True)``) or the experiment's own function
(:func:`~ultramem_edu.experiments.lm.run_lm`, ``run_ladder``, ``run_facts``, ``run_dynamics``),
which accept smaller overrides (``steps=``, ``seeds=``) for tests. Each writes
``<out>/exp_<name>.json`` (+ ``.csv`` for its table) with the config, seeds, git commit, machine,
date and mode; per-run checkpoints and results live under ``checkpoints/exp_<name>/<mode>/``.
"""
from __future__ import annotations

import importlib

__all__ = ["EXPERIMENTS", "run"]

# name -> (module, function)
EXPERIMENTS = {
    "lm": ("lm", "run_lm"),
    "ladder": ("ladder", "run_ladder"),
    "facts": ("facts", "run_facts"),
    "dynamics": ("dynamics", "run_dynamics"),
}


def run(name: str, **kwargs) -> dict:
    """Run experiment ``name`` (one of :data:`EXPERIMENTS`) and return its result payload."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    module, function = EXPERIMENTS[name]
    mod = importlib.import_module(f"{__name__}.{module}")
    return getattr(mod, function)(**kwargs)
