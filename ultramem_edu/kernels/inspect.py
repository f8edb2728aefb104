"""What the compiler makes of the lookup kernels: ahead-of-time builds for sm_80 and sm_90a, no GPU needed.

    python -m ultramem_edu.kernels.inspect                      # every kernel x arch x dtype x index dtype
    python -m ultramem_edu.kernels.inspect --d-v 208 --cores 2  # core slices of 104 columns: the cliff
    python -m ultramem_edu.kernels.inspect --json inspect.json  # the reports, for a script or the book

Triton compiles for a GPU *target*, not for the GPU in the machine: ``triton.compile`` with
``GPUTarget("cuda", 90, 32)`` produces TTIR, TTGIR, LLVM IR, PTX and a cubin on a machine without
one, and the ``ptxas`` bundled in the triton wheel reports registers, spills and shared memory (its
``-v`` log, from the very ptxas run that made the cubin, is captured).

What a kernel compiles to depends on how Triton *specialises* it to its arguments: the JIT marks an
integer argument (or a pointer's address) that is divisible by 16 with ``tt.divisibility = 16`` and
turns an integer equal to 1 into a constant. Only then can the compiler prove that BLOCK_D contiguous
elements of a value row start on a 16-byte boundary and load them with one 128-bit instruction
(``ld.global.v4.b32``); without it, each element is loaded on its own. So this module does not write
the specialisation by hand. It runs the real launchers (``lookup_forward``, ``lookup_backward``) on
small CPU example tensors of the requested shape with the kernels replaced by recorders, and passes
the recorded arguments through Triton's own binder (``create_function_from_signature`` and
``JITFunction._pack_args``, the code the JIT runs at every launch) for the target's backend.

Per variant it reports: compiled or the error, registers, spill bytes, shared memory, the widths of the
global loads/stores/atomics on each value-row tensor (found by tracing each PTX address back to the
kernel parameter it is computed from), and the theoretical occupancy on that architecture.

The Triton interpreter (``TRITON_INTERPRET=1``) replaces ``triton.jit`` functions, Triton's own
library functions included, when triton is imported; nothing can then be compiled in that process.
If that is the case here, the variants are compiled in a child process with the variable removed.
Results are cached on disk (``$ULTRAMEM_EDU_CACHE_DIR`` or ``~/.cache/ultramem_edu``), keyed by the
kernels' source, this module's source, the triton version and the variant.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

ARCHS = (80, 90)
DTYPES = ("float32", "float16", "bfloat16")
INDEX_DTYPES = ("int32", "int64")
# The launches of the three kernels, by the code path that makes them:
#   fwd         _fwd_kernel                               (lookup_forward)
#   bwd_atomic  _bwd_kernel, d scores and atomic d values (lookup_backward, deterministic=False)
#   bwd_scores  _bwd_kernel, d scores only                (lookup_backward, deterministic=True)
#   bwd_sorted  _bwd_values_sorted_kernel, d values       (lookup_backward, deterministic=True)
KERNELS = ("fwd", "bwd_atomic", "bwd_scores", "bwd_sorted")
# Opt-in (not in the default sweep): the one-pass forward the benchmark times next to ``fwd``,
#   fwd_onepass _fwd_onepass_kernel                       (lookup_forward_onepass)
OPTIONAL_KERNELS = ("fwd_onepass",)
_SOURCE = Path(__file__).with_name("value_lookup_triton.py")


# ------------------------------------------------------------------ variants and example shapes


@dataclass(frozen=True)
class ExampleShape:
    """The example the launchers are run on. Specialisation depends on each integer argument
    modulo 16 (and == 1), so the sizes can be small; their residues are what matters.

    tokens B, bag size k, value width D_v, cores h (core slice width s = D_v / h), virtual blocks E,
    physical table rows N.
    """
    tokens: int = 4
    k: int = 160
    d_v: int = 768
    cores: int = 2
    num_blocks: int = 4
    table_rows: int = 1024

    def __post_init__(self):
        for name in ("tokens", "k", "d_v", "cores", "num_blocks", "table_rows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.d_v % self.cores:
            raise ValueError(f"d_v={self.d_v} must be divisible by cores={self.cores}")

    @property
    def slice_width(self) -> int:
        return self.d_v // self.cores


@dataclass(frozen=True)
class Variant:
    kernel: str
    arch: int
    dtype: str
    index_dtype: str
    shape: ExampleShape = ExampleShape()

    def __post_init__(self):
        for name, allowed in (("kernel", KERNELS + OPTIONAL_KERNELS), ("arch", ARCHS), ("dtype", DTYPES),
                              ("index_dtype", INDEX_DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "Variant":
        return cls(**{**d, "shape": ExampleShape(**d["shape"])})

    @property
    def arch_name(self) -> str:
        return f"sm_{self.arch}{'a' if self.arch >= 90 else ''}"


def all_variants(shape: ExampleShape = ExampleShape(), kernels=KERNELS, archs=ARCHS, dtypes=DTYPES,
                 index_dtypes=INDEX_DTYPES) -> list[Variant]:
    return [Variant(kn, a, dt, it, shape) for kn in kernels for a in archs for dt in dtypes for it in index_dtypes]


# ------------------------------------------------------------------ occupancy


@dataclass(frozen=True)
class SMLimits:
    """Per-multiprocessor limits of one compute capability (CUDA C++ Programming Guide, "Compute
    Capabilities", technical specifications; allocation rules as in CUDA's ``cuda_occupancy.h``)."""
    name: str
    max_warps: int = 64
    max_blocks: int = 32
    registers: int = 65536
    register_sub_partitions: int = 4       # the register file is split between 4 warp schedulers
    register_unit: int = 256               # registers are allocated per warp in units of 256
    max_registers_per_thread: int = 255
    shared_per_sm: int = 0                 # bytes, largest carve-out
    shared_per_block: int = 0              # bytes, largest opt-in per block
    shared_reserved_per_block: int = 1024  # the runtime reserves 1 KiB per block from CC 8.0 on
    shared_unit: int = 128


SM_LIMITS = {
    80: SMLimits("sm_80 (A100)", shared_per_sm=164 * 1024, shared_per_block=163 * 1024),
    90: SMLimits("sm_90 (H100, H200)", shared_per_sm=228 * 1024, shared_per_block=227 * 1024),
}


def occupancy(registers: int, shared_bytes: int, num_warps: int, arch: int) -> dict:
    """Theoretical occupancy of a kernel: resident warps per SM over the maximum, and what limits it.

    Returns {"blocks_per_sm", "warps_per_sm", "occupancy", "limiter", "limits": {resource: blocks}}.
    """
    lim = SM_LIMITS[arch]
    if registers > lim.max_registers_per_thread:
        raise ValueError(f"registers={registers} exceeds {lim.max_registers_per_thread} per thread on {lim.name}")
    regs_per_warp = math.ceil(max(registers, 1) * 32 / lim.register_unit) * lim.register_unit
    warps_by_regs = (lim.registers // lim.register_sub_partitions // regs_per_warp) * lim.register_sub_partitions
    smem = math.ceil((shared_bytes + lim.shared_reserved_per_block) / lim.shared_unit) * lim.shared_unit
    limits = {
        "warps": lim.max_warps // num_warps,
        "blocks": lim.max_blocks,
        "registers": warps_by_regs // num_warps,
        "shared memory": lim.shared_per_sm // smem if shared_bytes <= lim.shared_per_block else 0,
    }
    blocks = min(limits.values())
    limiter = min(limits, key=lambda key: (limits[key], key != "warps"))
    return {"blocks_per_sm": blocks, "warps_per_sm": blocks * num_warps,
            "occupancy": blocks * num_warps / lim.max_warps, "limiter": limiter, "limits": limits}


# ------------------------------------------------------------------ PTX: who touches which tensor, how wide

_TYPE = re.compile(r"\.(?:b|f|u|s|bf)(8|16|32|64)(?:x2)?(?=\.|$)")
_REG = re.compile(r"%[a-z]+\d*")
_NO_DEST = ("st.", "red.", "bra", "bar.", "ret", "fence", "prefetch", "trap", "exit", "membar")


def _instructions(ptx: str):
    """(opcode, dest text, rest text) of every PTX instruction, comments and directives dropped."""
    for line in ptx.splitlines():
        line = line.split("//", 1)[0].strip()
        if not line or line.startswith((".", "{", "}", "$", "(", ")")) or line.endswith(":"):
            continue
        line = line.rstrip(";").strip()
        if line.startswith("@"):
            line = line.split(None, 1)[1] if " " in line else ""
        if not line:
            continue
        parts = line.split(None, 1)
        op, args = parts[0], parts[1] if len(parts) > 1 else ""
        if op.startswith(_NO_DEST):
            yield op, "", args
            continue
        if args.startswith("{"):
            end = args.index("}") + 1
            yield op, args[:end], args[end:]
        else:
            dest, _, rest = args.partition(",")
            yield op, dest, rest


def _access_bits(op: str) -> int:
    vec = re.search(r"\.v(\d)", op)
    types = _TYPE.findall(op)
    if not types:
        raise ValueError(f"cannot read the access width of {op!r}")
    return (int(vec.group(1)) if vec else 1) * int(types[-1])


def global_accesses(ptx: str, param_names: list[str]) -> list[dict]:
    """Every global load, store and atomic in ``ptx``, with the kernel parameters its address comes from.

    The address register of each access is traced back through the instructions that define it
    (all definitions, since PTX registers are reassigned in loops) to ``ld.param`` of pointer
    parameters; values loaded from global memory are not followed (an index loaded from memory
    moves the address, but the address is still into the tensor it is added to).

    Returns [{"op", "kind": "load"|"store"|"atomic", "bits", "params": [names]}].
    """
    defs: dict[str, list[tuple[str, str]]] = {}
    accesses = []
    entry = re.search(r"\.entry\s+(\w+)", ptx)
    kernel = entry.group(1) if entry else ""
    pointer_params = set(int(i) for i in re.findall(rf"\.param \.u64 \.ptr[^\n]*{kernel}_param_(\d+)", ptx))
    for op, dest, rest in _instructions(ptx):
        for reg in _REG.findall(dest):
            defs.setdefault(reg, []).append((op, rest))
        if op.startswith(("ld.global", "st.global", "atom.global", "red.global")):
            address = re.search(r"\[\s*(%[a-z]+\d*)", rest if op.startswith(("ld.", "atom.")) else dest + rest)
            kind = "load" if op.startswith("ld.") else "store" if op.startswith("st.") else "atomic"
            accesses.append({"op": op, "kind": kind, "bits": _access_bits(op),
                             "address": address.group(1) if address else None})

    def bases(reg: str) -> set[int]:
        seen, stack, found = set(), [reg], set()
        while stack:
            r = stack.pop()
            if r in seen:
                continue
            seen.add(r)
            for op, rest in defs.get(r, ()):
                if op.startswith("ld.param"):
                    m = re.search(r"_param_(\d+)", rest)
                    if m and int(m.group(1)) in pointer_params:
                        found.add(int(m.group(1)))
                elif not op.startswith(("ld.", "atom.")):
                    stack.extend(_REG.findall(rest))
        return found

    for a in accesses:
        idx = sorted(bases(a.pop("address"))) if a.get("address") else []
        a["params"] = [param_names[i] if i < len(param_names) else f"param_{i}" for i in idx]
    return accesses


def source_line_of(fn, marker: str) -> int:
    """Line number, in the kernels' file, of the first line of kernel ``fn`` that contains ``marker``."""
    import inspect as pyinspect

    lines, start = pyinspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if marker in line:
            return start + i
    raise ValueError(f"{marker!r} not found in the source of {fn.__name__}")


def ptx_for_lines(ptx: str, first: int, last: int) -> list[str]:
    """The PTX instructions that the ``.loc`` directives attribute to source lines first..last of the
    kernels' file (file 1), in order; inline-asm markers and the zero-fill moves of masked loads dropped."""
    out, current = [], None
    for raw in ptx.splitlines():
        line = raw.strip()
        m = re.match(r"\.loc\s+(\d+)\s+(\d+)\s+\d+", line)
        if m:
            current = int(m.group(2)) if m.group(1) == "1" else None
            continue
        if current is None or not first <= current <= last:
            continue
        code = line.split("//", 1)[0].strip()
        if not code or code.startswith(".") or code.endswith(":") or re.match(r"mov\.u(16|32) %\w+, %\w+;", code):
            continue
        out.append(code)
    return out


_NOTES = (  # (opcode pattern, what it does in the lookup), first match wins
    (r"^ld\.global\.v4\.b32", "128-bit load: 4 fp32 or 8 bf16/fp16 of a value row in one instruction"),
    (r"^ld\.global\.v2\.b32", "64-bit load: 2 fp32 or 4 half-precision elements"),
    (r"^ld\.global\.b16", "16-bit load: ONE half-precision element"),
    (r"^ld\.global\.b32", "32-bit load: one fp32 element (or two half-precision)"),
    (r"^ld\.global\.b64", "64-bit load: one int64 index"),
    (r"^(mul|mad|shl|add|sub)\.(lo\.|wide\.)?[sub]64|^(mad|mul)\.wide", "address: row * stride_vn + column, in bytes, + base"),
    (r"^(mul|add|mad)\.lo\.s32|^add\.s32", "column offset arithmetic (32-bit)"),
    (r"^(and|or)\.pred|^setp", "mask: row hits this block, column inside the slice"),
    (r"^cvt\.f32\.(bf16|f16)", "widen to the fp32 accumulator"),
    (r"^(mul|fma\.rn)\.f32", "score * value, in fp32"),
)


def annotated_excerpt(ptx: str, fn, marker: str, lines: int = 2, width: int = 56) -> str:
    """The PTX generated for the ``lines`` source lines of kernel ``fn`` starting at the one containing
    ``marker``: consecutive instructions doing the same job shown once, with their count and a note;
    register moves are counted, not shown."""
    first = source_line_of(fn, marker)
    groups: list[list] = []
    moves = 0
    for ins in ptx_for_lines(ptx, first, first + lines - 1):
        bare = re.sub(r"^@!?%p\d+\s+", "", ins)
        if bare.startswith("mov"):
            moves += 1
            continue
        note = next((text for pattern, text in _NOTES if re.search(pattern, bare)), "")
        if groups and groups[-1][1] == note:
            groups[-1][2] += 1
        else:
            groups.append([ins, note, 1])
    out = []
    for ins, note, n in groups:
        ins = " ".join(ins.split())
        shown = ins if len(ins) <= width else ins[:width - 3] + "..."
        count = f"x{n}" if n > 1 else ""
        out.append(f"{shown:<{width}} {count:>4}  // {note}" if note else shown)
    if moves:
        out.append(f"// and {moves} register moves (mov), not shown")
    return "\n".join(out)


# ------------------------------------------------------------------ capturing the launchers' arguments


class _Recorder:
    def __init__(self, name: str, sink: list):
        self.name, self.sink = name, sink

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            self.sink.append((self.name, grid, args, kwargs))
        return launch


_KERNEL_ATTRS = ("_fwd_kernel", "_bwd_kernel", "_bwd_values_sorted_kernel", "_fwd_onepass_kernel")


def capture_launches(shape: ExampleShape, dtype: str, index_dtype: str) -> dict[str, tuple]:
    """Run the real launchers on CPU example tensors with every kernel replaced by a recorder.

    Returns {variant kernel name: (raw python function, grid, args, kwargs)} for KERNELS and
    OPTIONAL_KERNELS.
    """
    from . import value_lookup_triton as K

    dt, it = getattr(torch, dtype), getattr(torch, index_dtype)
    g = torch.Generator().manual_seed(0)
    n, b, k, h, e = shape.table_rows, shape.tokens, shape.k, shape.cores, shape.num_blocks
    values = torch.randn(n, shape.d_v, generator=g).to(dt)
    indices = torch.randint(0, e * n, (b, k), generator=g).to(it)
    scores = torch.rand(b, k, h, generator=g).to(dt)
    grad_out = torch.randn(b, e, shape.d_v, generator=g).to(dt)
    launches: dict[str, tuple] = {}
    originals = {name: getattr(K, name) for name in _KERNEL_ATTRS}
    sink: list = []
    try:
        for name in _KERNEL_ATTRS:
            setattr(K, name, _Recorder(name, sink))
        K.lookup_forward(values, indices, scores, e)
        (_, grid, args, kwargs), = sink
        launches["fwd"] = (originals["_fwd_kernel"].fn, grid, args, kwargs)
        sink.clear()
        K.lookup_backward(values, indices, scores, grad_out, True, True, deterministic=False)
        (_, grid, args, kwargs), = sink
        assert kwargs["ADD_GRAD_VALUES"] and kwargs["WRITE_GRAD_SCORES"]
        launches["bwd_atomic"] = (originals["_bwd_kernel"].fn, grid, args, kwargs)
        sink.clear()
        K.lookup_backward(values, indices, scores, grad_out, True, True, deterministic=True)
        by_name = {name: rest for name, *rest in sink}
        assert not by_name["_bwd_kernel"][2]["ADD_GRAD_VALUES"]
        launches["bwd_scores"] = (originals["_bwd_kernel"].fn, *by_name["_bwd_kernel"])
        launches["bwd_sorted"] = (originals["_bwd_values_sorted_kernel"].fn, *by_name["_bwd_values_sorted_kernel"])
        sink.clear()
        K.lookup_forward_onepass(values, indices, scores, e)
        (_, grid, args, kwargs), = sink
        launches["fwd_onepass"] = (originals["_fwd_onepass_kernel"].fn, grid, args, kwargs)
    finally:
        for name, obj in originals.items():
            setattr(K, name, obj)
    return launches


# ------------------------------------------------------------------ compiling one variant (no GPU)


def can_compile_here() -> bool:
    """False where the Triton interpreter is on or has replaced Triton's library functions."""
    if os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes"):
        return False
    if "triton.language" in sys.modules:
        from triton.runtime.interpreter import InterpretedFunction
        import triton.language.standard as std

        if any(isinstance(v, InterpretedFunction) for v in vars(std).values()):
            return False
    return True


def specialise(fn, args: tuple, kwargs: dict, arch: int):
    """Triton's JIT specialisation of ``fn`` for these arguments on ``arch``.

    Returns (jit function, target, signature, constexprs, attrs, options), as ``JITFunction.run``
    computes them before it compiles.
    """
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import JITFunction, create_function_from_signature

    jit = JITFunction(fn)
    target = GPUTarget("cuda", arch, 32)
    backend = make_backend(target)
    kwargs = dict(kwargs)
    kwargs["debug"] = kwargs.get("debug", jit.debug) or knobs.runtime.debug
    if hasattr(knobs.compilation, "instrumentation_mode"):     # set by JITFunction.run in triton >= 3.5
        kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    bound, specialization, options = binder(*args, **kwargs)
    options, signature, constexprs, attrs = jit._pack_args(backend, kwargs, bound, specialization, options)
    return jit, target, signature, constexprs, attrs, options


def parse_ptxas_log(log: str) -> dict:
    """Registers, spill bytes, stack frame and static shared memory from a ``ptxas -v`` log."""
    def num(pattern, default=None):
        m = re.search(pattern, log)
        return int(m.group(1)) if m else default

    report = {"registers": num(r"Used (\d+) registers"), "spill_stores": num(r"(\d+) bytes spill stores"),
              "spill_loads": num(r"(\d+) bytes spill loads"), "stack_frame": num(r"(\d+) bytes stack frame"),
              "ptxas_smem": num(r"(\d+) bytes smem", 0), "ptxas_log": log.strip()}
    missing = [k for k in ("registers", "spill_stores", "spill_loads") if report[k] is None]
    if missing:
        raise RuntimeError(f"no {', '.join(missing)} in the ptxas log: {log.strip()[:2000]!r}")
    return report


def compile_with_ptxas_log(src, target, options: dict):
    """``triton.compile`` with Triton's own ``ptxas -v`` log (its flags, its ptxas): the build is forced
    (TRITON_ALWAYS_COMPILE) so the log exists even where Triton's cache has the kernel, and the log,
    which Triton prints with TRITON_DUMP_PTXAS_LOG, is captured. Returns (compiled kernel, log)."""
    import triton
    from triton import knobs

    buf = io.StringIO()
    with knobs.compilation.scope(), knobs.nvidia.scope():
        knobs.compilation.always_compile = True
        knobs.nvidia.dump_ptxas_log = True
        with contextlib.redirect_stdout(buf):
            compiled = triton.compile(src, target=target, options=options)
    return compiled, buf.getvalue()


def _row_tensors(args: tuple, fn, d_v: int) -> list[str]:
    """Kernel arguments that hold value rows: floating-point tensors of two or more dims whose last dim
    is D_v (the table, the output, its gradient, the value gradient; not indices or scores)."""
    import inspect as pyinspect

    names = list(pyinspect.signature(fn).parameters)
    return [name for name, a in zip(names, args)
            if isinstance(a, torch.Tensor) and a.is_floating_point() and a.dim() >= 2 and a.shape[-1] == d_v
            and not name.startswith(("scores", "hit_scores", "grad_scores"))]


def compile_variant(variant: Variant, keep_ptx: bool = True) -> dict:
    """Compile one variant ahead of time in this process and report on it (needs can_compile_here())."""
    if not can_compile_here():
        raise RuntimeError("Triton's interpreter is active in this process (TRITON_INTERPRET=1 when triton was "
                           "imported): compile in a process without it, e.g. inspect_variants()")
    import triton

    fn, grid, args, kwargs = capture_launches(variant.shape, variant.dtype, variant.index_dtype)[variant.kernel]
    report = {"variant": variant.to_json(), "kernel_name": fn.__name__, "arch_name": variant.arch_name,
              "triton": triton.__version__, "grid": list(grid)}
    jit, target, signature, constexprs, attrs, options = specialise(fn, args, kwargs, variant.arch)
    names = jit.arg_names
    report["specialisation"] = {
        "divisible_by_16": [names[i] for (i,), a in sorted(attrs.items()) if ["tt.divisibility", 16] in a],
        "equal_to_1": [names[i] for (i,), v in sorted(constexprs.items())
                       if signature[names[i]] == "constexpr" and not jit.params[i].is_constexpr and v == 1],
        "constexprs": {names[i]: str(v) for (i,), v in sorted(constexprs.items()) if jit.params[i].is_constexpr},
    }
    report["row_tensors"] = _row_tensors(args, fn, variant.shape.d_v)
    try:
        from triton.compiler import ASTSource

        compiled, log = compile_with_ptxas_log(ASTSource(jit, signature, constexprs, attrs), target,
                                               options.__dict__)
    except Exception as e:  # noqa: BLE001 - a compile error is a result to report
        report.update(ok=False, error=f"{type(e).__name__}: {str(e).strip()}")
        return report
    ptx = compiled.asm["ptx"]
    report.update(ok=True, error=None, num_warps=compiled.metadata.num_warps, shared=compiled.metadata.shared)
    report.update(parse_ptxas_log(log))
    report["occupancy"] = occupancy(report["registers"], report["shared"], report["num_warps"], variant.arch)
    runtime_params = [n for n in names if signature[n] != "constexpr"]
    report["ptx_params"] = runtime_params
    accesses = global_accesses(ptx, runtime_params)
    report["accesses"] = [{**a, "count": c} for a, c in _count(accesses)]
    report.update(summarise_rows(report["accesses"], report["row_tensors"]))
    if keep_ptx:
        report["ptx"] = ptx
    return report


def _count(accesses):
    c = Counter(json.dumps(a, sort_keys=True) for a in accesses)
    return [(json.loads(k), n) for k, n in sorted(c.items())]


def summarise_rows(accesses: list[dict], row_tensors: list[str]) -> dict:
    """Widths, in bits, of the loads and of the stores/atomics on value-row tensors, per tensor."""
    loads: dict[str, list[int]] = {}
    writes: dict[str, list[int]] = {}
    for a in accesses:
        for p in a["params"]:
            if p in row_tensors:
                target = loads if a["kind"] == "load" else writes
                target.setdefault(p, [])
                if a["bits"] not in target[p]:
                    target[p].append(a["bits"])
    for d in (loads, writes):
        for p in d:
            d[p].sort()
    all_loads = [b for bits in loads.values() for b in bits]
    return {"row_load_bits": loads, "row_write_bits": writes,
            "min_row_load_bits": min(all_loads) if all_loads else None,
            "max_row_load_bits": max(all_loads) if all_loads else None}


# ------------------------------------------------------------------ many variants: cache, child process


def cache_dir() -> Path:
    root = os.environ.get("ULTRAMEM_EDU_CACHE_DIR") or Path.home() / ".cache" / "ultramem_edu"
    return Path(root) / "kernel_inspect"


def _cache_key(variant: Variant) -> str:
    import importlib.metadata as md

    try:
        triton_version = md.version("triton")
    except md.PackageNotFoundError:
        triton_version = "none"
    h = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), Path(__file__).read_bytes(), triton_version.encode(),
                 json.dumps(variant.to_json(), sort_keys=True).encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:32]


def inspect_variants(variants: list[Variant], use_cache: bool = True, keep_ptx: bool = False,
                     timeout_s: float = 900) -> list[dict]:
    """Reports for ``variants``, in order: from the cache, else compiled (here or in a child process)."""
    results: dict[int, dict] = {}
    todo = []
    for i, v in enumerate(variants):
        path = cache_dir() / f"{_cache_key(v)}.json"
        if use_cache and path.is_file():
            report = json.loads(path.read_text())
            if not keep_ptx or "ptx" in report:
                results[i] = report
                continue
        todo.append(i)
    if todo:
        fresh = _compile_many([variants[i] for i in todo])
        for i, report in zip(todo, fresh):
            if use_cache:
                path = cache_dir() / f"{_cache_key(variants[i])}.json"
                try:  # a read-only or missing cache folder costs speed, not the result
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(report))
                    tmp.replace(path)
                except OSError:
                    pass
            results[i] = report
    out = [results[i] for i in range(len(variants))]
    if not keep_ptx:
        out = [{k: v for k, v in r.items() if k != "ptx"} for r in out]
    return out


def _compile_many(variants: list[Variant]) -> list[dict]:
    if can_compile_here():
        return [compile_variant(v) for v in variants]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    res = subprocess.run([sys.executable, "-m", "ultramem_edu.kernels.inspect", "--worker"],
                         input=json.dumps([v.to_json() for v in variants]), capture_output=True, text=True,
                         env=env, cwd=root, timeout=900)
    if res.returncode:
        raise RuntimeError(f"the compile worker failed ({res.returncode}):\n{res.stderr[-4000:]}")
    return json.loads(res.stdout)


# ------------------------------------------------------------------ the table


def _bits(d: dict) -> str:
    short = {"values_ptr": "V", "out_ptr": "out", "grad_out_ptr": "g", "grad_values_ptr": "dV"}
    return " ".join(f"{short.get(p, p)}:{'/'.join(map(str, b))}" for p, b in d.items()) or "-"


def format_table(reports: list[dict]) -> str:
    head = (f"{'kernel':<10} {'arch':<6} {'dtype':<8} {'index':<5} {'ok':<3} {'regs':>4} {'spill':>5} "
            f"{'smem':>6} {'occupancy':>15}  {'row loads (bits)':<20} {'row stores/atomics'}")
    lines = [head, "-" * len(head)]
    for r in reports:
        v = r["variant"]
        if not r["ok"]:
            lines.append(f"{v['kernel']:<10} {r['arch_name']:<6} {v['dtype']:<8} {v['index_dtype']:<5} no  "
                         f"{r['error'].splitlines()[0][:90]}")
            continue
        occ = r["occupancy"]
        lines.append(
            f"{v['kernel']:<10} {r['arch_name']:<6} {v['dtype']:<8} {v['index_dtype']:<5} yes {r['registers']:>4} "
            f"{r['spill_stores'] + r['spill_loads']:>5} {r['shared']:>6} "
            f"{occ['occupancy']:>5.0%} ({occ['limiter'][:9]:>9})  {_bits(r['row_load_bits']):<20} "
            f"{_bits(r['row_write_bits'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m ultramem_edu.kernels.inspect", description=__doc__.split("\n")[0])
    p.add_argument("--kernel", nargs="+", default=list(KERNELS), choices=KERNELS)
    p.add_argument("--arch", nargs="+", type=int, default=list(ARCHS), choices=ARCHS)
    p.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=DTYPES)
    p.add_argument("--index-dtype", nargs="+", default=list(INDEX_DTYPES), choices=INDEX_DTYPES)
    d = ExampleShape()
    for f in dataclasses.fields(ExampleShape):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=getattr(d, f.name),
                       help=f"example shape: {f.name} (default {getattr(d, f.name)})")
    p.add_argument("--json", metavar="PATH", help="also write the reports (without PTX) to PATH")
    p.add_argument("--ptx-dir", metavar="DIR", help="also write each variant's PTX into DIR")
    p.add_argument("--no-cache", action="store_true", help="compile everything again")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:  # child process of inspect_variants: variants on stdin, reports on stdout
        variants = [Variant.from_json(v) for v in json.loads(sys.stdin.read())]
        reports = [compile_variant(v) for v in variants]
        sys.stdout.write(json.dumps(reports))
        return reports
    try:
        shape = ExampleShape(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ExampleShape)})
    except ValueError as e:
        p.error(str(e))
    variants = all_variants(shape, args.kernel, args.arch, args.dtype, args.index_dtype)
    reports = inspect_variants(variants, use_cache=not args.no_cache, keep_ptx=bool(args.ptx_dir))
    print(f"# AOT builds of the value-lookup kernels (triton {reports[0]['triton']}); example: B={shape.tokens}, "
          f"k={shape.k}, D_v={shape.d_v}, h={shape.cores} (slice {shape.slice_width}), E={shape.num_blocks}, "
          f"N={shape.table_rows}")
    print("# spill = spill store + load bytes; smem = shared bytes per block; row loads/stores: widths in bits of "
          "the global accesses on value-row tensors (V values, g grad_out, out, dV grad_values)")
    print(format_table(reports))
    if args.ptx_dir:
        folder = Path(args.ptx_dir)
        folder.mkdir(parents=True, exist_ok=True)
        for r in reports:
            if r.get("ptx"):
                v = r["variant"]
                (folder / f"{v['kernel']}_{r['arch_name']}_{v['dtype']}_{v['index_dtype']}.ptx").write_text(r["ptx"])
        reports = [{k: v for k, v in r.items() if k != "ptx"} for r in reports]
    if args.json:
        Path(args.json).write_text(json.dumps({"shape": dataclasses.asdict(shape), "reports": reports}, indent=1) + "\n")
        print(f"# wrote {args.json}")
    return reports


if __name__ == "__main__":
    main()
