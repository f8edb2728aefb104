"""Run time and peak memory of every chapter notebook: ``python scripts/notebook_stats.py``.

Each ``book/*.ipynb`` (or the notebooks given) is executed top to bottom in a fresh kernel, as a
reader would run it. A sampler thread reads the resident memory (RSS) of the kernel process and
all its children (e.g. a Triton compile or a subprocess a chapter starts) every 20 ms; the peak is
what a host like Binder (1-2 GB) must allow. Prints a table and writes
``figures/notebook_stats.json``. Exit status 1 if a notebook failed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kernel_poll  # noqa: E402  (a sibling module: a finished cell never waits for the timeout)

kernel_poll.install()

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "figures" / "notebook_stats.json"
BINDER_MEMORY_MIB = 1024  # the smaller of mybinder.org's usual limits


class TreeRSSSampler(threading.Thread):
    """Peak summed RSS of a kernel process and its descendants."""

    def __init__(self, km: KernelManager, interval: float = 0.02):
        super().__init__(daemon=True)
        self.km = km
        self.interval = interval
        self.peak = 0
        self._halt = threading.Event()

    def _root(self) -> psutil.Process | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        if process is None or process.poll() is not None:
            return None
        try:
            return psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            return None

    def run(self) -> None:
        while not self._halt.is_set():
            root = self._root()
            if root is not None:
                total = 0
                try:
                    for proc in [root, *root.children(recursive=True)]:
                        try:
                            total += proc.memory_info().rss
                        except (psutil.NoSuchProcess, psutil.AccessDenied):
                            pass
                except psutil.NoSuchProcess:
                    pass
                self.peak = max(self.peak, total)
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def measure(path: Path, timeout: int = 600) -> dict:
    """Execute one notebook in a fresh kernel; its time, peak memory and outcome."""
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="python3")
    client = NotebookClient(
        nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}}
    )
    sampler = TreeRSSSampler(km)
    sampler.start()
    start = time.perf_counter()
    error = None
    try:
        client.execute()
    except Exception as exc:  # a failing cell: report it, keep measuring the other notebooks
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
    seconds = time.perf_counter() - start
    peak = sampler.stop()
    return {
        "notebook": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "seconds": round(seconds, 2),
        "peak_rss_mib": round(peak / 2**20, 1),
        "ok": error is None,
        "error": error,
    }


def table(rows: list[dict]) -> str:
    width = max([len("notebook")] + [len(r["notebook"]) for r in rows])
    lines = [f"{'notebook':<{width}}  {'time (s)':>9}  {'peak RSS (MiB)':>14}  status",
             "-" * (width + 36)]
    for r in rows:
        status = "ok" if r["ok"] else f"FAILED: {r['error']}"
        if r["ok"] and r["peak_rss_mib"] > BINDER_MEMORY_MIB:
            status += f" (above Binder's {BINDER_MEMORY_MIB} MiB)"
        lines.append(f"{r['notebook']:<{width}}  {r['seconds']:>9.1f}  {r['peak_rss_mib']:>14.1f}  {status}")
    lines.append("-" * (width + 36))
    lines.append(f"{'total':<{width}}  {sum(r['seconds'] for r in rows):>9.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: book/*.ipynb")
    parser.add_argument("--timeout", type=int, default=600, help="per cell, seconds")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    # Kernels must import this checkout's package, installed or not (as in scripts/build_book.py).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    notebooks = [p.resolve() for p in args.notebooks] or sorted((ROOT / "book").glob("*.ipynb"))
    if not notebooks:
        print("no notebooks found", file=sys.stderr)
        return 1
    rows = []
    for path in notebooks:
        rows.append(measure(path, args.timeout))
        print(f"  {rows[-1]['notebook']}: {rows[-1]['seconds']:.1f} s", file=sys.stderr)
    print(table(rows))
    import torch

    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
        },
        "notebooks": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    print(f"written to {args.output}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
