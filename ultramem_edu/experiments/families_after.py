"""Chapter 12's designs as chapter-11 model families: UltraMemV2, PEER, Memory+ and Engram.

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

from ..engram import EngramConfig
from ..memory_plus import MemoryPlusConfig
from ..model import default_wiring
from ..peer import PEERConfig
from ..v2 import UltraMemV2Config
from .families import Family, FamilyContext, _matched, register_family

__all__ = ["AFTER_FAMILIES", "V2_RECIPES", "ultramem_v2_family", "ultramem_v2_released_family",
           "ultramem_v2_readme_family", "peer_family", "peer_shared_family", "memory_plus_family",
           "engram_family", "ENGRAM_RECIPE"]


def _square_at_most(n: float, low: int = 4) -> int:
    """The largest perfect square ≤ n (an n×n product-key grid), at least ``low``²."""
    return max(low, math.isqrt(int(n))) ** 2


def _check(num_values) -> int:
    if not isinstance(num_values, int) or isinstance(num_values, bool) or num_values < 1:
        raise ValueError(f"num_values must be a positive int, got {num_values!r}")
    return num_values


# UltraMemV2 recipes by source. "released": the run script ``run_ultramem_v2.sh`` of the authors'
# repository (mem_value_lr_times=1.0, mem_share_ratio=0.0625, mem_key_expand_time=2, mem_head=1; the
# balance loss coefficient mem_key_balance_reg_coef defaults to 0.0 in olmo/config.py and the script does
# not set it). "readme": the README's 227M example (value lr ×4, share 1/2), with the balance loss at 0.01.
V2_RECIPES = {
    "released": dict(value_lr_k=1.0, share_ratio=0.0625, key_expansion=2, balance_coef=0.0),
    "readme": dict(value_lr_k=4.0, share_ratio=0.5, key_expansion=2, balance_coef=0.01),
}


def _ultramem_v2(ctx: FamilyContext, num_values: int, recipe: str, name: str) -> Family:
    r = V2_RECIPES[recipe]
    n = _check(num_values)
    L = ctx.n_layers
    vpl = _square_at_most(n / (2 * L))
    half = max(1, ctx.d_model // 2)
    probe = UltraMemV2Config(ctx.d_model, num_layers=L, values_per_layer=vpl, value_dim=half, pre_value_dim=half,
                             key_dim=ctx.key_dim, num_heads=1, topm=1, share_ratio=r["share_ratio"],
                             key_expansion=r["key_expansion"], balance_coef=r["balance_coef"])
    # the lm experiment's ultramem_v2 runs were made with the bound 2·√vpl and the description below;
    # both are kept for that name so that its stored runs keep their fingerprints
    legacy = name == "ultramem_v2"
    topm = min(2 * ctx.topm, 2 * math.isqrt(vpl) if legacy else probe.keys_per_side(L))
    cfg = UltraMemV2Config(ctx.d_model, num_layers=L, values_per_layer=vpl, value_dim=half, pre_value_dim=half,
                           key_dim=ctx.key_dim, num_heads=1, topm=topm, init_samples=1024,
                           share_ratio=r["share_ratio"], key_expansion=r["key_expansion"],
                           balance_coef=r["balance_coef"])
    if legacy:
        description = (f"UltraMemV2 in all {L} blocks, pool {L}×{vpl} rows × {half} (+ pre-values), window "
                       f"share 0.5, 1 head, top-{topm}, value lr k=4 (released)")
    else:
        description = (f"UltraMemV2 in all {L} blocks, pool {L}×{vpl} rows × {half} (+ pre-values), window "
                       f"share {r['share_ratio']:g}, keys ×{r['key_expansion']}, 1 head, top-{topm}, balance "
                       f"{r['balance_coef']:g}, value lr k={r['value_lr_k']:g} ({recipe} recipe)")
    return _matched(ctx, cfg, name, {"value_lr_k": r["value_lr_k"]}, description, wiring=default_wiring(L, L))


def ultramem_v2_family(ctx: FamilyContext, num_values: int) -> Family:
    """UltraMemV2 (Huang et al., 2025) in every block, one shared pool, the README's recipe (the runs of
    the ``lm`` experiment were made with it under the name ``ultramem_v2``).

    Memory: L layers each adding ``values_per_layer`` rows to one pool (the largest square ≤ N/(2L),
    so values + pre-values hold ≈ N·D/2 parameters), windows of half the pool (share ratio 0.5), one
    head of top-2·m (as many rows per token as UltraMem's two heads of top-m), values and pre-values
    D/2 wide, TDQKR (rank 2, two cores), keys expanded ×2, balance loss 0.01, the paper's Appendix A.3
    initialisation. Recipe: value learning-rate multiplier k = 4 (:data:`V2_RECIPES` ``"readme"``).
    """
    return _ultramem_v2(ctx, num_values, "readme", "ultramem_v2")


def ultramem_v2_released_family(ctx: FamilyContext, num_values: int) -> Family:
    """UltraMemV2 with the released run script's recipe (:data:`V2_RECIPES` ``"released"``): value lr
    ×1.0, window share 1/16, keys ×2, one head, balance loss off. Sizes as :func:`ultramem_v2_family`.
    With our 4 blocks the 1/16 window is a quarter of one layer's rows (the script's 16-layer model reads
    one layer's worth); the value kept is the script's, as written."""
    return _ultramem_v2(ctx, num_values, "released", "ultramem_v2_released")


def ultramem_v2_readme_family(ctx: FamilyContext, num_values: int) -> Family:
    """:func:`ultramem_v2_family` under the name that says where its recipe comes from."""
    return _ultramem_v2(ctx, num_values, "readme", "ultramem_v2_readme")


def _peer(ctx: FamilyContext, num_values: int, shared_keys: bool, name: str) -> Family:
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
                     topk=min(ctx.topm, math.isqrt(experts)), shared_keys=shared_keys)
    keys = ", one key set shared by the heads" if shared_keys else ""
    return _matched(ctx, cfg, name, {},
                    f"PEER, {experts} single-neuron experts × {ctx.d_model}, {heads} heads × top-{cfg.topk}{keys}, "
                    "experts at the model's lr")


def peer_family(ctx: FamilyContext, num_values: int) -> Family:
    """PEER with one set of product keys per head (the ``lm`` experiment's runs)."""
    return _peer(ctx, num_values, False, "peer")


def peer_shared_family(ctx: FamilyContext, num_values: int) -> Family:
    """PEER with one set of product keys shared by all heads, as the PEER paper describes."""
    return _peer(ctx, num_values, True, "peer_shared")


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


# Engram's shape from the demo's EngramConfig (engram_demo_v1.py of deepseek-ai/Engram): 2- and 3-grams,
# 8 hash heads per order, d_ngram = D/2 (the demo: 512 for hidden 1024), convolution kernel 4, seed 0, the
# first layer at block 1 (the demo's layer_ids [1, 15]). The demo has no training code: the table trains
# like every value table of the harness (the model's lr, no weight decay).
ENGRAM_RECIPE = dict(max_ngram_size=3, n_head_per_ngram=8, kernel_size=4, seed=0, block=1)


def _kjv_token_strings(vocab_size: int):
    """The text of each id of the KJV character tokenizer (id 0 the unknown marker), or None when the
    harness's vocabulary is not that tokenizer's."""
    from .common import kjv_tokens
    tok = kjv_tokens()[0]
    if tok.vocab_size != vocab_size:
        return None
    return (tok.UNK_CHAR,) + tuple(tok.chars)


def engram_family(ctx: FamilyContext, num_values: int) -> Family:
    """Engram (Cheng et al., 2026, arXiv 2601.07372): hashed 2- and 3-gram embeddings addressed by the
    input tokens, context-aware gate, short causal convolution; one layer, a parallel branch of block 1.

    Memory: d_ngram = D/2 split over K = 8 heads per order (rows of width D/16), each head a table of the
    first unused prime ≥ N·D/2 / ((N_max − 1)·d_ngram) rows, so the 16 tables hold ≈ N·D/2 parameters,
    UltraMem's value budget; tokenizer compression of the KJV characters (capitals with lower case, space
    with newline). Initialisation: the table N(0, 1) and the key projection as the demo; the value
    projection N(0, (0.02/√(2L))²) with zero bias, as the model's other projections into the residual
    stream, and the convolution at zero, so the layer starts at the residual scale of the GPT-2-initialised
    model (the demo's defaults put out values of order 1). Recipe: the table at the model's lr, no weight
    decay (no value multiplier: the demo has no training code to take one from).
    """
    n = _check(num_values)
    r = ENGRAM_RECIPE
    orders = r["max_ngram_size"] - 1
    d_ngram = max(r["n_head_per_ngram"], ctx.d_model // 2 // r["n_head_per_ngram"] * r["n_head_per_ngram"])
    rows = max(2, round(n * (ctx.d_model // 2) / (orders * d_ngram)))
    block = min(r["block"], ctx.n_layers - 1)
    strings = _kjv_token_strings(ctx.vocab_size)
    cfg = EngramConfig(ctx.d_model, ctx.vocab_size, engram_vocab_size=(rows,) * orders,
                       max_ngram_size=r["max_ngram_size"], n_embed_per_ngram=d_ngram,
                       n_head_per_ngram=r["n_head_per_ngram"], kernel_size=r["kernel_size"], seed=r["seed"],
                       token_strings=strings, conv_init="zero",
                       value_init_std=0.02 / math.sqrt(2 * ctx.n_layers))
    compression = "KJV tokenizer compression" if strings is not None else "no tokenizer compression"
    return _matched(ctx, cfg, "engram", {},
                    f"Engram at block {block} (parallel branch), 2..{r['max_ngram_size']}-grams × "
                    f"{r['n_head_per_ngram']} hash heads, tables ≥ {rows} rows × {cfg.head_dim}, d_ngram "
                    f"{d_ngram}, conv kernel {r['kernel_size']} (zero init), W_V std 0.02/√(2L), {compression}, "
                    "table at the model's lr", wiring=((block, block),))


AFTER_FAMILIES = {"ultramem_v2": ultramem_v2_family, "ultramem_v2_released": ultramem_v2_released_family,
                  "ultramem_v2_readme": ultramem_v2_readme_family, "peer": peer_family,
                  "peer_shared": peer_shared_family, "memory_plus": memory_plus_family, "engram": engram_family}

for _name, _factory in AFTER_FAMILIES.items():
    register_family(_name, _factory, replace=True)
