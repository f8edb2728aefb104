"""Self-checks for chapter 6, "Implicit value expansion (IVE)"."""
from __future__ import annotations

import math

import torch

from ..ive import ive_lookup_reference, keys_per_side, make_shuffle
from ._grading import LargestTensor, call, diagnose, exercise, expect_tensor, fail, seed_for

__all__ = [
    "check_keys_and_virtual", "check_block_and_row", "check_projection_flops",
    "IVE_LOOKUP_STUB", "check_ive_lookup",
]


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


# --- Coding exercise: pool, then project ------------------------------------------------------

IVE_LOOKUP_STUB = '''
def ive_lookup(values, projectors, indices, scores):
    """Read E·N virtual values without building them: pool per virtual block, then project.

    Virtual row a is values[a mod N] @ projectors[a div N] (N = values.shape[0]). Do not build that
    (E·N, D_out) table: for each bag, sum the score-weighted physical rows of each block p into a
    (D_v,) vector, then apply projectors[p] to it, and add the E results.

    Args:
        values: (N, D_v) float, the physical table.
        projectors: (E, D_v, D_out) float.
        indices: (B, k) int64 virtual addresses in [0, E·N) (already shuffled).
        scores: (B, k) float.

    Returns:
        (B, D_out): out[b] = Σ_k scores[b, k] · values[a mod N] @ projectors[a div N], a = indices[b, k].
    """
    raise NotImplementedError("Exercise: write ive_lookup")
'''


@exercise(6, IVE_LOOKUP_STUB, guarded=(
    "ultramem_edu.ive:ive_lookup", "ultramem_edu.ive:ive_lookup_reference",
    "ultramem_edu.kernels.value_lookup:value_lookup", "ultramem_edu.kernels.reference:value_lookup_reference",
    "ultramem_edu.mcs:mcs_pool", "ultramem_edu.mcs:mcs_pool_reference"))
def check_ive_lookup(ive_lookup_fn) -> None:
    """Compare the reader's lookup with :func:`ultramem_edu.ive.ive_lookup_reference`, and check that it
    never builds a tensor as large as the virtual table."""
    g = torch.Generator().manual_seed(seed_for(66))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def idx(high, *shape):
        return torch.randint(0, high, shape, generator=g)

    dup = idx(4 * 50, 3, 6)
    dup[:, 3] = dup[:, 0]                                              # the same virtual row twice
    dup[:, 4] = (dup[:, 1] + 50) % 200                                 # same physical row, next block
    cases = [
        ("random, E = 4", rand(50, 4), rand(4, 4, 6), idx(200, 3, 5), rand(3, 5)),
        ("E = 1 (no expansion)", rand(30, 4), rand(1, 4, 3), idx(30, 2, 4), rand(2, 4)),
        ("k = 1", rand(30, 4), rand(4, 4, 3), idx(120, 3, 1), rand(3, 1)),
        ("duplicate indices in a bag", rand(50, 4), rand(4, 4, 6), dup, rand(3, 6)),
        ("negative scores, D_out < D_v", rand(40, 6), rand(9, 6, 2), idx(360, 2, 7), -rand(2, 7).abs()),
    ]
    for case, values, projectors, indices, scores in cases:
        out = call(ive_lookup_fn, case, values.clone(), projectors.clone(), indices.clone(), scores.clone())
        expect_tensor(out, (indices.shape[0], projectors.shape[2]), case, "the output", "(B, D_out)")
        expected = ive_lookup_reference(values, projectors, indices, scores)
        n, e = values.shape[0], projectors.shape[0]
        swapped_ok = bool((indices // e < n).all())
        mistakes = [
            (lambda: ive_lookup_reference(values, projectors, (indices % e) * n + indices // e, scores)
             if swapped_ok else expected,
             "block and row are swapped: block p = a div N, physical row = a mod N (N = values.shape[0])"),
            (lambda: ive_lookup_reference(values, projectors, indices, torch.ones_like(scores)),
             "the rows are not weighted: multiply each selected row by its score"),
            (lambda: ive_lookup_reference(values, projectors[:1].expand_as(projectors).contiguous(), indices, scores),
             "every block is projected with projectors[0]; block p uses projectors[p]"),
            (lambda: (values[indices % n] * scores.unsqueeze(-1)).sum(1) @ projectors.sum(0),
             "you pooled over all blocks and then projected with Σ_p W_p; pool each block separately"),
            (lambda: _first_hit_only(values, projectors, indices, scores),
             "two selections of a bag that hit the same block overwrite each other (out[idx] += x keeps one "
             "of them); accumulate with index_add_ / scatter_add_, or a one-hot matrix product"),
        ]
        diagnose(case, out, expected, mistakes,
                 "the output differs from Σ_k scores · values[a mod N] @ projectors[a div N]", atol=1e-8)
    values, projectors = rand(1024, 4), rand(4, 4, 6)
    indices, scores = idx(4096, 3, 5), rand(3, 5)
    with LargestTensor() as largest:
        call(ive_lookup_fn, "N = 1024, E = 4, D_out = 6", values, projectors, indices, scores)
    table = 4 * 1024 * 6
    if largest.numel >= table:
        fail("N = 1024, E = 4, D_out = 6",
             f"a tensor of {largest.numel:,} elements was built, as large as the virtual table "
             f"(E·N·D_out = {table:,}); pool the k selected rows per block first, then project (B·E·D_v numbers).")
    print(f"Correct: ive_lookup matches the naive path on {len(cases)} cases (E = 1, k = 1, duplicates, "
          "negative scores) and never builds the virtual table.")


def _first_hit_only(values, projectors, indices, scores):
    """The lookup a vectorised ``pooled[b, block] += rows`` gives: one hit per (bag, block) survives."""
    n, d_v = values.shape
    pooled = values.new_zeros(indices.shape[0], projectors.shape[0], d_v)
    bags = torch.arange(indices.shape[0])[:, None].expand_as(indices)
    pooled[bags, indices // n] += values[indices % n] * scores.unsqueeze(-1)
    return torch.einsum("bed,edo->bo", pooled, projectors)

