"""Benchmark of the value lookup: Triton vs the torch reference vs F.embedding_bag, against the roofline.

    python -m ultramem_edu.kernels.bench            # CUDA: the full sweep (a few minutes on an H200)
    python -m ultramem_edu.kernels.bench --quick    # anywhere: tiny shapes, a smoke test, NOT a measurement
    python -m ultramem_edu.kernels.bench --summary figures/gpu/<device>/kernel_bench.json   # targets of a run

Roofline. One forward call moves at least

    selected rows   B * k * D_v * bytes(values)     read; the dominant term
    indices         B * k * bytes(index)            read
    scores          B * k * h * bytes(scores)       read
    output          B * E * D_v * bytes(values)     written

and does 2 flops per loaded value element (multiply by the score, add): about 0.5 flop/byte in fp32,
1 in bf16, hundreds of times below a GPU's ridge point. The lookup is bandwidth-bound and its floor
is  time >= bytes / bandwidth  (method.md section 8). Example: 16,384 tokens, k = H*m = 160,
D_v = 768 in bf16 select 16384 * 160 * 768 * 2 B = 4.03 GB, which an H200 (4.8 TB/s nominal) cannot
read in less than 0.84 ms. The bandwidth used here is *measured* in the same run: a large
device-to-device copy (copy GB/s counts bytes read + bytes written), and each row reports the
achieved GB/s (model bytes / median time) and its ratio to that copy bandwidth.

The forward+backward model adds the backward's traffic (atomic variant):

    output gradient, once per bag          B * E * D_v * bytes(values)   (gathered per hit, cached)
    values re-read for d scores            B * k * D_v * bytes(values)
    atomic read-modify-write of d values   2 * B * k * D_v * 4           (fp32 buffer)
    zero-fill of the dense d values        N * D_v * 4   (+ a cast pass N * D_v * (4 + bytes) for half types)
    d scores written                       B * k * h * bytes(scores)

The physical table has N = 2**20 rows (>= 256 MiB, far beyond the 50-60 MB L2 of an H100/H200),
indices are uniform at random, so gathered rows come from HBM; the model counts every hit, an upper
bound when a row is hit twice. Times are medians of ``triton.testing.do_bench``, which zeroes a
256 MB buffer before every repetition (the L2 is flushed; the zeroing is outside the timed events).
Decode-size batches (1 to 64 tokens) are in the sweep too; their times are a few microseconds, set by
launch latency rather than bytes, and the table prints every time in microseconds. Timed: the kernels and
the torch code only; ``api_ms`` adds the public entry point's validation (a min/max over the indices,
which syncs with the host). The torch reference materialises (B, k, D_v) several times; it is skipped
where that would exceed REFERENCE_LIMIT bytes, and F.embedding_bag applies only to E = 1, h = 1.

A forward-only variant is timed next to the forward kernel (``triton_onepass_ms``,
``onepass_speedup``): ``lookup_forward_onepass`` reads each tile of value rows once for all E virtual
blocks, where the default forward makes E passes over the selections with about 1/E of each tile's
rows live per pass. The roofline floor is the same for both; the question for the GPU is whether the
default kernel, with fewer bytes in flight per program at E = 4, is latency-bound (Little's law:
achieved bandwidth = bytes in flight / latency), and whether the one-pass kernel's larger
accumulator costs more than it saves. It is a measurement to make, not a prediction.

Targets (``TARGETS``; printed after the table and stored with the results): at large shapes (at least
LARGE_BYTES of model traffic) the forward reaches 80 % of the measured copy bandwidth and the forward
+ backward 50 %; and the Triton lookup is faster than F.embedding_bag and than the torch composition
(the reference) at every shape where they run, decode sizes included.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .reference import value_lookup_reference
from .value_lookup import triton_available, value_lookup

TABLE_ROWS = 2**20
REFERENCE_LIMIT = 2**33       # bytes of one fp32 (B, k, D_v) intermediate of the torch reference
COPY_BYTES = 2**31            # per buffer for the copy-bandwidth measurement on CUDA
BASELINES = ("torch", "embedding_bag")    # a failure of these is reported, not fatal
QUICK_NOTE = "quick: tiny smoke-test shapes (Triton interpreter on a CPU); not a performance measurement"
LARGE_BYTES = 2**30           # model bytes from which a shape counts as large for the bandwidth targets
TARGETS = {                   # name: (description, threshold)
    "fwd_frac_of_copy": ("forward GB/s / copy GB/s at large shapes, worst case", 0.8),
    "fwdbwd_frac_of_copy": ("forward+backward GB/s / copy GB/s at large shapes, worst case", 0.5),
    "speedup_vs_embedding_bag": ("F.embedding_bag time / Triton time, worst case over all shapes", 1.0),
    "speedup_vs_torch": ("torch composition time / Triton time, worst case over all shapes", 1.0),
}


@dataclass(frozen=True)
class Shape:
    tokens: int
    k: int
    d_v: int
    num_blocks: int
    cores: int
    dtype: torch.dtype


def full_shapes() -> list[Shape]:
    """The sweep: tokens x k x D_v for the plain lookup, then IVE/MCS variants at one size."""
    shapes = [Shape(t, k, d, 1, 1, dtype)
              for dtype in (torch.float32, torch.bfloat16)
              for t in (4096, 16384, 65536) for k in (32, 160) for d in (128, 768)]
    for dtype in (torch.float32, torch.bfloat16):
        shapes.append(Shape(16384, 160, 200, 1, 1, dtype))              # D_v not a power of two
        for d in (768, 200):
            shapes += [Shape(16384, 160, d, e, h, dtype) for e, h in ((4, 1), (1, 2), (4, 2))]
    shapes.append(Shape(16384, 64, 768, 4, 2, torch.bfloat16))
    return shapes + decode_shapes()


def decode_shapes() -> list[Shape]:
    """Decode-step batches: a few tokens per step, where launch latency, not bytes, sets the time."""
    return [Shape(t, 160, 768, e, h, dtype)
            for dtype in (torch.float32, torch.bfloat16) for t in (1, 8, 64) for e, h in ((1, 1), (4, 2))]


def quick_shapes() -> list[Shape]:
    return [Shape(4, 8, 24, 1, 1, torch.float32), Shape(4, 8, 24, 2, 2, torch.float32)]


def model_bytes(shape: Shape, n: int, backward: bool) -> int:
    """Bytes the lookup must move (the roofline model of the module docstring)."""
    b, k, d, e, h = shape.tokens, shape.k, shape.d_v, shape.num_blocks, shape.cores
    size = torch.tensor([], dtype=shape.dtype).element_size()
    hits = b * k
    fwd = hits * d * size + hits * 8 + hits * h * size + b * e * d * size
    if not backward:
        return fwd
    cast = n * d * (4 + size) if size < 4 else 0
    bwd = b * e * d * size + hits * d * size + 2 * hits * d * 4 + n * d * 4 + cast + hits * h * size
    return fwd + bwd


def conflict_stats(indices: torch.Tensor, n: int) -> dict:
    """How the B*k hits of ``indices`` (B, k) fall on the N physical rows: the scatter's conflicts."""
    rows = (indices.reshape(-1).long() % n)
    counts = torch.bincount(rows, minlength=n)
    hit = counts[counts > 0]
    return {"hits": rows.numel(), "distinct_rows": hit.numel(), "max_hits_per_row": int(hit.max()) if hit.numel() else 0,
            "mean_hits_per_touched_row": rows.numel() / max(hit.numel(), 1)}


def backward_programs(shape: Shape, distinct_rows: int) -> dict:
    """Programs each backward launches (the launchers' grids): the atomic kernel, and the sorted path's
    two kernels (d scores, then one program per distinct row, core and column tile for d values)."""
    from .value_lookup_triton import BLOCK_K, _block_d

    s = shape.d_v // shape.cores
    tiles = -(-s // _block_d(s))
    per_bag = shape.tokens * -(-shape.k // BLOCK_K) * shape.cores
    return {"atomic": per_bag, "sorted_scores": per_bag, "sorted_values": distinct_rows * shape.cores * tiles}


def backward_value_bytes(shape: Shape, n: int, distinct_rows: int) -> dict:
    """Model bytes of the value gradient, per strategy and term (the d-scores part is common to both).

    atomic: zero-fill of the fp32 buffer, a read-modify-write of a row slice in fp32 per hit (an upper
    bound: hits on a row still in L2 cost less), the output gradient gathered per hit, and for half
    types a cast pass over the dense buffer. sorted (reverse indices): the stable sort of the B*k row
    numbers (counted as one read and one write of 8-byte keys and 8-byte positions; a radix sort makes
    a few such passes), the permuted hit arrays (bag, block, h scores) written and read, the output
    gradient gathered per hit, the zero-fill of the dense result, and one store per distinct row.
    """
    size = torch.tensor([], dtype=shape.dtype).element_size()
    hits, d, h = shape.tokens * shape.k, shape.d_v, shape.cores
    return {
        "atomic": {"zero-fill": n * d * 4, "read-modify-write": 2 * hits * d * 4, "gather grad_out": hits * d * size,
                   "cast to dtype": n * d * (4 + size) if size < 4 else 0},
        "sorted": {"sort": 2 * hits * 16, "hit arrays": 2 * hits * (16 + h * size), "gather grad_out": hits * d * size,
                   "zero-fill": n * d * size, "store rows": distinct_rows * d * size},
    }


def make_timer(cuda: bool, repeats: int = 3):
    """Median milliseconds of fn(): triton.testing.do_bench on CUDA, else a wall clock over ``repeats`` runs.

    bench_shape calls fn once for its result before timing it, which serves as the warm-up.
    """
    if cuda:
        import triton.testing

        return lambda fn: triton.testing.do_bench(fn, warmup=5, rep=25, return_mode="median")

    def wall_clock(fn):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    return wall_clock


def copy_bandwidth_gbps(device: str, timer) -> float:
    """Device-to-device copy GB/s (read + write), the practical bandwidth ceiling."""
    nbytes = COPY_BYTES if device == "cuda" else 2**26
    src = torch.empty(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return 2 * nbytes / (ms * 1e-3) / 1e9


def bench_shape(shape: Shape, n: int, device: str, timer, use_triton: bool) -> list[dict]:
    """Forward and forward+backward timings of every applicable backend for one shape."""
    g = torch.Generator(device=device).manual_seed(0)
    values = torch.randn(n, shape.d_v, device=device, generator=g).to(shape.dtype).requires_grad_()
    indices = torch.randint(0, shape.num_blocks * n, (shape.tokens, shape.k), device=device, generator=g)
    scores = torch.rand(shape.tokens, shape.k, shape.cores, device=device, generator=g)
    scores = scores.to(shape.dtype).requires_grad_()
    grad_out = torch.randn(shape.tokens, shape.num_blocks, shape.d_v, device=device, generator=g).to(shape.dtype)
    leaves = (values, scores)

    backends = {}
    if use_triton:
        from . import value_lookup_triton as kernels

        backends["triton"] = lambda: kernels.value_lookup_triton(values, indices, scores, shape.num_blocks, False)
        backends["triton_det"] = lambda: kernels.value_lookup_triton(values, indices, scores, shape.num_blocks, True)
        backends["triton_onepass"] = lambda: kernels.lookup_forward_onepass(
            values.detach(), indices, scores.detach(), shape.num_blocks)
        backends["api"] = lambda: value_lookup(values, indices, scores, shape.num_blocks, backend="triton")
    if shape.tokens * shape.k * shape.d_v * 4 <= REFERENCE_LIMIT:
        backends["torch"] = lambda: value_lookup_reference(values, indices, scores, shape.num_blocks)
    if shape.num_blocks == 1 and shape.cores == 1:
        backends["embedding_bag"] = lambda: F.embedding_bag(
            indices, values, mode="sum", per_sample_weights=scores[..., 0]).unsqueeze(1)

    rows = []
    for pass_name in ("fwd", "fwd+bwd"):
        backward = pass_name == "fwd+bwd"
        ms, results = {}, {}
        for name, fn in backends.items():
            if (name == "triton_det" and not backward) or (name == "triton_onepass" and backward):
                continue
            if backward:
                def step(fn=fn):
                    return torch.autograd.grad(fn(), leaves, grad_out)
            else:
                def step(fn=fn):
                    with torch.no_grad():
                        return (fn(),)
            try:
                results[name] = step()
                ms[name] = timer(step)
            except RuntimeError as e:   # out of memory or an unsupported dtype in a baseline
                if name not in BASELINES:
                    raise
                print(f"# {name} skipped for {shape} {pass_name}: {str(e).splitlines()[0]}", flush=True)
        if device == "cuda":
            torch.cuda.synchronize()
        nbytes = model_bytes(shape, n, backward)
        base = "torch" if "torch" in results else "embedding_bag" if "embedding_bag" in results else None
        err = None
        if "triton" in results and base is not None:
            err = max(float((a.float() - b.float()).abs().max()) for a, b in zip(results["triton"], results[base]))
        onepass_err = None
        if "triton_onepass" in results and base is not None:
            onepass_err = float((results["triton_onepass"][0].float() - results[base][0].float()).abs().max())
        t, t1 = ms.get("triton"), ms.get("triton_onepass")
        rows.append({
            "tokens": shape.tokens, "k": shape.k, "d_v": shape.d_v, "num_blocks": shape.num_blocks,
            "cores": shape.cores, "dtype": str(shape.dtype).removeprefix("torch."), "pass": pass_name,
            "table_rows": n, "model_bytes": nbytes,
            "triton_ms": t, "triton_deterministic_ms": ms.get("triton_det"), "api_ms": ms.get("api"),
            "torch_ms": ms.get("torch"), "embedding_bag_ms": ms.get("embedding_bag"),
            "triton_GBps": nbytes / (t * 1e-3) / 1e9 if t else None,
            "speedup_vs_torch": ms["torch"] / t if t and "torch" in ms else None,
            "speedup_vs_embedding_bag": ms["embedding_bag"] / t if t and "embedding_bag" in ms else None,
            "max_abs_err": err, "error_vs": base,
            "triton_onepass_ms": t1, "onepass_speedup": t / t1 if t and t1 else None,
            "onepass_max_abs_err": onepass_err,
        })
    return rows


def _fmt(v, spec):
    width = int(spec.split(".")[0])
    return f"{'-':>{width}}" if v is None else format(v, spec)


def _us(ms):
    return None if ms is None else ms * 1e3


def print_row(r: dict) -> None:
    print(f"{r['tokens']:>6} {r['k']:>4} {r['d_v']:>4} {r['num_blocks']:>2} {r['cores']:>2} {r['dtype']:>8} "
          f"{r['pass']:>7} {_fmt(_us(r['triton_ms']), '9.1f')} {_fmt(_us(r['torch_ms']), '9.1f')} "
          f"{_fmt(_us(r['embedding_bag_ms']), '9.1f')} {_fmt(r['triton_GBps'], '8.0f')} "
          f"{_fmt(r['frac_of_copy_bw'], '5.2f')} {_fmt(r['speedup_vs_torch'], '6.1f')} "
          f"{_fmt(r['speedup_vs_embedding_bag'], '6.1f')} {_fmt(r['max_abs_err'], '8.1e')} "
          f"{_fmt(r['onepass_speedup'], '6.2f')}", flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes; runs on a CPU; not a measurement")
    parser.add_argument("--out-dir", default="figures", help="where kernel_bench.json/.csv go")
    parser.add_argument("--summary", metavar="JSON", help="only print the targets of a saved kernel_bench.json")
    args = parser.parse_args(argv)
    if args.summary:
        data = json.loads(Path(args.summary).read_text())
        print(f"# {args.summary}: {data['meta']['device']} ({data['meta']['mode']}), "
              f"{len(data['rows'])} rows, copy bandwidth {data['meta']['copy_bandwidth_GBps']:.0f} GB/s")
        targets = evaluate_targets(data["rows"])
        print_targets(targets, quick=data["meta"]["mode"] == QUICK_NOTE)
        return targets

    cuda = torch.cuda.is_available()
    if not args.quick and not cuda:
        parser.error("the full benchmark needs a CUDA device; use --quick for a CPU smoke test")
    device = "cuda" if cuda else "cpu"
    if not cuda:
        # Must precede the kernels' first import (decoration); a no-op if already imported.
        os.environ.setdefault("TRITON_INTERPRET", "1")
    use_triton = triton_available()
    if use_triton and not cuda:
        from . import value_lookup_triton as kernels

        use_triton = kernels.INTERPRETED
    shapes, n = (quick_shapes(), 64) if args.quick else (full_shapes(), TABLE_ROWS)
    timer = make_timer(cuda, repeats=1 if args.quick else 3)
    copy_gbps = copy_bandwidth_gbps(device, timer)

    meta = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "triton": __import__("triton").__version__ if triton_available() else None,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "mode": QUICK_NOTE if args.quick else "full: CUDA, triton.testing.do_bench medians",
        "triton_measured": use_triton,
        "copy_bandwidth_GBps": copy_gbps,
        "table_rows": n,
    }
    print(f"# value lookup benchmark on {meta['device']} ({meta['mode']})")
    print(f"# torch {meta['torch']}, triton {meta['triton']}; copy bandwidth {copy_gbps:.0f} GB/s (read+write)")
    print(f"{'tokens':>6} {'k':>4} {'D_v':>4} {'E':>2} {'h':>2} {'dtype':>8} {'pass':>7} {'triton us':>9} "
          f"{'torch us':>9} {'ebag us':>9} {'GB/s':>8} {'/copy':>5} {'xtorch':>6} {'xebag':>6} {'max err':>8} "
          f"{'x1pass':>6}")
    rows = []
    out = Path(args.out_dir)
    for i, shape in enumerate(shapes):
        for r in bench_shape(shape, n, device, timer, use_triton):
            r["frac_of_copy_bw"] = r["triton_GBps"] / copy_gbps if r["triton_GBps"] else None
            print_row(r)
            rows.append(r)
        if cuda:
            torch.cuda.empty_cache()
        meta["complete"] = i == len(shapes) - 1
        write_results(out, meta, rows)      # after every shape: a run cut short keeps what it measured
    print(f"# wrote {out / 'kernel_bench.json'} and {out / 'kernel_bench.csv'}")
    print_targets(meta["targets"], quick=args.quick)
    return rows


def evaluate_targets(rows: list[dict]) -> list[dict]:
    """The TARGETS on these rows: observed worst case, threshold, pass (None where nothing applies)."""
    large = [r for r in rows if r["model_bytes"] >= LARGE_BYTES and r["frac_of_copy_bw"] is not None]
    observed = {
        "fwd_frac_of_copy": [(r["frac_of_copy_bw"], r) for r in large if r["pass"] == "fwd"],
        "fwdbwd_frac_of_copy": [(r["frac_of_copy_bw"], r) for r in large if r["pass"] == "fwd+bwd"],
        "speedup_vs_embedding_bag": [(r["speedup_vs_embedding_bag"], r) for r in rows
                                     if r["speedup_vs_embedding_bag"] is not None],
        "speedup_vs_torch": [(r["speedup_vs_torch"], r) for r in rows if r["speedup_vs_torch"] is not None],
    }
    out = []
    for name, (what, threshold) in TARGETS.items():
        worst = min(observed[name], key=lambda x: x[0], default=None)
        out.append({
            "target": name, "description": what, "threshold": threshold, "shapes": len(observed[name]),
            "worst": worst[0] if worst else None,
            "worst_at": None if worst is None else
            f"{worst[1]['tokens']}x{worst[1]['k']}x{worst[1]['d_v']} E{worst[1]['num_blocks']} "
            f"h{worst[1]['cores']} {worst[1]['dtype']} {worst[1]['pass']}",
            "met": None if worst is None else worst[0] >= threshold,
        })
    return out


def print_targets(targets: list[dict], quick: bool = False) -> None:
    print("# targets (worst case over the shapes each applies to)"
          + (": QUICK MODE, interpreted on a CPU, the verdicts mean nothing" if quick else ":"))
    for t in targets:
        verdict = "n/a" if t["met"] is None else "MET" if t["met"] else "MISSED"
        worst = "-" if t["worst"] is None else f"{t['worst']:.2f} at {t['worst_at']}"
        print(f"#   {t['target']:<25} >= {t['threshold']:<4} {verdict:<7} {worst}  ({t['shapes']} shapes)")


def write_results(out: Path, meta: dict, rows: list[dict]) -> None:
    """kernel_bench.json ({"meta" with the targets, "rows"}) and kernel_bench.csv into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    meta["targets"] = evaluate_targets(rows)
    (out / "kernel_bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    with open(out / "kernel_bench.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
