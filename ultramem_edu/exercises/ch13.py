"""Self-checks for chapter 13, "Sharding the memory"."""
from __future__ import annotations

import math

from ..cost import paper_1p6b_configs
from ..distributed.comm_model import column_bytes
from ..distributed.memory import min_ranks, table_and_rest
from ..distributed.shard import column_core_map

__all__ = ["check_column_slice", "check_column_bytes", "check_hot_rank_bytes", "check_min_ranks"]


def check_column_slice(answer: tuple[int, int, list[int]], rank: int = 3, ranks: int = 8, value_dim: int = 1024,
                       num_cores: int = 2) -> None:
    """Exercise 1: (first column, end column, cores) of ``rank``'s slice in the column scheme."""
    w = value_dim // ranks
    lo, hi = rank * w, (rank + 1) * w
    _, cores = column_core_map(value_dim, num_cores, lo, hi)
    expected = (lo, hi, sorted(set(cores)))
    if not (isinstance(answer, tuple) and len(answer) == 3):
        raise AssertionError("Answer with a tuple (first column, end column (exclusive), list of cores).")
    first, end, got_cores = answer
    if (first, end) != (lo, hi):
        raise AssertionError(f"Each of the {ranks} ranks holds D_v/P = {w} consecutive columns, rank r from r·{w}.")
    if sorted(set(got_cores)) != expected[2]:
        raise AssertionError(f"Core c owns columns [c·D_v/h, (c+1)·D_v/h) = [c·{value_dim // num_cores}, …): "
                             "which of those ranges does the slice fall in?")
    print(f"Correct: rank {rank} holds columns [{lo}, {hi}), all weighted by core {expected[2]} — so it needs "
          "only that core's score, though the layer sends all h of them.")


def check_column_bytes(answer: float, tokens: int = 4096, heads: int = 2, topm: int = 64, value_dim: int = 1024,
                       ranks: int = 8) -> None:
    """Exercise 2: bytes one rank sends per step (forward + backward) in the column scheme, fp32, int64."""
    parts = column_bytes(tokens, heads, topm, value_dim, ranks)
    expected = sum(parts.values())
    forward = sum(v for k, v in parts.items() if "backward" not in k)
    if math.isclose(answer, forward, rel_tol=1e-3):
        raise AssertionError("That is the forward pass only: the backward sends the partial outputs' gradients "
                             "and the score gradients again.")
    if math.isclose(answer, expected * ranks / (ranks - 1), rel_tol=1e-3):
        raise AssertionError("A rank does not send to itself: count P − 1 peers.")
    if not math.isclose(answer, expected, rel_tol=1e-3):
        raise AssertionError("Add up: (P−1)·[b_i + B·k·(b_i + 2h·b_f) + 2·B·E·(D_v/P)·b_f] with k = H·m, "
                             "b_i = 8, b_f = 4, h = 2, E = 4.")
    print(f"Correct: {expected / 1e6:.1f} MB per rank per step, {expected / tokens / 1e3:.1f} kB per token.")


def check_hot_rank_bytes(answer: float, askers: int = 3, rows_each: int = 1000, value_dim: int = 1024,
                         float_bytes: int = 4) -> None:
    """Exercise 3: rows bytes the hot rank sends when ``askers`` ranks each ask it for ``rows_each`` rows."""
    expected = askers * rows_each * value_dim * float_bytes
    if math.isclose(answer, rows_each * value_dim * float_bytes, rel_tol=1e-6):
        raise AssertionError("Every asking rank gets its own copy of the rows it asked for.")
    if not math.isclose(answer, expected, rel_tol=1e-6):
        raise AssertionError("Rows served × D_v × bytes per float, summed over the ranks that ask.")
    print(f"Correct: {expected / 1e6:.1f} MB from one rank while the others may send almost nothing — "
          "the step waits for the slowest rank.")


def check_min_ranks(answer: int, device_gb: float = 80.0) -> None:
    """Exercise 4: fewest ranks (a power of two) for UltraMem-1.6B-x12's training state on ``device_gb`` GB."""
    table, rest = table_and_rest(paper_1p6b_configs()["ultramem"])
    expected = min_ranks(table, rest, device_gb * 1e9)
    if answer == min_ranks(table, 0, device_gb * 1e9):
        raise AssertionError("The replicated part (backbone, keys, projections) sits whole on every rank too.")
    if answer != expected:
        raise AssertionError("16 bytes per parameter: the table's share (table/P) plus the replicated rest, "
                             f"at most {device_gb:g} GB.")
    print(f"Correct: {expected} ranks (before activations, which need room too).")
