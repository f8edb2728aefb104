"""Autograd-aware collectives on ``torch.distributed`` that count the bytes they send.

Every exchange of the sharded layers goes through :func:`torch.distributed.all_to_all_single`
(supported by gloo on CPU and NCCL on GPUs), wrapped so that

* gradients flow back through it: the backward of an all-to-all is the all-to-all with the
  splits swapped; the backward of an all-gather is a reduce-scatter, done here as an all-to-all
  followed by a local sum over the P received chunks (the same bytes on the wire);
* each call records the bytes this rank sends to *other* ranks (its chunk to itself is a local
  copy) in every active :class:`CommLog` (``with count_bytes() as log: ...``). This is the
  logical payload of the collective, the quantity :mod:`.comm_model` predicts; a ring all-gather
  also sends (P−1)·S bytes per rank, so it does not depend on the algorithm the backend picks.

Splits are counts of rows along dim 0, as in ``all_to_all_single``.
"""
from __future__ import annotations

import math
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
import torch.distributed as dist

__all__ = ["CommLog", "count_bytes", "all_to_all", "all_gather_v", "exchange_counts", "group_rank_size"]


@dataclass
class CommLog:
    """Bytes this rank sent to other ranks, per named exchange (forward and backward apart)."""

    records: list[tuple[str, int]] = field(default_factory=list)
    to_peer: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, op: str, nbytes: int, per_peer: Sequence[int] | None = None) -> None:
        """Record ``nbytes`` sent by ``op``; ``per_peer[q]``: the part that went to rank q."""
        self.records.append((op, int(nbytes)))
        for q, n in enumerate(per_peer or ()):
            self.to_peer[q] += int(n)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.records)

    def peers(self, world_size: int) -> list[int]:
        """Bytes sent to each rank 0 … world_size − 1 (0 to itself)."""
        return [self.to_peer.get(q, 0) for q in range(world_size)]

    def by_op(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for op, n in self.records:
            out[op] += n
        return dict(out)


_ACTIVE: list[CommLog] = []


@contextmanager
def count_bytes() -> Iterator[CommLog]:
    """Record, in a fresh :class:`CommLog`, what every collective of this module sends meanwhile."""
    log = CommLog()
    _ACTIVE.append(log)
    try:
        yield log
    finally:
        _ACTIVE.remove(log)


def group_rank_size(group=None) -> tuple[int, int]:
    """(this rank within ``group``, size of ``group``); ``group=None`` is the default group."""
    return dist.get_rank(group), dist.get_world_size(group)


def _a2a(x: torch.Tensor, out_splits: Sequence[int], in_splits: Sequence[int], group, op: str) -> torch.Tensor:
    """all_to_all_single along dim 0, recording the bytes sent to other ranks."""
    rank, _ = group_rank_size(group)
    x = x.contiguous()
    row_bytes = math.prod(x.shape[1:]) * x.element_size()
    per_peer = [0 if q == rank else int(n) * row_bytes for q, n in enumerate(in_splits)]
    for log in _ACTIVE:
        log.add(op, sum(per_peer), per_peer)
    out = x.new_empty((int(sum(out_splits)), *x.shape[1:]))
    dist.all_to_all_single(out, x, [int(s) for s in out_splits], [int(s) for s in in_splits], group=group)
    return out


class _AllToAll(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, out_splits, in_splits, group, op):
        ctx.splits, ctx.group, ctx.op = (list(out_splits), list(in_splits)), group, op
        return _a2a(x, out_splits, in_splits, group, op)

    @staticmethod
    def backward(ctx, grad):
        out_splits, in_splits = ctx.splits
        return _a2a(grad, in_splits, out_splits, ctx.group, ctx.op + " (backward)"), None, None, None, None


def all_to_all(x: torch.Tensor, out_splits: Sequence[int], in_splits: Sequence[int], group=None,
               op: str = "all_to_all") -> torch.Tensor:
    """Send rows ``x[sum(in_splits[:q]) : sum(in_splits[:q+1])]`` to rank q; receive
    ``out_splits[q]`` rows from rank q, stacked in rank order. Differentiable in ``x``."""
    if x.requires_grad and torch.is_grad_enabled():
        return _AllToAll.apply(x, list(out_splits), list(in_splits), group, op)
    return _a2a(x, out_splits, in_splits, group, op)


class _AllGatherV(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, sizes, group, op):
        rank, world = group_rank_size(group)
        ctx.sizes, ctx.group, ctx.op, ctx.n = list(sizes), group, op, x.shape[0]
        return _a2a(x.repeat(world, *([1] * (x.dim() - 1))), sizes, [x.shape[0]] * world, group, op)

    @staticmethod
    def backward(ctx, grad):
        _, world = group_rank_size(ctx.group)
        # reduce-scatter: the chunk of the gathered gradient that belongs to rank q goes home to q
        back = _a2a(grad, [ctx.n] * world, ctx.sizes, ctx.group, ctx.op + " (backward)")
        return back.view(world, ctx.n, *grad.shape[1:]).sum(0), None, None, None


def all_gather_v(x: torch.Tensor, sizes: Sequence[int], group=None, op: str = "all_gather") -> torch.Tensor:
    """Concatenate every rank's ``x`` (rank q contributes ``sizes[q]`` rows) in rank order.

    Differentiable in ``x``: the backward sums, on each rank, the gradients all ranks computed
    for its rows (a reduce-scatter).
    """
    if x.requires_grad and torch.is_grad_enabled():
        return _AllGatherV.apply(x, list(sizes), group, op)
    _, world = group_rank_size(group)
    return _a2a(x.repeat(world, *([1] * (x.dim() - 1))), sizes, [x.shape[0]] * world, group, op)


def exchange_counts(counts: torch.Tensor, group=None, op: str = "counts") -> torch.Tensor:
    """counts (P,) int64, counts[q] = what this rank will send to rank q → (P,) what each rank will
    send to this one (one all-to-all of one int64 per rank)."""
    _, world = group_rank_size(group)
    return _a2a(counts.to(torch.int64), [1] * world, [1] * world, group, op)
