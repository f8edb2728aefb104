"""Self-checks for chapter 4, "Where the memory goes: split layers and skip-layer wiring"."""
from __future__ import annotations

import math

from ..ive import keys_per_side
import torch

from ..model import default_wiring
from ._grading import call, diagnose, exercise, expect_tensor, seed_for

__all__ = [
    "check_wiring", "check_step_time", "check_split_keys",
    "SKIP_LAYER_FORWARD_STUB", "check_skip_layer_forward",
]


def _close(answer: object, expected: float, rel: float = 1e-3) -> bool:
    return (isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer)
            and abs(answer - expected) <= rel * max(1.0, abs(expected)))


def check_wiring(wiring: object, n_layers: int = 12, n_memories: int = 3, min_hidden: int = 2) -> None:
    """Exercise 1: a skip-layer wiring for 12 blocks and 3 memories.

    Required: 0-based (i, j) pairs with 0 <= i < j < n_layers, each lookup hidden behind at least
    ``min_hidden`` whole blocks (j - i >= min_hidden), and spans that do not overlap, so that the
    memories sit at different depths and never look up at the same time.
    """
    if not isinstance(wiring, (tuple, list)):
        raise AssertionError(f"Give the wiring as a tuple of (i, j) pairs, got {type(wiring).__name__}.")
    pairs = []
    for k, pair in enumerate(wiring):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise AssertionError(f"Entry {k} must be an (i, j) pair, got {pair!r}.")
        i, j = pair
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (i, j)):
            raise AssertionError(f"Entry {k}: block indices are integers, got {pair!r}.")
        pairs.append((i, j))
    if len(pairs) != n_memories:
        raise AssertionError(f"One (i, j) pair per memory: {n_memories} pairs, got {len(pairs)}.")
    for k, (i, j) in enumerate(pairs):
        if not (0 <= i < n_layers and 0 <= j < n_layers):
            raise AssertionError(f"Pair {k} = {(i, j)}: blocks are numbered 0 .. {n_layers - 1} (0-based).")
        if i > j:
            raise AssertionError(f"Pair {k} = {(i, j)} writes before it reads (i > j): its input does not "
                                 "exist yet when its output is needed. Use i <= j.")
        if j - i < min_hidden:
            raise AssertionError(f"Pair {k} = {(i, j)}: the lookup overlaps only {j - i} whole block(s) "
                                 f"(blocks i+1 .. j); the exercise asks for at least {min_hidden}.")
    ordered = sorted(pairs)
    for (i0, j0), (i1, j1) in zip(ordered, ordered[1:]):
        if i1 <= j0:
            raise AssertionError(f"Spans {(i0, j0)} and {(i1, j1)} overlap: two lookups would be in flight at "
                                 "once, competing for the same bandwidth. Spread the memories through depth.")
    hidden = ", ".join(f"{j - i}" for i, j in pairs)
    note = " (this is default_wiring(12, 3))" if tuple(pairs) == default_wiring(n_layers, n_memories) else ""
    print(f"Correct: {tuple(pairs)}{note}; the lookups can hide behind {hidden} whole blocks.")


def check_step_time(overlapped: float, serial: float, attn: float = 0.4, ffn: float = 0.6, lookup: float = 5.0,
                    n_layers: int = 20, n_memories: int = 4) -> None:
    """Exercise 3: step time of the timeline model with default_wiring(20, 4) and a long lookup.

    Serial: every lookup on the critical path, L·(a + f) + M·ℓ. Overlapped: a lookup starts when
    block i's LN2 output exists and must finish before block j + 1 starts, a window of
    f + (j − i)·(a + f); only the excess max(0, ℓ − window) stalls the step.
    """
    block = attn + ffn
    wiring = default_wiring(n_layers, n_memories)
    expected_serial = n_layers * block + n_memories * lookup
    stall = [max(0.0, lookup - (ffn + (j - i) * block)) for i, j in wiring]
    expected = n_layers * block + sum(stall)
    if not _close(serial, expected_serial):
        raise AssertionError("Serial: the blocks take L·(a + f) and every one of the M lookups adds ℓ on top.")
    if _close(overlapped, n_layers * block):
        raise AssertionError(f"A lookup of {lookup} does not fit in its window; the excess stalls the step.")
    no_ffn = n_layers * block + sum(max(0.0, lookup - (j - i) * block) for i, j in wiring)
    if _close(overlapped, no_ffn):
        raise AssertionError("Almost: the lookup starts after block i's LN2, so it also overlaps block i's FFN. "
                             "The window is f + (j − i)·(a + f).")
    if not _close(overlapped, expected):
        raise AssertionError("Not quite: step time = L·(a + f) + Σ_k max(0, ℓ − window_k), "
                             "window_k = f + (j_k − i_k)·(a + f).")
    print(f"Correct: serial {expected_serial:g}, overlapped {expected:g} (each lookup stalls the step by "
          f"{stall[0]:g}; the overlap saves {expected_serial - expected:g}).")


def check_split_keys(keys_per_side_small: int, total_keys_small: int, total_keys_big: int,
                     num_values: int = 2**20, expansion: int = 4, n_memories: int = 4) -> None:
    """Exercise 4: keys of one memory of N values vs n_memories memories of N / n_memories values each.

    Counted per key set: 2·n' sub-keys (rows and columns) per memory, n' = √(E·N_memory).
    """
    big = keys_per_side(num_values, expansion)
    small = keys_per_side(num_values // n_memories, expansion)
    if keys_per_side_small == math.isqrt(num_values // n_memories):
        raise AssertionError("That ignores IVE: the grid addresses the E·N/4 virtual values, n' = √(E·N/4).")
    if keys_per_side_small != small:
        raise AssertionError("Not quite: each small memory has an n'×n' grid of E·N/4 cells.")
    if total_keys_big == big:
        raise AssertionError("Count both sides of the grid: rows and columns have n' sub-keys each.")
    if total_keys_big != 2 * big:
        raise AssertionError("Not quite: the big memory has 2·n' sub-keys with n' = √(E·N).")
    if total_keys_small == 2 * small:
        raise AssertionError("That is one small memory; there are four of them.")
    if total_keys_small != n_memories * 2 * small:
        raise AssertionError("Not quite: four memories, each with 2·n' sub-keys.")
    print(f"Correct: {n_memories} memories with {small} keys per side hold {total_keys_small} sub-keys, "
          f"{total_keys_small / total_keys_big:g}x the {total_keys_big} of one big memory (a factor √{n_memories}).")


# --- Coding exercise: the skip-layer forward pass ---------------------------------------------

SKIP_LAYER_FORWARD_STUB = '''
def skip_layer_forward(x, blocks, memories, wiring):
    """The residual stream of a transformer with skip-layer memories.

    Args:
        x: (B, D) float, the input of block 0.
        blocks: list of L callables; ``x, h = blocks[b](x)`` runs block b and returns the new
            residual stream and h, block b's pre-FFN normalised state (LN2's output), both (B, D).
        memories: list of M callables; ``o = memories[k](h)`` maps (B, D) to (B, D).
        wiring: M pairs (i, j), 0-based, i <= j: memory k reads h of block i and its output is added
            to the residual stream right after block j.

    Returns:
        (B, D), the residual stream after the last block.
    """
    raise NotImplementedError("Exercise: write skip_layer_forward")
'''


def _toy_model(n_layers: int, n_memories: int, d: int, g: torch.Generator):
    """Blocks and memories with distinct random maps, so that every wiring mistake shows."""
    def block_fn(w1, w2):
        def block(x):
            x = x + torch.tanh(x @ w1)                                 # "attention"
            h = torch.nn.functional.layer_norm(x, (d,))                # LN2
            return x + torch.tanh(h @ w2), h                           # "FFN"
        return block

    def memory_fn(w):
        return lambda h: torch.sin(h @ w)

    blocks = [block_fn(torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5,
                       torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5) for _ in range(n_layers)]
    memories = [memory_fn(torch.randn(d, d, generator=g, dtype=torch.float64)) for _ in range(n_memories)]
    return blocks, memories


def _wired(x, blocks, memories, wiring, reads="h", read_shift=0, write_shift=0):
    """The skip-layer walk of :meth:`ultramem_edu.model.TransformerLM.forward` over toy blocks; with other
    arguments than the defaults, one of the typical mistakes (which state is read, where it is written)."""
    outputs = [None] * len(memories)
    for b, block in enumerate(blocks):
        x_in = x
        x, h = block(x)
        for k, (i, _) in enumerate(wiring):
            if i + read_shift == b:
                state = {"h": h, "x": x, "x_in": x_in}[reads]
                outputs[k] = memories[k](state)
        for k, (_, j) in enumerate(wiring):
            if j + write_shift == b and outputs[k] is not None:
                x = x + outputs[k]
    return x


@exercise(4, SKIP_LAYER_FORWARD_STUB, guarded=("ultramem_edu.exercises.ch04:_wired",))
def check_skip_layer_forward(skip_layer_forward_fn) -> None:
    """Compare the reader's forward pass with the skip-layer walk on toy blocks and several wirings."""
    g = torch.Generator().manual_seed(seed_for(44))
    d = 6
    cases = [
        ("default_wiring(8, 2)", 8, default_wiring(8, 2)),
        ("default_wiring(20, 4), the released layout", 20, default_wiring(20, 4)),
        ("a parallel branch (i = j)", 5, ((2, 2),)),
        ("two memories reading the same block", 6, ((1, 3), (1, 4))),
        ("a memory writing after the last block", 4, ((0, 3),)),
        ("no memory", 3, ()),
    ]
    for case, n_layers, wiring in cases:
        blocks, memories = _toy_model(n_layers, len(wiring), d, g)
        x = torch.randn(3, d, generator=g, dtype=torch.float64)
        out = call(skip_layer_forward_fn, case, x.clone(), blocks, memories, tuple(wiring))
        expect_tensor(out, (3, d), case, "the output", "(B, D)")
        expected = _wired(x, blocks, memories, wiring)
        last = n_layers - 1
        mistakes = [
            (lambda: _wired(x, blocks, memories, wiring, reads="x"),
             "a memory reads h, block i's pre-FFN normalised state (LN2's output), not the residual stream "
             "after the block"),
            (lambda: _wired(x, blocks, memories, wiring, reads="x_in"),
             "a memory reads h, block i's pre-FFN normalised state, not the block's input"),
            (lambda: _wired(x, blocks, memories, [(i, i) for i, _ in wiring]),
             "the output is added after block j, not right after block i: that is what hides the lookup "
             "behind blocks i+1 .. j"),
            (lambda: _wired(x, blocks, memories, [(i, min(j + 1, last)) for i, j in wiring]),
             "off by one: the output joins the stream right after block j (0-based), not after block j + 1"),
            (lambda: _wired(x, blocks, memories, wiring, write_shift=-1),
             "off by one: the output joins the stream after block j, not before it"),
            (lambda: _wired(x, blocks, memories, [(i - 1, j - 1) for i, j in wiring]),
             "off by one: the wiring is 0-based, block 0 is the first block"),
            (lambda: _wired(x, blocks, memories, [(j, j) for _, j in wiring]),
             "memory k reads block i's state (the first number of the pair), not block j's"),
        ]
        diagnose(case, out, expected, mistakes,
                 "the residual stream differs from the skip-layer wiring's")
    print(f"Correct: skip_layer_forward matches the model's wiring on {len(cases)} layouts "
          "(parallel branch, shared source, last block, no memory).")

