"""Input validation shared by the whole package.

Every public function checks its arguments with these helpers so that bad input fails early with a
message that names the argument, says what was expected and what was given.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = [
    "check_float_tensor",
    "check_index_tensor",
    "check_int",
    "check_choice",
    "check_same_device",
    "is_perfect_square",
]


def _describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}"


def check_float_tensor(
    name: str,
    t: object,
    ndim: int | None = None,
    min_ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
) -> torch.Tensor:
    """Check that ``t`` is a floating-point tensor with the given rank/shape and no NaN/inf.

    ``shape`` may contain ``None`` for "any size" and is matched against the *trailing* dims.
    Returns ``t`` so the call can be used inline.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got {_describe(t)}")
    if min_ndim is not None and t.dim() < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got {_describe(t)}")
    if shape is not None:
        _check_trailing_shape(name, t, shape)
    if finite and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, but it contains NaN or inf ({_describe(t)})")
    return t


def check_index_tensor(
    name: str, t: object, high: int, ndim: int | None = None, shape: Sequence[int | None] | None = None
) -> torch.Tensor:
    """Check that ``t`` is an integer tensor with every entry in ``[0, high)``.

    Triton does no bounds checks, so this runs on the host before any kernel launch.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{name} must be an int32 or int64 tensor, got dtype {t.dtype}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got {_describe(t)}")
    if shape is not None:
        _check_trailing_shape(name, t, shape)
    if t.numel():
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= high:
            raise ValueError(f"{name} must lie in [0, {high}), got values in [{lo}, {hi}]")
    return t


def check_int(name: str, v: object, low: int | None = None, high: int | None = None) -> int:
    """Check that ``v`` is a Python int (not bool) in ``[low, high]`` (inclusive)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} ({v!r})")
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def check_choice(name: str, v: object, choices: Sequence[object]) -> object:
    if v not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")
    return v


def check_same_device(**tensors: torch.Tensor) -> None:
    devices = {n: t.device for n, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{n} on {d}" for n, d in devices.items())
        raise ValueError(f"all tensors must be on one device, got {listing}")


def is_perfect_square(x: int) -> bool:
    return x >= 0 and math.isqrt(x) ** 2 == x


def _check_trailing_shape(name: str, t: torch.Tensor, shape: Sequence[int | None]) -> None:
    if t.dim() < len(shape):
        raise ValueError(f"{name} must have trailing shape {tuple(shape)}, got {_describe(t)}")
    tail = t.shape[t.dim() - len(shape):]
    for want, got in zip(shape, tail):
        if want is not None and want != got:
            pretty = tuple("*" if s is None else s for s in shape)
            raise ValueError(f"{name} must have trailing shape {pretty}, got {_describe(t)}")
