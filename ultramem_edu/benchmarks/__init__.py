"""Measured benchmarks behind chapter 10 ("Inference cost"): shared timing, memory and metadata helpers.

    python -m ultramem_edu.benchmarks decode [--quick] [--out figures/]   # dense vs MoE vs UltraMem decode step
    python -m ultramem_edu.benchmarks peer   [--quick] [--out figures/]   # our layer vs the `ultra-mem` package

Both write ``bench_<name>.json`` (metadata + rows + notes) and ``bench_<name>.csv`` (the rows).
The helpers here are what makes the numbers comparable:

* :class:`Timer` times one call: ``time.perf_counter`` on a CPU, CUDA events plus a synchronise on a
  GPU (kernel launches are asynchronous, so a wall clock alone would time the launch, not the work).
* :func:`interleaved_medians` runs every candidate once per repetition, in a rotating order, and
  reports medians: slow drifts of a shared machine (other processes, frequency scaling) then hit all
  candidates alike instead of whichever happened to run last.
* :class:`PeakTensorMemory` tracks the bytes of live tensor storages through every dispatched op
  (forward *and* backward) and keeps the peak: a deterministic, allocator-independent count that
  works on a CPU, where torch has no ``max_memory_allocated``.
* :func:`metadata` records device, versions, threads, date and git commit with every result.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ..provenance import git

__all__ = [
    "resolve_device",
    "set_threads",
    "Timer",
    "interleaved_medians",
    "PeakTensorMemory",
    "metadata",
    "write_results",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" → CUDA when available, else CPU; otherwise ``torch.device(name)``."""
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {type(name).__name__}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available here")
    return device


def set_threads(threads: int) -> int:
    """Fix torch's intra-op thread count (timings on a shared CPU are only comparable at a fixed count)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    return torch.get_num_threads()


class Timer:
    """Milliseconds of one call of ``fn`` on ``device``.

    CPU: a ``perf_counter`` wall clock. CUDA: events recorded around the call, then a synchronise
    (the events measure GPU time; the synchronise makes sure the work is finished before the next
    candidate starts).
    """

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"

    def __call__(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]],
    timer: Timer,
    min_reps: int,
    max_reps: int,
    budget_s: float,
    warmup: int = 2,
) -> dict[str, dict]:
    """Time every candidate in ``fns`` side by side; stats per candidate.

    Each repetition runs every candidate once, the order rotating by one per repetition. Stops after
    ``max_reps`` repetitions, or after ``min_reps`` once ``budget_s`` seconds have passed.

    Returns:
        {name: {"median_ms", "q25_ms", "q75_ms", "min_ms", "reps"}}.
    """
    if not fns:
        raise ValueError("fns must name at least one candidate")
    if not 1 <= min_reps <= max_reps:
        raise ValueError(f"need 1 <= min_reps <= max_reps, got min_reps={min_reps}, max_reps={max_reps}")
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    t_start = time.perf_counter()
    for rep in range(max_reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timer(fns[name]))
        if rep + 1 >= min_reps and time.perf_counter() - t_start > budget_s:
            break
    out = {}
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
        out[name] = {"median_ms": statistics.median(ts), "q25_ms": q[0], "q75_ms": q[2],
                     "min_ms": min(ts), "reps": len(ts)}
    return out


class PeakTensorMemory(TorchDispatchMode):
    """Peak bytes of tensor storages created inside the ``with`` block (forward and backward).

    Every op's outputs are recorded by storage; storages that have been freed are dropped before
    each op's outputs are added, so ``peak_bytes`` is the high-water mark of what the block had
    allocated and not yet freed. Tensors that existed before the block (parameters, inputs) are not
    counted; views share their base's storage and count once. Runs the ops normally.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.current_bytes = 0
        self.peak_bytes = 0

    def _sweep(self) -> None:
        for key, (ref, nbytes) in list(self._live.items()):
            if ref.expired():
                self.current_bytes -= nbytes
                del self._live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self._sweep()
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key, nbytes = storage.data_ptr(), storage.nbytes()
                if nbytes and key not in self._live:
                    self._live[key] = (StorageWeakRef(storage), nbytes)
                    self.current_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)
        return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metadata(device: torch.device, threads: int, extra: Mapping[str, object] | None = None) -> dict:
    """Device, versions, threads, UTC date and git commit of a benchmark run."""
    device = torch.device(device)
    status = git("status", "--porcelain")
    meta = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "commit": git("rev-parse", "HEAD"),
        "worktree_dirty": None if status is None else bool(status),
    }
    try:
        import numpy

        meta["numpy"] = numpy.__version__
    except ImportError:
        meta["numpy"] = None
    if extra:
        meta.update(extra)
    return meta


def write_results(
    out_dir: str | os.PathLike, stem: str, meta: dict, rows: Sequence[dict], **sections: object
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` ({"metadata", "rows", **sections}) and ``<stem>.csv`` (the rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / f"{stem}.json", out / f"{stem}.csv"
    json_path.write_text(json.dumps({"metadata": meta, "rows": list(rows), **sections}, indent=1) + "\n")
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return json_path, csv_path
