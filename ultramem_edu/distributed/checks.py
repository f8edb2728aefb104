"""Per-rank checks of the sharded layer against the unsharded one, for tests and the book.

Each function here runs on one rank of a live process group (start them with
:func:`ultramem_edu.distributed.launch.run_group`) and returns plain numbers: the largest
differences from the single-process layer, and the bytes measured beside the model's count.
The tests assert on them; chapter 13 shows them.
"""
from __future__ import annotations

import copy

import torch
import torch.distributed as dist

from ..kernels import value_lookup
from ..layer import UltraMemConfig, UltraMemLayer
from .collectives import count_bytes
from .comm_model import column_bytes, request_matrix, row_bytes
from .shard import column_lookup, row_lookup, shard_layer

__all__ = ["layer_equivalence", "lookup_equivalence", "bad_wrap", "dead_peer", "sleeper", "chapter_demo", "TEST_CONFIG"]

# A small layer with every part switched on: TDQKR (r = 2), MCS (h = 2), IVE (E = 4), two heads.
TEST_CONFIG = dict(d_model=16, num_values=64, value_dim=8, key_dim=8, num_heads=2, topm=4, num_layers=2,
                   init_samples=64)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach() - b.detach()).abs().max()) if a.numel() else 0.0


def layer_equivalence(rank: int, world: int, scheme: str, tokens: int = 6, seed: int = 0, dedup: bool = True,
                      config: dict | None = None, dtype: torch.dtype = torch.float64) -> dict:
    """Forward and backward of ``shard_layer(layer, scheme=...)`` on this rank's ``tokens`` tokens
    against the unsharded layer on all ranks' tokens (every rank computes the reference).

    Returns the largest differences (output, value-shard gradient, replicated gradients summed over
    ranks, input gradient), the bytes this rank sent by exchange, and the model's count.
    """
    cfg = UltraMemConfig(**(config or TEST_CONFIG))
    torch.manual_seed(seed)
    layer = UltraMemLayer(cfg).to(dtype)
    reference = copy.deepcopy(layer)
    gen = torch.Generator().manual_seed(seed + 1)
    x_all = torch.randn(world * tokens, cfg.d_model, generator=gen, dtype=dtype)
    g_all = torch.randn(world * tokens, cfg.d_model, generator=gen, dtype=dtype)   # d loss / d output
    mine = slice(rank * tokens, (rank + 1) * tokens)

    x_ref = x_all.clone().requires_grad_(True)
    ref = reference(x_ref)
    (ref.output * g_all).sum().backward()
    ref_grads = dict(reference.named_parameters())

    sharded = shard_layer(layer, scheme=scheme, dedup=dedup)
    x = x_all[mine].clone().requires_grad_(True)
    with count_bytes() as log:
        out = sharded(x)
        (out.output * g_all[mine]).sum().backward()

    rows, cols = sharded.rows, sharded.cols
    result = {
        "output": _max_diff(out.output, ref.output[mine]),
        "indices_equal": bool(torch.equal(out.indices, ref.indices[mine])),
        "input_grad": _max_diff(x.grad, x_ref.grad[mine]),
        "value_grad": _max_diff(sharded.layer.values.grad,
                                ref_grads["values"].grad[rows[0]:rows[1], cols[0]:cols[1]]),
        "shard_shape": tuple(sharded.layer.values.shape),
    }
    worst = 0.0
    for name, p in sharded.layer.named_parameters():
        if name == "values":
            continue
        total = p.grad.clone()
        dist.all_reduce(total)                    # the replicated parameters: sum of the ranks' parts
        worst = max(worst, _max_diff(total, ref_grads[name].grad))
    result["replicated_grad"] = worst
    result["measured"] = log.by_op()
    result["to_peer"] = log.peers(world)
    b_f = torch.empty((), dtype=dtype).element_size()
    if scheme == "column":
        model = column_bytes(tokens, cfg.num_heads, cfg.topm, cfg.value_dim, world, cfg.num_cores,
                             cfg.expansion, index_bytes=8, float_bytes=b_f)
    else:
        virtual = reference.shuffle[ref.indices.flatten(1)] if reference.shuffle is not None else ref.indices.flatten(1)
        per_rank = [virtual[q * tokens:(q + 1) * tokens].numpy() for q in range(world)]
        requests = request_matrix(per_rank, cfg.num_values, world, dedup=dedup)
        model = row_bytes(requests, rank, cfg.value_dim, index_bytes=8, float_bytes=b_f)
        result["requests"] = requests.tolist()
    result["model"] = model
    return result


def lookup_equivalence(rank: int, world: int, scheme: str, pattern: str = "hot", tokens: int = 5, k: int = 6,
                       num_values: int = 16, value_dim: int = 8, cores: int = 2, blocks: int = 4,
                       seed: int = 0, dedup: bool = True) -> dict:
    """The functional lookups on chosen addresses against :func:`~ultramem_edu.kernels.value_lookup`.

    ``pattern``: "hot" — every rank selects only rows owned by rank 0, with repeats within and
    across ranks (the uneven load of the row scheme); "random" — uniform addresses; "same" — every
    rank selects exactly the same addresses; "uneven" — uniform addresses, rank q with tokens + q
    tokens (the column model assumes equal batches, so it is not given then). float64; returns the largest differences of the
    pooled output and of the gradients of the table and the scores.
    """
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(num_values, value_dim, generator=gen, dtype=torch.float64)
    per = num_values // world
    idx, wts, gout = [], [], []
    for q in range(world):
        b = tokens + q if pattern == "uneven" else tokens
        if pattern == "hot":
            rows = torch.randint(0, per, (b, k), generator=gen)                       # rank 0's rows only
        elif pattern == "same":
            g0 = torch.Generator().manual_seed(seed + 7)
            rows = torch.randint(0, num_values, (b, k), generator=g0)
        else:
            rows = torch.randint(0, num_values, (b, k), generator=gen)
        block = torch.randint(0, blocks, (b, k), generator=gen)
        idx.append(block * num_values + rows)
        wts.append(torch.randn(b, k, cores, generator=gen, dtype=torch.float64))
        gout.append(torch.randn(b, blocks, value_dim, generator=gen, dtype=torch.float64))

    full = table.clone().requires_grad_(True)
    w_ref = [w.clone().requires_grad_(True) for w in wts]
    ref = [value_lookup(full, idx[q], w_ref[q], num_blocks=blocks, backend="torch") for q in range(world)]
    sum((r * g).sum() for r, g in zip(ref, gout)).backward()

    if scheme == "column":
        w = value_dim // world
        shard = table[:, rank * w:(rank + 1) * w].clone().requires_grad_(True)
        ref_shard_grad = full.grad[:, rank * w:(rank + 1) * w]
    else:
        shard = table[rank * per:(rank + 1) * per].clone().requires_grad_(True)
        ref_shard_grad = full.grad[rank * per:(rank + 1) * per]
    w_mine = wts[rank].clone().requires_grad_(True)
    with count_bytes() as log:
        if scheme == "column":
            out = column_lookup(shard, idx[rank], w_mine, blocks, value_dim, backend="torch")
        else:
            out = row_lookup(shard, idx[rank], w_mine, blocks, num_values, dedup=dedup, backend="torch")
        (out * gout[rank]).sum().backward()
    result = {
        "output": _max_diff(out, ref[rank]),
        "table_grad": _max_diff(shard.grad, ref_shard_grad),
        "scores_grad": _max_diff(w_mine.grad, w_ref[rank].grad),
        "measured": log.by_op(),
        "to_peer": log.peers(world),
    }
    if scheme == "row":
        requests = request_matrix([i.numpy() for i in idx], num_values, world, dedup=dedup)
        result["requests"] = requests.tolist()
        result["model"] = row_bytes(requests, rank, value_dim, float_bytes=8)
    elif pattern != "uneven":
        result["model"] = column_bytes(tokens, 1, k, value_dim, world, cores, blocks, float_bytes=8)
    return result


def bad_wrap(rank: int, world: int, case: str) -> str:
    """Wrap a layer wrongly on purpose and return the error text this rank got ("" if none).

    ``case``: "divide" — the group size does not divide the table; "config" — rank 1 built its
    layer with another top-m; "scheme" — rank 1 asks for an unknown scheme.
    """
    cfg = dict(TEST_CONFIG)
    scheme = "row" if case == "divide" else "column"
    if case == "config" and rank == 1:
        cfg["topm"] = 3
    if case == "scheme" and rank == 1:
        scheme = "rows"
    torch.manual_seed(0)
    layer = UltraMemLayer(UltraMemConfig(**cfg))
    try:
        shard_layer(layer, scheme=scheme)
    except ValueError as e:
        return str(e)
    return ""


def dead_peer(rank: int, world: int) -> float:
    """Rank 1 dies without a word; rank 0 then enters the column lookup, which must fail (the peer's
    connection closes, or the group's timeout passes) rather than wait for ever. Returns the
    seconds rank 0 waited before its error (raised to the caller)."""
    import os
    import time

    torch.manual_seed(0)
    layer = shard_layer(UltraMemLayer(UltraMemConfig(**TEST_CONFIG)), scheme="column")
    if rank == 1:
        os._exit(3)
    t0 = time.perf_counter()
    try:
        layer(torch.randn(4, TEST_CONFIG["d_model"]))
    except RuntimeError as e:
        raise RuntimeError(f"after {time.perf_counter() - t0:.1f} s: {e}") from e
    return time.perf_counter() - t0


def sleeper(rank: int, world: int, seconds: float) -> float:
    """Sleep ``seconds`` (to test that :func:`run_group` stops a run that does not finish)."""
    import time

    time.sleep(seconds)
    return seconds


def chapter_demo(rank: int, world: int) -> dict:
    """Chapter 13's live check in one group: :func:`layer_equivalence` for both schemes, then the
    error every rank gets when rank 1's layer has another configuration."""
    return {
        "column": layer_equivalence(rank, world, "column"),
        "row": layer_equivalence(rank, world, "row"),
        "mismatch": bad_wrap(rank, world, "config"),
    }
