"""Decode-step latency of a dense FFN, a top-2 MoE FFN and UltraMem, against the bytes each one reads.

    python -m ultramem_edu.benchmarks decode            # full sweep, B = 1 … 4096 (about 2 minutes, 1 CPU thread)
    python -m ultramem_edu.benchmarks decode --quick    # tiny shapes: a smoke test, NOT a measurement

At decode time every sequence in the batch contributes one token per step, so a step processes
``B`` tokens of width D, and the weights that step reads are the cost that differs between the
models (method.md §8; :mod:`ultramem_edu.cost`). What is timed is the part of a block that differs
between the paper's models — the FFN slot:

* ``dense``           :class:`~ultramem_edu.moe.DenseFFN`, D → 4D → D;
* ``moe``             :class:`~ultramem_edu.moe.MoEFFN`, top-2 of ``n_experts`` experts of width 2D;
* ``ultramem``        a narrowed dense FFN plus an :class:`~ultramem_edu.layer.UltraMemLayer`
                      (the UltraMem model keeps a dense FFN and trades part of its width for the
                      memory, as the paper's 1.6B models do — :func:`ultramem_edu.cost.paper_1p6b_configs`);
* ``ultramem_layer``  the memory layer alone.

Two matchings, in one run:

(a) **compute**: ``dense``, ``moe`` and ``ultramem`` activate the same parameters per token (within
    about 1 %): the FFN width of ``ultramem`` is chosen for that. Its memory is sized so that its total
    parameters also equal the MoE's — the paper's "same computation, same parameters" (Fig. 1).
(b) **params**: ``ultramem_layer`` alone has the MoE's total parameters (the value table fills the
    budget); it activates far fewer parameters per token than the MoE.

Per batch size every model runs once per repetition in a rotating order (``interleaved_medians``);
the medians, their ratios and tokens/s are reported. Alongside, the bytes each step *actually*
touches are counted from the step's own routing: distinct experts × expert bytes + router for the
MoE; every non-value parameter (query, norms, keys, cores, output projection) + distinct physical
value rows × D_v × bytes for UltraMem; every weight for the dense FFN. The matching analytic
numbers come from :mod:`ultramem_edu.cost` specs built from the same module configs.

Inputs are standard normal and the modules freshly initialised, so routing is close to the
uniform selection the cost model assumes; trained routers are skewed and touch fewer experts/rows.
On a CPU, weights larger than the last-level cache come from DRAM on every step only because the
four models run interleaved and evict each other; a model that fits in cache would look cheaper
than its bytes say. Everything runs in float32 (bytes_per_param = 4).
"""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .. import cost
from ..layer import UltraMemConfig, UltraMemLayer
from ..moe import DenseFFN, DenseFFNConfig, MoEConfig, MoEFFN, activated_parameters_per_token, num_parameters
from . import Timer, interleaved_medians, metadata, resolve_device, set_threads, write_results

__all__ = [
    "DecodeConfig",
    "UltraMemBlock",
    "size_ultramem",
    "build_models",
    "spec_for",
    "distinct_physical_rows",
    "touched_bytes",
    "run",
    "main",
]

MODELS = ("dense", "moe", "ultramem", "ultramem_layer")
FULL_BATCHES = tuple(2**i for i in range(0, 13))          # 1 … 4096
QUICK_BATCHES = (1, 16, 256)


@dataclass(frozen=True)
class DecodeConfig:
    """Sizes of the benchmark's modules (float32).

    Attributes:
        d_model: D.
        n_experts, top_k: the MoE (experts of width 2·D, so top-2 costs one 4·D dense FFN).
        key_dim, num_heads, topm, expansion, tucker_rank, num_cores: the UltraMem layer (D_v = D/2);
            the number of values is derived (see :func:`size_ultramem`).
        batch_sizes: B values of the sweep (tokens per decode step).
    """

    d_model: int = 512
    n_experts: int = 16
    top_k: int = 2
    key_dim: int = 64
    num_heads: int = 2
    topm: int = 16
    expansion: int = 4
    tucker_rank: int = 2
    num_cores: int = 2
    batch_sizes: tuple[int, ...] = FULL_BATCHES
    seed: int = 0

    @classmethod
    def quick(cls) -> "DecodeConfig":
        return cls(d_model=64, n_experts=8, key_dim=16, topm=8, batch_sizes=QUICK_BATCHES)


class UltraMemBlock(nn.Module):
    """The UltraMem model's FFN slot: a (narrowed) dense FFN plus a memory layer reading the same x.

    This is the skip-layer wiring with i == j (memory in parallel with the FFN of one block).
    """

    def __init__(self, ffn: DenseFFN, memory: UltraMemLayer):
        super().__init__()
        self.ffn, self.memory = ffn, memory

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(x) + self.memory(x).output


def _memory_counts(cfg: DecodeConfig, num_values: int) -> tuple[int, int]:
    """(total, activated per token) parameters of our UltraMemLayer with ``num_values`` rows.

    Mirrors the layer's parameters (query Linear with bias, query/key LayerNorm weights, keys,
    Tucker cores, values, output projection); :func:`build_models` checks it against the module.
    """
    d, dk, h, r, e = cfg.d_model, cfg.key_dim, cfg.num_heads, cfg.tucker_rank, cfg.expansion
    dv = d // 2
    n_side = math.isqrt(e * num_values)
    others = (d * 2 * dk + 2 * dk) + 2 * dk + 2 * h * r * n_side * dk + h * cfg.num_cores * r * r + e * dv * d
    return others + num_values * dv, others + h * cfg.topm * dv


def _square_values(n: float) -> int:
    """Nearest N = k² >= 1 (our layer needs N and E·N perfect squares; E is 1, 4, 9, …)."""
    return max(1, round(math.sqrt(max(n, 1.0)))) ** 2


def size_ultramem(cfg: DecodeConfig) -> dict[str, int]:
    """Sizes that realise the two matchings against the MoE.

    Returns {"ffn_hidden", "num_values_compute", "num_values_params"}: the narrowed FFN width and
    the value count of (a) and the value count of (b) (see the module docstring).
    """
    d, hidden_e = cfg.d_model, 2 * cfg.d_model
    expert = 2 * d * hidden_e + hidden_e + d
    moe_total = d * cfg.n_experts + cfg.n_experts * expert
    moe_active = d * cfg.n_experts + cfg.top_k * expert
    per_hidden = 2 * d + 1                                    # one FFN hidden unit: two weights + bias
    num_values = _square_values(moe_total / (d // 2))
    ffn_hidden = 1
    for _ in range(6):                                        # fixed point: keys grow with sqrt(N)
        _, mem_active = _memory_counts(cfg, num_values)
        ffn_hidden = max(1, round((moe_active - mem_active - d) / per_hidden))
        mem_total_needed = moe_total - (per_hidden * ffn_hidden + d)
        others = _memory_counts(cfg, num_values)[0] - num_values * (d // 2)
        num_values = _square_values((mem_total_needed - others) / (d // 2))
    num_values_params = _square_values(moe_total / (d // 2))
    for _ in range(6):
        others = _memory_counts(cfg, num_values_params)[0] - num_values_params * (d // 2)
        num_values_params = _square_values((moe_total - others) / (d // 2))
    return {"ffn_hidden": ffn_hidden, "num_values_compute": num_values, "num_values_params": num_values_params}


def _memory_config(cfg: DecodeConfig, num_values: int) -> UltraMemConfig:
    return UltraMemConfig(
        d_model=cfg.d_model, num_values=num_values, key_dim=cfg.key_dim, num_heads=cfg.num_heads,
        topm=cfg.topm, expansion=cfg.expansion, tucker_rank=cfg.tucker_rank, num_cores=cfg.num_cores,
        num_layers=4, init_samples=256,
    )


def build_models(cfg: DecodeConfig, device: torch.device) -> dict[str, nn.Module]:
    """The four modules of the benchmark, seeded, in eval mode, on ``device`` (float32)."""
    sizes = size_ultramem(cfg)
    torch.manual_seed(cfg.seed)
    models = {
        "dense": DenseFFN(DenseFFNConfig(cfg.d_model)),
        "moe": MoEFFN(MoEConfig(cfg.d_model, n_experts=cfg.n_experts, top_k=cfg.top_k)),
        "ultramem": UltraMemBlock(
            DenseFFN(DenseFFNConfig(cfg.d_model, sizes["ffn_hidden"])),
            UltraMemLayer(_memory_config(cfg, sizes["num_values_compute"])),
        ),
        "ultramem_layer": UltraMemLayer(_memory_config(cfg, sizes["num_values_params"])),
    }
    for name, layer in (("ultramem", models["ultramem"].memory), ("ultramem_layer", models["ultramem_layer"])):
        total, active = _memory_counts(cfg, layer.config.num_values)
        if (total, active) != (num_parameters(layer), layer.activated_parameters_per_token()):
            raise RuntimeError(f"{name}: the benchmark's parameter count no longer matches UltraMemLayer; "
                               "update _memory_counts")
    return {name: m.to(device).eval() for name, m in models.items()}


def spec_for(module: nn.Module, bytes_per_param: int = 4) -> list:
    """The :mod:`ultramem_edu.cost` specs of a benchmark module, built from its config (a list: a
    block gives its FFN and its memory)."""
    if isinstance(module, DenseFFN):
        return [cost.DenseFFNSpec(module.config.d_model, module.config.hidden, bytes_per_param)]
    if isinstance(module, MoEFFN):
        c = module.config
        return [cost.MoESpec(c.d_model, c.expert_hidden, c.n_experts, c.top_k, bytes_per_param)]
    if isinstance(module, UltraMemLayer):
        c = module.config
        return [cost.UltraMemSpec(
            d_model=c.d_model, num_values=c.num_values, value_dim=c.value_dim, key_dim=c.key_dim,
            num_heads=c.num_heads, top_m=c.topm, expansion=c.expansion, tucker_rank=c.tucker_rank or 1,
            num_cores=c.num_cores, bytes_per_param=bytes_per_param,
        )]
    if isinstance(module, UltraMemBlock):
        return spec_for(module.ffn, bytes_per_param) + spec_for(module.memory, bytes_per_param)
    raise TypeError(f"no cost spec for {type(module).__name__}")


def distinct_physical_rows(indices: torch.Tensor, shuffle: torch.Tensor | None, num_values: int) -> int:
    """Distinct physical value rows behind grid addresses ``indices`` (any shape).

    IVE: grid address → ``shuffle`` → virtual address v, physical row v mod N (block v div N).
    """
    virtual = shuffle[indices] if shuffle is not None else indices
    return int(torch.unique(virtual.reshape(-1) % num_values).numel())


def _bytes(module: nn.Module, exclude: tuple[torch.Tensor, ...] = ()) -> int:
    skip = {id(p) for p in exclude}
    return sum(p.numel() * p.element_size() for p in module.parameters() if id(p) not in skip)


@torch.inference_mode()
def touched_bytes(module: nn.Module, x: torch.Tensor) -> dict:
    """Bytes of weights one decode step of ``x`` (B, D) reads, counted from its own routing.

    Returns {"bytes", "distinct_experts" or "distinct_rows" (None where it does not apply)}. Each
    touched weight counts once (perfect reuse within the step), biases and norm weights included.
    """
    if isinstance(module, DenseFFN):
        return {"bytes": _bytes(module), "distinct_experts": None, "distinct_rows": None}
    if isinstance(module, MoEFFN):
        used = torch.unique(module.route(x.reshape(-1, module.config.d_model)).experts).tolist()
        nbytes = _bytes(module.router) + sum(_bytes(module.experts[i]) for i in used)
        return {"bytes": nbytes, "distinct_experts": len(used), "distinct_rows": None}
    if isinstance(module, UltraMemLayer):
        out = module(x)
        rows = distinct_physical_rows(out.indices, module.shuffle, module.config.num_values)
        v = module.values
        nbytes = _bytes(module, exclude=(v,)) + rows * v.shape[1] * v.element_size()
        return {"bytes": nbytes, "distinct_experts": None, "distinct_rows": rows}
    if isinstance(module, UltraMemBlock):
        mem = touched_bytes(module.memory, x)
        return {**mem, "bytes": _bytes(module.ffn) + mem["bytes"]}
    raise TypeError(f"cannot count the bytes of {type(module).__name__}")


def _call(module: nn.Module, x: torch.Tensor):
    def fn():
        with torch.inference_mode():
            return module(x)
    return fn


def run(cfg: DecodeConfig, device: torch.device, threads: int, min_reps: int, max_reps: int,
        budget_s: float) -> tuple[dict, list[dict], list[dict]]:
    """Build, count and time; returns (module summary, per-model rows, per-batch ratio rows)."""
    set_threads(threads)
    models = build_models(cfg, device)
    timer = Timer(device)
    summary = {}
    for name, m in models.items():
        summary[name] = {
            "total_params": num_parameters(m),
            "activated_params_per_token": activated_parameters_per_token(m),
            "weight_bytes": _bytes(m),
            "specs": [asdict(s) for s in spec_for(m)],
        }
        if isinstance(m, UltraMemLayer) or isinstance(m, UltraMemBlock):
            layer = m if isinstance(m, UltraMemLayer) else m.memory
            summary[name]["num_values"] = layer.config.num_values
        if isinstance(m, UltraMemBlock):
            summary[name]["ffn_hidden"] = m.ffn.config.hidden

    rows, ratios = [], []
    g = torch.Generator().manual_seed(cfg.seed + 1)
    for b in cfg.batch_sizes:
        x = torch.randn(b, cfg.d_model, generator=g).to(device)
        stats = interleaved_medians({n: _call(m, x) for n, m in models.items()}, timer, min_reps, max_reps, budget_s)
        by_name = {}
        for name, m in models.items():
            touched = touched_bytes(m, x)
            specs = spec_for(m)
            expected = sum(float(s.bytes_read(b, "expected")) for s in specs)
            worst = sum(float(s.bytes_read(b, "worst")) for s in specs)
            s = stats[name]
            row = {
                "model": name, "batch_size": b, **s,
                "tokens_per_s": b / (s["median_ms"] * 1e-3),
                "touched_bytes": touched["bytes"],
                "distinct_experts": touched["distinct_experts"], "distinct_rows": touched["distinct_rows"],
                "modelled_bytes_expected": expected, "modelled_bytes_worst": worst,
                "touched_GBps": touched["bytes"] / (s["median_ms"] * 1e-3) / 1e9,
            }
            if isinstance(m, MoEFFN):
                row["modelled_distinct_experts"] = float(specs[0].experts_touched(b))
            elif specs[-1].__class__ is cost.UltraMemSpec:
                row["modelled_distinct_rows"] = float(specs[-1].rows_touched(b))
            rows.append(row)
            by_name[name] = row
        pairs = (("moe", "ultramem"), ("moe", "dense"), ("ultramem", "dense"), ("moe", "ultramem_layer"))
        for num, den in pairs:
            a, c = by_name[num], by_name[den]
            ratios.append({
                "batch_size": b, "ratio": f"{num}/{den}",
                "latency_ratio": a["median_ms"] / c["median_ms"],
                "touched_bytes_ratio": a["touched_bytes"] / c["touched_bytes"],
                "modelled_bytes_ratio": a["modelled_bytes_expected"] / c["modelled_bytes_expected"],
            })
        print(f"B={b:5d}  " + "  ".join(f"{n} {by_name[n]['median_ms']:8.3f} ms" for n in models), flush=True)
    return summary, rows, ratios


NOTES = [
    "Timed: one forward of the FFN slot per decode step, B tokens (one per sequence), inference_mode, float32.",
    "Models run interleaved (rotating order, one call each per repetition); median, quartiles over repetitions.",
    "(a) compute matching: dense, moe and ultramem (narrowed dense FFN + UltraMem layer) activate the same "
    "parameters per token; ultramem's value table is sized so that its total parameters equal the MoE's.",
    "(b) parameter matching: ultramem_layer alone has the MoE's total parameters.",
    "touched_bytes: weights the step reads, counted from its own routing (distinct experts; distinct physical "
    "value rows x D_v plus every non-value parameter); biases and norm weights included.",
    "modelled_bytes_*: ultramem_edu.cost specs built from the module configs (uniform independent selection; "
    "no biases or norm weights).",
    "Fresh modules and standard-normal inputs: routing is close to uniform. Trained routers are skewed.",
    "On a CPU the weights of each model exceed the last-level cache and are evicted by the other models between "
    "calls; per-call Python and small-op overheads are part of the latency (they dominate at small B on a CPU).",
]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m ultramem_edu.benchmarks decode", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions: a smoke test")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="override the sweep")
    p.add_argument("--budget-s", type=float, default=None, help="seconds of timing per batch size")
    args = p.parse_args(argv)

    cfg = DecodeConfig.quick() if args.quick else DecodeConfig()
    if args.batch_sizes:
        cfg = DecodeConfig(**{**asdict(cfg), "batch_sizes": tuple(args.batch_sizes)})
    device = resolve_device(args.device)
    budget = args.budget_s if args.budget_s is not None else (0.05 if args.quick else 8.0)
    min_reps, max_reps = (3, 5) if args.quick else (7, 301)
    threads = set_threads(args.threads)
    summary, rows, ratios = run(cfg, device, threads, min_reps, max_reps, budget)
    meta = metadata(device, threads, {
        "benchmark": "decode", "quick": args.quick, "dtype": "float32", "bytes_per_param": 4,
        "config": asdict(cfg), "min_reps": min_reps, "max_reps": max_reps, "budget_s_per_batch": budget,
    })
    notes = list(NOTES)
    if args.quick:
        notes.insert(0, "QUICK MODE: tiny shapes and few repetitions; a smoke test, not a measurement.")
    stem = "bench_decode_quick" if args.quick else "bench_decode"
    json_path, csv_path = write_results(args.out, stem, meta, rows, ratios=ratios, models=summary, notes=notes)
    print(f"wrote {json_path} and {csv_path}")
    return {"metadata": meta, "rows": rows, "ratios": ratios, "models": summary, "notes": notes}
