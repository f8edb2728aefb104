"""The value table of an :class:`~ultramem_edu.layer.UltraMemLayer` sharded over a process group.

Everything but the value table (query, keys, Tucker cores, norms, output projection) stays
replicated: each rank scores and selects for its own tokens, exactly as the unsharded layer does.
Only the lookup crosses ranks, in one of two ways (method.md §9; the paper's appendix, Fig. 8):

``scheme="column"`` (dimension-wise; the released code's "vertical parallel")
    Rank p holds columns [p·D_v/P, (p+1)·D_v/P) of every row. All ranks all-gather the selected
    virtual addresses and per-core scores of every token, each pools its column slice for all
    tokens (the pooled (B, E, D_v/P) is linear in the slice, so nothing is lost), and an
    all-to-all sends each token's partial pooled vectors home, where the E·D_v-wide pooled input
    is reassembled and projected. Work and traffic do not depend on which rows are popular.
    With MCS, column c of the table belongs to core ⌊c·h/D_v⌋; a rank's slice may span several
    cores or lie inside one, and it weights each of its columns with that column's core score.
    With IVE, the partial outputs are sent *before* the projection: E·D_v/P numbers per token
    and peer, not D (see :mod:`.comm_model`).

``scheme="row"`` (number-wise)
    Rank p holds rows [p·N/P, (p+1)·N/P). Each rank sends the (deduplicated) physical row ids its
    tokens selected to their owners (all-to-all of counts, then of ids), the owners send the rows
    back (all-to-all of rows, uneven when many ranks ask one for many rows), and the pooling
    happens at home. In the backward the row gradients travel back to the owners.

Both compute the same numbers as the unsharded layer: forward and the gradients of every
parameter (tested on real gloo process groups in ``tests/test_distributed.py``). The gradient a
rank gets for its value shard is the sum over *all* ranks' tokens; the replicated parameters get
the local tokens' part, to be summed or averaged across ranks (DDP does that, see :mod:`.ddp`).
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..kernels import value_lookup
from ..layer import UltraMemLayer
from ..types import MemoryOutput
from .collectives import all_gather_v, all_to_all, exchange_counts, group_rank_size

__all__ = ["SCHEMES", "ShardedUltraMemLayer", "shard_layer", "column_lookup", "row_lookup", "column_core_map"]

SCHEMES = ("column", "row")


# ---------------------------------------------------------------------------------------- lookups
def column_core_map(value_dim: int, num_cores: int, lo: int, hi: int) -> tuple[int, list[int]]:
    """Columns [lo, hi) of a D_v-wide table split into h core slices of D_v/h columns.

    Returns (g, cores): the slice cut into (hi−lo)/g groups of g columns, each inside one core
    slice, and the core of each group. g = gcd(hi − lo, D_v/h, lo) so groups never straddle a
    core boundary.
    """
    s = value_dim // num_cores
    g = math.gcd(hi - lo, s, lo) if lo else math.gcd(hi - lo, s)
    return g, [(lo + i * g) // s for i in range((hi - lo) // g)]


def column_lookup(
    shard: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, num_blocks: int, value_dim: int,
    group=None, backend: str = "auto",
) -> torch.Tensor:
    """Column-sharded value lookup: what ``value_lookup(V, indices, weights, num_blocks)`` gives,
    with V's columns spread over the group.

    Args:
        shard: (N, D_v/P) this rank's columns [rank·D_v/P, (rank+1)·D_v/P) of V.
        indices: (B, k) virtual addresses of this rank's tokens (B may differ between ranks).
        weights: (B, k, h) per-core scores.
    Returns:
        (B, num_blocks, D_v) pooled values of this rank's tokens, all columns.
    """
    rank, world = group_rank_size(group)
    b, k, h = weights.shape
    w = shard.shape[1]
    sizes = exchange_counts(torch.full((world,), b, dtype=torch.int64, device=indices.device), group, op="batch sizes").tolist()
    idx_all = all_gather_v(indices, sizes, group, op="indices")                 # (B_all, k)
    w_all = all_gather_v(weights, sizes, group, op="scores")                    # (B_all, k, h)
    g, cores = column_core_map(value_dim, h, rank * w, (rank + 1) * w)
    mine = w_all[..., cores]                                                    # (B_all, k, w/g)
    partial = value_lookup(shard, idx_all, mine, num_blocks=num_blocks, backend=backend)  # (B_all, E, w)
    home = all_to_all(partial, [b] * world, sizes, group, op="partial outputs")  # (P·B, E, w)
    return home.view(world, b, num_blocks, w).permute(1, 2, 0, 3).reshape(b, num_blocks, world * w)


def row_lookup(
    shard: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, num_blocks: int, num_values: int,
    group=None, dedup: bool = True, backend: str = "auto",
) -> torch.Tensor:
    """Row-sharded value lookup: what ``value_lookup(V, indices, weights, num_blocks)`` gives,
    with V's rows spread over the group.

    Args:
        shard: (N/P, D_v) this rank's rows [rank·N/P, (rank+1)·N/P) of V.
        indices: (B, k) virtual addresses in [0, E·N); weights: (B, k, h).
        num_values: N, rows of the whole table.
        dedup: ask each owner once per distinct row (True) or once per selection (False).
    Returns:
        (B, num_blocks, D_v).
    """
    rank, world = group_rank_size(group)
    per_rank = shard.shape[0]
    flat = indices.reshape(-1).long()
    physical, block = flat % num_values, flat // num_values
    if dedup:
        wanted, inverse = torch.unique(physical, sorted=True, return_inverse=True)
    else:  # every selection asks for its row: sort by row (so by owner), remember where each went
        order = torch.argsort(physical, stable=True)
        wanted = physical[order]
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
    send = torch.bincount(wanted // per_rank, minlength=world)                 # rows asked of each rank
    recv = exchange_counts(send, group, op="row counts")                       # rows each rank asks of me
    asked = all_to_all(wanted, recv.tolist(), send.tolist(), group, op="row ids")   # (R_in,) global ids
    served = F.embedding(asked - rank * per_rank, shard)                       # (R_in, D_v)
    fetched = all_to_all(served, send.tolist(), recv.tolist(), group, op="rows")    # (R_out, D_v)
    local = block * fetched.shape[0] + inverse                                 # address in the fetched table
    return value_lookup(fetched, local.view_as(indices), weights, num_blocks=num_blocks, backend=backend)


# ---------------------------------------------------------------------------------------- module
class ShardedUltraMemLayer(nn.Module):
    """An UltraMem layer whose value table is sharded over ``group``; built by :func:`shard_layer`.

    ``self.layer`` is the original layer with ``layer.values`` replaced by this rank's shard
    (rows ``self.rows`` and columns ``self.cols`` of the full table), so optimisers built with
    :func:`~ultramem_edu.layer.memory_param_groups` find it and keep Adam state for the shard only.
    forward(x (..., D)) -> MemoryOutput, as :class:`~ultramem_edu.layer.UltraMemLayer`.
    """

    def __init__(self, layer: UltraMemLayer, group, scheme: str, dedup: bool = True):
        super().__init__()
        rank, world = group_rank_size(group)
        c = layer.config
        self.group, self.scheme, self.dedup = group, scheme, dedup
        self.rank, self.world_size = rank, world
        if scheme == "column":
            w = c.value_dim // world
            self.rows, self.cols = (0, c.num_values), (rank * w, (rank + 1) * w)
        else:
            r = c.num_values // world
            self.rows, self.cols = (rank * r, (rank + 1) * r), (0, c.value_dim)
        with torch.no_grad():
            shard = layer.values[self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]].clone()
        layer.values = nn.Parameter(shard)                                      # the full table is freed
        self.layer = layer

    @property
    def config(self):
        return self.layer.config

    def extra_repr(self) -> str:
        return f"scheme={self.scheme!r}, rank={self.rank}/{self.world_size}, rows={self.rows}, cols={self.cols}"

    def forward(self, x: torch.Tensor) -> MemoryOutput:
        layer, c = self.layer, self.layer.config
        lead, scores, weights, indices, virtual = layer.route(x)                # virtual (B', H·m)
        if self.scheme == "column":
            pooled = column_lookup(layer.values, virtual, weights, c.expansion, c.value_dim, self.group,
                                   backend=c.kernel_backend)
        else:
            pooled = row_lookup(layer.values, virtual, weights, c.expansion, c.num_values, self.group,
                                dedup=self.dedup, backend=c.kernel_backend)      # (B', E, D_v)
        return layer.combine(pooled, lead, scores, indices)


def _fingerprint(layer, scheme, dedup) -> tuple[dict, str | None]:
    """What must agree across ranks, and this rank's own complaint about its arguments (or None)."""
    problem = None
    if not isinstance(layer, UltraMemLayer):
        problem = f"layer must be an UltraMemLayer, got {type(layer).__name__}"
    elif scheme not in SCHEMES:
        problem = f"scheme must be one of {SCHEMES}, got {scheme!r}"
    elif not isinstance(dedup, bool):
        problem = f"dedup must be a bool, got {type(dedup).__name__}"
    info = {"scheme": scheme, "dedup": dedup}
    if isinstance(layer, UltraMemLayer):
        info["config"] = dataclasses.asdict(layer.config)
        info["values"] = (tuple(layer.values.shape), str(layer.values.dtype))
    return info, problem


def shard_layer(layer: UltraMemLayer, group=None, scheme: str = "column", dedup: bool = True,
                broadcast_replicated: bool = True) -> ShardedUltraMemLayer:
    """Shard ``layer``'s value table over ``group`` (default: the default process group).

    Call it on every rank with the same arguments (a collective). Checked once, here, on every
    rank alike, so that a bad call fails everywhere with the same ValueError instead of leaving
    some ranks waiting: the arguments of every rank (an UltraMemLayer, a known scheme), that the
    configs and table shapes agree across ranks, and that the group size divides the table
    (D_v for ``"column"``, N for ``"row"``).

    Args:
        layer: the full layer on each rank; it is modified in place (its table becomes the shard).
        scheme: "column" or "row" (see the module docstring).
        dedup: row scheme only: ask for each distinct row once.
        broadcast_replicated: copy rank 0's replicated parameters and buffers to every rank, so
            that layers built with different seeds agree (DDP does the same for a whole model).
            The value table is never broadcast: each rank keeps its slice of its own table.
    """
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("shard_layer needs an initialised process group: call "
                           "torch.distributed.init_process_group(...) on every rank first")
    rank, world = group_rank_size(group)
    info, problem = _fingerprint(layer, scheme, dedup)
    everyone: list = [None] * world
    dist.all_gather_object(everyone, (info, problem), group=group)
    complaints = [f"rank {q}: {p}" for q, (_, p) in enumerate(everyone) if p]
    if complaints:
        raise ValueError("shard_layer: bad arguments; " + "; ".join(complaints))
    first = everyone[0][0]
    for q, (other, _) in enumerate(everyone[1:], start=1):
        if other == first:
            continue
        fields = sorted(k for k in first["config"] if first["config"][k] != other["config"].get(k))
        if fields:
            what = f"config fields {fields}"
        elif (other["scheme"], other["dedup"]) != (first["scheme"], first["dedup"]):
            what = f"scheme/dedup ({other['scheme']!r}, {other['dedup']}) vs ({first['scheme']!r}, {first['dedup']})"
        else:
            what = f"the value table's shape/dtype {other['values']} vs {first['values']}"
        raise ValueError(f"shard_layer: rank {q} disagrees with rank 0 on {what}: every rank must wrap "
                         "the same layer configuration with the same arguments")
    c = layer.config
    if scheme == "column" and c.value_dim % world:
        raise ValueError(f"scheme='column' needs the group size to divide value_dim: D_v={c.value_dim}, "
                         f"world size {world}")
    if scheme == "row" and c.num_values % world:
        raise ValueError(f"scheme='row' needs the group size to divide num_values: N={c.num_values}, "
                         f"world size {world}")
    if broadcast_replicated and world > 1:
        src = dist.get_global_rank(group, 0) if group is not None else 0
        with torch.no_grad():
            for name, t in list(layer.named_parameters()) + list(layer.named_buffers()):
                if name != "values":
                    dist.broadcast(t.data, src=src, group=group)
    return ShardedUltraMemLayer(layer, group, scheme, dedup)
