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
import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
from scipy.stats import t as _scipy_t

from ..data import CharTokenizer, load_corpus, split_corpus
from ..model import LMConfig, TransformerLM
from ..provenance import git_commit
from ..moe import MoEConfig, activated_parameters_per_token, num_parameters

__all__ = [
    "ResumeError",
    "fingerprint",
    "kjv_splits",
    "paired_delta",
    "linear_fit",
    "resolve_device",
    "device_info",
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
def kjv_splits() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(tokenizer, train, select, test) ids of the KJV corpus: the validation part of
    :func:`~ultramem_edu.data.split_corpus` cut in two halves at a line break — the first chooses
    learning rates (and draws the curves), the second is held out and reported."""
    train, val = split_corpus(load_corpus("kjv"))
    cut = val.find("\n", len(val) // 2) + 1
    tok = CharTokenizer.from_text(train)
    return tok, tok.encode(train), tok.encode(val[:cut]), tok.encode(val[cut:])


@functools.lru_cache(maxsize=1)
def kjv_tokens() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """(tokenizer, train ids, validation ids) of the KJV corpus, character level. Cached."""
    train, val = split_corpus(load_corpus("kjv"))
    tok = CharTokenizer.from_text(train)
    return tok, tok.encode(train), tok.encode(val)


# ---------------------------------------------------------------------------------------- metadata
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
        "command": f"python -m ultramem_edu.experiments {name}" + (
            " --quick" if mode.startswith("quick") else " --device cuda" if mode.startswith("gpu") else "") + " --resume",
        "config": to_jsonable(config),
    }


def publish(name: str, out, mode: str, seeds: Iterable[int], config: dict, note: str | None, results: dict,
            table: list[dict], skipped: list[str], t_start: float, device: str = "cpu",
            store: "RunStore | None" = None) -> dict:
    """Assemble a result file (metadata, note, results, skipped runs, wall time), write it, return it.

    With ``store``: its ran / reused / missing runs are recorded; ``complete`` is False when runs are
    missing (a partial result, to be labelled as such wherever it is shown)."""
    payload = metadata(name, mode, seeds, config)
    payload["device"] = device_info(device)
    if store is not None:
        payload["runs_missing"] = list(store.missing)
        payload["complete"] = not store.missing
        payload["runs_dir"] = str(store.root.relative_to(REPO_ROOT)) if store.root.is_relative_to(REPO_ROOT) \
            else str(store.root)
    payload["mode_note"] = note
    payload.update(results)
    payload.update({"runs_skipped": skipped, "wall_s": round(time.perf_counter() - t_start, 1)})
    write_results(result_stem(name, mode), out, payload, table)
    return payload


def result_stem(name: str, mode: str) -> str:
    """The result file's name without ``exp_`` and the suffix: the full CPU suite writes ``lm``, every
    other mode its own file (``lm_gpu``, ``lm_quick``, ``lm_full_custom``), so no mode overwrites another."""
    return name if mode == "full" else f"{name}_{mode.replace('-', '_')}"


def device_info(device: str) -> dict:
    """The device a result was computed on: "cpu" or the CUDA device's name."""
    info = {"device": str(device)}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        info["name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def resolve_device(device: str) -> str:
    """Validate ``device`` ("cpu" or "cuda[:k]"); a clear error when CUDA is asked for and absent."""
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:k]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for but torch.cuda.is_available() is False on this machine")
    return device


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


def paired_delta(a: Iterable[float], b: Iterable[float]) -> dict:
    """Δ = a − b paired by seed, tested with the paired t-test (:func:`.stats.paired_t`): mean, std,
    standard error, the 95 % t-interval ``ci95`` (df = n − 1), the two-sided ``p``, ``resolved`` (the
    interval excludes zero) and ``seeds_needed`` — the paired seeds that give a two-sided test at the 5 %
    level 80 % power at this effect and spread (noncentral t; None when Δ = 0, with one seed, or beyond
    10 000 seeds)."""
    from .stats import paired_t, seeds_for_power

    d = [x - y for x, y in zip(a, b)]
    mean, std = mean_std(d)
    n = len(d)
    if n < 2:
        return {"mean": mean, "std": std, "se": float("nan"), "n": n, "ci95": None, "p": None, "resolved": False,
                "seeds_needed": None, "per_seed": d}
    t = paired_t(d)
    need = seeds_for_power(mean, std) if mean != 0 else None
    return {"mean": mean, "std": std, "se": t["se"], "n": n, "ci95": t["ci"], "p": t["p"], "resolved": t["resolved"],
            "seeds_needed": need, "per_seed": d}


def pairwise_deltas(per_seed: dict) -> dict:
    """Every pair of ``per_seed`` ({name: {seed: loss}}), names in order: ``{"a - b": paired_delta}`` over the
    seeds both have, for the pairs that share at least two."""
    out = {}
    for a in per_seed:
        for b in per_seed:
            common = sorted(set(per_seed[a]) & set(per_seed[b]))
            if a < b and len(common) >= 2:
                out[f"{a} - {b}"] = paired_delta([per_seed[a][s] for s in common], [per_seed[b][s] for s in common])
    return out


def linear_fit(x: Iterable[float], y: Iterable[float]) -> dict:
    """Least-squares y = a + b·x with the slope's standard error and 95 % confidence interval
    (Student t with n − 2 degrees of freedom)."""
    x, y = [float(v) for v in x], [float(v) for v in y]
    n = len(x)
    if n < 3:
        raise ValueError(f"linear_fit needs at least 3 points, got {n}")
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    if sxx == 0:
        raise ValueError("linear_fit needs at least two distinct x values")
    b = sum((a - mx) * (c - my) for a, c in zip(x, y)) / sxx
    a0 = my - b * mx
    resid = [c - (a0 + b * a) for a, c in zip(x, y)]
    s2 = sum(r * r for r in resid) / (n - 2)
    se = math.sqrt(s2 / sxx)
    t = float(_scipy_t.ppf(0.975, n - 2))
    return {"intercept": a0, "slope": b, "slope_se": se, "slope_ci95": [b - t * se, b + t * se], "n": n,
            "t975": t, "residual_std": math.sqrt(s2)}


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
        "memory_total": num_parameters(model.memories),          # a pool shared by layers counted once
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
class ResumeError(ValueError):
    """A stored run file is corrupt, or was made by a different configuration than the one asked for."""


def fingerprint(obj) -> str:
    """A short stable hash of a JSON-able description (a run's full configuration)."""
    import hashlib

    return hashlib.sha256(json.dumps(to_jsonable(obj), sort_keys=True).encode()).hexdigest()[:16]


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one we may not signal counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class RunStore:
    """Per-run files of one experiment and mode.

    ``<results>/exp_<name>/<mode>/<run>.json`` holds a finished run's numbers (written the moment it
    finishes, so a long suite can be read while it runs); ``<checkpoints>/exp_<name>/<mode>/<run>.pt``
    its training checkpoint. Every run carries a fingerprint of its full configuration (model, recipe,
    budget, seed). With ``resume`` a finished run with the same fingerprint is reused; one with another
    fingerprint, or a file that does not parse, raises :class:`ResumeError` naming the file — nothing is
    silently overwritten. Without ``resume`` existing run files raise ``FileExistsError`` unless
    ``overwrite`` is set (then they are deleted and the run starts again).

    ``shard=(i, k)``: this process trains only the runs whose name hashes to i mod k (several processes
    share a suite); ``shard="claim"``: this process trains every run that no other live process has
    claimed, claiming it first with a file ``<checkpoints>/exp_<name>/<mode>/<run>.claim`` created
    atomically (``O_EXCL``) and removed when the run ends — processes share the work as it comes, so none
    waits on another's fixed share; a claim left by a process that died on this host is taken over.
    ``collect=True``: train nothing, only gather what is stored. A run that is neither stored nor trained
    here is recorded in :attr:`missing` (and in :attr:`claimed_elsewhere` when another live process has
    claimed it) and returns None.
    """

    def __init__(self, name: str, mode: str, checkpoints: str | Path | None = None, resume: bool = False,
                 overwrite: bool = False, results: str | Path | None = None, shard: tuple[int, int] | None = None,
                 collect: bool = False):
        self.ckpt_root = Path(checkpoints or DEFAULT_CHECKPOINTS) / f"exp_{name}" / mode
        self.root = Path(results) / f"exp_{name}" / mode if results is not None else self.ckpt_root
        for d in (self.root, self.ckpt_root):
            d.mkdir(parents=True, exist_ok=True)
        if shard is not None and shard != "claim":
            try:
                i, k = shard
            except (TypeError, ValueError):
                raise ValueError(f"shard must be (i, k) with 0 <= i < k, or 'claim', got {shard!r}") from None
            if not (isinstance(i, int) and isinstance(k, int) and k >= 1 and 0 <= i < k):
                raise ValueError(f"shard must be (i, k) with 0 <= i < k, or 'claim', got {shard!r}")
        self.resume, self.overwrite, self.shard, self.collect = resume or collect, overwrite, shard, collect
        self.skipped: list[str] = []
        self.ran: list[str] = []
        self.missing: list[str] = []
        self._seen: dict[str, dict] = {}

    def checkpoint(self, run: str) -> Path:
        return self.ckpt_root / f"{run}.pt"

    def result_path(self, run: str) -> Path:
        return self.root / f"{run}.json"

    @property
    def claimed_elsewhere(self) -> list[str]:
        """The runs left to other processes' claims: with ``shard="claim"`` every missing run is one."""
        return list(self.missing) if self.shard == "claim" and not self.collect else []

    def claim_path(self, run: str) -> Path:
        return self.ckpt_root / f"{run}.claim"

    def mine(self, run: str) -> bool:
        """Whether this process trains ``run``: always without a shard; by the run name's hash with
        ``shard=(i, k)``; with ``shard="claim"`` when this process holds, or now takes, its claim."""
        import zlib

        if self.shard == "claim":
            return self._claim(run)
        return self.shard is None or zlib.crc32(run.encode()) % self.shard[1] == self.shard[0]

    def _claim(self, run: str) -> bool:
        """Take ``run``'s claim file (True), or leave it to the live process that holds it (False)."""
        path, me = self.claim_path(run), {"pid": os.getpid(), "host": platform.node()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                except (OSError, ValueError):
                    holder = None                  # being written this instant, or unreadable: another's
                if holder == me:
                    return True
                if not (isinstance(holder, dict) and holder.get("host") == me["host"]
                        and isinstance(holder.get("pid"), int) and not _alive(holder["pid"])):
                    return False
                path.unlink(missing_ok=True)       # its process died here: take the run over
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(me))
            return True
        return False

    def _release(self, run: str) -> None:
        if self.shard == "claim":
            self.claim_path(run).unlink(missing_ok=True)

    def load(self, run: str, key: str | None = None) -> dict | None:
        """The finished result of ``run`` if stored (checked against the fingerprint ``key``), else None."""
        path = self.result_path(run)
        if not path.exists():
            return None
        try:
            result = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ResumeError(f"resume file {path} is corrupt ({e}); delete it to rerun that run") from e
        if not isinstance(result, dict):
            raise ResumeError(f"resume file {path} is corrupt (not a JSON object); delete it to rerun that run")
        if key is not None and result.get("fingerprint") != key:
            raise ResumeError(
                f"resume file {path} was made by a different configuration (fingerprint "
                f"{result.get('fingerprint')!r}, this run {key!r}); delete it, or rerun with --overwrite")
        return result

    def _reuse(self, run: str, fp: str | None) -> dict | None:
        """The stored result of ``run`` (see :meth:`load`), recorded as reused; None if not stored."""
        stored = self.load(run, fp)
        if stored is not None:
            self.skipped.append(run)
            self._seen[run] = stored
        return stored

    def get_or_run(self, run: str, fn: Callable[[str], dict], key=None) -> dict | None:
        """The stored result of ``run`` (with resume) or ``fn(checkpoint_path)``, stored; None when the
        run is neither stored nor this process's to train (see ``shard``, ``collect``).

        ``key``: the run's configuration (any JSON-able object); its fingerprint is stored and checked.
        """
        fp = fingerprint(key) if key is not None else None
        if run in self._seen:                      # asked twice in one experiment: the same run
            if self._seen[run].get("fingerprint") != fp:
                raise ResumeError(f"run {run!r} was asked for twice with different configurations")
            return self._seen[run]
        path, ckpt = self.result_path(run), self.checkpoint(run)
        if self.resume:
            stored = self._reuse(run, fp)
            if stored is not None:
                return stored
        elif path.exists() or ckpt.exists():
            if not self.overwrite:
                raise FileExistsError(
                    f"run files for {run!r} exist ({path} or {ckpt}); pass resume=True (--resume) to reuse "
                    "them or overwrite=True (--overwrite) to start again")
            for p in (path, ckpt):
                p.unlink(missing_ok=True)
        if self.collect or not self.mine(run):
            self.missing.append(run)
            return None
        try:
            if self.shard == "claim" and self.resume:
                stored = self._reuse(run, fp)      # finished by another process since we looked
                if stored is not None:
                    return stored
            t0 = time.perf_counter()
            result = to_jsonable(fn(str(ckpt)))
            result["fingerprint"] = fp
            result["wall_s"] = round(time.perf_counter() - t0, 2)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(result))
            tmp.replace(path)
            ckpt.unlink(missing_ok=True)           # the run is finished: its checkpoint is not needed
        finally:
            self._release(run)
        self.ran.append(run)
        self._seen[run] = result
        return result


def write_results(name: str, out: str | Path, payload: dict, table: list[dict] | None = None) -> Path:
    """``<out>/exp_<name>.json`` (+ ``exp_<name>.csv`` from ``table``, one dict per row)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"exp_{name}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(to_jsonable(payload), indent=1) + "\n")
    os.replace(tmp, path)                 # atomic: several shard processes may publish the same file
    if not table:
        (out / f"exp_{name}.csv").unlink(missing_ok=True)     # no rows yet: no stale table from an older run
    if table:
        keys = list(dict.fromkeys(k for row in table for k in row))
        csv_tmp = out / f"exp_{name}.csv.tmp{os.getpid()}"
        with open(csv_tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            for row in table:
                w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        os.replace(csv_tmp, out / f"exp_{name}.csv")
    return path
