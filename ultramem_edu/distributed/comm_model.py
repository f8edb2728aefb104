"""Bytes each rank sends per training step (forward + backward) under each sharding scheme.

Notation: P ranks, B tokens per rank, k = H·m selections per token (H heads, top-m each), h MCS
cores, E IVE blocks, D_v value width, N table rows, b_i bytes per index (8, int64), b_f bytes
per float (4, fp32; 2 for bf16). "Sent" counts what leaves a rank for the P − 1 others (its own
chunk is a local copy), as :mod:`.collectives` measures it.

Column scheme (per rank, independent of which rows are chosen)::

    batch sizes          (P−1)·b_i                     all-gather of B
    indices              (P−1)·B·k·b_i                 all-gather
    scores               (P−1)·B·k·h·b_f               all-gather
    partial outputs      (P−1)·B·E·(D_v/P)·b_f         all-to-all of the pooled column slices
    ... (backward)       (P−1)·B·E·(D_v/P)·b_f         their gradients go back
    scores (backward)    (P−1)·B·k·h·b_f               reduce-scatter of the score gradients

Row scheme (depends on the selections): with R[p, q] the rows rank p asks of rank q (distinct rows
with ``dedup``, every selection without), rank p sends::

    row counts           (P−1)·b_i
    row ids              Σ_{q≠p} R[p, q]·b_i
    rows                 Σ_{q≠p} R[q, p]·D_v·b_f       the rows it serves
    rows (backward)      Σ_{q≠p} R[p, q]·D_v·b_f       gradients of the rows it fetched

Selections spread uniformly over the table (what IVE's shuffle and a balanced memory aim at) give
E[R[p, q]] = U/P with U = N·(1 − (1 − 1/N)^(B·k)) distinct rows per rank (B·k without dedup), so
row ≈ (P−1)·[b_i + (U/P)·(b_i + 2·D_v·b_f)]. Per token and peer, the column scheme moves
k·(b_i + 2h·b_f) + 2E·D_v·b_f/P bytes, the row scheme k·(b_i + 2·D_v·b_f)/P: the row scheme
ships whole rows (D_v wide) for every selection, the column scheme only addresses and scores.
The row scheme wins only when deduplication bites: when B·k approaches the table size N.

Row-wise with pooling at the owner (:func:`row_pooled_bytes`; TorchRec's row-wise sharding of an
embedding bag works this way): rows stay where they live; each rank sends the addresses *and*
scores of its tokens' selections to their owners, each owner pools what it holds into a partial
(E, D_v) block per token, and the partial blocks are summed at home (a reduce-scatter). Per step a
rank sends (P−1)·b_i counts, its remote selections' addresses and h scores (b_i + h·b_f each),
one E·D_v·b_f block for every (token, remote owner) pair it serves, and in the backward the
blocks' gradients and the score gradients the other way. With uniform selections a token's k
selections reach (P−1)·(1 − (1 − 1/P)^k) remote ranks on average.

Expert parallelism, for comparison (:func:`moe_all_to_all_bytes`): an MoE layer's E experts are
spread over the P ranks (contiguous blocks, :func:`expert_owner`), each token goes to its top-k
experts wherever they live and comes back. Per step a rank sends, for each (token, expert) pair
whose expert lives elsewhere — or, with ``dedup_ranks``, each (token, rank) pair, one copy per
rank however many of its experts are there::

    counts               (P−1)·b_i                     all-to-all of the pair counts
    expert ids           remote pairs·b_i              which local expert each copy is for
    tokens               copies·D·b_f                  the hidden states, dispatched
    outputs              copies·D·b_f                  the expert outputs, combined at home
    outputs (backward)   copies·D·b_f                  their gradients, back to the experts
    tokens (backward)    copies·D·b_f                  the hidden states' gradients, home

Uniform routing over E experts, n_q of them on rank q, averaged over the ranks a token may live on:
E[remote pairs per token] = k·(P−1)/P, and E[remote ranks per token] =
((P−1)/P)·Σ_q (1 − C(E − n_q, k)/C(E, k)). Both the memory's column exchange and the MoE's
dispatch are per-token all-to-alls; what differs is what travels: addresses and scores plus
E·D_v/P partial sums for the memory, whole D-wide hidden states for the experts.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_int
from ..cost import expected_distinct

__all__ = ["column_bytes", "row_bytes", "row_bytes_expected", "column_total", "crossover_tokens", "request_matrix",
           "expert_owner", "moe_all_to_all_bytes", "moe_all_to_all_counted", "row_pooled_bytes",
           "row_pooled_bytes_expected"]

COLUMN_OPS = ("batch sizes", "indices", "scores", "partial outputs", "partial outputs (backward)", "scores (backward)")
ROW_OPS = ("row counts", "row ids", "rows", "rows (backward)")
ROW_POOLED_OPS = ("counts", "addresses", "scores", "partial outputs", "partial outputs (backward)",
                  "scores (backward)")
MOE_OPS = ("counts", "expert ids", "tokens", "outputs", "outputs (backward)", "tokens (backward)")


def _check_common(ranks, heads, topm, value_dim):
    check_int("ranks", ranks, 1)
    check_int("heads", heads, 1)
    check_int("topm", topm, 1)
    check_int("value_dim", value_dim, 1)


def column_bytes(tokens: int, heads: int, topm: int, value_dim: int, ranks: int, num_cores: int = 2,
                 expansion: int = 4, index_bytes: int = 8, float_bytes: int = 4) -> dict[str, int]:
    """Bytes one rank sends per step in the column scheme, per exchange (keys as in the CommLog).

    ``tokens`` = B tokens on every rank. Returns {exchange: bytes}; sum them for the total.
    """
    check_int("tokens", tokens, 0)
    _check_common(ranks, heads, topm, value_dim)
    if value_dim % ranks:
        raise ValueError(f"ranks must divide value_dim, got value_dim={value_dim}, ranks={ranks}")
    peers, k = ranks - 1, heads * topm
    partial = peers * tokens * expansion * (value_dim // ranks) * float_bytes
    return {
        "batch sizes": peers * index_bytes,
        "indices": peers * tokens * k * index_bytes,
        "scores": peers * tokens * k * num_cores * float_bytes,
        "partial outputs": partial,
        "partial outputs (backward)": partial,
        "scores (backward)": peers * tokens * k * num_cores * float_bytes,
    }


def column_total(tokens, heads: int, topm: int, value_dim: int, ranks, num_cores: int = 2, expansion: int = 4,
                 index_bytes: int = 8, float_bytes: int = 4) -> np.ndarray:
    """Total column-scheme bytes per rank per step, vectorised over ``tokens`` and ``ranks`` (floats)."""
    b, p = np.asarray(tokens, dtype=float), np.asarray(ranks, dtype=float)
    k = heads * topm
    return (p - 1) * (index_bytes + b * k * (index_bytes + 2 * num_cores * float_bytes)
                      + 2 * b * expansion * value_dim / p * float_bytes)


def request_matrix(indices_per_rank, num_values: int, ranks: int, dedup: bool = True) -> np.ndarray:
    """R[p, q]: rows rank p asks of rank q, from each rank's (B, k) virtual addresses."""
    check_int("num_values", num_values, 1)
    check_int("ranks", ranks, 1)
    per = num_values // ranks
    out = np.zeros((ranks, ranks), dtype=np.int64)
    for p, idx in enumerate(indices_per_rank):
        rows = np.asarray(idx).reshape(-1) % num_values
        if dedup:
            rows = np.unique(rows)
        out[p] = np.bincount(rows // per, minlength=ranks)
    return out


def row_bytes(requests: np.ndarray, rank: int, value_dim: int, index_bytes: int = 8,
              float_bytes: int = 4) -> dict[str, int]:
    """Bytes rank ``rank`` sends per step in the row scheme, given the request matrix R (P×P)."""
    r = np.asarray(requests, dtype=np.int64)
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise ValueError(f"requests must be a square (P, P) matrix, got shape {r.shape}")
    ranks = r.shape[0]
    check_int("rank", rank, 0, ranks - 1)
    others = [q for q in range(ranks) if q != rank]
    asked = int(r[rank, others].sum())
    served = int(r[others, rank].sum())
    return {
        "row counts": (ranks - 1) * index_bytes,
        "row ids": asked * index_bytes,
        "rows": served * value_dim * float_bytes,
        "rows (backward)": asked * value_dim * float_bytes,
    }


def row_bytes_expected(tokens, heads: int, topm: int, value_dim: int, ranks, num_values: int,
                       dedup: bool = True, index_bytes: int = 8, float_bytes: int = 4) -> np.ndarray:
    """Expected row-scheme bytes per rank per step for selections spread uniformly over the table.

    Vectorised over ``tokens`` and ``ranks``. U = distinct rows a rank's B·k selections touch
    (:func:`ultramem_edu.cost.expected_distinct`), or B·k without ``dedup``; a fraction (P−1)/P
    of them live elsewhere, and by symmetry a rank serves as many as it asks for.
    """
    check_int("num_values", num_values, 1)
    b, p = np.broadcast_arrays(np.asarray(tokens, dtype=np.int64), np.asarray(ranks, dtype=float))
    draws = b * heads * topm
    if dedup:
        safe = np.atleast_1d(np.maximum(draws, 1)).astype(np.int64)
        u = np.where(draws > 0, expected_distinct(num_values, 1, safe).reshape(draws.shape), 0.0)
    else:
        u = draws.astype(float)
    return (p - 1) * index_bytes + (p - 1) / p * u * (index_bytes + 2 * value_dim * float_bytes)


def crossover_tokens(heads: int, topm: int, value_dim: int, ranks: int, num_values: int, num_cores: int = 2,
                     expansion: int = 4, index_bytes: int = 8, float_bytes: int = 4, dedup: bool = True,
                     max_tokens: int = 1 << 40) -> int | None:
    """Smallest tokens-per-rank B at which the row scheme sends fewer bytes than the column scheme
    (expected, uniform selections), or None if it never does up to ``max_tokens``.

    Without dedup, or with few ranks, the row scheme's bytes grow as fast as the column scheme's
    and there may be no crossover in the batch; with dedup they saturate at the table size.
    """
    def row_minus_col(b: int) -> float:
        row = float(row_bytes_expected(b, heads, topm, value_dim, ranks, num_values, dedup, index_bytes, float_bytes))
        col = float(column_total(b, heads, topm, value_dim, ranks, num_cores, expansion, index_bytes, float_bytes))
        return row - col

    if ranks == 1:
        return None
    lo, hi = 1, 1
    while row_minus_col(hi) >= 0:
        lo, hi = hi, hi * 2
        if hi > max_tokens:
            return None
    if row_minus_col(lo) < 0:
        return lo
    while hi - lo > 1:                       # row − col is positive at lo, negative at hi
        mid = (lo + hi) // 2
        if row_minus_col(mid) < 0:
            hi = mid
        else:
            lo = mid
    return hi


def row_pooled_bytes(indices_per_rank, num_values: int, ranks: int, value_dim: int, num_cores: int = 2,
                     expansion: int = 4, index_bytes: int = 8, float_bytes: int = 4) -> list[dict[str, int]]:
    """Bytes each rank sends per step when rows are sharded and pooled at their owner, counted from
    each rank's (B_p, k) physical row ids (no deduplication: each selection carries its own score).
    Returns one {exchange: bytes} per rank (keys of :data:`ROW_POOLED_OPS`)."""
    check_int("num_values", num_values, 1)
    check_int("ranks", ranks, 1)
    check_int("value_dim", value_dim, 1)
    if num_values % ranks:
        raise ValueError(f"ranks must divide num_values, got num_values={num_values}, ranks={ranks}")
    if len(indices_per_rank) != ranks:
        raise ValueError(f"indices_per_rank must hold one array per rank ({ranks}), got {len(indices_per_rank)}")
    per = num_values // ranks
    sel = np.zeros((ranks, ranks), dtype=np.int64)       # [p, q] selections of p's tokens owned by q
    blocks = np.zeros((ranks, ranks), dtype=np.int64)    # [p, q] p's tokens with at least one selection on q
    for p, idx in enumerate(indices_per_rank):
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"indices of rank {p} must be a (B, k) integer array, got shape {idx.shape}")
        owner = idx % num_values // per
        sel[p] = np.bincount(owner.reshape(-1), minlength=ranks)
        hit = np.zeros((idx.shape[0], ranks), dtype=bool)
        hit[np.arange(idx.shape[0])[:, None], owner] = True
        blocks[p] = hit.sum(axis=0)
    block = expansion * value_dim * float_bytes
    out = []
    for p in range(ranks):
        o = [q for q in range(ranks) if q != p]
        asked, served = int(sel[p, o].sum()), int(sel[o, p].sum())
        mine, theirs = int(blocks[p, o].sum()), int(blocks[o, p].sum())
        out.append({"counts": (ranks - 1) * index_bytes, "addresses": asked * index_bytes,
                    "scores": asked * num_cores * float_bytes, "partial outputs": theirs * block,
                    "partial outputs (backward)": mine * block, "scores (backward)": served * num_cores * float_bytes})
    return out


def row_pooled_bytes_expected(tokens: int, heads: int, topm: int, value_dim: int, ranks: int, num_cores: int = 2,
                              expansion: int = 4, index_bytes: int = 8, float_bytes: int = 4) -> dict[str, float]:
    """Expected :func:`row_pooled_bytes` of one rank for selections spread uniformly over the table."""
    check_int("tokens", tokens, 0)
    _check_common(ranks, heads, topm, value_dim)
    k = heads * topm
    remote = tokens * k * (ranks - 1) / ranks
    owners = tokens * (ranks - 1) * (1.0 - (1.0 - 1.0 / ranks) ** k)
    block = expansion * value_dim * float_bytes
    return {"counts": (ranks - 1) * index_bytes, "addresses": remote * index_bytes,
            "scores": remote * num_cores * float_bytes, "partial outputs": owners * block,
            "partial outputs (backward)": owners * block, "scores (backward)": remote * num_cores * float_bytes}


# ------------------------------------------------------------------------------------ expert parallel
def expert_owner(num_experts: int, ranks: int) -> np.ndarray:
    """Rank that holds each expert: contiguous blocks whose sizes differ by at most one."""
    check_int("num_experts", num_experts, 1)
    check_int("ranks", ranks, 1)
    if ranks > num_experts:
        raise ValueError(f"ranks must be <= num_experts for expert parallelism, got ranks={ranks}, "
                         f"num_experts={num_experts}")
    return np.concatenate([np.full(len(block), q) for q, block in
                           enumerate(np.array_split(np.arange(num_experts), ranks))]).astype(np.int64)


def _moe_dict(ranks, pairs, copies, d_model, index_bytes, float_bytes):
    hidden = copies * d_model * float_bytes
    return {"counts": (ranks - 1) * index_bytes, "expert ids": pairs * index_bytes, "tokens": hidden,
            "outputs": hidden, "outputs (backward)": hidden, "tokens (backward)": hidden}


def moe_all_to_all_bytes(tokens: int, d_model: int, top_k: int, num_experts: int, ranks: int,
                         dedup_ranks: bool = False, index_bytes: int = 8, float_bytes: int = 4) -> dict[str, float]:
    """Expected bytes a rank sends per training step for one expert-parallel MoE layer, uniform routing.

    ``tokens`` = B tokens on every rank, each routed to ``top_k`` distinct experts of ``num_experts``
    chosen uniformly; averaged over the ranks (with experts spread unevenly, some ranks send more).
    Returns {exchange: bytes} with the keys of :data:`MOE_OPS`; sum them for the total.
    """
    check_int("tokens", tokens, 0)
    check_int("d_model", d_model, 1)
    per_rank = np.bincount(expert_owner(num_experts, ranks), minlength=ranks)
    check_int("top_k", top_k, 1, num_experts)
    if not isinstance(dedup_ranks, bool):
        raise TypeError(f"dedup_ranks must be a bool, got {type(dedup_ranks).__name__}")
    remote_pairs = tokens * top_k * (ranks - 1) / ranks
    if dedup_ranks:
        from math import comb
        touched = sum(1.0 - comb(num_experts - int(n), top_k) / comb(num_experts, top_k) for n in per_rank)
        copies = tokens * (ranks - 1) / ranks * touched
    else:
        copies = remote_pairs
    return _moe_dict(ranks, remote_pairs, copies, d_model, index_bytes, float_bytes)


def moe_all_to_all_counted(expert_ids_per_rank, d_model: int, num_experts: int, ranks: int,
                           dedup_ranks: bool = False, index_bytes: int = 8, float_bytes: int = 4) -> list[dict[str, int]]:
    """Bytes each rank sends per training step for one MoE layer, counted from an actual routing.

    ``expert_ids_per_rank``: for each rank p, a (B_p, k) integer array of the experts its tokens
    chose. Returns one {exchange: bytes} per rank: what it dispatches for its own tokens, and what
    it returns for the copies its experts served.
    """
    check_int("d_model", d_model, 1)
    owner = expert_owner(num_experts, ranks)
    if len(expert_ids_per_rank) != ranks:
        raise ValueError(f"expert_ids_per_rank must hold one array per rank ({ranks}), got {len(expert_ids_per_rank)}")
    pairs = np.zeros((ranks, ranks), dtype=np.int64)     # [p, q]: (token, expert) pairs from p's tokens to q
    copies = np.zeros((ranks, ranks), dtype=np.int64)    # [p, q]: hidden states p sends to q
    for p, ids in enumerate(expert_ids_per_rank):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise ValueError(f"expert ids of rank {p} must be a (B, k) integer array, got shape {ids.shape}, "
                             f"dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= num_experts):
            raise ValueError(f"expert ids of rank {p} must lie in [0, {num_experts}), got {ids.min()}..{ids.max()}")
        dest = owner[ids]                                           # (B, k) ranks
        pairs[p] = np.bincount(dest.reshape(-1), minlength=ranks)
        if dedup_ranks:
            hit = np.zeros((ids.shape[0], ranks), dtype=bool)
            hit[np.arange(ids.shape[0])[:, None], dest] = True
            copies[p] = hit.sum(axis=0)
        else:
            copies[p] = pairs[p]
    out = []
    for p in range(ranks):
        others = [q for q in range(ranks) if q != p]
        sent, served = int(copies[p, others].sum()), int(copies[others, p].sum())
        d = {"counts": (ranks - 1) * index_bytes, "expert ids": int(pairs[p, others].sum()) * index_bytes,
             "tokens": sent * d_model * float_bytes, "outputs": served * d_model * float_bytes,
             "outputs (backward)": sent * d_model * float_bytes, "tokens (backward)": served * d_model * float_bytes}
        out.append(d)
    return out
