"""Chapter 12's designs as chapter-11 model families: UltraMemV2, PEER and Memory+.

Each factory ``factory(ctx, num_values) -> Family`` reads ``num_values`` as the UltraMem families'
memory size N (N values of width D/2, i.e. N·D/2 value parameters) and gives its own memory about the
same number of value parameters, then narrows the FFN until the model's activated parameters per
token match the dense model's (:func:`.families._matched`, the harness's rule and 3 % tolerance).
Activated parameters come from :func:`ultramem_edu.moe.activated_parameters_per_token`, which counts
what one token reads from a shared pool in every layer that reads it; the *stored* size of a shared
pool is counted once (:func:`.common.model_parameter_counts`).

The families register themselves in :data:`.families.MODEL_FAMILIES`; :mod:`.families` imports this module.
"""
from __future__ import annotations

import math

from ..memory_plus import MemoryPlusConfig
from ..model import default_wiring
from ..peer import PEERConfig
from ..v2 import UltraMemV2Config
from .families import Family, FamilyContext, _matched, register_family

__all__ = ["AFTER_FAMILIES", "ultramem_v2_family", "peer_family", "memory_plus_family"]


def _square_at_most(n: float, low: int = 4) -> int:
    """The largest perfect square ≤ n (an n×n product-key grid), at least ``low``²."""
    return max(low, math.isqrt(int(n))) ** 2


def _check(num_values) -> int:
    if not isinstance(num_values, int) or isinstance(num_values, bool) or num_values < 1:
        raise ValueError(f"num_values must be a positive int, got {num_values!r}")
    return num_values


def ultramem_v2_family(ctx: FamilyContext, num_values: int) -> Family:
    """UltraMemV2 (Huang et al., 2025) in every block, one shared pool, the released recipe.

    Memory: L layers each adding ``values_per_layer`` rows to one pool (the largest square ≤ N/(2L),
    so values + pre-values hold ≈ N·D/2 parameters), windows of half the pool (share ratio 0.5), one
    head of top-2·m (as many rows per token as UltraMem's two heads of top-m), values and pre-values
    D/2 wide (the released configs have k_dim = v_dim = pre_v_dim), TDQKR (rank 2, two cores), keys expanded ×2, balance loss 0.01, the paper's Appendix A.3 initialisation.
    Recipe: the value learning-rate multiplier k = 4 of the released configs (``value lr ×4``). The
    paper reports that a constant 1× value lr wins by 1.4 T tokens; at our few million characters we
    train with the recipe the released code ships.
    """
    n = _check(num_values)
    L = ctx.n_layers
    vpl = _square_at_most(n / (2 * L))
    half = max(1, ctx.d_model // 2)
    topm = min(2 * ctx.topm, 2 * math.isqrt(vpl))
    cfg = UltraMemV2Config(ctx.d_model, num_layers=L, values_per_layer=vpl, value_dim=half, pre_value_dim=half,
                           key_dim=ctx.key_dim, num_heads=1, topm=topm, init_samples=1024)
    return _matched(ctx, cfg, "ultramem_v2", {"value_lr_k": 4.0},
                    f"UltraMemV2 in all {L} blocks, pool {L}×{vpl} rows × {half} (+ pre-values), window "
                    f"share 0.5, 1 head, top-{topm}, value lr k=4 (released)", wiring=default_wiring(L, L))


def peer_family(ctx: FamilyContext, num_values: int) -> Family:
    """PEER (He, 2024): single-neuron experts retrieved with product keys, one skip-layer memory.

    Memory: the largest square ≤ N/4 experts (each a down and an up vector of width D, so ≈ N·D/2
    parameters), ``ctx.mem_heads``·2 heads, top-``ctx.topm`` experts per head, GELU, BatchNorm query.
    Recipe: the experts train with the model's learning rate (the paper gives no separate rate for
    them): no value multiplier, no constant value lr.
    """
    n = _check(num_values)
    experts = _square_at_most(n / 4)
    heads = 2 * ctx.mem_heads
    cfg = PEERConfig(ctx.d_model, num_experts=experts, key_dim=ctx.key_dim, num_heads=heads,
                     topk=min(ctx.topm, math.isqrt(experts)))
    return _matched(ctx, cfg, "peer", {},
                    f"PEER, {experts} single-neuron experts × {ctx.d_model}, {heads} heads × top-{cfg.topk}, "
                    "experts at the model's lr")


def memory_plus_family(ctx: FamilyContext, num_values: int) -> Family:
    """Memory+ (Berges et al., 2024): SiLU-gated output, qk-norm, one value table shared by two layers.

    Memory: the largest square ≤ N/2 values of width D (≈ N·D/2 parameters, PKM's table), read by two
    memory layers in the middle blocks (for 4 blocks (1, 1) and (2, 2)), ``ctx.mem_heads`` heads,
    top-``ctx.topm``. Recipe: the values train at a fixed lr 10⁻³, as the paper and its code do.
    """
    n = _check(num_values)
    values = _square_at_most(n / 2)
    L = ctx.n_layers
    mid = max(1, L // 2)
    wiring = ((mid - 1, mid - 1), (mid, mid)) if L >= 2 else ((0, 0),)
    cfg = MemoryPlusConfig(ctx.d_model, num_values=values, key_dim=ctx.key_dim, num_heads=ctx.mem_heads,
                           topm=min(ctx.topm, math.isqrt(values)))
    return _matched(ctx, cfg, "memory_plus", {"value_lr": 1e-3},
                    f"Memory+ in blocks {[w[0] for w in wiring]}, one shared table of {values} values × "
                    f"{ctx.d_model}, SiLU gate, qk-norm, values at constant lr 1e-3", wiring=wiring)


AFTER_FAMILIES = {"ultramem_v2": ultramem_v2_family, "peer": peer_family, "memory_plus": memory_plus_family}

for _name, _factory in AFTER_FAMILIES.items():
    register_family(_name, _factory, replace=True)
