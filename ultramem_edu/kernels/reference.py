"""The specification of UltraMem's value lookup, in plain torch.

out[b, p, c*s:(c+1)*s] = sum_k [indices[b,k] div N == p] * scores[b,k,c] * values[indices[b,k] mod N, c*s:(c+1)*s]

with N = values.shape[0], h cores, s = D_v / h. Gather, multiply, scatter-add: obviously correct,
differentiable by autograd, and the reference every faster backend is tested against.
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
    rows = values[idx % n].to(acc_dtype)                              # (B, k, D_v)  gather
    w = scores.to(acc_dtype).repeat_interleave(d_v // h, dim=-1)      # (B, k, D_v)  core c -> slice c
    block = idx // n                                                  # (B, k)
    out = rows.new_zeros(b, num_blocks, d_v)
    out.scatter_add_(1, block.unsqueeze(-1).expand(b, k, d_v), rows * w)
    return out.to(values.dtype)
