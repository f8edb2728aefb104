"""Chapter 9's Triton puzzles: from gathering one row to UltraMem's forward (and backward) lookup.

Five kernels, each a small step from the last, each with a plain-torch *spec* and a *check* that
launches the reader's kernel on small inputs and compares it with the spec:

1. :func:`check_gather_row` — copy one row of a table: pointers, strides, ``tl.arange``.
2. :func:`check_gather_rows` — gather k rows in (BLOCK_K, BLOCK_D) tiles: 2-D offsets and masks.
3. :func:`check_weighted_sum` — Σ_k score_k · V[row_k] per bag: a loop over the bag, an accumulator.
4. :func:`check_block_lookup` — the same, pooled per virtual block: UltraMem's forward lookup (h = 1).
5. :func:`check_lookup_backward` (stretch) — its backward: dot products and an atomic scatter-add.

The kernels run on a CPU through Triton's interpreter (``TRITON_INTERPRET=1`` in the environment
*before* triton is imported), or compiled on a GPU. Every tensor a kernel sees lives inside a larger
buffer: the input padding holds NaN (a load past the end shows up as NaN when the value read reaches
the output), the output padding a sentinel (a store past the end changes it). Both are reported with the mask to add. The
padding is wide enough for a tile's overrun, not for a wild address: a kernel that computes an
address far outside its tensors can still crash the interpreter, as it would fault on a GPU.

Importing this module imports triton; :mod:`ultramem_edu.exercises.ch09` does not.
"""
from __future__ import annotations

import inspect
import types
import weakref

import torch
import triton

from ..kernels.reference import value_lookup_reference
from ._grading import exercise, fail, seed_for

__all__ = [
    "gather_row_spec", "gather_rows_spec", "weighted_sum_spec", "block_lookup_spec", "lookup_backward_spec",
    "check_gather_row", "check_gather_rows", "check_weighted_sum", "check_block_lookup", "check_lookup_backward",
    "GATHER_ROW_STUB", "GATHER_ROWS_STUB", "WEIGHTED_SUM_STUB", "BLOCK_LOOKUP_STUB", "LOOKUP_BACKWARD_STUB",
]

_PAD = 512            # elements of padding on each side of every tensor a kernel sees
_SENTINEL = -12345.0  # the output padding's value


def _device() -> torch.device:
    """cuda when the kernels are compiled, cpu when Triton's interpreter runs them."""
    interpreted = bool(triton.knobs.runtime.interpret)
    if interpreted:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    raise RuntimeError(
        "No GPU, and Triton's interpreter is off: set os.environ['TRITON_INTERPRET'] = '1' before the first "
        "import of triton (restart the kernel, set it in the first cell), then define the kernel again."
    )


class _Guarded:
    """A contiguous tensor inside a padded buffer; ``.t`` is the tensor the kernel gets."""

    def __init__(self, data: torch.Tensor, fill: float | int):
        self.buffer = torch.full((2 * _PAD + data.numel(),), fill, dtype=data.dtype, device=data.device)
        self.t = self.buffer[_PAD:_PAD + data.numel()].view(data.shape)
        self.t.copy_(data)
        self.fill = fill
        _LIVE[self.t.data_ptr()] = self

    def padding_intact(self) -> bool:
        pad = torch.cat([self.buffer[:_PAD], self.buffer[_PAD + self.t.numel():]])
        if isinstance(self.fill, float) and self.fill != self.fill:   # NaN padding
            return bool(pad.isnan().all())
        return bool((pad == self.fill).all())

    def spans(self) -> tuple[int, int, int, int]:
        """(start, end) in bytes of the tensor, then of the whole padded buffer."""
        size = self.buffer.element_size()
        start = self.t.data_ptr()
        buffer_start = self.buffer.data_ptr()
        return start, start + self.t.numel() * size, buffer_start, buffer_start + self.buffer.numel() * size


# The guarded tensors by data pointer, so that _launch can name the tensor a stray read falls into.
_LIVE: "weakref.WeakValueDictionary[int, _Guarded]" = weakref.WeakValueDictionary()


class _ReadSanitizer:
    """Under Triton's interpreter: record every load whose unmasked addresses fall outside the tensors
    the kernel was given (into their padding, or anywhere else). On a GPU such a load is an
    out-of-bounds read even when its value never reaches the output (a masked store discards it), so
    the checks fail it; compiled on a GPU the poisoned padding is the only guard."""

    def __init__(self, tensors: list[tuple[str, torch.Tensor]]):
        self.tensors = tensors
        self.stray: list[str] = []
        self._builder = None

    def __enter__(self):
        if not bool(triton.knobs.runtime.interpret):
            return self
        import numpy as np
        from triton.runtime import interpreter

        ranges = []
        for name, t in self.tensors:
            guarded = _LIVE.get(t.data_ptr())
            if guarded is not None and guarded.t is t:
                ranges.append((name, *guarded.spans()))
            else:
                size = t.element_size()
                ranges.append((name, t.data_ptr(), t.data_ptr() + t.numel() * size, t.data_ptr(), t.data_ptr()))
        builder = interpreter.interpreter_builder
        original = type(builder).create_masked_load
        sanitizer = self

        def create_masked_load(self_, ptrs, mask, other, *args, **kwargs):
            addresses = np.asarray(ptrs.data).astype(np.uint64)
            live = np.broadcast_to(np.asarray(mask.data, dtype=bool), addresses.shape)
            wanted = addresses[live]
            inside = np.zeros(wanted.shape, dtype=bool)
            for _, start, end, _, _ in ranges:
                inside |= (wanted >= start) & (wanted < end)
            if not inside.all() and len(sanitizer.stray) < 8:
                address = int(wanted[~inside][0])
                where = next((name for name, start, end, b0, b1 in ranges if b0 <= address < b1), None)
                sanitizer.stray.append(where or "memory outside every tensor the kernel was given")
            return original(self_, ptrs, mask, other, *args, **kwargs)

        builder.create_masked_load = types.MethodType(create_masked_load, builder)
        self._builder = builder
        return self

    def __exit__(self, *exc):
        if self._builder is not None:
            del self._builder.create_masked_load                      # back to the class's method
            self._builder = None
        return False


def _inputs(values: torch.Tensor, *index_tensors: torch.Tensor):
    """Guard the float table with NaN padding and the index tensors with index N (a padding row of
    the table, so that an unmasked index load reads NaN rather than far-away memory)."""
    n = values.shape[0]
    table = _Guarded(values.float(), float("nan"))
    return table, [_Guarded(t, n) for t in index_tensors]


def _output(shape: tuple[int, ...], device: torch.device) -> _Guarded:
    return _Guarded(torch.full(shape, _SENTINEL, device=device), _SENTINEL)


def _launch(kernel, case: str, grid: tuple[int, ...], *args, **meta) -> None:
    """Launch ``kernel[grid](*args, **meta)``. A stub's NotImplementedError reaches us wrapped (by the
    interpreter, or as a compilation error on a GPU): it is raised again as NotImplementedError. Under
    the interpreter every load is checked to stay inside the tensors passed (:class:`_ReadSanitizer`)."""
    if not hasattr(kernel, "__getitem__"):
        raise AssertionError("Pass the kernel itself, decorated with @triton.jit.")
    name = getattr(kernel, "__name__", "the kernel")
    arg_names = _argument_names(kernel, len(args))
    tensors = [(arg_name[:-4] if arg_name.endswith("_ptr") else arg_name, a)
               for arg_name, a in zip(arg_names, args) if isinstance(a, torch.Tensor)]
    try:
        with _ReadSanitizer(tensors) as sanitizer:
            kernel[grid](*args, **meta)
    except NotImplementedError as err:
        raise NotImplementedError(f"{name} is still the stub: write its body, run that cell, then run this "
                                  "check again.") from err
    except Exception as err:
        if "NotImplementedError" in f"{type(err).__name__}: {err}" or isinstance(err.__cause__, NotImplementedError):
            raise NotImplementedError(f"{name} is still the stub: write its body, run that cell, then run this "
                                      "check again.") from err
        raise AssertionError(f"On the case '{case}', launching {name} raised {type(err).__name__}: {err}") from err
    _STRAY_READS[:] = sanitizer.stray                                  # reported by _check_guards, after the writes


_STRAY_READS: list[str] = []


def _argument_names(kernel, count: int) -> list[str]:
    names = list(getattr(kernel, "arg_names", None) or [])
    if not names:
        try:
            names = list(inspect.signature(getattr(kernel, "fn", kernel)).parameters)
        except (TypeError, ValueError):
            names = []
    return names + [f"argument {i}" for i in range(len(names), count)]


def _check_guards(case: str, outputs: list[tuple[_Guarded, str]], inputs: list[tuple[_Guarded, torch.Tensor, str]]):
    for guarded, name in outputs:
        if not guarded.padding_intact():
            fail(case, f"the kernel wrote outside {name}: mask the store (offsets < size) in every direction.")
    for guarded, original, name in inputs:
        if not torch.equal(guarded.t.cpu(), original.cpu().to(guarded.t.dtype)):
            fail(case, f"the kernel changed its input {name}: only the output is written.")
        if not guarded.padding_intact():
            fail(case, f"the kernel wrote outside {name} (an input): check the pointer of each store.")
    if _STRAY_READS:
        where = _STRAY_READS[0]
        _STRAY_READS.clear()
        fail(case, f"out-of-range read: a load reached outside {where} (into the padding around it). Its value may "
                   "never reach the output (a masked store drops it), but on a GPU it is an out-of-bounds read. "
                   "Mask every load, index loads included, with the tile's valid positions (offs < K, offs < D) "
                   "and give it other=0.")


def _compare(case: str, out: torch.Tensor, expected: torch.Tensor, mistakes, generic: str, atol: float = 1e-4) -> None:
    out = out.detach().cpu().double()
    expected = expected.detach().cpu().double()
    if bool((out == _SENTINEL).any()):
        fail(case, "some outputs were never written: the grid covers every tile, but does each program "
                   "store its whole tile (check the offsets and the store's mask)?")
    if bool(out.isnan().any()):
        fail(case, "NaN in the output: a load read past the end of a tensor (into the padding). Mask every "
                   "load with the tile's valid positions and give it other=0.")
    if torch.allclose(out, expected, atol=atol, rtol=1e-4):
        return
    for wrong, message in mistakes:
        value = (wrong() if callable(wrong) else wrong).detach().cpu().double()
        if value.shape == out.shape and torch.allclose(out, value, atol=atol, rtol=1e-4) \
                and not torch.allclose(value, expected, atol=atol, rtol=1e-4):
            fail(case, message)
    diff = float((out - expected).abs().max())
    fail(case, f"{generic} (largest difference from the spec: {diff:.3g}).")


def _rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=g)


# --- Puzzle 1: gather one row ------------------------------------------------------------------

GATHER_ROW_STUB = '''
@triton.jit
def gather_row_kernel(values_ptr, out_ptr, row, D: tl.constexpr):
    """Copy row ``row`` of a table into ``out``: out[d] = values[row, d].

    values: (N, D) float32, contiguous (element (i, d) is at values_ptr + i * D + d);
    out: (D,) float32. D is a power of two. Launched with grid (1,).
    Spec: gather_row_spec(values, row) = values[row].
    """
    raise NotImplementedError("Puzzle 1: write gather_row_kernel")
'''


def gather_row_spec(values: torch.Tensor, row: int) -> torch.Tensor:
    """values (N, D), row -> (D,)."""
    return values[row]


@exercise(9, GATHER_ROW_STUB)
def check_gather_row(kernel) -> None:
    """Launch the reader's ``gather_row_kernel`` for several rows of a (6, 8) table."""
    g = torch.Generator().manual_seed(seed_for(91))
    device = _device()
    values = _rand(g, 6, 8).to(device)
    n, d = values.shape
    for row in (3, 0, n - 1):
        case = f"row {row} of a ({n}, {d}) table"
        table, _ = _inputs(values)
        out = _output((d,), device)
        _launch(kernel, case, (1,), table.t, out.t, row, D=d)
        _check_guards(case, [(out, "out")], [(table, values, "values")])
        flat = values.flatten()
        mistakes = [
            (lambda: flat[row * n:row * n + d] if row * n + d <= flat.numel() else values[0],
             "a row starts at row * D (the row length, its stride), not row * N"),
            (lambda: flat[row:row + d], "the row's first element is at row * D: multiply the row by the stride D"),
            (lambda: values[:, row] if d == n else values[0],
             "that is a column: element (i, d) is at i * D + d"),
            (lambda: values[row + 1] if row + 1 < n else values[0],
             "off by one: you read row + 1; rows are numbered from 0, row r starts at values_ptr + r * D"),
            (lambda: values[row - 1] if row >= 1 else values[0],
             "off by one: you read row - 1; rows are numbered from 0, row r starts at values_ptr + r * D"),
            (lambda: flat[row * d + 1:row * d + d + 1] if row * d + d + 1 <= flat.numel() else values[0],
             "off by one: the columns start at 1; tl.arange(0, D) already counts 0 .. D - 1, add it to "
             "row * D as it is"),
        ]
        _compare(case, out.t, gather_row_spec(values, row), mistakes, "out is not values[row]")
    print("Correct: gather_row_kernel copies rows 3, 0 and 5 exactly.")


# --- Puzzle 2: a masked tile -------------------------------------------------------------------

GATHER_ROWS_STUB = '''
@triton.jit
def gather_rows_kernel(values_ptr, indices_ptr, out_ptr, K, D, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """Gather k rows: out[t, d] = values[indices[t], d], one (BLOCK_K, BLOCK_D) tile per program.

    values: (N, D) float32 contiguous; indices: (K,) int64; out: (K, D) float32 contiguous.
    K and D are any sizes (not powers of two). Launched with grid (cdiv(K, BLOCK_K), cdiv(D, BLOCK_D)):
    program (i, j) handles selections i*BLOCK_K .. and columns j*BLOCK_D .. ; mask the positions
    past K and past D in every load and store.
    Spec: gather_rows_spec(values, indices) = values[indices].
    """
    raise NotImplementedError("Puzzle 2: write gather_rows_kernel")
'''


def gather_rows_spec(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """values (N, D), indices (K,) -> (K, D)."""
    return values[indices]


@exercise(9, GATHER_ROWS_STUB)
def check_gather_rows(kernel, block_k: int = 4, block_d: int = 8) -> None:
    """Launch the reader's ``gather_rows_kernel`` on ragged sizes and duplicate indices."""
    g = torch.Generator().manual_seed(seed_for(92))
    device = _device()
    cases = [
        ("K = 8, D = 16 (whole tiles)", _rand(g, 10, 16), torch.randint(0, 10, (8,), generator=g)),
        ("K = 7, D = 13 (ragged: masks needed)", _rand(g, 9, 13), torch.randint(0, 9, (7,), generator=g)),
        ("duplicate indices, K = 5, D = 3", _rand(g, 4, 3), torch.tensor([2, 2, 0, 3, 2])),
        ("K = 1", _rand(g, 5, 11), torch.tensor([4])),
    ]
    for case, values, indices in cases:
        values, indices = values.to(device), indices.to(device)
        (k,), d = indices.shape, values.shape[1]
        table, (idx,) = _inputs(values, indices)
        out = _output((k, d), device)
        grid = (triton.cdiv(k, block_k), triton.cdiv(d, block_d))
        _launch(kernel, case, grid, table.t, idx.t, out.t, k, d, BLOCK_K=block_k, BLOCK_D=block_d)
        _check_guards(case, [(out, "out")], [(table, values, "values"), (idx, indices, "indices")])
        mistakes = [
            (lambda: values[indices.flip(0)], "the rows come out in reverse order"),
            (lambda: values[: k] if k <= values.shape[0] else values[indices],
             "out[t] is values[indices[t]]: load the index first, then the row it names"),
        ]
        _compare(case, out.t, gather_rows_spec(values, indices), mistakes, "out is not values[indices]")
    print(f"Correct: gather_rows_kernel gathers ragged tiles (BLOCK_K={block_k}, BLOCK_D={block_d}) "
          "with duplicates and K = 1.")


# --- Puzzle 3: a weighted sum ------------------------------------------------------------------

WEIGHTED_SUM_STUB = '''
@triton.jit
def weighted_sum_kernel(values_ptr, indices_ptr, scores_ptr, out_ptr, K, D,
                        BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """One bag per program: out[b, d] = Σ_t scores[b, t] · values[indices[b, t], d].

    values: (N, D) float32; indices: (B, K) int64; scores: (B, K) float32; out: (B, D) float32;
    all contiguous. Launched with grid (B, cdiv(D, BLOCK_D)). K may exceed BLOCK_K: loop over the bag
    in steps of BLOCK_K, keep a (BLOCK_D,) float32 accumulator, store it once at the end.
    Spec: weighted_sum_spec(values, indices, scores).
    """
    raise NotImplementedError("Puzzle 3: write weighted_sum_kernel")
'''


def weighted_sum_spec(values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """values (N, D), indices (B, K), scores (B, K) -> (B, D)."""
    return (scores.unsqueeze(-1) * values[indices]).sum(1)


@exercise(9, WEIGHTED_SUM_STUB)
def check_weighted_sum(kernel, block_k: int = 8, block_d: int = 8) -> None:
    """Launch the reader's ``weighted_sum_kernel``: bags longer than a tile, ragged D, duplicates."""
    g = torch.Generator().manual_seed(seed_for(93))
    device = _device()
    dup = torch.randint(0, 6, (2, 9), generator=g)
    dup[:, 5] = dup[:, 1]
    cases = [
        ("B = 3, K = 21 > BLOCK_K, D = 12", _rand(g, 16, 12), torch.randint(0, 16, (3, 21), generator=g),
         _rand(g, 3, 21)),
        ("K = 8 = BLOCK_K, D = 8", _rand(g, 10, 8), torch.randint(0, 10, (2, 8), generator=g), _rand(g, 2, 8)),
        ("duplicate indices, negative scores", _rand(g, 6, 5), dup, -_rand(g, 2, 9).abs()),
        ("K = 1", _rand(g, 7, 9), torch.randint(0, 7, (4, 1), generator=g), _rand(g, 4, 1)),
    ]
    for case, values, indices, scores in cases:
        values, indices, scores = values.to(device), indices.to(device), scores.to(device)
        (b, k), d = indices.shape, values.shape[1]
        table, (idx,) = _inputs(values, indices)
        sc = _Guarded(scores.float(), float("nan"))
        out = _output((b, d), device)
        _launch(kernel, case, (b, triton.cdiv(d, block_d)), table.t, idx.t, sc.t, out.t, k, d,
                BLOCK_K=block_k, BLOCK_D=block_d)
        _check_guards(case, [(out, "out")], [(table, values, "values"), (idx, indices, "indices"),
                                            (sc, scores, "scores")])
        last = ((k - 1) // block_k) * block_k
        mistakes = [
            (lambda: weighted_sum_spec(values, indices[:, :block_k], scores[:, :block_k]),
             f"only the first BLOCK_K = {block_k} selections are summed: loop over the bag, k0 = 0, BLOCK_K, ..."),
            (lambda: weighted_sum_spec(values, indices[:, last:], scores[:, last:]),
             "only the last tile survives: create the accumulator before the loop, not inside it"),
            (lambda: weighted_sum_spec(values, indices, torch.ones_like(scores)),
             "the rows are not weighted: multiply each row by its score, v * w[:, None]"),
            (lambda: weighted_sum_spec(values, indices[:1].expand_as(indices), scores[:1].expand_as(scores)),
             "every program reads bag 0: offset the indices and scores by b * K"),
        ]
        _compare(case, out.t, weighted_sum_spec(values, indices, scores), mistakes,
                 "out is not Σ_t scores[b, t] · values[indices[b, t]]")
    print(f"Correct: weighted_sum_kernel sums bags longer than a tile (BLOCK_K={block_k}), with ragged D, "
          "duplicates and K = 1.")


# --- Puzzle 4: blocks of the virtual table: the forward lookup --------------------------------

BLOCK_LOOKUP_STUB = '''
@triton.jit
def block_lookup_kernel(values_ptr, indices_ptr, scores_ptr, out_ptr, N, K, D, E,
                        BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """UltraMem's forward lookup with one core: pool each bag per virtual block.

    Virtual address a reads physical row a mod N and belongs to block p = a div N:
        out[b, p, d] = Σ_{t : indices[b, t] div N = p} scores[b, t] · values[indices[b, t] mod N, d].
    values: (N, D) float32; indices: (B, K) int64 in [0, E·N); scores: (B, K) float32;
    out: (B, E, D) float32; all contiguous. Launched with grid (B, cdiv(D, BLOCK_D)): each program
    writes all E blocks of its columns (blocks nobody selected are 0).
    Spec: block_lookup_spec(values, indices, scores, E).
    """
    raise NotImplementedError("Puzzle 4: write block_lookup_kernel")
'''


def block_lookup_spec(values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor, num_blocks: int) -> torch.Tensor:
    """values (N, D), indices (B, K) in [0, E·N), scores (B, K) -> (B, E, D); the package's reference."""
    return value_lookup_reference(values, indices, scores.unsqueeze(-1), num_blocks)


@exercise(9, BLOCK_LOOKUP_STUB)
def check_block_lookup(kernel, block_k: int = 8, block_d: int = 8) -> None:
    """Launch the reader's ``block_lookup_kernel`` against :func:`block_lookup_spec`."""
    g = torch.Generator().manual_seed(seed_for(94))
    device = _device()
    dup = torch.randint(0, 3 * 5, (2, 10), generator=g)
    dup[:, 4] = dup[:, 0]
    dup[:, 7] = (dup[:, 2] + 5) % 15                                   # same physical row, another block
    cases = [
        ("E = 4, N = 9, K = 19, D = 10", _rand(g, 9, 10), torch.randint(0, 36, (3, 19), generator=g), _rand(g, 3, 19), 4),
        ("E = 1 (no expansion)", _rand(g, 8, 8), torch.randint(0, 8, (2, 6), generator=g), _rand(g, 2, 6), 1),
        ("duplicate indices, E = 3", _rand(g, 5, 6), dup, _rand(g, 2, 10), 3),
        ("a block nobody selects", _rand(g, 4, 5), torch.tensor([[0, 1, 9, 10]]), _rand(g, 1, 4), 3),
    ]
    for case, values, indices, scores, e in cases:
        values, indices, scores = values.to(device), indices.to(device), scores.to(device)
        (b, k), (n, d) = indices.shape, values.shape
        table, (idx,) = _inputs(values, indices)
        sc = _Guarded(scores.float(), float("nan"))
        out = _output((b, e, d), device)
        _launch(kernel, case, (b, triton.cdiv(d, block_d)), table.t, idx.t, sc.t, out.t, n, k, d, e,
                BLOCK_K=block_k, BLOCK_D=block_d)
        _check_guards(case, [(out, "out")], [(table, values, "values"), (idx, indices, "indices"),
                                            (sc, scores, "scores")])
        expected = block_lookup_spec(values, indices, scores, e)
        flat_sum = weighted_sum_spec(values, indices % n, scores)
        swapped_ok = bool((indices // e < n).all())
        mistakes = [
            (lambda: torch.nn.functional.pad(flat_sum[:, None], (0, 0, 0, e - 1)),
             "everything landed in block 0: selection t belongs to block indices[b, t] div N"),
            (lambda: flat_sum[:, None].expand(b, e, d),
             "every block got the whole bag: in the pass for block p, mask off the selections of other blocks"),
            (lambda: block_lookup_spec(values, (indices % e) * n + indices // e, scores, e) if swapped_ok else expected,
             "block and row are swapped: block p = a div N, physical row = a mod N"),
        ]
        _compare(case, out.t, expected, mistakes, "out differs from the pooled lookup per block")
    print("Correct: block_lookup_kernel is UltraMem's forward lookup (h = 1): E = 1, 3, 4, duplicates, "
          "empty blocks.")


# --- Puzzle 5 (stretch): the backward ---------------------------------------------------------

LOOKUP_BACKWARD_STUB = '''
@triton.jit
def lookup_backward_kernel(values_ptr, indices_ptr, scores_ptr, grad_out_ptr, grad_values_ptr, grad_scores_ptr,
                           N, K, D, E, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr):
    """The gradients of the forward lookup, for g = grad_out (B, E, D):

        grad_scores[b, t]  = Σ_d values[row, d] · g[b, p, d]           (a dot product per selection)
        grad_values[row]  += scores[b, t] · g[b, p, :]                 (for every selection hitting row)

    with a = indices[b, t], p = a div N, row = a mod N. Several selections can hit the same row
    (in one bag, in several bags, from several blocks): add with tl.atomic_add.
    values (N, D), scores (B, K), grad_out (B, E, D), grad_values (N, D) zero-initialised,
    grad_scores (B, K): float32, contiguous; indices (B, K) int64. Launched with grid
    (B, cdiv(K, BLOCK_K)); each program walks the D columns in steps of BLOCK_D.
    Spec: lookup_backward_spec(values, indices, scores, grad_out) -> (grad_values, grad_scores).
    """
    raise NotImplementedError("Puzzle 5: write lookup_backward_kernel")
'''


def lookup_backward_spec(values: torch.Tensor, indices: torch.Tensor, scores: torch.Tensor,
                         grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Autograd through :func:`block_lookup_spec`: (grad_values (N, D), grad_scores (B, K))."""
    v = values.detach().double().requires_grad_(True)
    s = scores.detach().double().requires_grad_(True)
    out = block_lookup_spec(v, indices, s, grad_out.shape[1])
    out.backward(grad_out.double())
    return v.grad, s.grad


@exercise(9, LOOKUP_BACKWARD_STUB)
def check_lookup_backward(kernel, block_k: int = 4, block_d: int = 8) -> None:
    """Launch the reader's ``lookup_backward_kernel``; duplicates inside one tile test the scatter-add."""
    g = torch.Generator().manual_seed(seed_for(95))
    device = _device()
    dup = torch.tensor([[3, 3, 8, 3, 11], [8, 0, 3, 14, 3]])           # row 3 hit 5 times, 3 of them in a tile
    cases = [
        ("E = 2, N = 7, K = 9, D = 10", _rand(g, 7, 10), torch.randint(0, 14, (3, 9), generator=g), _rand(g, 3, 9), 2),
        ("duplicate rows within a tile, E = 3", _rand(g, 5, 6), dup, _rand(g, 2, 5), 3),
        ("E = 1, K = 1", _rand(g, 4, 3), torch.tensor([[2], [2]]), _rand(g, 2, 1), 1),
    ]
    for case, values, indices, scores, e in cases:
        values, indices, scores = values.to(device), indices.to(device), scores.to(device)
        (b, k), (n, d) = indices.shape, values.shape
        grad_out = _rand(g, b, e, d).to(device)
        table, (idx,) = _inputs(values, indices)
        sc = _Guarded(scores.float(), float("nan"))
        go = _Guarded(grad_out.float(), float("nan"))
        gv = _Guarded(torch.zeros(n, d, device=device), _SENTINEL)
        gs = _output((b, k), device)
        _launch(kernel, case, (b, triton.cdiv(k, block_k)), table.t, idx.t, sc.t, go.t, gv.t, gs.t, n, k, d, e,
                BLOCK_K=block_k, BLOCK_D=block_d)
        _check_guards(case, [(gv, "grad_values"), (gs, "grad_scores")],
                      [(table, values, "values"), (idx, indices, "indices"), (sc, scores, "scores"),
                       (go, grad_out, "grad_out")])
        want_v, want_s = lookup_backward_spec(values, indices, scores, grad_out)
        block0 = torch.zeros_like(grad_out)
        block0[:] = grad_out[:, :1]
        _compare(case, gs.t, want_s, [
            (lambda: lookup_backward_spec(values, indices, scores, block0)[1],
             "grad_scores reads the output gradient of block 0; use the block p = a div N of each selection"),
        ], "grad_scores is not <values[row], grad_out[b, p]>")
        hits = torch.bincount((indices % n).flatten().cpu(), minlength=n)
        got_v = gv.t.detach().cpu().double()
        once, more = hits <= 1, hits > 1
        if (not bool(got_v.isnan().any()) and bool(more.any())
                and torch.allclose(got_v[once], want_v.cpu()[once], atol=1e-4, rtol=1e-4)
                and not torch.allclose(got_v[more], want_v.cpu()[more], atol=1e-4, rtol=1e-4)):
            fail(case, "the rows hit once are right, the rows hit several times are not: add with "
                       "tl.atomic_add, not tl.store (a plain store, or load-add-store, loses hits that land "
                       "in the same tile or race with another program).")
        _compare(case, gv.t, want_v, [
            (lambda: lookup_backward_spec(values, indices, scores, block0)[0],
             "grad_values reads the output gradient of block 0; use the block p = a div N of each selection"),
        ], "grad_values is not Σ scores · grad_out[b, p] over the selections of each row")
    print("Correct: lookup_backward_kernel gives both gradients, including rows hit several times in a tile.")
