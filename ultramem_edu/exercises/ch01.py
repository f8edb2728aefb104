"""Self-checks for chapter 1, "The MLP as a key-value memory"."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..memory import TopMMemory, memory_read
from ._grading import call, diagnose, exercise, expect_tensor, seed_for

__all__ = [
    "check_scoring_flops", "check_topm_activation", "check_attention_scale",
    "TOPM_READ_STUB", "check_topm_read",
]


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


# --- Coding exercise: the top-m memory read ---------------------------------------------------

TOPM_READ_STUB = '''
def topm_read(query, keys, values, m, softmax=True):
    """Read a large memory through its m best keys.

    Args:
        query: (B, D_k) float.
        keys: (N, D_k) float.
        values: (N, D_v) float.
        m: 1 <= m <= N, keys kept per query.
        softmax: True: the m selected scores are turned into weights by a softmax over those m
            scores only; False: the raw selected scores are the weights.

    Returns:
        (B, D_v): sum over the m keys with the largest scores q·K[i] of weight_i * values[i].
    """
    raise NotImplementedError("Exercise: write topm_read")
'''


def _reference_read(query, keys, values, m, softmax):
    """The package's top-m memory (:class:`ultramem_edu.memory.TopMMemory`) with these keys and values."""
    with torch.random.fork_rng(devices=[]):                           # its random init must not move the reader's RNG
        memory = TopMMemory(keys.shape[0], keys.shape[1], values.shape[1], m, softmax=softmax)
    memory.keys = torch.nn.Parameter(keys.clone(), requires_grad=False)
    memory.values = torch.nn.Parameter(values.clone(), requires_grad=False)
    with torch.no_grad():
        return memory(query)[0]


def _topm_read_mistakes(query, keys, values, m, softmax):
    """What the typical wrong versions of topm_read return on these inputs."""
    scores = query @ keys.T                                            # (B, N)
    top, idx = scores.topk(m, dim=-1)

    def read(w, i=idx):
        return (w.unsqueeze(-1) * values[i]).sum(1)

    kth = top[:, -1:]
    mask = scores >= kth
    if query.shape[0] > 1:
        yield (lambda: read(top.softmax(0) if softmax else top)), (
            "the softmax ran over the wrong axis: softmax(dim=0) normalises each of the m slots across the "
            "batch of queries; each query's m weights must sum to 1, softmax over the last axis (dim=-1)")
        yield (lambda: read(scores.softmax(0).gather(-1, idx) if softmax else top)), (
            "the softmax ran over the wrong axis (dim=0, across the queries of the batch); take it over each "
            "query's m selected scores, the last axis (dim=-1)")
    yield (lambda: read(top) if softmax else read(top.softmax(-1))), (
        "the weights are the softmax of the m selected scores" if softmax
        else "with softmax=False the raw selected scores are the weights: no softmax")
    yield (lambda: scores.softmax(-1).gather(-1, idx).unsqueeze(-1).mul(values[idx]).sum(1)), (
        "you took the softmax over all N scores and then kept m of them; the softmax runs over the m "
        "selected scores only, so the weights sum to 1")
    yield (lambda: read(top / keys.shape[1] ** 0.5 if not softmax else (top / keys.shape[1] ** 0.5).softmax(-1))), (
        "the memory read does not scale the scores by 1/√D_k")
    low, low_idx = scores.topk(m, dim=-1, largest=False)
    yield (lambda: read(low.softmax(-1) if softmax else low, low_idx)), (
        "you kept the m *smallest* scores; keep the largest (topk's default)")
    absolute = scores.abs().topk(m, dim=-1).indices
    yield (lambda: read(scores.gather(-1, absolute).softmax(-1) if softmax else scores.gather(-1, absolute), absolute)), (
        "you ranked the keys by |score|; a very negative score is a bad match, not a good one")
    masked = torch.where(mask, scores, torch.full_like(scores, float("-inf")))
    weights = masked.softmax(-1) if softmax else torch.where(mask, scores, torch.zeros_like(scores))
    yield (lambda: weights @ values), (
        "with tied scores a threshold (scores >= the m-th largest) keeps more than m keys; keep exactly "
        "the m indices that topk returns")


@exercise(1, TOPM_READ_STUB, guarded=("ultramem_edu.memory:TopMMemory.forward", "ultramem_edu.memory:dense_topm",
                                       "ultramem_edu.exercises.ch01:_reference_read"))
def check_topm_read(topm_read_fn) -> None:
    """Compare the reader's ``topm_read`` with the package's :class:`TopMMemory` on random and
    edge-case memories."""
    g = torch.Generator().manual_seed(seed_for(11))

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    q, k, v = rand(4, 8), rand(30, 8), rand(30, 5)
    tie_keys = rand(12, 6)
    tie_keys[5] = tie_keys[3]                       # keys 3 and 5 tie for every query
    tie_values = rand(12, 3)
    tie_values[5] = tie_values[3]
    tie_q = rand(3, 6)
    order = (tie_q @ tie_keys.T).argsort(-1, descending=True)
    m_tie = []                                       # the m at which the tied pair straddles the cut
    for b in range(3):
        pos = sorted(int((order[b] == i).nonzero()) for i in (3, 5))
        m_tie.append(pos[0] + 1)
    neg_q = rand(3, 6).abs()
    neg_k = -rand(20, 6).abs()                     # every score is negative
    cases = [
        ("random, softmax", (q, k, v, 4, True)),
        ("random, no softmax", (q, k, v, 4, False)),
        ("m = 1", (q, k, v, 1, True)),
        ("m = N", (q[:2], k[:7], v[:7], 7, True)),
        ("all scores negative", (neg_q, neg_k, rand(20, 4), 3, False)),
        ("all scores negative, softmax", (neg_q, neg_k, rand(20, 4), 3, True)),
        ("B = 1, D_v = 1", (q[:1], k, v[:, :1], 5, True)),
    ]
    cases += [(f"tied scores at the cut (query {b})", (tie_q[b:b + 1], tie_keys, tie_values, m_tie[b], False))
              for b in range(3)]
    for case, (query, keys, values, m, softmax) in cases:
        out = call(topm_read_fn, case, query.clone(), keys.clone(), values.clone(), m, softmax=softmax)
        expect_tensor(out, (query.shape[0], values.shape[1]), case, "the output", "(B, D_v)")
        expected = _reference_read(query, keys, values, m, softmax)
        diagnose(case, out, expected, _topm_read_mistakes(query, keys, values, m, softmax),
                 "the output differs from Σ over the m best keys of weight × value row")
    print(f"Correct: topm_read matches the reference on {len(cases)} cases "
          "(softmax or not, m = 1, m = N, negative scores, ties).")

