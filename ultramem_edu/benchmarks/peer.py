"""Our UltraMemLayer against the unofficial ``ultra-mem`` package (PyPI, lucidrains), side by side.

    python -m ultramem_edu.benchmarks peer            # forward, forward+backward, peak memory (CPU, ~1 min)
    python -m ultramem_edu.benchmarks peer --quick    # tiny shapes: a smoke test, NOT a measurement

Install the peer without letting it touch torch:
``pip install --no-deps ultra-mem==0.1.2 einops==0.8.2 einx==0.4.3 frozendict==2.5.1``. Without it
the benchmark still times our layer and records ``"peer": {"skipped": reason}``.

Matched configuration (what can be matched; the rest is listed in :data:`DEPARTURES`):

    ours                                   ultra-mem 0.1.2
    d_model D                              dim D
    num_values N (physical rows)           num_memories E·N (the virtual grid), tables of N rows per core
    value_dim D_v, split over h = 2 cores  dim_values D_v/2 per core, core_heads = 2 tables
    num_heads H = 1 (one key set/side)     one key set per side (the package has no per-head keys)
    key_dim D_k, tucker_rank 2, E = 4      dim_queries_keys D_k, core_rank 2, value_expansion 4
    topm m                                 topk m
    query_conv_kernel 0, no pre-norm       pre_query_causal_conv=False, prenorm=False
    improved init for L = 4                layers_for_mem_init = 4

Both then hold the same value parameters (N·D_v) and keys and read m·D_v value floats per token;
the package makes one selection per core (2 top-m searches), we make one shared selection.

Timing: forward in eval mode under ``torch.inference_mode``; forward+backward in train mode with a
fixed upstream gradient (plus the auxiliary loss each returns), gradients cleared between calls.
The two run interleaved (:func:`~ultramem_edu.benchmarks.interleaved_medians`). Peak memory: bytes
of tensors allocated and not yet freed inside the call (:class:`~ultramem_edu.benchmarks.PeakTensorMemory`),
parameters excluded. :func:`audit_peer` checks the departures that can be measured, numerically.
"""
from __future__ import annotations

import argparse
import importlib.metadata as md
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layer import UltraMemConfig, UltraMemLayer
from ..moe import num_parameters
from . import PeakTensorMemory, Timer, interleaved_medians, metadata, resolve_device, set_threads, write_results

__all__ = ["PeerConfig", "load_peer", "build_pair", "audit_peer", "profile_forward", "run", "main", "DEPARTURES"]

PEER_PIN = "ultra-mem==0.1.2"
PEER_INSTALL = "pip install --no-deps ultra-mem==0.1.2 einops==0.8.2 einx==0.4.3 frozendict==2.5.1"

# Read from the package source (ultra_mem/ultra_mem.py, version 0.1.2); [measured] ones are checked
# numerically by audit_peer and their results stored next to these notes.
DEPARTURES = [
    "Key LayerNorm is dead code: `keys = self.key_ln(keys)` is computed but the score einsum uses "
    "`self.keys`, so keys are never normalised (paper: LayerNorm on query and keys). [measured: key_layernorm_unused]",
    "IVE pooling overwrites instead of summing: `zeros(...).scatter(-2, expert_indices, scaled_memories)` keeps "
    "one of the selected rows per virtual block (m selections, E blocks) instead of their weighted sum "
    "(needs scatter_add / index_add). [measured: ive_pooling_overwrites]",
    "The value learning-rate multiplier is applied with the wrong sign: `scale_gradient` returns "
    "t.detach() - t*s + (t*s).detach(), whose gradient is -s, so in training the memories receive -10x their "
    "gradient (gradient ascent). [measured: memory_gradient_sign]",
    "The decay of that multiplier is wrong: slope = (1 - 10)/(T - step) with `step` in the denominator gives 1x "
    "at T/2 and large negative multipliers between T/2 and T (paper: linear 10x -> 1x over T). "
    "[measured: lr_multiplier]",
    "MCS: each core makes its own top-m selection with its own core's rank-1 vectors and rescoring "
    "(h independent searches); the paper selects once with the summed core and lets each core weight its "
    "own value slice. [measured: cores_select_independently]",
    "IVE: virtual address v maps to physical row v // E, so the E copies of a physical row are E adjacent "
    "columns of one grid row, and only the block assignment is permuted (per row); the paper shuffles all "
    "virtual addresses to remove that topology. [measured: ive_copies_adjacent]",
    "One query of width D_k is used for both the row and the column keys (paper and ours: separate row and "
    "column halves, Linear(D -> 2·D_k)).",
    "Keys are shared by the cores/heads (keys (2, r, n, D_k)); there is no multi-head retrieval with per-head "
    "keys (released code and ours: keys per head).",
    "Scores pass through ReLU (Csordás et al.) before weighting; the paper uses the raw selected scores.",
    "Rank-1 vectors come from torch.svd of each core every forward with no sign alignment; the released code "
    "aligns the sign with the previous step (otherwise stage 1 can pick the bottom rows). The SVD is not "
    "detached, but only feeds top-k indices, so no gradient flows through it.",
    "Tucker core init N(0, 0.01^2) (released code: U(0, 1)); keys N(0, 0.01^2); aux loss weight 0.1 on the "
    "mean over non-leading singular values, per core (paper: alpha = 0.001 on the summed core), applied "
    "whenever training.",
    "Value init: variance E/(2·topk·core_heads·L) only when layers_for_mem_init is given (else std 0.01); "
    "no LayerNorm calibration of the scores (ours: Monte Carlo calibration, method.md §7).",
    "Extras not in the paper: an RMSNorm pre-norm inside the layer (on by default), a causal depthwise conv "
    "before the query on by default (paper Table 2: +0.000), optional input gating (values * SiLU(W x)) and "
    "sparse memory fine-tuning masks.",
    "It reads a (batch, seq, dim) input only; memory index returned is physical (v // E) per core.",
]


@dataclass(frozen=True)
class PeerConfig:
    d_model: int = 512
    num_values: int = 128 * 128      # physical rows (ours); the peer's grid is expansion × this
    value_dim: int = 256
    key_dim: int = 64
    topm: int = 16
    expansion: int = 4
    batch: int = 2
    seq_len: int = 256
    seed: int = 0

    @classmethod
    def quick(cls) -> "PeerConfig":
        return cls(d_model=64, num_values=16 * 16, value_dim=32, key_dim=16, topm=8, batch=2, seq_len=8)


def load_peer():
    """The ``ultra_mem.UltraMem`` class and its version, or (None, reason) if it cannot be imported."""
    try:
        from ultra_mem import UltraMem
    except Exception as e:   # ImportError, or a dependency failing at import time
        return None, f"ultra-mem not importable here ({type(e).__name__}: {e}); install with: {PEER_INSTALL}"
    return UltraMem, md.version("ultra-mem")


def _ours(cfg: PeerConfig) -> UltraMemLayer:
    return UltraMemLayer(UltraMemConfig(
        d_model=cfg.d_model, num_values=cfg.num_values, value_dim=cfg.value_dim, key_dim=cfg.key_dim,
        num_heads=1, topm=cfg.topm, expansion=cfg.expansion, tucker_rank=2, num_cores=2, num_layers=4,
        query_conv_kernel=0, init_samples=256,
    ))


def _peer(peer_cls, cfg: PeerConfig) -> nn.Module:
    return peer_cls(
        dim=cfg.d_model, num_memories=cfg.expansion * cfg.num_values, topk=cfg.topm,
        dim_queries_keys=cfg.key_dim, dim_values=cfg.value_dim // 2, core_rank=2, core_heads=2,
        value_expansion=cfg.expansion, pre_query_causal_conv=False, prenorm=False, layers_for_mem_init=4,
    )


def build_pair(cfg: PeerConfig, peer_cls, device: torch.device) -> dict[str, nn.Module]:
    torch.manual_seed(cfg.seed)
    pair = {"ours": _ours(cfg)}
    if peer_cls is not None:
        pair["ultra_mem"] = _peer(peer_cls, cfg)
    return {k: v.to(device) for k, v in pair.items()}


def _forward(name: str, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if name == "ours":
        out = module(x)
        return out.output, out.aux_loss
    out, _, aux = module(x)
    return out, aux


def _step_fns(name: str, module: nn.Module, x: torch.Tensor, grad: torch.Tensor):
    def fwd():
        module.eval()
        with torch.inference_mode():
            return _forward(name, module, x)[0]

    def fwd_bwd():
        module.train()
        for p in module.parameters():
            p.grad = None
        out, aux = _forward(name, module, x)
        ((out * grad).sum() + aux).backward()
    return fwd, fwd_bwd


def _peak(fn) -> int:
    with PeakTensorMemory() as tracker:
        fn()
    return tracker.peak_bytes


@torch.no_grad()
def audit_peer(peer_cls, cfg: PeerConfig | None = None) -> dict:
    """Numerical checks of the peer's departures (see :data:`DEPARTURES`), on small CPU instances."""
    cfg = cfg or PeerConfig.quick()
    torch.manual_seed(0)
    found = {}
    x = torch.randn(2, 6, 8)

    # key LayerNorm: changing its weight must change the output if it were used
    m = peer_cls(dim=8, num_memories=256, topk=8, dim_queries_keys=8, core_heads=2, dim_values=4,
                 pre_query_causal_conv=False, prenorm=False).eval()
    before = m(x)[0]
    m.key_ln.weight.fill_(3.0)
    found["key_layernorm_unused"] = bool(torch.equal(before, m(x)[0]))

    # IVE pooling: memories = 1, projectors = identity, no output projection → a head's output is the
    # sum of its pooled blocks, which must equal the sum of its m activated scores
    class Recorder(nn.Module):
        def forward(self, s):
            self.last = F.relu(s)
            return self.last

    m.memories.fill_(1.0)
    m.value_expansion_proj.copy_(torch.eye(4).expand(m.value_expansion, 4, 4))
    m.score_activation = Recorder()
    out = m(x)[0]                                                          # (b, n, h·4)
    got = out.view(2, 6, 2, 4)[..., 0].permute(2, 0, 1)                     # (h, b, n)
    want = m.score_activation.last.sum(-1)                                  # (h, b, n)
    found["ive_pooling_overwrites"] = {
        "bug": bool(not torch.allclose(got, want)),
        "pooled_over_summed_scores": float((got.sum() / want.sum())),
    }

    # gradient reaching the memories in training vs eval (no multiplier in eval)
    with torch.enable_grad():
        m2 = peer_cls(dim=8, num_memories=256, topk=8, dim_queries_keys=8, core_heads=2, dim_values=4,
                      pre_query_causal_conv=False, prenorm=False)
        grads = {}
        for mode in ("eval", "train"):
            m2.train(mode == "train")
            m2.reset_step_()
            m2.memories.grad = None
            m2(x)[0].sum().backward()
            grads[mode] = m2.memories.grad.clone()
        nz = grads["eval"] != 0
        found["memory_gradient_sign"] = {"train_over_eval_gradient": float((grads["train"][nz] / grads["eval"][nz]).mean())}

    # value lr multiplier over the decay window T vs the paper's 1 + 9·(1 - step/T)
    T = m2.mem_decay_lr_over_steps
    steps = [0, T // 4, T // 2, 3 * T // 4, T - 1]
    got_lr = []
    for s in steps:
        m2.step.fill_(s)
        got_lr.append(round(float(m2.mem_lr_scale), 3))
    found["lr_multiplier"] = {"steps": steps, "package": got_lr,
                              "paper": [round(1 + 9 * max(0.0, 1 - s / T), 3) for s in steps]}

    # one selection per core: overlap of the two cores' selected physical rows (paper: identical)
    big = _peer(peer_cls, cfg).eval()
    idx = big(torch.randn(cfg.batch, cfg.seq_len, cfg.d_model))[1]          # (h, b, n, m) physical rows
    a, b = idx[0].reshape(-1, cfg.topm), idx[1].reshape(-1, cfg.topm)
    same = [len(set(r0.tolist()) & set(r1.tolist())) / cfg.topm for r0, r1 in zip(a, b)]
    found["cores_select_independently"] = {"mean_fraction_shared": sum(same) / len(same)}

    # IVE copies: grid addresses 4c..4c+3 of one grid row → same physical row (package) vs ours
    e, n_grid = cfg.expansion, cfg.expansion * cfg.num_values
    v = torch.arange(0, n_grid - 1)
    pkg_same = float(((v // e) == ((v + 1) // e)).float().mean())
    ours = _ours(cfg)
    phys = ours.shuffle % cfg.num_values
    ours_same = float((phys[:-1] == phys[1:]).float().mean())
    found["ive_copies_adjacent"] = {"package_fraction_neighbours_same_row": pkg_same,
                                    "ours_fraction_neighbours_same_row": ours_same}
    return found


def profile_forward(module: nn.Module, name: str, x: torch.Tensor, rows: int = 12) -> list[dict]:
    """Top ops by self CPU time of one training forward+backward (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    module.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out, aux = _forward(name, module, x)
        (out.sum() + aux).backward()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return [{"op": e.key, "self_cpu_ms": e.self_cpu_time_total / 1e3, "calls": e.count,
             "share": e.self_cpu_time_total / total} for e in events]


def run(cfg: PeerConfig, device: torch.device, threads: int, min_reps: int, max_reps: int, budget_s: float):
    set_threads(threads)
    peer_cls, version_or_reason = load_peer()
    pair = build_pair(cfg, peer_cls, device)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    x = torch.randn(cfg.batch, cfg.seq_len, cfg.d_model, generator=g).to(device)
    grad = torch.randn(cfg.batch, cfg.seq_len, cfg.d_model, generator=g).to(device)
    timer = Timer(device)
    fns = {name: _step_fns(name, m, x, grad) for name, m in pair.items()}
    fwd = interleaved_medians({n: f[0] for n, f in fns.items()}, timer, min_reps, max_reps, budget_s)
    bwd = interleaved_medians({n: f[1] for n, f in fns.items()}, timer, min_reps, max_reps, budget_s)
    rows = []
    tokens = cfg.batch * cfg.seq_len
    for name, m in pair.items():
        for pass_name, stats, fn in (("fwd", fwd, fns[name][0]), ("fwd+bwd", bwd, fns[name][1])):
            s = stats[name]
            rows.append({"impl": name, "pass": pass_name, **s, "tokens": tokens,
                         "tokens_per_s": tokens / (s["median_ms"] * 1e-3),
                         "peak_activation_bytes": _peak(fn) if device.type == "cpu" else None,
                         "params": num_parameters(m)})
    if device.type == "cuda":
        for row in rows:
            fn = fns[row["impl"]][0 if row["pass"] == "fwd" else 1]
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            fn()
            torch.cuda.synchronize(device)
            row["peak_activation_bytes"] = torch.cuda.max_memory_allocated(device) - base
    extra = {"ours_config": asdict(pair["ours"].config)}
    if peer_cls is None:
        extra["peer"] = {"skipped": version_or_reason}
    else:
        extra["peer"] = {"version": version_or_reason, "install": PEER_INSTALL}
        ratios = {}
        for pass_name in ("fwd", "fwd+bwd"):
            o, p = (next(r for r in rows if r["impl"] == i and r["pass"] == pass_name) for i in ("ours", "ultra_mem"))
            ratios[pass_name] = {"peer_over_ours_latency": p["median_ms"] / o["median_ms"],
                                 "peer_over_ours_peak_memory":
                                     p["peak_activation_bytes"] / o["peak_activation_bytes"]}
        extra["ratios"] = ratios
        extra["audit"] = audit_peer(peer_cls)
        slower = [k for k, v in ratios.items() if v["peer_over_ours_latency"] < 1]
        if slower:
            extra["profile_ours"] = profile_forward(pair["ours"], "ours", x)
            extra["profile_peer"] = profile_forward(pair["ultra_mem"], "ultra_mem", x)
    return rows, extra


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m ultramem_edu.benchmarks peer", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repetitions: a smoke test")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--budget-s", type=float, default=None, help="seconds of timing per pass")
    args = p.parse_args(argv)
    cfg = PeerConfig.quick() if args.quick else PeerConfig()
    device = resolve_device(args.device)
    budget = args.budget_s if args.budget_s is not None else (0.05 if args.quick else 20.0)
    min_reps, max_reps = (3, 5) if args.quick else (9, 101)
    threads = set_threads(args.threads)
    rows, extra = run(cfg, device, threads, min_reps, max_reps, budget)
    meta = metadata(device, threads, {"benchmark": "peer", "quick": args.quick, "dtype": "float32",
                                      "config": asdict(cfg), "min_reps": min_reps, "max_reps": max_reps})
    notes = ["Departures of ultra-mem from the paper and from ultramem_edu (read from its source; "
             "[measured] items are checked in 'audit'):"] + DEPARTURES
    if args.quick:
        notes.insert(0, "QUICK MODE: tiny shapes and few repetitions; a smoke test, not a measurement.")
    stem = "bench_peer_quick" if args.quick else "bench_peer"
    json_path, csv_path = write_results(args.out, stem, meta, rows, notes=notes, **extra)
    for r in rows:
        print(f"{r['impl']:10s} {r['pass']:8s} {r['median_ms']:9.3f} ms  peak {r['peak_activation_bytes'] or 0:>12,d} B")
    print(f"wrote {json_path} and {csv_path}")
    return {"metadata": meta, "rows": rows, "notes": notes, **extra}
