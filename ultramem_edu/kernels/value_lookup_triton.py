"""UltraMem's value lookup in Triton: forward and backward kernels, their launchers, autograd.

The specification (:func:`ultramem_edu.kernels.value_lookup_reference`), with N physical rows,
h cores and core slices of width s = D_v / h:

    out[b, p, c*s:(c+1)*s] = sum_k [indices[b,k] div N == p] * scores[b,k,c]
                                   * values[indices[b,k] mod N, c*s:(c+1)*s]

Why a kernel: the torch reference materialises the gathered rows, (B, k, D_v), twice (the gather and
the weighted copy) and reads them back for the scatter-add, so it moves about 3-5x the bytes it
must. The lookup is a pure bandwidth problem (method.md section 8): the floor is reading each
selected row once. The kernels below read each selected row once and keep the sums in registers.

Backward, with g = d loss / d out of shape (B, E, D_v):

    d scores[b,k,c]            = < values[row(b,k), slice c], g[b, block(b,k), slice c] >
    d values[row, slice c]    += scores[b,k,c] * g[b, block(b,k), slice c]   for every (b,k) at row

The first is a dot product per selected row and core (no conflicts). The second is a scatter-add:
several (b,k) can hit the same physical row, within a bag, across bags and across virtual blocks.
``_bwd_kernel`` resolves the conflicts with atomic adds (fast; the summation order, hence the last
bits, depend on scheduling). ``_bwd_values_sorted_kernel`` sorts the hits by row and gives each row
to one program that sums its hits in a fixed order: bitwise repeatable.

Everything here assumes validated input; call it through :func:`ultramem_edu.kernels.value_lookup`.
Importing this module imports triton. With ``TRITON_INTERPRET=1`` in the environment *when this
module is imported*, the kernels run through Triton's interpreter (CPU tensors, fp32/fp16 only).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

# The kernels are decorated at import, so this is what decides compiled vs interpreted for good.
INTERPRETED: bool = bool(triton.knobs.runtime.interpret)

# A (BLOCK_K, BLOCK_D) tile of gathered rows is the unit of work: BLOCK_K selected rows, BLOCK_D
# contiguous columns of each (BLOCK_D * 4 bytes = 512 B per row in fp32: whole cache lines).
BLOCK_K = 16
MAX_BLOCK_D = 128


@triton.jit
def _fwd_kernel(
    values_ptr, indices_ptr, scores_ptr, out_ptr,
    N, K, S, E,                       # physical rows, bag size, core slice width, virtual blocks
    stride_vn, stride_vd,
    stride_ib, stride_ik,
    stride_sb, stride_sk, stride_sh,
    stride_ob, stride_oe, stride_od,
    ACC_DTYPE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per (bag b, core c, BLOCK_D columns of core c's slice): out[b, :, those columns].

    Memory traffic: every selected row's BLOCK_D columns are read exactly once, by the pass over
    the block p it belongs to (loads of rows of other blocks are masked off and issue no memory
    transactions). The bag's k indices and scores are re-read once per block: E * k * (4 to 8 +
    score bytes), negligible next to k * D_v * value bytes, and served from cache.
    """
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)    # (BLOCK_D,) columns in slice c
    d_mask = offs_d < S
    cols = c * S + offs_d                                          # (BLOCK_D,) columns of D_v
    for p in range(E):
        acc = tl.zeros((BLOCK_D,), dtype=ACC_DTYPE)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)                    # (BLOCK_K,)
            k_mask = offs_k < K
            virtual = tl.load(indices_ptr + b * stride_ib + offs_k * stride_ik, mask=k_mask, other=0)
            virtual = virtual.to(tl.int64)
            hit = k_mask & (virtual // N == p)                     # selected rows of block p
            row = virtual - p * N                                  # physical row (where hit)
            w = tl.load(scores_ptr + b * stride_sb + offs_k * stride_sk + c * stride_sh,
                        mask=hit, other=0.0).to(ACC_DTYPE)        # (BLOCK_K,) core c's scores
            v = tl.load(values_ptr + row[:, None] * stride_vn + cols[None, :] * stride_vd,
                        mask=hit[:, None] & d_mask[None, :], other=0.0).to(ACC_DTYPE)
            acc += tl.sum(v * w[:, None], axis=0)                  # (BLOCK_K, BLOCK_D) -> (BLOCK_D,)
        tl.store(out_ptr + b * stride_ob + p * stride_oe + cols * stride_od,
                 acc.to(out_ptr.dtype.element_ty), mask=d_mask)


@triton.jit
def _fwd_onepass_kernel(
    values_ptr, indices_ptr, scores_ptr, out_ptr,
    N, K, S, E,
    stride_vn, stride_vd,
    stride_ib, stride_ik,
    stride_sb, stride_sk, stride_sh,
    stride_ob, stride_oe, stride_od,
    ACC_DTYPE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_E: tl.constexpr,
):
    """The forward in one pass over the k selections: all E blocks accumulate side by side.

    Same grid and result as ``_fwd_kernel``. Each (BLOCK_K, BLOCK_D) tile of value rows is loaded
    once with every row live (only the k and column masks), instead of once per block with about
    1/E of its rows live; the scores are spread over a (BLOCK_K, BLOCK_E) one-hot matrix of blocks
    and the tile is reduced into a (BLOCK_E, BLOCK_D) accumulator. The price: BLOCK_E times the
    accumulator registers and BLOCK_E times the multiply-adds (a benchmark variant; BLOCK_E is the
    next power of two >= E). The authors' CUDA forward does the same reduction as a tensor-core
    product of the value tile with a (k, 8) masked-score matrix.
    """
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)    # (BLOCK_D,)
    d_mask = offs_d < S
    cols = c * S + offs_d
    blocks = tl.arange(0, BLOCK_E)                                 # (BLOCK_E,)
    acc = tl.zeros((BLOCK_E, BLOCK_D), dtype=ACC_DTYPE)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        virtual = tl.load(indices_ptr + b * stride_ib + offs_k * stride_ik, mask=k_mask, other=0).to(tl.int64)
        block = virtual // N
        row = virtual - block * N
        w = tl.load(scores_ptr + b * stride_sb + offs_k * stride_sk + c * stride_sh,
                    mask=k_mask, other=0.0).to(ACC_DTYPE)          # (BLOCK_K,)
        v = tl.load(values_ptr + row[:, None] * stride_vn + cols[None, :] * stride_vd,
                    mask=k_mask[:, None] & d_mask[None, :], other=0.0).to(ACC_DTYPE)   # (BLOCK_K, BLOCK_D)
        w_blocks = tl.where(block[:, None] == blocks[None, :], w[:, None], 0.0)      # (BLOCK_K, BLOCK_E)
        acc += tl.sum(w_blocks[:, :, None] * v[:, None, :], axis=0)                  # (BLOCK_E, BLOCK_D)
    tl.store(out_ptr + b * stride_ob + blocks[:, None] * stride_oe + cols[None, :] * stride_od,
             acc.to(out_ptr.dtype.element_ty), mask=(blocks < E)[:, None] & d_mask[None, :])


@triton.jit
def _bwd_kernel(
    values_ptr, indices_ptr, scores_ptr, grad_out_ptr, grad_values_ptr, grad_scores_ptr,
    N, K, S,
    stride_vn, stride_vd,
    stride_ib, stride_ik,
    stride_sb, stride_sk, stride_sh,
    stride_gb, stride_ge, stride_gd,
    stride_gvn, stride_gvd,
    stride_gsb, stride_gsk, stride_gsh,
    WRITE_GRAD_SCORES: tl.constexpr, ADD_GRAD_VALUES: tl.constexpr,
    ACC_DTYPE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per (bag b, BLOCK_K selected rows, core c); it walks core c's slice in tiles.

    Per tile it gathers the output gradient of each selected row's block, g (BLOCK_K, BLOCK_D), and
    - if WRITE_GRAD_SCORES: the value tile v, and accumulates the dot products <v, g> per row;
    - if ADD_GRAD_VALUES: atomically adds w * g into the fp32 (or fp64) grad_values buffer.
    Memory traffic: g is read from a small (E, D_v) region per bag (cache friendly); v is read
    once per selected row; the atomic adds read-modify-write each selected row once in ACC_DTYPE.
    """
    b = tl.program_id(0).to(tl.int64)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)    # (BLOCK_K,)
    c = tl.program_id(2)
    k_mask = offs_k < K
    virtual = tl.load(indices_ptr + b * stride_ib + offs_k * stride_ik, mask=k_mask, other=0)
    virtual = virtual.to(tl.int64)
    block = virtual // N
    row = virtual - block * N
    w = tl.load(scores_ptr + b * stride_sb + offs_k * stride_sk + c * stride_sh,
                mask=k_mask, other=0.0).to(ACC_DTYPE)
    dot = tl.zeros((BLOCK_K,), dtype=ACC_DTYPE)
    for d0 in range(0, S, BLOCK_D):
        cols = c * S + d0 + tl.arange(0, BLOCK_D)
        mask = k_mask[:, None] & (d0 + tl.arange(0, BLOCK_D) < S)[None, :]
        g = tl.load(grad_out_ptr + b * stride_gb + block[:, None] * stride_ge + cols[None, :] * stride_gd,
                    mask=mask, other=0.0).to(ACC_DTYPE)           # (BLOCK_K, BLOCK_D)
        if WRITE_GRAD_SCORES:
            v = tl.load(values_ptr + row[:, None] * stride_vn + cols[None, :] * stride_vd,
                        mask=mask, other=0.0).to(ACC_DTYPE)
            dot += tl.sum(v * g, axis=1)
        if ADD_GRAD_VALUES:
            tl.atomic_add(grad_values_ptr + row[:, None] * stride_gvn + cols[None, :] * stride_gvd,
                          w[:, None] * g, mask=mask)
    if WRITE_GRAD_SCORES:
        tl.store(grad_scores_ptr + b * stride_gsb + offs_k * stride_gsk + c * stride_gsh,
                 dot.to(grad_scores_ptr.dtype.element_ty), mask=k_mask)


@triton.jit
def _bwd_values_sorted_kernel(
    grad_out_ptr, grad_values_ptr,
    seg_rows_ptr, seg_starts_ptr, hit_bag_ptr, hit_block_ptr, hit_scores_ptr,
    S,
    stride_gb, stride_ge, stride_gd,
    stride_gvn, stride_gvd,
    stride_hn, stride_hh,
    ACC_DTYPE: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per (distinct physical row, core c, BLOCK_D columns): the deterministic scatter.

    The hits (b, k) are sorted by physical row (stable), so the hits of segment ``seg`` are
    positions seg_starts[seg] .. seg_starts[seg+1]-1, always summed in that order and with the same
    reduction tree: the result does not depend on scheduling. Each grad_values row is written once,
    by one program, with a plain store (rows never hit keep the zeros they were allocated with).
    """
    seg = tl.program_id(0)
    c = tl.program_id(1)
    offs_d = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_d < S
    cols = c * S + offs_d
    row = tl.load(seg_rows_ptr + seg)
    start = tl.load(seg_starts_ptr + seg)
    end = tl.load(seg_starts_ptr + seg + 1)
    acc = tl.zeros((BLOCK_D,), dtype=ACC_DTYPE)
    for j0 in range(start, end, BLOCK_K):
        offs_j = j0 + tl.arange(0, BLOCK_K)
        j_mask = offs_j < end
        bag = tl.load(hit_bag_ptr + offs_j, mask=j_mask, other=0)
        block = tl.load(hit_block_ptr + offs_j, mask=j_mask, other=0)
        w = tl.load(hit_scores_ptr + offs_j * stride_hn + c * stride_hh, mask=j_mask, other=0.0).to(ACC_DTYPE)
        g = tl.load(grad_out_ptr + bag[:, None] * stride_gb + block[:, None] * stride_ge + cols[None, :] * stride_gd,
                    mask=j_mask[:, None] & d_mask[None, :], other=0.0).to(ACC_DTYPE)
        acc += tl.sum(w[:, None] * g, axis=0)
    tl.store(grad_values_ptr + row * stride_gvn + cols * stride_gvd,
             acc.to(grad_values_ptr.dtype.element_ty), mask=d_mask)


def _acc_dtype(values: torch.Tensor) -> torch.dtype:
    """float32 accumulation, float64 for float64 tables (same rule as the reference)."""
    return torch.promote_types(values.dtype, torch.float32)


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _block_d(s: int) -> int:
    return min(MAX_BLOCK_D, triton.next_power_of_2(s))


def lookup_forward(values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """values (N, D_v), indices (B, k), scores (B, k, h) -> out (B, num_blocks, D_v) in values.dtype."""
    n, d_v = values.shape
    b, k, h = scores.shape
    s = d_v // h
    out = values.new_empty(b, num_blocks, d_v)
    if b == 0:
        return out
    if k == 0:
        return out.zero_()
    block_d = _block_d(s)
    grid = (b, h, triton.cdiv(s, block_d))
    _fwd_kernel[grid](
        values, indices, scores, out,
        n, k, s, num_blocks,
        *values.stride(), *indices.stride(), *scores.stride(), *out.stride(),
        ACC_DTYPE=_tl_dtype(_acc_dtype(values)), BLOCK_K=BLOCK_K, BLOCK_D=block_d,
    )
    return out


def lookup_forward_onepass(
    values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, num_blocks: int
) -> torch.Tensor:
    """``lookup_forward`` with ``_fwd_onepass_kernel``: one pass over the selections for all blocks.

    A benchmark variant (no autograd, not behind ``value_lookup``); same arguments and result.
    """
    n, d_v = values.shape
    b, k, h = scores.shape
    s = d_v // h
    out = values.new_empty(b, num_blocks, d_v)
    if b == 0:
        return out
    if k == 0:
        return out.zero_()
    block_d = _block_d(s)
    grid = (b, h, triton.cdiv(s, block_d))
    _fwd_onepass_kernel[grid](
        values, indices, scores, out,
        n, k, s, num_blocks,
        *values.stride(), *indices.stride(), *scores.stride(), *out.stride(),
        ACC_DTYPE=_tl_dtype(_acc_dtype(values)), BLOCK_K=BLOCK_K, BLOCK_D=block_d,
        BLOCK_E=triton.next_power_of_2(num_blocks),
    )
    return out


def lookup_backward(
    values: torch.Tensor,
    indices: torch.Tensor,
    scores: torch.Tensor,
    grad_out: torch.Tensor,
    need_values: bool,
    need_scores: bool,
    deterministic: bool,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of the lookup. grad_out (B, E, D_v) -> (grad_values (N, D_v) | None, grad_scores (B, k, h) | None)."""
    n, d_v = values.shape
    b, k, h = scores.shape
    s = d_v // h
    acc_dtype = _acc_dtype(values)
    block_d = _block_d(s)
    grad_scores = torch.zeros_like(scores, memory_format=torch.contiguous_format) if need_scores else None
    grad_values = None
    if need_values:
        # Atomics accumulate in acc_dtype (half-precision atomics would round every add);
        # the sorted path stores each row once, straight in values.dtype.
        buffer_dtype = values.dtype if deterministic else acc_dtype
        grad_values = torch.zeros(n, d_v, dtype=buffer_dtype, device=values.device)
    add_atomically = need_values and not deterministic
    if b * k and (need_scores or add_atomically):
        dummy = grad_out  # stands in for an output the constexpr flags switch off
        gv = grad_values if add_atomically else dummy
        gs = grad_scores if need_scores else dummy
        gv_strides = grad_values.stride() if add_atomically else (0, 0)
        gs_strides = grad_scores.stride() if need_scores else (0, 0, 0)
        grid = (b, triton.cdiv(k, BLOCK_K), h)
        _bwd_kernel[grid](
            values, indices, scores, grad_out, gv, gs,
            n, k, s,
            *values.stride(), *indices.stride(), *scores.stride(), *grad_out.stride(),
            *gv_strides, *gs_strides,
            WRITE_GRAD_SCORES=need_scores, ADD_GRAD_VALUES=add_atomically,
            ACC_DTYPE=_tl_dtype(acc_dtype), BLOCK_K=BLOCK_K, BLOCK_D=block_d,
        )
    if need_values and deterministic and b * k:
        _scatter_sorted(indices, scores, grad_out, grad_values, n, s, acc_dtype, block_d)
    if grad_values is not None:
        grad_values = grad_values.to(values.dtype)
    return grad_values, grad_scores


def _scatter_sorted(indices, scores, grad_out, grad_values, n, s, acc_dtype, block_d) -> None:
    """Deterministic grad_values: sort the B*k hits by physical row, one program per distinct row."""
    b, k, h = scores.shape
    virtual = indices.reshape(-1).long()                        # (B*k,) hit j = (bag j // k, slot j % k)
    block = virtual // n
    row = virtual - block * n
    sorted_row, order = torch.sort(row, stable=True)            # stable: a fixed order within a row
    seg_rows, counts = torch.unique_consecutive(sorted_row, return_counts=True)
    seg_starts = torch.zeros(seg_rows.numel() + 1, dtype=torch.int64, device=row.device)
    torch.cumsum(counts, 0, out=seg_starts[1:])
    hit_bag = order // k
    hit_block = block[order]
    hit_scores = scores.reshape(b * k, h)[order]                # (B*k, h)
    grid = (seg_rows.numel(), h, triton.cdiv(s, block_d))
    _bwd_values_sorted_kernel[grid](
        grad_out, grad_values,
        seg_rows, seg_starts, hit_bag, hit_block, hit_scores,
        s,
        *grad_out.stride(), *grad_values.stride(), *hit_scores.stride(),
        ACC_DTYPE=_tl_dtype(acc_dtype), BLOCK_K=BLOCK_K, BLOCK_D=block_d,
    )


class ValueLookupFunction(torch.autograd.Function):
    """Autograd wrapper: forward and backward are the kernels above; indices get no gradient."""

    @staticmethod
    def forward(ctx, values, indices, scores, num_blocks, deterministic):
        ctx.save_for_backward(values, indices, scores)
        ctx.deterministic = deterministic
        return lookup_forward(values, indices, scores, num_blocks)

    @staticmethod
    def backward(ctx, grad_out):
        values, indices, scores = ctx.saved_tensors
        need_values, _, need_scores = ctx.needs_input_grad[:3]
        grad_values, grad_scores = lookup_backward(
            values, indices, scores, grad_out, need_values, need_scores, ctx.deterministic
        )
        return grad_values, None, grad_scores, None, None


def value_lookup_triton(
    values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, num_blocks: int, deterministic: bool
) -> torch.Tensor:
    """Differentiable Triton lookup. values (N, D_v), indices (B, k), scores (B, k, h) -> (B, num_blocks, D_v)."""
    return ValueLookupFunction.apply(values, indices, scores, num_blocks, deterministic)
