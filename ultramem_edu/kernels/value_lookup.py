"""Public entry point of the value lookup: validation on the host, then one of the backends."""
from __future__ import annotations

import torch

from .._checks import check_choice, check_float_tensor, check_index_tensor, check_int, check_same_device
from .reference import value_lookup_reference

BACKENDS = ("auto", "torch", "triton")


def value_lookup(
    values: torch.Tensor,
    indices: torch.Tensor,
    scores: torch.Tensor,
    num_blocks: int = 1,
    backend: str = "auto",
) -> torch.Tensor:
    """Weighted gather-sum of value rows, grouped by virtual block and split by core.

    Args:
        values: (N, D_v) float tensor, the physical value table.
        indices: (B, k) int32/int64 virtual addresses in [0, num_blocks * N).
        scores: (B, k) for one core, or (B, k, h) for h cores; h must divide D_v.
        num_blocks: number of virtual blocks E (IVE); 1 without IVE.
        backend: "torch" (reference), "triton" (compiled on CUDA, interpreter on CPU with
            TRITON_INTERPRET=1), or "auto" (triton on CUDA tensors, torch otherwise).

    Returns:
        (B, num_blocks, D_v), dtype of ``values``. Differentiable w.r.t. values and scores.
    """
    check_choice("backend", backend, BACKENDS)
    check_int("num_blocks", num_blocks, low=1)
    check_float_tensor("values", values, ndim=2)
    n, d_v = values.shape
    if n == 0 or d_v == 0:
        raise ValueError(f"values must be non-empty, got shape {tuple(values.shape)}")
    check_index_tensor("indices", indices, high=num_blocks * n, ndim=2)
    check_float_tensor("scores", scores)
    if scores.dim() == 2:
        scores = scores.unsqueeze(-1)
    if scores.dim() != 3 or scores.shape[:2] != indices.shape:
        raise ValueError(
            f"scores must have shape (B, k) or (B, k, h) matching indices {tuple(indices.shape)}, "
            f"got {tuple(scores.shape)}"
        )
    h = scores.shape[-1]
    if d_v % h:
        raise ValueError(f"the value width D_v={d_v} must be divisible by the number of cores h={h}")
    check_same_device(values=values, indices=indices, scores=scores)
    if backend == "auto":
        backend = "triton" if values.is_cuda else "torch"
    if backend == "triton":
        raise NotImplementedError("the triton backend is not built yet")
    return value_lookup_reference(values, indices, scores, num_blocks)
