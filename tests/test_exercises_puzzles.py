"""Chapter 9's Triton puzzles: each check passes its solution and names the typical mistakes.

The wrong kernels below are the bugs a first kernel usually has. They run in Triton's interpreter
(conftest sets TRITON_INTERPRET=1 without a GPU); every out-of-range access they make stays inside
the padding the harness puts around each tensor.
"""
import pytest
import torch

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from ultramem_edu.exercises import puzzles  # noqa: E402
from ultramem_edu.exercises._grading import load_stub  # noqa: E402

import puzzle_solutions as solutions  # noqa: E402


@pytest.mark.parametrize(
    "check,kernel",
    [
        (puzzles.check_gather_row, solutions.gather_row_kernel),
        (puzzles.check_gather_rows, solutions.gather_rows_kernel),
        (puzzles.check_weighted_sum, solutions.weighted_sum_kernel),
        (puzzles.check_block_lookup, solutions.block_lookup_kernel),
        (puzzles.check_lookup_backward, solutions.lookup_backward_kernel),
    ],
)
def test_puzzle_checks_pass_the_solutions(check, kernel, capsys):
    check(kernel)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["gather_row_kernel", "gather_rows_kernel", "weighted_sum_kernel",
                                  "block_lookup_kernel", "lookup_backward_kernel"])
def test_puzzle_stubs_raise_not_implemented(name):
    check = getattr(puzzles, "check_" + name.removesuffix("_kernel"))
    with pytest.raises(NotImplementedError, match="still the stub"):
        check(load_stub(name))


def test_a_plain_function_is_refused():
    with pytest.raises(AssertionError, match="@triton.jit"):
        puzzles.check_gather_row(lambda *args: None)


# --- puzzle 1 -----------------------------------------------------------------------------------

@triton.jit
def row_times_n(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + row * 6 + cols))   # stride N = 6 instead of D


@triton.jit
def no_stride(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + row + cols))


@triton.jit
def next_row(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + (row + 1) * D + cols))


@triton.jit
def half_row(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D // 2)
    tl.store(out_ptr + cols, tl.load(values_ptr + row * D + cols))


@triton.jit
def writes_past_out(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, 2 * D)
    tl.store(out_ptr + cols, tl.load(values_ptr + row * D + cols))


@pytest.mark.parametrize(
    "kernel,hint",
    [(row_times_n, "row \\* D"), (no_stride, "multiply the row by the stride"),
     (next_row, "NaN|off by one"), (half_row, "never written"), (writes_past_out, "wrote outside out")],
)
def test_gather_row_catches_typical_mistakes(kernel, hint):
    with pytest.raises(AssertionError, match=hint):
        puzzles.check_gather_row(kernel)


# --- puzzle 2 -----------------------------------------------------------------------------------

@triton.jit
def rows_unmasked_store(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d < D)[None, :]
    rows = tl.load(indices_ptr + offs_k, mask=offs_k < K, other=0)
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x)


@triton.jit
def rows_mask_k_only(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d >= 0)[None, :]             # forgets the columns past D
    rows = tl.load(indices_ptr + offs_k, mask=offs_k < K, other=0)
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


@triton.jit
def rows_by_position(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d < D)[None, :]
    x = tl.load(values_ptr + offs_k[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


@triton.jit
def rows_first_tile_only(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.arange(0, BLOCK_K)                                     # ignores program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d < D)[None, :]
    rows = tl.load(indices_ptr + offs_k, mask=offs_k < K, other=0)
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


@pytest.mark.parametrize(
    "kernel,hint",
    [(rows_unmasked_store, "wrote outside out"), (rows_mask_k_only, "wrote outside out"),
     (rows_by_position, "load the index first"), (rows_first_tile_only, "never written")],
)
def test_gather_rows_catches_typical_mistakes(kernel, hint):
    with pytest.raises(AssertionError, match=hint):
        puzzles.check_gather_rows(kernel)


# --- puzzle 3 -----------------------------------------------------------------------------------

@triton.jit
def sum_one_tile(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_k = tl.arange(0, BLOCK_K)
    k_mask = offs_k < K
    rows = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
    w = tl.load(scores_ptr + b * K + offs_k, mask=k_mask, other=0.0)
    v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=k_mask[:, None] & (offs_d < D)[None, :],
                other=0.0)
    tl.store(out_ptr + b * D + offs_d, tl.sum(v * w[:, None], axis=0), mask=offs_d < D)


@triton.jit
def sum_reset_inside(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr,
                     BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        rows = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
        w = tl.load(scores_ptr + b * K + offs_k, mask=k_mask, other=0.0)
        v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :],
                    mask=k_mask[:, None] & (offs_d < D)[None, :], other=0.0)
        acc += tl.sum(v * w[:, None], axis=0)
    tl.store(out_ptr + b * D + offs_d, acc, mask=offs_d < D)


@triton.jit
def sum_unweighted(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        rows = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
        v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :],
                    mask=k_mask[:, None] & (offs_d < D)[None, :], other=0.0)
        acc += tl.sum(v, axis=0)
    tl.store(out_ptr + b * D + offs_d, acc, mask=offs_d < D)


@triton.jit
def sum_scores_unmasked(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        rows = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
        w = tl.load(scores_ptr + b * K + offs_k)                      # past the last bag: padding
        v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :],
                    mask=k_mask[:, None] & (offs_d < D)[None, :], other=0.0)
        acc += tl.sum(v * w[:, None], axis=0)
    tl.store(out_ptr + b * D + offs_d, acc, mask=offs_d < D)


@triton.jit
def sum_bag_zero(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        rows = tl.load(indices_ptr + offs_k, mask=k_mask, other=0)
        w = tl.load(scores_ptr + offs_k, mask=k_mask, other=0.0)
        v = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :],
                    mask=k_mask[:, None] & (offs_d < D)[None, :], other=0.0)
        acc += tl.sum(v * w[:, None], axis=0)
    tl.store(out_ptr + b * D + offs_d, acc, mask=offs_d < D)


@pytest.mark.parametrize(
    "kernel,hint",
    [(sum_one_tile, "only the first BLOCK_K"), (sum_reset_inside, "before the loop"),
     (sum_unweighted, "not weighted"), (sum_scores_unmasked, "out-of-range read: a load reached outside scores"), (sum_bag_zero, "bag 0")],
)
def test_weighted_sum_catches_typical_mistakes(kernel, hint):
    with pytest.raises(AssertionError, match=hint):
        puzzles.check_weighted_sum(kernel)


# --- puzzle 4 -----------------------------------------------------------------------------------

@triton.jit
def lookup_variant(values_ptr, indices_ptr, scores_ptr, out_ptr, N, K, D, E,
                   BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, MISTAKE: tl.constexpr):
    b = tl.program_id(0)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    d_mask = offs_d < D
    for p in range(E):
        acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            a = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
            if MISTAKE == 1:                                           # every selection in every block
                hit = k_mask
                row = a % N
            elif MISTAKE == 2:                                         # row = virtual address
                hit = k_mask & (a // N == p)
                row = a
            elif MISTAKE == 3:                                         # block and row swapped
                hit = k_mask & (a % E == p)
                row = a // E
            else:                                                      # all in block 0
                hit = k_mask & (p == 0)
                row = a % N
            w = tl.load(scores_ptr + b * K + offs_k, mask=hit, other=0.0)
            v = tl.load(values_ptr + row[:, None] * D + offs_d[None, :], mask=hit[:, None] & d_mask[None, :],
                        other=0.0)
            acc += tl.sum(v * w[:, None], axis=0)
        tl.store(out_ptr + (b * E + p) * D + offs_d, acc, mask=d_mask)


def _with_mistake(mistake):
    class Launcher:
        def __getitem__(self, grid):
            return lambda *args, **meta: lookup_variant[grid](*args, MISTAKE=mistake, **meta)
    return Launcher()


@pytest.mark.parametrize(
    "mistake,hint",
    [(1, "every block got the whole bag"), (2, "NaN|differs|out-of-range read"), (3, "swapped"), (4, "block 0")],
)
def test_block_lookup_catches_typical_mistakes(mistake, hint):
    with pytest.raises(AssertionError, match=hint):
        puzzles.check_block_lookup(_with_mistake(mistake))


# --- puzzle 5 -----------------------------------------------------------------------------------

@triton.jit
def backward_variant(values_ptr, indices_ptr, scores_ptr, grad_out_ptr, grad_values_ptr, grad_scores_ptr,
                     N, K, D, E, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, MISTAKE: tl.constexpr):
    b = tl.program_id(0)
    offs_k = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    k_mask = offs_k < K
    a = tl.load(indices_ptr + b * K + offs_k, mask=k_mask, other=0)
    p = a // N
    if MISTAKE == 2:                                                   # the gradient of block 0
        p = p * 0
    row = a - (a // N) * N
    w = tl.load(scores_ptr + b * K + offs_k, mask=k_mask, other=0.0)
    dot = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        mask = k_mask[:, None] & (offs_d < D)[None, :]
        g = tl.load(grad_out_ptr + (b * E + p)[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
        v = tl.load(values_ptr + row[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
        dot += tl.sum(v * g, axis=1)
        ptrs = grad_values_ptr + row[:, None] * D + offs_d[None, :]
        if MISTAKE == 1:                                               # load, add, store: loses duplicates
            old = tl.load(ptrs, mask=mask, other=0.0)
            tl.store(ptrs, old + w[:, None] * g, mask=mask)
        else:
            tl.atomic_add(ptrs, w[:, None] * g, mask=mask)
    if MISTAKE != 3:                                                   # 3: forgets grad_scores
        tl.store(grad_scores_ptr + b * K + offs_k, dot, mask=k_mask)


def _backward_with_mistake(mistake):
    class Launcher:
        def __getitem__(self, grid):
            return lambda *args, **meta: backward_variant[grid](*args, MISTAKE=mistake, **meta)
    return Launcher()


@pytest.mark.parametrize(
    "mistake,hint",
    [(1, "tl.atomic_add"), (2, "block 0"), (3, "never written")],
)
def test_lookup_backward_catches_typical_mistakes(mistake, hint):
    with pytest.raises(AssertionError, match=hint):
        puzzles.check_lookup_backward(_backward_with_mistake(mistake))


def test_lookup_backward_spec_matches_the_package_reference():
    """The puzzle's spec is the gradient of the package's lookup (float64 autograd)."""
    from ultramem_edu.kernels.reference import value_lookup_reference

    g = torch.Generator().manual_seed(0)
    values = torch.randn(5, 4, generator=g, dtype=torch.float64)
    indices = torch.randint(0, 10, (3, 6), generator=g)
    scores = torch.randn(3, 6, generator=g, dtype=torch.float64)
    grad_out = torch.randn(3, 2, 4, generator=g, dtype=torch.float64)
    gv, gs = puzzles.lookup_backward_spec(values, indices, scores, grad_out)
    v, s = values.clone().requires_grad_(True), scores.clone().requires_grad_(True)
    torch.autograd.backward(value_lookup_reference(v, indices, s.unsqueeze(-1), 2), grad_out)
    torch.testing.assert_close(gv, v.grad)
    torch.testing.assert_close(gs, s.grad)


def test_without_gpu_or_interpreter_the_check_says_how_to_switch_the_interpreter_on(monkeypatch):
    monkeypatch.setattr(triton.knobs.runtime, "interpret", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        puzzles.check_gather_row(solutions.gather_row_kernel)


# --- out-of-range reads and puzzle 1's off-by-ones --------------------------------------------


@triton.jit
def _unmasked_loads_masked_store(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d < D)[None, :]
    rows = tl.load(indices_ptr + offs_k)                               # past K: the index padding
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :])      # past D, or a padding row
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


@triton.jit
def _unmasked_index_load(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    offs_k = tl.program_id(0) * BLOCK_K + tl.arange(0, BLOCK_K)
    offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = (offs_k < K)[:, None] & (offs_d < D)[None, :]
    rows = tl.load(indices_ptr + offs_k)                               # only this load is unmasked
    x = tl.load(values_ptr + rows[:, None] * D + offs_d[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_k[:, None] * D + offs_d[None, :], x, mask=mask)


def test_puzzle_2_names_unmasked_loads_even_behind_a_masked_store():
    if not triton.knobs.runtime.interpret:
        pytest.skip("the read check runs in Triton's interpreter")
    with pytest.raises(AssertionError, match="out-of-range read: a load reached outside values"):
        puzzles.check_gather_rows(_unmasked_loads_masked_store)
    with pytest.raises(AssertionError, match="out-of-range read: a load reached outside indices"):
        puzzles.check_gather_rows(_unmasked_index_load)


@triton.jit
def _row_plus_one(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + (row + 1) * D + cols))


@triton.jit
def _row_minus_one(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + (row - 1) * D + cols))


@triton.jit
def _columns_from_one(values_ptr, out_ptr, row, D: tl.constexpr):
    cols = tl.arange(0, D)
    tl.store(out_ptr + cols, tl.load(values_ptr + row * D + cols + 1))


@pytest.mark.parametrize("kernel,hint", [(_row_plus_one, "you read row \\+ 1"), (_row_minus_one, "you read row - 1"),
                                         (_columns_from_one, "the columns start at 1")])
def test_puzzle_1_names_its_off_by_ones(kernel, hint):
    with pytest.raises(AssertionError, match="off by one: " + hint):
        puzzles.check_gather_row(kernel)


def test_the_package_holds_no_puzzle_solution():
    for name in ["gather_row_kernel", "gather_rows_kernel", "weighted_sum_kernel", "block_lookup_kernel",
                 "lookup_backward_kernel"]:
        assert not hasattr(puzzles, name)
