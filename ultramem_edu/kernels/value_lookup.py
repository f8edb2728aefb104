"""Public entry point of the value lookup: validation on the host, then one of the backends.

Triton is optional: it is imported only when the triton backend is first used, so this module (and
the torch backend) work where triton is not installed, e.g. on a Colab CPU runtime.
"""
from __future__ import annotations

from functools import cache
from types import ModuleType

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
    deterministic: bool | None = None,
) -> torch.Tensor:
    """Weighted gather-sum of value rows, grouped by virtual block and split by core.

    Args:
        values: (N, D_v) float tensor, the physical value table.
        indices: (B, k) int32/int64 virtual addresses in [0, num_blocks * N).
        scores: (B, k) for one core, or (B, k, h) for h cores; h must divide D_v.
        num_blocks: number of virtual blocks E (IVE); 1 without IVE.
        backend: "torch" (reference), "triton" (compiled on CUDA, interpreter on CPU with
            TRITON_INTERPRET=1), or "auto" (triton on CUDA tensors when triton is installed,
            torch otherwise).
        deterministic: triton backend only: True sums the value gradient in a fixed order (sort
            by row, segmented reduction; bitwise repeatable), False uses atomic adds (faster).
            None follows ``torch.are_deterministic_algorithms_enabled()``.

    Returns:
        (B, num_blocks, D_v), dtype of ``values``. Differentiable w.r.t. values and scores.
    """
    check_choice("backend", backend, BACKENDS)
    check_int("num_blocks", num_blocks, low=1)
    # No NaN/inf scan of the table: it would read all N*D_v entries on every call, more than the
    # lookup itself reads; non-finite values simply propagate, as in F.embedding_bag.
    check_float_tensor("values", values, ndim=2, finite=False)
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
    if deterministic is None:
        deterministic = torch.are_deterministic_algorithms_enabled()
    elif not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool or None, got {type(deterministic).__name__}")
    if backend == "auto":
        backend = "triton" if values.is_cuda and triton_available() else "torch"
    if backend == "triton":
        kernels = _triton_backend(values, scores)
        return kernels.value_lookup_triton(values, indices, scores, num_blocks, deterministic)
    return value_lookup_reference(values, indices, scores, num_blocks)


@cache
def triton_available() -> bool:
    """True if triton can be imported here (it is not, e.g., on Colab's CPU runtime or on macOS)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_backend(values: torch.Tensor, scores: torch.Tensor) -> ModuleType:
    """Import the Triton kernels and check that they can run on these tensors."""
    if not triton_available():
        raise RuntimeError(
            "backend='triton' needs the triton package, which is not installed: "
            "`pip install triton` (Linux with a CUDA GPU), or use backend='torch'"
        )
    from . import value_lookup_triton as kernels

    device = values.device.type
    if device not in ("cpu", "cuda"):
        raise RuntimeError(f"backend='triton' needs CUDA or CPU tensors, got tensors on {values.device}")
    if device == "cpu" and not kernels.INTERPRETED:
        raise RuntimeError(
            "backend='triton' on CPU tensors runs only through Triton's interpreter: set the "
            "environment variable TRITON_INTERPRET=1 before the kernels are first imported "
            "(e.g. os.environ['TRITON_INTERPRET'] = '1' at the top of the script), move the "
            "tensors to a CUDA device, or use backend='torch'"
        )
    if kernels.INTERPRETED:
        for name, t in (("values", values), ("scores", scores)):
            if t.dtype == torch.bfloat16:
                raise TypeError(
                    f"{name} has dtype torch.bfloat16, which Triton's interpreter computes wrongly; "
                    "use float32/float16 with TRITON_INTERPRET=1, or a GPU for bfloat16"
                )
    return kernels
