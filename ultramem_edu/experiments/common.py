"""Shared plumbing of the chapter-11 experiments: data, model builders, compute matching,
result files with metadata, and resumable per-run bookkeeping.

Every experiment writes ``<out>/exp_<name>.json`` (and a CSV for its table) and keeps one directory
per run mode under ``<checkpoints>/exp_<name>/<mode>/``: ``<run>.pt`` (a training checkpoint that
:func:`ultramem_edu.train.train_lm` resumes from) and ``<run>.json`` (the finished run's numbers).
With ``resume=True`` a run whose ``<run>.json`` exists is skipped and a run with only a checkpoint
continues from it; without it both are deleted first and the run starts from scratch.
"""
from __future__ import annotations

import csv
import datetime as _dt
import functools
import json
import math
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from ..data import CharTokenizer, load_corpus, split_corpus
from ..model import LMConfig, TransformerLM
from ..moe import MoEConfig, activated_parameters_per_token, num_parameters

__all__ = [
    "REPO_ROOT",
    "DEFAULT_CHECKPOINTS",
    "kjv_tokens",
    "git_commit",
    "machine_info",
    "metadata",
    "model_parameter_counts",
    "match_ffn_hidden",
    "RunStore",
    "write_results",
    "mean_std",
    "publish",
    "resolve_spec",
    "to_jsonable",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CHECKPOINTS = REPO_ROOT / "checkpoints"


# ---------------------------------------------------------------------------------------- data
def resolve_spec(quick_spec: dict, full_spec: dict, quick: bool, steps: int | None, seeds) -> tuple[dict, str | None, tuple]:
    """A private copy of the chosen spec with the ``steps``/``seeds`` overrides applied.

    Returns (spec, note, seeds). The spec's "note" (removed from it) describes the full mode as
    configured, so it is returned only for an unmodified full run, else None. ``eval_every`` is
    capped at the number of steps when the spec has one.
    """
    spec = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (quick_spec if quick else full_spec).items()}
    note = spec.pop("note", None)
    if steps is not None:
        spec["train"]["steps"] = steps
        if "eval_every" in spec["train"]:
            spec["train"]["eval_every"] = max(1, min(spec["train"]["eval_every"], steps))
    seeds = tuple(seeds if seeds is not None else spec["seeds"])
    unmodified_full = not quick and steps is None and seeds == tuple(full_spec["seeds"])
    return spec, note if unmodified_full else None, seeds


@functools.lru_cache(maxsize=1)
def kjv_tokens() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(tokenizer, train ids, validation ids) of the KJV corpus, character level. Cached."""
    train, val = split_corpus(load_corpus("kjv"))
    tok = CharTokenizer.from_text(train)
    return tok, tok.encode(train), tok.encode(val)


# ---------------------------------------------------------------------------------------- metadata
def git_commit() -> str:
    """``git rev-parse HEAD`` of the repository, or "unknown"."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def metadata(name: str, mode: str, seeds: Iterable[int], config: dict) -> dict:
    """The fields every result file starts with."""
    return {
        "experiment": name,
        "mode": mode,
        "seeds": list(seeds),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": f"python -m ultramem_edu.experiments {name}" + (" --quick" if mode.startswith("quick") else ""),
        "config": to_jsonable(config),
    }


def publish(name: str, out, mode: str, seeds: Iterable[int], config: dict, note: str | None, results: dict,
            table: list[dict], skipped: list[str], t_start: float) -> dict:
    """Assemble a result file (metadata, note, results, skipped runs, wall time), write it, return it."""
    payload = metadata(name, mode, seeds, config)
    payload["mode_note"] = note
    payload.update(results)
    payload.update({"runs_skipped": skipped, "wall_s": round(time.perf_counter() - t_start, 1)})
    write_results(name, out, payload, table)
    return payload


def to_jsonable(x):
    """Dataclasses, tuples, tensors and non-finite floats → plain JSON values (nan/inf → None)."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {"type": type(x).__name__, **to_jsonable(dataclasses.asdict(x))}
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return to_jsonable(x.tolist())
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return x


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = [float(x) for x in values]
    mean = sum(v) / len(v)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return mean, std


# ---------------------------------------------------------------------------------------- compute
def model_parameter_counts(model: TransformerLM) -> dict:
    """Total / non-embedding / activated-per-token (non-embedding) parameters and the memory's share.

    Activated counts come from :func:`ultramem_edu.moe.activated_parameters_per_token`, for which a
    memory layer counts everything but its value table plus the value rows one token reads.
    """
    return {
        "total": num_parameters(model),
        "non_embedding": num_parameters(model, exclude_embeddings=True),
        "activated": activated_parameters_per_token(model, exclude_embeddings=True),
        "memory_total": sum(num_parameters(layer) for layer in model.memories),
        "memory_activated": sum(layer.activated_parameters_per_token() for layer in model.memories),
    }


def match_ffn_hidden(build: Callable[[int], TransformerLM], target: int, start: int, multiple: int = 4) -> int:
    """The FFN hidden width h (a multiple of ``multiple``, ≤ start) whose model's activated
    parameter count is closest to ``target``. ``build(h)`` makes the model (memory layers included)."""
    per_unit = None
    base = model_parameter_counts(build(start))["activated"]
    probe = model_parameter_counts(build(start - multiple))["activated"]
    per_unit = (base - probe) / multiple                       # activated params per hidden unit
    guess = start - (base - target) / per_unit
    guess = int(round(guess / multiple)) * multiple
    best = max(multiple, min(start, guess))
    return best


# ---------------------------------------------------------------------------------------- models
def build_lm(kind: str, vocab_size: int, sizes: dict, memory=None, wiring=(), ffn_hidden: int | None = None,
             moe: MoEConfig | None = None) -> TransformerLM:
    """A :class:`TransformerLM` from ``sizes`` (d_model, n_layers, n_heads, seq_len)."""
    cfg = LMConfig(
        vocab_size=vocab_size, d_model=sizes["d_model"], n_layers=sizes["n_layers"], n_heads=sizes["n_heads"],
        seq_len=sizes["seq_len"], ffn="moe" if kind == "moe" else "dense", ffn_hidden=ffn_hidden, moe=moe,
        memory=memory, memory_wiring=tuple(wiring),
    )
    return TransformerLM(cfg)


# ---------------------------------------------------------------------------------------- runs
class RunStore:
    """Per-run files of one experiment and mode: ``<root>/exp_<name>/<mode>/<run>.{pt,json}``."""

    def __init__(self, name: str, mode: str, checkpoints: str | Path | None = None, resume: bool = False):
        self.root = Path(checkpoints or DEFAULT_CHECKPOINTS) / f"exp_{name}" / mode
        self.root.mkdir(parents=True, exist_ok=True)
        self.resume = resume
        self.skipped: list[str] = []
        self.ran: list[str] = []

    def checkpoint(self, run: str) -> Path:
        return self.root / f"{run}.pt"

    def result_path(self, run: str) -> Path:
        return self.root / f"{run}.json"

    def get_or_run(self, run: str, fn: Callable[[str], dict]) -> dict:
        """The stored result of ``run`` (with resume) or ``fn(checkpoint_path)``, stored."""
        path = self.result_path(run)
        if self.resume and path.exists():
            self.skipped.append(run)
            return json.loads(path.read_text())
        if not self.resume:
            for p in (path, self.checkpoint(run)):
                p.unlink(missing_ok=True)
        t0 = time.perf_counter()
        result = to_jsonable(fn(str(self.checkpoint(run))))
        result["wall_s"] = round(time.perf_counter() - t0, 2)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result))
        tmp.replace(path)
        self.ran.append(run)
        return result


def write_results(name: str, out: str | Path, payload: dict, table: list[dict] | None = None) -> Path:
    """``<out>/exp_<name>.json`` (+ ``exp_<name>.csv`` from ``table``, one dict per row)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"exp_{name}.json"
    path.write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    if table:
        keys = list(table[0])
        with open(out / f"exp_{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for row in table:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    return path
