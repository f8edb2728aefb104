"""The instructor's solutions of chapter 9's Triton puzzles, for the tests (the same code as the
``solution`` cells of the instructor edition of chapter 9; the package holds no solution).

Import it after TRITON_INTERPRET is set (tests/conftest.py does so on machines without CUDA).
"""
import triton
import triton.language as tl


@triton.jit
def gather_row_kernel(values_ptr, out_ptr, row, D: tl.constexpr):
    """Puzzle 1's solution."""
    cols = tl.arange(0, D)                                             # (D,)
    x = tl.load(values_ptr + row * D + cols)
    tl.store(out_ptr + cols, x)


@triton.jit
def gather_rows_kernel(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Puzzle 2's solution."""
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)        # (BLOCK_K,) selections
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)        # (BLOCK_D,) columns
    k_mask = offs_k < K
    mask = k_mask[:, None] & (offs_d < D)[None, :]                     # (BLOCK_K, BLOCK_D)
    rows = tl.load(indices_ptr + offs_k, mask=k_mask, other=0)
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


@triton.jit
def weighted_sum_kernel(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D,
                        BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Puzzle 3's solution."""
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        rows = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
        w = tl.load(scores_ptr + b * K + offs_k, mask=k_mask, other=0.0)                 # (BLOCK_K,)
        v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :],
                    mask=k_mask[:, None] & d_mask[None, :], other=0.0)                  # (BLOCK_K, BLOCK_D)
        acc += tl.sum(v * w[:, None], axis=0)
    tl.store(out_ptr + b * D + offs_d, acc, mask=d_mask)


@triton.jit
def block_lookup_kernel(values_ptr, indices_ptr, scores_ptr, out_ptr, N, K, D, E,
                        BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Puzzle 4's solution: one pass over the bag per block, loads of other blocks masked off."""
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    for p in range(E):
        acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            a = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
            hit = k_mask & (a // N == p)                                   # selections in block p
            w = tl.load(scores_ptr + b * K + offs_k, mask=hit, other=0.0)
            v = tl.load(values_ptr + (a - p * N)[:, None] * D + offs_d[None, :],
                        mask=hit[:, None] & d_mask[None, :], other=0.0)
            acc += tl.sum(v * w[:, None], axis=0)
        tl.store(out_ptr + (b * E + p) * D + offs_d, acc, mask=d_mask)


@triton.jit
def lookup_backward_kernel(values_ptr, indices_ptr, scores_ptr, grad_out_ptr, grad_values_ptr, grad_scores_ptr,
                           N, K, D, E, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Puzzle 5's solution (the atomic variant of the package's backward)."""
    b = tl.program_id(0)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = offs_k < K
    a = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
    p = a // N
    row = a - p * N
    w = tl.load(scores_ptr + b * K + offs_k, mask=k_mask, other=0.0)
    dot = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        mask = k_mask[:, None] & (offs_d < D)[None, :]
        g = tl.load(grad_out_ptr + (b * E + p)[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
        v = tl.load(values_ptr + row[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
        dot += tl.sum(v * g, axis=1)
        tl.atomic_add(grad_values_ptr + row[:, None] * D + offs_d[None, :], w[:, None] * g, mask=mask)
    tl.store(grad_scores_ptr + b * K + offs_k, dot, mask=k_mask)
