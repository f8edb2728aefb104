"""Start a small gloo process group on this machine (loopback only) and run a function on each rank.

For tests and the book: ``run_group(fn, world_size, *args)`` spawns ``world_size`` fresh Python
processes, each joins a gloo group on 127.0.0.1 with a timeout, sets torch to one thread, calls
``fn(rank, world_size, *args)`` and sends its return value back. A rank that raises makes
``run_group`` raise with that rank's traceback; a run that exceeds ``timeout`` is killed (no
hang). ``fn`` must be importable by name (a module-level function), as with any spawned process.
A real job on GPUs is started with ``torchrun`` instead (see :mod:`ultramem_edu.distributed.ddp`).
"""
from __future__ import annotations

import datetime
import os
import queue as queue_
import socket
import sys
import traceback
from typing import Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["free_port", "init_loopback", "run_group", "GroupError"]


class GroupError(RuntimeError):
    """A rank of :func:`run_group` failed or the group ran past its timeout."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_loopback(rank: int, world_size: int, port: int, timeout_s: float = 30.0) -> None:
    """Join a gloo group on 127.0.0.1:``port``; collectives fail after ``timeout_s`` instead of hanging."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")    # keep gloo's own sockets on loopback
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def _worker(rank, world_size, port, timeout_s, fn, args, results):
    torch.set_num_threads(1)
    try:
        init_loopback(rank, world_size, port, timeout_s)
        try:
            out = fn(rank, world_size, *args)
        finally:
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001  (a broken group cannot always be torn down cleanly)
                pass
        results.put((rank, True, out))
    except BaseException as e:  # noqa: BLE001
        results.put((rank, False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def run_group(fn: Callable, world_size: int, *args, timeout: float = 60.0, collective_timeout: float = 20.0,
              return_errors: bool = False) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; return the results by rank.

    Args:
        timeout: seconds for the whole run; past it every process is killed and GroupError raised.
        collective_timeout: the process group's timeout (a collective waiting for a dead rank
            raises after at most this long).
        return_errors: return each rank's error text in place of its result instead of raising.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be an int >= 1, got {world_size!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, world_size, port, collective_timeout, fn, args, results),
                         daemon=True) for r in range(world_size)]
    for p in procs:
        p.start()
    got: dict[int, tuple[bool, object]] = {}
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout)
    try:
        while len(got) < world_size:
            left = (deadline - datetime.datetime.now()).total_seconds()
            if left <= 0:
                raise GroupError(f"run_group: ranks {sorted(set(range(world_size)) - set(got))} did not finish "
                                 f"within {timeout} s")
            try:
                rank, ok, out = results.get(timeout=min(left, 1.0))
                got[rank] = (ok, out)
            except queue_.Empty:
                if not any(p.is_alive() for p in procs):       # everyone gone: collect the last words
                    try:
                        while True:
                            rank, ok, out = results.get(timeout=1.0)
                            got[rank] = (ok, out)
                    except queue_.Empty:
                        pass
                    for r, p in enumerate(procs):
                        got.setdefault(r, (False, f"rank {r} exited with code {p.exitcode} without a result"))
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    failures = {r: out for r, (ok, out) in got.items() if not ok}
    if failures and not return_errors:
        raise GroupError("\n".join(f"rank {r} failed: {failures[r]}" for r in sorted(failures)))
    return [got[r][1] for r in range(world_size)]
