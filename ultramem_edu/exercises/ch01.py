"""Self-checks for chapter 1, "The MLP as a key-value memory"."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..memory import TopMMemory, memory_read

__all__ = ["check_scoring_flops", "check_topm_activation", "check_attention_scale"]


def _close(answer: float, expected: float, rel: float = 0.01) -> bool:
    return math.isfinite(answer) and abs(answer - expected) <= rel * abs(expected)


def check_scoring_flops(
    dense: float, product_keys: float | None = None, num_values: int = 10**6, key_dim: int = 128
) -> None:
    """Exercise 1: FLOPs to score one query against every key, and with product keys.

    Conventions of the chapter: a multiply-add is 2 FLOPs; product keys score 2·√N sub-keys of
    width D_k (the m² candidate sums are left out). Answers within 1 % are accepted.
    """
    expected = 2 * num_values * key_dim
    if _close(dense, expected / 2):
        raise AssertionError("That is the number of multiply-adds; the chapter counts each as 2 FLOPs.")
    if _close(dense, expected / key_dim):
        raise AssertionError("Each key score is a dot product of width D_k, not a single operation.")
    if not _close(dense, expected):
        raise AssertionError(f"Not quite: one dot product of width D_k={key_dim} per key, for N={num_values} keys.")
    message = f"Correct: dense scoring costs 2·N·D_k = {expected:.3g} FLOPs per query"
    if product_keys is not None:
        n = math.isqrt(num_values)
        expected_pk = 2 * 2 * n * key_dim
        if _close(product_keys, expected_pk / 2):
            raise AssertionError("Product keys score two sets of √N sub-keys (rows and columns), not one.")
        if not _close(product_keys, expected_pk):
            raise AssertionError(f"Not quite: product keys score 2·√N = {2 * n} sub-keys of width D_k.")
        message += f"; product keys cost 2·(2√N)·D_k = {expected_pk:.3g}, {expected / expected_pk:.0f}× less"
    print(message + ".")


def check_topm_activation(topm_activation: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """Exercise 2: ``topm_activation(scores, m)`` keeps the m largest scores of each row, zeros the rest.

    Checked on random scores, and as the σ of :func:`memory_read` against :class:`TopMMemory`
    without softmax (same keys, values and query), which reads only the m selected rows.
    """
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(5, 40, generator=g)
    m = 6
    out = topm_activation(scores, m)
    if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
        raise AssertionError(f"Return a tensor shaped like the scores {tuple(scores.shape)}, one entry per key.")
    if not bool(((out != 0).sum(-1) == m).all()):
        raise AssertionError(f"Each row must keep exactly m={m} non-zero entries; the rest must be exactly 0.")
    top, idx = scores.topk(m, dim=-1)
    expected = torch.zeros_like(scores).scatter(-1, idx, top)
    if not torch.allclose(out, expected):
        raise AssertionError("Keep the *largest* m scores unchanged (no softmax, no ReLU) and zero the others.")
    torch.manual_seed(1)
    memory = TopMMemory(num_values=50, key_dim=8, value_dim=4, m=m, softmax=False)
    query = torch.randn(3, 8, generator=g)
    with torch.no_grad():
        ref = memory(query)[0]
        mine = memory_read(query, memory.keys, memory.values, lambda s: topm_activation(s, m))
    if not torch.allclose(mine, ref, atol=1e-5):
        raise AssertionError("As σ in memory_read it should reproduce TopMMemory(softmax=False).")
    print(f"Correct: exactly m={m} of the N coefficients are non-zero, so only m value rows are read.")


def check_attention_scale(scale: float) -> None:
    """Exercise 3: the ``scale`` that makes ``F.scaled_dot_product_attention`` equal ``memory_read``
    with σ = softmax (keys and values of width 16, no scaling of the query)."""
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 16, generator=g), torch.randn(10, 16, generator=g), torch.randn(10, 4, generator=g)
    memory = memory_read(q, k, v, lambda s: s.softmax(-1))
    if not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise AssertionError(f"scale must be a finite number, got {scale!r}")
    attention = F.scaled_dot_product_attention(q[None], k[None], v[None], scale=float(scale))[0]
    if _close(scale, 16**-0.5):
        raise AssertionError("That is SDPA's default 1/√D_k; memory_read does not scale the scores.")
    if not torch.allclose(memory, attention, atol=1e-5):
        raise AssertionError("memory_read computes softmax(q·Kᵀ) with no factor in front of the scores.")
    print("Correct: with scale=1, attention's read is memory_read with σ = softmax over the context's keys.")
