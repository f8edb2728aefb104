"""Self-checks for chapter 9, "The GPU kernel: UltraMem's value lookup in Triton".

Nothing here imports triton: the checks must run where it is not installed (e.g. Colab's CPU runtime).
"""
from __future__ import annotations

import math

import torch

__all__ = ["check_bytes_moved", "check_segments", "check_forward_programs", "MAX_BLOCK_D"]

# The forward kernel's widest column tile, ultramem_edu.kernels.value_lookup_triton.MAX_BLOCK_D
# (repeated here so that this module does not import triton; a test keeps the two equal).
MAX_BLOCK_D = 128


def _close(answer: object, expected: float, rel: float = 0.01) -> bool:
    return (isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer)
            and abs(answer - expected) <= rel * abs(expected))


def check_bytes_moved(gigabytes: float, floor_ms: float, tokens: int = 8192, k: int = 128, d_v: int = 512,
                      dtype_bytes: int = 2, bandwidth_tb_per_s: float = 4.8) -> None:
    """Exercise 1: bytes of the selected rows (in GB = 1e9 B) and the bandwidth floor in milliseconds."""
    nbytes = tokens * k * d_v * dtype_bytes
    expected_gb = nbytes / 1e9
    expected_ms = nbytes / (bandwidth_tb_per_s * 1e12) * 1e3
    if _close(gigabytes, tokens * k * d_v / 1e9):
        raise AssertionError("That counts elements; multiply by the bytes per element (bf16: 2).")
    if _close(gigabytes, tokens * k * d_v * 4 / 1e9):
        raise AssertionError("That is fp32 (4 bytes); the table is bf16 (2 bytes per element).")
    if _close(gigabytes, nbytes / 2**30):
        raise AssertionError("That is GiB (2^30 B); the exercise asks for GB (1e9 B), the unit of the bandwidth.")
    if not _close(gigabytes, expected_gb):
        raise AssertionError("Not quite: the selected rows are B·k rows of D_v elements each.")
    if _close(floor_ms, expected_ms * 1e3) or _close(floor_ms, expected_ms / 1e3):
        raise AssertionError("Check the units: 1 TB/s = 1e12 B/s, and the answer is in milliseconds.")
    if not _close(floor_ms, expected_ms):
        raise AssertionError("Not quite: time floor = bytes / bandwidth.")
    print(f"Correct: {expected_gb:.3g} GB of rows; at {bandwidth_tb_per_s:g} TB/s no kernel reads them "
          f"in less than {expected_ms:.3g} ms.")


def _segments(indices: torch.Tensor, num_rows: int) -> tuple[list[int], list[int]]:
    """The deterministic backward's bookkeeping: distinct physical rows (sorted) and segment starts."""
    row = indices.reshape(-1).long() % num_rows
    sorted_row, _ = torch.sort(row, stable=True)
    seg_rows, counts = torch.unique_consecutive(sorted_row, return_counts=True)
    starts = [0] + torch.cumsum(counts, 0).tolist()
    return seg_rows.tolist(), starts


def check_segments(seg_rows: list[int], seg_starts: list[int],
                   indices: tuple = ((5, 2, 9), (7, 2, 1)), num_rows: int = 4) -> None:
    """Exercise 3: the segments the deterministic backward sums, for indices (B=2, k=3) and N = 4."""
    idx = torch.tensor(indices)
    rows, starts = _segments(idx, num_rows)
    seg_rows, seg_starts = list(seg_rows), list(seg_starts)
    virtual = sorted(set(idx.flatten().tolist()))
    if seg_rows == virtual:
        raise AssertionError("Gradients accumulate on *physical* rows: row = index mod N, not the virtual index.")
    if seg_rows != rows:
        raise AssertionError("Not quite: list each distinct physical row (index mod N) once, in increasing order.")
    if seg_starts == starts[:-1]:
        raise AssertionError("Add the end: seg_starts has one entry more than seg_rows, the last one is B·k.")
    if seg_starts != starts:
        raise AssertionError("Not quite: seg_starts[s] is where segment s begins in the sorted hits "
                             "(a running count of hits per row, starting at 0).")
    counts = [b - a for a, b in zip(starts, starts[1:])]
    print(f"Correct: rows {rows} collect {counts} hits; each is summed by one program in a fixed order.")


def check_forward_programs(programs: int, tokens: int = 16384, cores: int = 2, d_v: int = 768) -> None:
    """Exercise 4: the forward kernel's grid size, (B, h, ceil(s / BLOCK_D)) with s = D_v / h."""
    s = d_v // cores
    block_d = min(MAX_BLOCK_D, 1 << (s - 1).bit_length())
    tiles = -(-s // block_d)
    expected = tokens * cores * tiles
    if programs == tokens * tiles:
        raise AssertionError("Each core gets its own programs: the grid's second axis is h.")
    if programs == tokens * cores * -(-d_v // block_d):
        raise AssertionError("A program tiles core c's slice of width s = D_v / h, not the whole row.")
    if programs == tokens * cores:
        raise AssertionError(f"The slice of {s} columns is wider than one tile (BLOCK_D <= {MAX_BLOCK_D}).")
    if programs != expected:
        raise AssertionError(f"Not quite: grid = (B, h, ceil(s / BLOCK_D)) with BLOCK_D = min({MAX_BLOCK_D}, "
                             "next power of two of s).")
    print(f"Correct: {tokens} x {cores} x {tiles} = {expected:,} programs, each summing k rows of "
          f"{block_d} columns.")
