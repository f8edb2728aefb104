"""Self-checks for chapter 6, "Implicit value expansion (IVE)"."""
from __future__ import annotations

import math

from ..ive import keys_per_side, make_shuffle

__all__ = ["check_keys_and_virtual", "check_block_and_row", "check_projection_flops"]


def _close(answer: float, expected: float, rel: float = 0.01) -> bool:
    return isinstance(answer, (int, float)) and math.isfinite(answer) and abs(answer - expected) <= rel * abs(expected)


def check_keys_and_virtual(n_side: int, virtual_values: int, num_values: int = 2**20, expansion: int = 9) -> None:
    """Exercise 1: keys per side n' and virtual values E·N for N = 2^20 physical values, E = 9."""
    expected_side = keys_per_side(num_values, expansion)
    n = math.isqrt(num_values)
    if n_side == n:
        raise AssertionError(f"{n} is √N, the keys per side *without* IVE; the virtual grid is larger.")
    if n_side == expansion * n:
        raise AssertionError("The grid holds E·N cells, so each side grows by √E, not by E.")
    if n_side != expected_side:
        raise AssertionError(f"Not quite: the n'×n' grid must hold E·N = {expansion}·{num_values} cells.")
    if virtual_values == num_values:
        raise AssertionError("That is the physical table; IVE addresses E times more (virtual) values.")
    if virtual_values != expansion * num_values:
        raise AssertionError("Not quite: the virtual values are the cells of the n'×n' grid.")
    print(f"Correct: n' = √E·√N = {expected_side} keys per side address {virtual_values:,} virtual values.")


def check_block_and_row(block: int, row: int, grid_cell: tuple[int, int] = (31, 8), num_values: int = 256,
                        expansion: int = 4, seed: int = 0) -> None:
    """Exercise 2: the virtual block and physical row read by grid cell (31, 8) (N = 256, E = 4, seed 0)."""
    n_side = keys_per_side(num_values, expansion)
    g = grid_cell[0] * n_side + grid_cell[1]
    a = int(make_shuffle(expansion * num_values, seed=seed)[g])
    if (block, row) == (g // num_values, g % num_values):
        raise AssertionError("That reads the grid address directly; apply the shuffle π to it first.")
    if (block, row) == (a % num_values, a // num_values) or (block, row) == (a % expansion, a // expansion):
        raise AssertionError("Block and row are swapped: block = a div N, physical row = a mod N.")
    if (block, row) != (a // num_values, a % num_values):
        raise AssertionError("Not quite: grid address g = i·n' + j, virtual address a = π(g), "
                             "block a div N, row a mod N.")
    print(f"Correct: grid address {g} -> virtual address {a} -> block {block}, physical row {row}.")


def check_projection_flops(naive: float, efficient: float, num_values: int = 2**20, value_dim: int = 512,
                           out_dim: int = 1024, expansion: int = 4, batch: int = 8) -> None:
    """Exercise 3: FLOPs of the projection, naive 2·E·N·D_v·D_out vs efficient 2·E·B·D_v·D_out."""
    expected_naive = 2 * expansion * num_values * value_dim * out_dim
    expected_eff = 2 * expansion * batch * value_dim * out_dim
    if _close(naive, expected_naive / 2) or _close(efficient, expected_eff / 2):
        raise AssertionError("That counts multiply-adds; the chapter counts each as 2 FLOPs.")
    if not _close(naive, expected_naive):
        raise AssertionError("Naive: every one of the E·N virtual rows is a D_v×D_out product.")
    if _close(efficient, expected_eff / expansion):
        raise AssertionError("Each token pools into E vectors, and each of them is projected.")
    if not _close(efficient, expected_eff):
        raise AssertionError("Efficient: E pooled vectors of width D_v per token, B tokens.")
    print(f"Correct: {expected_naive:.3g} vs {expected_eff:.3g} FLOPs, a factor N/B = {num_values // batch:,}.")
