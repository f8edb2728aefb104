"""The specification of UltraMem's value lookup, in plain torch.

out[b, p, c*s:(c+1)*s] = sum_k [indices[b,k] div N == p] * scores[b,k,c] * values[indices[b,k] mod N, c*s:(c+1)*s]

with N = values.shape[0], h cores, s = D_v / h. Gather, multiply, sum per block: obviously correct,
differentiable by autograd, and the reference every faster backend is tested against. The sum per
block is a batched matrix product with a one-hot (B, E, k) block-membership matrix, which on a CPU
is several times faster than a scatter-add and reads the same.
"""
from __future__ import annotations

import torch


def value_lookup_reference(
    values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, num_blocks: int = 1
) -> torch.Tensor:
    """Pool score-weighted value rows per virtual block and per core slice.

    Args:
        values: (N, D_v) physical value table.
        indices: (B, k) int virtual addresses in [0, num_blocks * N).
        scores: (B, k, h) one score per core (h divides D_v).
        num_blocks: E, the number of virtual blocks.

    Returns:
        (B, num_blocks, D_v) in the dtype of ``values`` (accumulated in float32 for half types).
    No validation here: :func:`ultramem_edu.kernels.value_lookup` validates and dispatches.
    """
    n, d_v = values.shape
    b, k, h = scores.shape
    acc_dtype = torch.promote_types(values.dtype, torch.float32)
    idx = indices.long()
    rows = torch.nn.functional.embedding(idx % n, values).to(acc_dtype)       # (B, k, D_v)  gather
    weighted = rows.view(b, k, h, d_v // h) * scores.to(acc_dtype).unsqueeze(-1)  # core c scales slice c
    member = torch.nn.functional.one_hot(idx // n, num_blocks).transpose(1, 2)  # (B, E, k)  block of each hit
    out = member.to(acc_dtype) @ weighted.view(b, k, d_v)                       # (B, E, D_v)  sum per block
    return out.to(values.dtype)
