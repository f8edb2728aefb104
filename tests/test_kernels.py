"""The value lookup: Triton kernels vs the torch reference vs F.embedding_bag vs an explicit loop.

Without CUDA the Triton kernels run on CPU tensors through Triton's interpreter. The environment
variable must be set before the kernels are decorated, i.e. before ``value_lookup_triton`` is first
imported; ``ultramem_edu.kernels`` imports it lazily, on the first triton call, so setting it here at
collection time is early enough even when other test modules imported torch or the package first.
With CUDA the same tests run the compiled kernels on the GPU (TRITON_INTERPRET is left unset).
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from ultramem_edu.kernels import bench, value_lookup

ROOT = Path(__file__).resolve().parents[1]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {  # (rtol, atol) against a float64 evaluation of the same inputs
    torch.float32: (1e-5, 1e-5),
    torch.float16: (2e-3, 2e-2),
    torch.bfloat16: (1.6e-2, 1e-1),
}
gpu = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def naive_lookup(values, indices, scores, num_blocks):
    """The formula with Python loops, in float64: a third, independent spelling of the spec."""
    n, d_v = values.shape
    b, k, h = scores.shape
    s = d_v // h
    out = torch.zeros(b, num_blocks, d_v, dtype=torch.float64)
    for i in range(b):
        for j in range(k):
            p, row = divmod(int(indices[i, j]), n)
            for c in range(h):
                out[i, p, c * s:(c + 1) * s] += float(scores[i, j, c]) * values[row, c * s:(c + 1) * s].double()
    return out


def make_inputs(n, d_v, b, k, h, num_blocks, dtype=torch.float32, index_dtype=torch.int64, seed=0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    values = torch.randn(n, d_v, generator=g).to(device=device, dtype=dtype)
    indices = torch.randint(0, num_blocks * n, (b, k), generator=g).to(device=device, dtype=index_dtype)
    scores = torch.randn(b, k, h, generator=g).to(device=device, dtype=dtype)
    return values, indices, scores


def lookup_and_grads(values, indices, scores, num_blocks, grad_out, **kw):
    """Output and (d values, d scores) for the upstream gradient grad_out."""
    values = values.detach().requires_grad_(True)
    scores = scores.detach().requires_grad_(True)
    out = value_lookup(values, indices, scores, num_blocks, **kw)
    grad_values, grad_scores = torch.autograd.grad(out, (values, scores), grad_out)
    return out, grad_values, grad_scores


def float64_truth(values, indices, scores, num_blocks, grad_out):
    return lookup_and_grads(values.double(), indices, scores.double(), num_blocks, grad_out.double(), backend="torch")


def assert_close_to(got, want, dtype):
    rtol, atol = TOL[dtype]
    for g, w in zip(got, want):
        assert g.dtype == dtype
        torch.testing.assert_close(g.double(), w, rtol=rtol, atol=atol)


def check_backends(values, indices, scores, num_blocks, seed=1):
    """Both backends (and both triton backward variants) against float64, forward and both grads."""
    b, k, h = scores.shape
    g = torch.Generator().manual_seed(seed)
    grad_out = torch.randn(b, num_blocks, values.shape[1], generator=g).to(values)
    want = float64_truth(values, indices, scores, num_blocks, grad_out)
    for kw in ({"backend": "torch"}, {"backend": "triton", "deterministic": False},
               {"backend": "triton", "deterministic": True}):
        got = lookup_and_grads(values, indices, scores, num_blocks, grad_out, **kw)
        assert_close_to(got, want, values.dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("num_blocks, cores", [(1, 1), (1, 2), (4, 1), (4, 2)])
def test_triton_matches_reference(num_blocks, cores, index_dtype, dtype):
    # N = 5 rows for B*k = 120 hits: many duplicates within and across bags; k = 20 is ragged
    # (not a multiple of the 16-row tile), D_v = 40 is not a power of two (slices of 40 or 20).
    values, indices, scores = make_inputs(5, 40, 6, 20, cores, num_blocks, dtype, index_dtype)
    check_backends(values, indices, scores, num_blocks)


@pytest.mark.parametrize("cores", [1, 2])
def test_wide_rows_span_several_column_tiles(cores):
    # D_v = 200: two column tiles per core (one masked) with h = 1, one masked tile with h = 2.
    values, indices, scores = make_inputs(9, 200, 3, 7, cores, 2)
    check_backends(values, indices, scores, 2)


def test_matches_explicit_loop_with_duplicates():
    # Row 1 appears twice in bag 0, in both bags, and in both virtual blocks (addresses 1 and 4).
    values = torch.arange(12.0, device=DEVICE).reshape(3, 4)
    indices = torch.tensor([[1, 1, 4, 0], [4, 2, 1, 1]], device=DEVICE)
    scores = torch.tensor([[[1.0, -1.0], [0.5, 2.0], [3.0, 0.25], [1.0, 1.0]],
                           [[2.0, 1.0], [-1.0, 0.5], [0.5, 0.5], [1.5, -2.0]]], device=DEVICE)
    want = naive_lookup(values.cpu(), indices.cpu(), scores.cpu(), 2)
    for backend in ("torch", "triton"):
        got = value_lookup(values, indices, scores, num_blocks=2, backend=backend)
        torch.testing.assert_close(got.double().cpu(), want, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_equals_embedding_bag_with_one_block_and_one_core(backend):
    values, indices, scores = make_inputs(11, 24, 5, 9, 1, 1)
    scores = scores[..., 0]                                       # (B, k): the one-core form
    grad_out = torch.randn(5, 24, device=DEVICE)
    v, s = values.clone().requires_grad_(), scores.clone().requires_grad_()
    want = F.embedding_bag(indices, v, mode="sum", per_sample_weights=s)
    want_grads = torch.autograd.grad(want, (v, s), grad_out)
    v, s = values.clone().requires_grad_(), scores.clone().requires_grad_()
    got = value_lookup(v, indices, s, backend=backend)
    got_grads = torch.autograd.grad(got, (v, s), grad_out[:, None])
    assert got.shape == (5, 1, 24)
    torch.testing.assert_close(got[:, 0], want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


def test_non_contiguous_inputs_and_gradient():
    values, indices, scores = make_inputs(6, 24, 4, 10, 2, 3, seed=3)
    # The same numbers in strided layouts: a transposed table, every other index column, scores
    # with the core dimension first in memory, an expanded (stride-0) upstream gradient.
    values_t = values.t().contiguous().t()
    indices_s = torch.stack([indices, torch.zeros_like(indices)], dim=-1)[..., 0]
    scores_t = scores.permute(2, 0, 1).contiguous().permute(1, 2, 0)
    assert not (values_t.is_contiguous() or indices_s.is_contiguous() or scores_t.is_contiguous())
    grad_out = torch.randn(1, 3, 24, device=DEVICE).expand(4, 3, 24)
    want = float64_truth(values, indices, scores, 3, grad_out)
    for deterministic in (False, True):
        got = lookup_and_grads(values_t, indices_s, scores_t, 3, grad_out, backend="triton",
                               deterministic=deterministic)
        assert_close_to(got, want, torch.float32)


def test_empty_bags_and_empty_batch():
    for b, k in ((0, 5), (3, 0)):
        values, indices, scores = make_inputs(4, 8, b, k, 2, 2)
        out, gv, gs = lookup_and_grads(values, indices, scores, 2, torch.ones(b, 2, 8, device=DEVICE),
                                       backend="triton")
        assert out.shape == (b, 2, 8) and not out.any() and not gv.any() and gs.shape == (b, k, 2)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 6), s=st.integers(1, 9), h=st.integers(1, 3), b=st.integers(1, 4),
    k=st.integers(1, 20), num_blocks=st.integers(1, 3), int32=st.booleans(), seed=st.integers(0, 2**16),
)
def test_property_random_small_shapes(n, s, h, b, k, num_blocks, int32, seed):
    index_dtype = torch.int32 if int32 else torch.int64
    values, indices, scores = make_inputs(n, s * h, b, k, h, num_blocks, index_dtype=index_dtype, seed=seed)
    check_backends(values, indices, scores, num_blocks, seed=seed)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_gradcheck_float64(backend):
    values, indices, scores = make_inputs(3, 4, 2, 3, 2, 2, dtype=torch.float64)
    values.requires_grad_()
    scores.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, s: value_lookup(v, indices, s, num_blocks=2, backend=backend), (values, scores)
    )


def test_deterministic_backward_is_bitwise_repeatable():
    # Few rows, many hits per row: the scatter-add has long conflict chains. (On a GPU atomics
    # make the order vary between runs; the interpreter runs programs in order, so on CPU this
    # checks repeatability of the sorted path, not the absence of it in the atomic one.)
    values, indices, scores = make_inputs(3, 40, 8, 32, 2, 2, seed=5)
    grad_out = torch.randn(8, 2, 40, device=DEVICE)
    first = lookup_and_grads(values, indices, scores, 2, grad_out, backend="triton", deterministic=True)
    for _ in range(2):
        again = lookup_and_grads(values, indices, scores, 2, grad_out, backend="triton", deterministic=True)
        for a, b in zip(first, again):
            assert torch.equal(a, b)


def test_deterministic_default_follows_torch_setting(monkeypatch):
    from ultramem_edu.kernels import value_lookup_triton as kernels

    calls = []
    real = kernels._scatter_sorted
    monkeypatch.setattr(kernels, "_scatter_sorted", lambda *a: calls.append(1) or real(*a))
    values, indices, scores = make_inputs(3, 8, 2, 4, 1, 1)
    values.requires_grad_()
    value_lookup(values, indices, scores, backend="triton").sum().backward()
    assert calls == []
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        value_lookup(values, indices, scores, backend="triton").sum().backward()
    finally:
        torch.use_deterministic_algorithms(deterministic_before)
    assert calls == [1]


def test_gradient_of_values_alone():
    values, indices, scores = make_inputs(5, 8, 2, 6, 1, 1)
    values.requires_grad_()
    out = value_lookup(values, indices, scores, backend="triton")
    (grad_values,) = torch.autograd.grad(out.sum(), (values,))
    want = value_lookup(values, indices, scores, backend="torch")
    torch.testing.assert_close(grad_values, torch.autograd.grad(want.sum(), (values,))[0])


def test_output_dtype_follows_values():
    values, indices, scores = make_inputs(5, 8, 2, 6, 1, 1, dtype=torch.float16)
    assert value_lookup(values, indices, scores, backend="triton").dtype == torch.float16


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"indices": torch.tensor([[0, 10]])}, ValueError, r"indices must lie in \[0, 10\), got values in \[0, 10\]"),
        ({"indices": torch.tensor([[-1, 0]])}, ValueError, "indices must lie in"),
        ({"indices": torch.tensor([[0.0, 1.0]])}, TypeError, "indices must be an int32 or int64"),
        ({"values": torch.ones(5, 4, dtype=torch.int64)}, TypeError, "values must be a floating-point"),
        ({"scores": torch.ones(1, 3)}, ValueError, r"scores must have shape \(B, k\) or \(B, k, h\)"),
        ({"scores": torch.ones(1, 2, 3)}, ValueError, "D_v=4 must be divisible by the number of cores h=3"),
        ({"scores": torch.tensor([[1.0, float("inf")]])}, ValueError, "scores must be finite"),
        ({"num_blocks": 0}, ValueError, "num_blocks must be in"),
        ({"backend": "cuda"}, ValueError, "backend must be one of"),
        ({"deterministic": "yes"}, TypeError, "deterministic must be a bool or None"),
    ],
)
def test_bad_input_raises_before_any_launch(change, error, match):
    kw = {"values": torch.ones(5, 4), "indices": torch.tensor([[0, 9]]), "scores": torch.ones(1, 2),
          "num_blocks": 2, "backend": "triton"}
    kw.update(change)
    with pytest.raises(error, match=match):
        value_lookup(**kw)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter's bfloat16 guard is CPU-only")
def test_bfloat16_is_refused_by_the_interpreter():
    values, indices, scores = make_inputs(5, 8, 2, 6, 1, 1)
    with pytest.raises(TypeError, match="bfloat16"):
        value_lookup(values.bfloat16(), indices, scores, backend="triton")


def test_cpu_tensors_without_interpreter_raise(monkeypatch):
    from ultramem_edu.kernels import value_lookup_triton as kernels

    monkeypatch.setattr(kernels, "INTERPRETED", False)
    values, indices, scores = make_inputs(5, 8, 2, 6, 1, 1, device="cpu")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        value_lookup(values, indices, scores, backend="triton")


def run_python(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_package_works_without_triton():
    # sys.modules[name] = None makes `import triton` fail, as on a host without it.
    result = run_python(
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from ultramem_edu.kernels import value_lookup\n"
        "v, i, s = torch.randn(4, 6), torch.tensor([[0, 3]]), torch.ones(1, 2)\n"
        "assert value_lookup(v, i, s).shape == (1, 1, 6)\n"
        "try:\n"
        "    value_lookup(v, i, s, backend='triton')\n"
        "except RuntimeError as e:\n"
        "    assert 'pip install triton' in str(e), e\n"
        "else:\n"
        "    raise AssertionError('no error')\n"
        "print('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU interpreter path")
def test_interpreter_can_be_enabled_after_importing_the_package():
    # The kernels are decorated on first use, so the variable may be set after the imports.
    result = run_python(
        "import os, torch\n"
        "os.environ.pop('TRITON_INTERPRET', None)\n"
        "from ultramem_edu.kernels import value_lookup\n"
        "os.environ['TRITON_INTERPRET'] = '1'\n"
        "v, i, s = torch.randn(4, 6), torch.tensor([[0, 3, 3]]), torch.rand(1, 3)\n"
        "torch.testing.assert_close(value_lookup(v, i, s, backend='triton'), value_lookup(v, i, s, backend='torch'))\n"
        "print('ok')"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_benchmark_quick_mode_writes_results(tmp_path):
    from ultramem_edu.kernels import bench

    bench.main(["--quick", "--out-dir", str(tmp_path)])
    report = json.loads((tmp_path / "kernel_bench.json").read_text())
    assert "not a performance measurement" in report["meta"]["mode"]
    assert report["meta"]["torch"] == torch.__version__
    rows = report["rows"]
    assert rows and {r["pass"] for r in rows} == {"fwd", "fwd+bwd"}
    assert all(r["max_abs_err"] is not None and r["max_abs_err"] < 1e-4 for r in rows)
    assert (tmp_path / "kernel_bench.csv").read_text().count("\n") == len(rows) + 1
    assert report["meta"]["complete"] and [t["target"] for t in report["meta"]["targets"]] == list(bench.TARGETS)


def test_benchmark_targets_are_judged_on_the_worst_shape():
    def row(passes, frac, bytes_, ebag=None, torch_=None):
        return {"tokens": 1, "k": 1, "d_v": 1, "num_blocks": 1, "cores": 1, "dtype": "bfloat16", "pass": passes,
                "frac_of_copy_bw": frac, "model_bytes": bytes_, "speedup_vs_embedding_bag": ebag,
                "speedup_vs_torch": torch_}
    big = bench.LARGE_BYTES
    rows = [row("fwd", 0.85, big, 1.5, 3.0), row("fwd", 0.75, 2 * big, 1.2, 2.0),
            row("fwd", 0.01, 1000, 0.9, 5.0),                     # decode size: no bandwidth target
            row("fwd+bwd", 0.55, 3 * big, None, 1.1)]
    got = {t["target"]: t for t in bench.evaluate_targets(rows)}
    assert got["fwd_frac_of_copy"]["worst"] == 0.75 and got["fwd_frac_of_copy"]["met"] is False
    assert got["fwd_frac_of_copy"]["shapes"] == 2
    assert got["fwdbwd_frac_of_copy"]["met"] is True
    assert got["speedup_vs_embedding_bag"]["worst"] == 0.9 and got["speedup_vs_embedding_bag"]["met"] is False
    assert got["speedup_vs_torch"]["worst"] == 1.1 and got["speedup_vs_torch"]["met"] is True
    assert bench.evaluate_targets([])[0]["met"] is None


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_cpu_side_step(tmp_path):
    # scripts/gpu_check.sh --dry-run: the GPU check's own logic (steps, budget, summary, packing for the
    # device machine's $OUT) on a CPU, with the benchmarks in --quick form; nothing is measured.
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "GPU_CHECK_BUDGET_S": "300"}
    env.pop("RESULTS_DIR", None)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "DRY RUN" in summary
    for step in ("pytest -m gpu", "kernel benchmark", "decode benchmark"):
        assert re.search(rf"{step}\s+exit 0 ", summary), summary
    assert "speedup_vs_embedding_bag" in summary           # the targets, printed from the saved results
    with tarfile.open(tmp_path / "gpu_cpu-dry-run.tar.gz") as tar:
        names = set(tar.getnames())
    assert {f"cpu-dry-run/{f}" for f in ("kernel_bench.json", "kernel_bench.csv", "bench_decode_quick.json",
                                         "summary.txt", "gpu_check.log")} <= names
    assert "gpu_check: PASSED" in (tmp_path / "gpu_check.log").read_text()


# ---------------------------------------------------------------- GPU only: compiled kernels


@gpu
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("num_blocks, cores", [(1, 1), (4, 2)])
def test_gpu_compiled_matches_reference_on_larger_shapes(num_blocks, cores, dtype):
    values, indices, scores = make_inputs(1000, 200, 512, 160, cores, num_blocks, dtype, device="cuda")
    check_backends(values, indices, scores, num_blocks)


@gpu
@needs_cuda
def test_gpu_deterministic_backward_is_bitwise_repeatable_under_contention():
    # 64 rows for 2**18 hits: heavy atomic contention, where the atomic order does vary.
    values, indices, scores = make_inputs(64, 256, 2048, 128, 2, 2, device="cuda", seed=7)
    grad_out = torch.randn(2048, 2, 256, device="cuda")
    runs = [lookup_and_grads(values, indices, scores, 2, grad_out, backend="triton", deterministic=True)[1]
            for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])
    atomic = lookup_and_grads(values, indices, scores, 2, grad_out, backend="triton", deterministic=False)[1]
    torch.testing.assert_close(atomic, runs[0], rtol=1e-4, atol=1e-3)


@gpu
@needs_cuda
def test_gpu_auto_picks_triton_and_devices_must_match():
    values, indices, scores = make_inputs(5, 8, 2, 6, 1, 1, device="cuda")
    values.requires_grad_()
    out = value_lookup(values, indices, scores)
    assert type(out.grad_fn).__name__ == "ValueLookupFunctionBackward"
    torch.testing.assert_close(out, value_lookup(values, indices, scores, backend="torch"))
    with pytest.raises(ValueError, match="all tensors must be on one device"):
        value_lookup(values, indices, scores.cpu())
