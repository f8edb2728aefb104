"""IVE — implicit value expansion (method.md §5).

E projectors W_p ∈ R^{D_v×D_out} turn the physical table V (N rows) into E virtual blocks Ṽ_p = V W_p:
E·N virtual rows that are never built. Keys grow by √E per side (n' = √E·n, n'² = E·N). A fixed
random permutation π of the E·N virtual addresses breaks the grid topology between a physical row
and its copies: grid address v → virtual address π(v) → block π(v) div N, physical row π(v) mod N.

Because each W_p is linear, pooling first and projecting after gives the same answer:

    Σ_k s_k · (V[row_k] W_{p_k})  =  Σ_p W_pᵀ-applied( Σ_{k: p_k = p} s_k V[row_k] ),

which costs E·B·D_v·D_out instead of E·N·D_v·D_out, and still reads only the selected rows of V.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_float_tensor, check_index_tensor, check_int, is_perfect_square
from .kernels import value_lookup

__all__ = ["keys_per_side", "make_shuffle", "virtual_table", "ive_lookup", "ive_lookup_reference"]


def keys_per_side(num_values: int, expansion: int) -> int:
    """n' = √E·√N, the number of keys per side that address E·N virtual values on an n'×n' grid.

    Raises ValueError unless N (the physical table) and E are perfect squares (an n'×n' grid needs
    only E·N to be one; asking for both makes every side grow by the whole factor √E). The layer's
    rectangular grids (``UltraMemConfig.grid_aspect`` a > 1: N = a·n² on n × a·n) call this with N/a
    and get the row side n'_r; the column side is a·n'_r.
    """
    check_int("num_values", num_values, 1)
    check_int("expansion", expansion, 1)
    if not is_perfect_square(num_values):
        raise ValueError(
            f"num_values must be a perfect square (the physical table is an n×n grid), got {num_values}"
        )
    if not is_perfect_square(expansion):
        raise ValueError(
            f"expansion E must be a perfect square (keys grow by √E per side), got {expansion}"
        )
    return math.isqrt(expansion) * math.isqrt(num_values)


def make_shuffle(num_virtual: int, seed: int = 0) -> torch.Tensor:
    """A fixed random permutation π of range(num_virtual) (int64), reproducible from ``seed``."""
    check_int("num_virtual", num_virtual, 1)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_virtual, generator=generator)


def _check_ive(values, projectors, indices, scores) -> None:
    check_float_tensor("values", values, ndim=2)
    check_float_tensor("projectors", projectors, ndim=3, shape=(values.shape[1], None))
    num_blocks = projectors.shape[0]
    check_index_tensor("indices", indices, high=num_blocks * values.shape[0], ndim=2)
    check_float_tensor("scores", scores, ndim=2)
    if scores.shape != indices.shape:
        raise ValueError(
            f"scores must have the shape of indices {tuple(indices.shape)}, got {tuple(scores.shape)}"
        )


def virtual_table(values: torch.Tensor, projectors: torch.Tensor) -> torch.Tensor:
    """Materialise Ṽ: (E·N, D_out), row p·N + i = values[i] @ projectors[p]. For teaching and tests."""
    check_float_tensor("values", values, ndim=2)
    check_float_tensor("projectors", projectors, ndim=3, shape=(values.shape[1], None))
    return (values @ projectors).flatten(0, 1)                         # (E, N, D_out) -> (E*N, D_out)


def ive_lookup_reference(
    values: torch.Tensor, projectors: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """The naive path: build the virtual table, then gather and weight its rows.

    Args:
        values: (N, D_v); projectors: (E, D_v, D_out);
        indices: (B, k) virtual addresses in [0, E·N) (after the shuffle); scores: (B, k).
    Returns:
        (B, D_out): out[b] = Σ_k scores[b,k] · values[a mod N] @ projectors[a div N], a = indices[b,k].
    """
    _check_ive(values, projectors, indices, scores)
    table = virtual_table(values, projectors)                          # (E*N, D_out)  the big one
    return (scores.unsqueeze(-1) * table[indices.long()]).sum(1)


def ive_lookup(
    values: torch.Tensor, projectors: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor
) -> torch.Tensor:
    """The efficient path: pool per virtual block, then project. Same contract as the reference."""
    _check_ive(values, projectors, indices, scores)
    pooled = value_lookup(values, indices, scores, num_blocks=projectors.shape[0])   # (B, E, D_v)
    return torch.einsum("bed,edo->bo", pooled, projectors)                         # (B, D_out)
