"""Ahead-of-time builds of the lookup kernels for real GPU targets (sm_80, sm_90a), checked without a GPU.

Needs only the triton wheel (its compiler and its bundled ptxas). Under the CPU test setup
(TRITON_INTERPRET=1, see conftest.py) nothing can be compiled in this process, so
``inspect_variants`` compiles in a child process without the variable; the reports are cached on
disk keyed by the kernels' source, so a second run takes about a second. The first takes ~40 s.
"""
import inspect
import json
import math
import re

import pytest
import torch

from ultramem_edu.kernels import inspect as ki

ALIGNED = ki.ExampleShape()                       # D_v = 768, h = 2: slices of 384 columns
MISALIGNED = ki.ExampleShape(d_v=208, cores=2)    # slices of 104 columns: 104 % 16 = 8
# Chapter 9, exercise 5: float16 forward on sm_80, slice width -> widest value-row load (the solution's numbers).
EXERCISE_5 = {24: 16, 48: 128, 80: 128, 144: 128}
ELEMENT_BITS = {"float32": 32, "float16": 16, "bfloat16": 16}
# The tensors of value rows (N or B*E rows of D_v) each kernel must read.
ROW_READS = {"fwd": {"values_ptr"}, "bwd_atomic": {"values_ptr", "grad_out_ptr"},
             "bwd_scores": {"values_ptr", "grad_out_ptr"}, "bwd_sorted": {"grad_out_ptr"}}


@pytest.fixture(scope="module")
def reports():
    aligned = ki.all_variants(ALIGNED)
    misaligned = ki.all_variants(MISALIGNED, dtypes=("float32", "bfloat16"), index_dtypes=("int64",))
    exercise = [ki.Variant("fwd", 80, "float16", "int64", ki.ExampleShape(d_v=2 * s)) for s in EXERCISE_5]
    got = ki.inspect_variants(aligned + misaligned + exercise)
    return got[:len(aligned)], got[len(aligned):len(aligned) + len(misaligned)], got[len(aligned) + len(misaligned):]


def test_every_variant_compiles_for_sm80_and_sm90a(reports):
    aligned, misaligned, _ = reports
    failed = [(r["variant"], r["error"]) for r in aligned + misaligned if not r["ok"]]
    assert not failed
    seen = {(r["variant"]["kernel"], r["arch_name"], r["variant"]["dtype"], r["variant"]["index_dtype"])
            for r in aligned}
    assert seen == {(k, a, d, i) for k in ki.KERNELS for a in ("sm_80", "sm_90a")
                    for d in ki.DTYPES for i in ki.INDEX_DTYPES}


def test_no_spills_and_a_resident_block(reports):
    for r in reports[0] + reports[1] + reports[2]:
        assert r["spill_stores"] == 0 and r["spill_loads"] == 0, (r["variant"], r["ptxas_log"])
        assert 0 < r["registers"] <= 255
        assert r["occupancy"]["blocks_per_sm"] >= 1


def test_value_rows_are_read_with_128_bit_loads_when_aligned(reports):
    for r in reports[0]:
        kernel = r["variant"]["kernel"]
        assert set(r["row_load_bits"]) == ROW_READS[kernel], r["variant"]
        assert all(bits == [128] for bits in r["row_load_bits"].values()), (r["variant"], r["row_load_bits"])
        assert "S" in r["specialisation"]["divisible_by_16"]


def test_a_slice_width_not_a_multiple_of_16_gives_scalar_loads(reports):
    # The lesson of chapter 9: 104 = 6.5 * 16, so the JIT cannot mark S as divisible by 16, the
    # compiler cannot prove a 16-byte-aligned start for a core's slice, and loads one element at a time.
    for r in reports[1]:
        v = r["variant"]
        assert "S" not in r["specialisation"]["divisible_by_16"]
        assert set(r["row_load_bits"]) == ROW_READS[v["kernel"]]
        assert r["max_row_load_bits"] == ELEMENT_BITS[v["dtype"]], (v, r["row_load_bits"])


def test_chapter_9_exercise_5_solution(reports):
    got = {r["variant"]["shape"]["d_v"] // 2: r["max_row_load_bits"] for r in reports[2]}
    assert got == EXERCISE_5
    assert all(set(r["row_load_bits"]) == {"values_ptr"} for r in reports[2])


def test_annotated_ptx_of_the_value_load_shows_the_cliff(reports):
    from ultramem_edu.kernels import value_lookup_triton as kernels

    excerpts = {}
    for shape in (ALIGNED, MISALIGNED):
        (r,) = ki.inspect_variants([ki.Variant("fwd", 90, "bfloat16", "int64", shape)], keep_ptx=True)
        excerpts[shape.slice_width] = ki.annotated_excerpt(r["ptx"], kernels._fwd_kernel.fn, "v = tl.load(values_ptr")
    assert "ld.global.v4.b32" in excerpts[384] and "128-bit load" in excerpts[384]
    assert "ld.global.b16" not in excerpts[384]
    assert re.search(r"ld\.global\.b16 .*x16\s+// 16-bit load", excerpts[104]), excerpts[104]
    assert "v4" not in excerpts[104]


def test_specialisation_is_derived_from_the_tensors():
    # Triton's binder, fed with the launcher's real arguments: integers divisible by 16 and 16-byte
    # aligned pointers are marked, 1 becomes a constant; a table that starts one element into its
    # storage is not 16-byte aligned, and its pointer loses the mark.
    fn, grid, args, kwargs = ki.capture_launches(ALIGNED, "float32", "int32")["fwd"]
    names = list(inspect.signature(fn).parameters)
    for values in (args[0], torch.randn(ALIGNED.table_rows * ALIGNED.d_v + 1)[1:].view(-1, ALIGNED.d_v)):
        call = (values, *args[1:])
        jit, _, signature, constexprs, attrs, _ = ki.specialise(fn, call, kwargs, 90)
        marked = {names[i] for (i,), a in attrs.items() if ["tt.divisibility", 16] in a}
        ones = {names[i] for (i,), v in constexprs.items() if not jit.params[i].is_constexpr}
        for name, a in zip(names, call):
            if isinstance(a, torch.Tensor):
                assert (name in marked) == (a.data_ptr() % 16 == 0), name
            elif isinstance(a, int) and not isinstance(a, bool):
                assert (name in ones) == (a == 1), name
                assert (name in marked) == (a != 1 and a % 16 == 0), name
        assert ("values_ptr" in marked) == (values.data_ptr() % 16 == 0)
    assert grid == (ALIGNED.tokens, ALIGNED.cores, math.ceil(ALIGNED.slice_width / 128))


@pytest.mark.parametrize("regs, smem, warps, arch, blocks, limiter", [
    (32, 0, 4, 90, 16, "warps"),             # 32 regs: 1024 per warp, 16 warps per quarter: full
    (48, 2048, 4, 90, 10, "registers"),      # 1536 per warp: 10 per quarter, 40 warps, 10 blocks
    (40, 2048, 4, 80, 12, "registers"),      # 1280 per warp: 12 per quarter, 48 warps
    (255, 0, 4, 90, 2, "registers"),         # 8192 per warp: 2 per quarter, 8 warps
    (32, 100 * 1024, 4, 90, 2, "shared memory"),   # 228 KiB / (100 + 1) KiB
    (32, 100 * 1024, 4, 80, 1, "shared memory"),   # 164 KiB / (100 + 1) KiB
    (16, 0, 1, 90, 32, "blocks"),            # one-warp blocks: the 32-block limit
])
def test_occupancy_follows_the_cuda_rules(regs, smem, warps, arch, blocks, limiter):
    occ = ki.occupancy(regs, smem, warps, arch)
    assert occ["blocks_per_sm"] == blocks and occ["limiter"] == limiter
    assert occ["occupancy"] == blocks * warps / 64


def test_occupancy_rejects_impossible_register_counts():
    with pytest.raises(ValueError, match="registers=256 exceeds 255"):
        ki.occupancy(256, 0, 4, 90)


PTX = """
.visible .entry k(
\t.param .u64 .ptr .global .align 1 k_param_0,
\t.param .u64 .ptr .global .align 1 k_param_1,
\t.param .u32 k_param_2
)
{
\tld.param.b64 \t%rd1, [k_param_0];
\tld.param.b64 \t%rd2, [k_param_1];
\tld.param.b32 \t%r1, [k_param_2];
\tld.global.b64 \t%rd3, [ %rd2 + 0 ];          // an index, loaded from the index tensor
\tmul.lo.s64 \t%rd4, %rd3, 512;
\tadd.s64 \t%rd5, %rd1, %rd4;                   // table + index * row bytes
\t@%p1 ld.global.v4.b32 { %r2, %r3, %r4, %r5 }, [ %rd5 + 0 ];
\tred.global.gpu.add.f32 [ %rd5 + 16 ], %r2;
\tst.global.b16 [ %rd2 + 0 ], { %rs1 };
}
"""


def test_ptx_accesses_are_traced_to_the_tensor_they_address():
    got = ki.global_accesses(PTX, ["table", "index", "n"])
    assert [(a["op"], a["kind"], a["bits"], a["params"]) for a in got] == [
        ("ld.global.b64", "load", 64, ["index"]),
        ("ld.global.v4.b32", "load", 128, ["table"]),      # not "index": loaded values are not followed
        ("red.global.gpu.add.f32", "atomic", 32, ["table"]),
        ("st.global.b16", "store", 16, ["index"]),
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU setup, where the interpreter is on")
def test_compiling_under_the_interpreter_is_refused_with_a_reason():
    assert not ki.can_compile_here()
    with pytest.raises(RuntimeError, match="interpreter"):
        ki.compile_variant(ki.Variant("fwd", 90, "float32", "int32"))


def test_bad_variants_and_shapes_raise():
    with pytest.raises(ValueError, match="arch must be one of"):
        ki.Variant("fwd", 75, "float32", "int32")
    with pytest.raises(ValueError, match="d_v=10 must be divisible by cores=3"):
        ki.ExampleShape(d_v=10, cores=3)
    with pytest.raises(ValueError, match="tokens must be a positive int"):
        ki.ExampleShape(tokens=0)


def test_command_line_prints_the_table_and_writes_json(reports, tmp_path, capsys):
    out = tmp_path / "inspect.json"
    got = ki.main(["--kernel", "fwd", "bwd_sorted", "--arch", "90", "--dtype", "bfloat16", "--index-dtype",
                   "int64", "--json", str(out)])
    text = capsys.readouterr().out
    assert "fwd        sm_90a bfloat16 int64 yes" in text and "bwd_sorted sm_90a" in text
    saved = json.loads(out.read_text())
    assert saved["shape"]["d_v"] == ALIGNED.d_v and len(saved["reports"]) == len(got) == 2
    assert all("ptx" not in r and r["min_row_load_bits"] == 128 for r in saved["reports"])


# ---------------------------------------------------------------- GPU only: the JIT agrees


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("shape", [ALIGNED, MISALIGNED], ids=["slice384", "slice104"])
def test_gpu_jit_compiles_what_the_ahead_of_time_build_predicts(shape):
    # The JIT compiles the forward kernel for real CUDA tensors of the same shape; its PTX must read
    # the value rows with the widths the AOT build reported, with the same register count.
    from ultramem_edu.kernels import value_lookup_triton as kernels

    major, minor = torch.cuda.get_device_capability()
    arch = major * 10 + minor
    if arch not in ki.ARCHS:
        pytest.skip(f"compute capability {arch} is not one the inspection targets")
    g = torch.Generator().manual_seed(0)
    values = torch.randn(shape.table_rows, shape.d_v, generator=g).to("cuda", torch.bfloat16)
    indices = torch.randint(0, shape.num_blocks * shape.table_rows, (shape.tokens, shape.k), generator=g).cuda()
    scores = torch.rand(shape.tokens, shape.k, shape.cores, generator=g).to("cuda", torch.bfloat16)
    before = set(map(id, kernels._fwd_kernel.device_caches[torch.cuda.current_device()][0].values()))
    kernels.lookup_forward(values, indices, scores, shape.num_blocks)
    torch.cuda.synchronize()
    cache = kernels._fwd_kernel.device_caches[torch.cuda.current_device()][0]
    new = [k for k in cache.values() if id(k) not in before] or list(cache.values())
    jit_kernel = new[-1]
    want = ki.compile_variant(ki.Variant("fwd", arch, "bfloat16", "int64", shape))
    # Same tensors, same specialisation: the PTX parameters are the same runtime arguments.
    got = ki.summarise_rows(ki.global_accesses(jit_kernel.asm["ptx"], want["ptx_params"]), want["row_tensors"])
    assert got["row_load_bits"]["values_ptr"] == want["row_load_bits"]["values_ptr"]
    assert jit_kernel.n_regs == want["registers"]
    assert jit_kernel.n_spills == 0
