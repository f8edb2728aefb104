"""Model families of chapter 11: architecture + complete training recipe, at a given memory size.

:data:`MODEL_FAMILIES` maps a family name to a factory ``factory(ctx, num_values) -> Family``. ``ctx``
(:class:`FamilyContext`) fixes the transformer (vocabulary, widths, depth), the memory's sizes (key
width, heads, top-m) and the dense model's activated parameters per token, which every family matches
by narrowing its FFN. ``num_values`` is the memory size N (ignored by dense and MoE). New families
(UltraMemV2, PEER, Memory+, ...) register with :func:`register_family` and then run in every
experiment that names them.

The recipes (what each model trains with besides its architecture):

=====================  ==================================================================================
``dense``              FFN hidden 4·D.
``moe``                top-2 of ``n_experts`` experts of hidden 2·D (activated FFN = one dense 4·D FFN).
``moe_matched``        the same, with as many experts as match UltraMem's total parameters too.
``pkm``                Lample et al.'s PKM (softmax, BatchNorm query, one query per head, values D wide)
                       on an n × a·n grid; values train at a constant lr 10⁻³ (Lample et al. 2019).
``ultramem_paper_k10`` UltraMem (E=4, r=2, h=2, aux loss) with the paper's initialisation and the value
                       lr multiplier k = 10 of the paper's text.
``ultramem_paper_k4``  the same with k = 4, the released training script's value.
``ultramem_released``  UltraMem with the released code's initialisation (LayerNorm weights D_k^-0.33,
                       values N(0, 0.02²); ``olmo/ultramem_layer.py`` ``reset_parameters``) and k = 4.
``ultramem_ln``        the book's variant (LayerNorm weights 1, value std divided by the measured RMS
                       of the selected scores; :mod:`ultramem_edu.init`) with k = 10.
=====================  ==================================================================================

Memory sizes: N must be a power of two or a square; a square N is an n×n grid, N = 2n² an n × 2n grid
(product keys on a rectangular grid). UltraMem's values are D/2 wide (the paper's "half D_v, twice the
values"), PKM's D wide.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from ..layer import UltraMemConfig
from ..model import TransformerLM, default_wiring
from ..moe import MoEConfig
from .common import build_lm, match_ffn_hidden, model_parameter_counts

__all__ = ["FamilyContext", "Family", "MODEL_FAMILIES", "register_family", "grid_for", "make_family"]


@dataclass(frozen=True)
class FamilyContext:
    """What every family shares: vocab, transformer sizes, memory sizes, number of memory layers."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    seq_len: int
    key_dim: int = 16
    mem_heads: int = 2
    topm: int = 8
    n_memory_layers: int = 1
    n_experts: int = 8

    @property
    def sizes(self) -> dict:
        return dict(d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads, seq_len=self.seq_len)

    @property
    def wiring(self):
        return default_wiring(self.n_layers, self.n_memory_layers)


@dataclass
class Family:
    """build() -> a fresh model; recipe: {"value_lr_k", "value_lr"} (the lr is swept); description."""

    name: str
    build: Callable[[], TransformerLM]
    recipe: dict
    description: str
    ffn_hidden: int
    memory: object = None
    compute_matched: bool = True


def grid_for(num_values: int) -> int:
    """The grid aspect a (1: n×n, 2: n×2n) for N values; ValueError if N is neither n² nor 2n²."""
    if not isinstance(num_values, int) or isinstance(num_values, bool) or num_values < 1:
        raise ValueError(f"num_values must be a positive int, got {num_values!r}")
    if math.isqrt(num_values) ** 2 == num_values:
        return 1
    if num_values % 2 == 0 and math.isqrt(num_values // 2) ** 2 == num_values // 2:
        return 2
    raise ValueError(f"num_values must be n² or 2n² (a square or an n × 2n grid), got {num_values}")


def _dense_target(ctx: FamilyContext) -> int:
    return model_parameter_counts(build_lm("dense", ctx.vocab_size, ctx.sizes))["activated"]


def _matched(ctx: FamilyContext, memory, name, recipe, description, wiring=None) -> Family:
    wiring = ctx.wiring if wiring is None else tuple(wiring)
    build_h = lambda h: build_lm("dense", ctx.vocab_size, ctx.sizes, memory=memory, wiring=wiring,  # noqa: E731
                                 ffn_hidden=h)
    target = _dense_target(ctx)
    h = match_ffn_hidden(build_h, target, start=4 * ctx.d_model)
    activated = model_parameter_counts(build_h(h))["activated"]
    matched = abs(activated - target) <= 0.03 * target
    return Family(name, lambda: build_h(h), recipe, f"{description}, FFN hidden {h}", h, memory, matched)


def _pkm(ctx: FamilyContext, num_values: int) -> Family:
    a = grid_for(num_values)
    cfg = UltraMemConfig.pkm(ctx.d_model, num_values=num_values, grid_aspect=a, key_dim=ctx.key_dim,
                             num_heads=ctx.mem_heads, topm=ctx.topm, num_layers=ctx.n_layers)
    return _matched(ctx, cfg, "pkm", {"value_lr": 1e-3},
                    f"PKM, {num_values} values × {ctx.d_model} on a {cfg.grid_shape[0]}×{cfg.grid_shape[1]} grid, "
                    "values at constant lr 1e-3")


def _ultramem(init: str, k: float, label: str):
    def factory(ctx: FamilyContext, num_values: int) -> Family:
        a = grid_for(num_values)
        cfg = UltraMemConfig(ctx.d_model, num_values=num_values, grid_aspect=a, key_dim=ctx.key_dim,
                             num_heads=ctx.mem_heads, topm=ctx.topm, num_layers=ctx.n_layers,
                             init_score_scale=init, init_samples=1024)
        return _matched(ctx, cfg, label, {"value_lr_k": k},
                        f"UltraMem, {num_values} values × {cfg.value_dim} (E=4, r=2, h=2), {init} init, "
                        f"value lr k={k:g}")
    return factory


def _dense(ctx: FamilyContext, num_values: int | None = None) -> Family:
    return Family("dense", lambda: build_lm("dense", ctx.vocab_size, ctx.sizes), {}, f"dense, FFN hidden {4 * ctx.d_model}",
                  4 * ctx.d_model)


def _moe(ctx: FamilyContext, num_values: int | None = None) -> Family:
    moe = MoEConfig(ctx.d_model, n_experts=ctx.n_experts, top_k=2)
    return Family("moe", lambda: build_lm("moe", ctx.vocab_size, ctx.sizes, moe=moe), {},
                  f"MoE, top-2 of {ctx.n_experts} experts of hidden {2 * ctx.d_model}", 2 * ctx.d_model)


def _moe_matched(ctx: FamilyContext, num_values: int | None = None) -> Family:
    """MoE at the memory models' total parameters as well as their activated ones: top-2 experts of hidden
    2·D (the dense model's activated FFN), as many experts (at least 2) as bring the model's total
    parameters closest to UltraMem's (``ultramem_released`` at ``num_values``, or at N = 2·(8·D)² values
    when none is given)."""
    n = num_values if num_values is not None else 2 * (8 * ctx.d_model) ** 2
    target = model_parameter_counts(MODEL_FAMILIES["ultramem_released"](ctx, n).build())["total"]

    def build(e):
        return build_lm("moe", ctx.vocab_size, ctx.sizes, moe=MoEConfig(ctx.d_model, n_experts=e, top_k=2))
    experts = min(range(2, 4 * ctx.n_experts + 1),
                  key=lambda e: abs(model_parameter_counts(build(e))["total"] - target))
    return Family("moe_matched", lambda: build(experts), {},
                  f"MoE, top-2 of {experts} experts of hidden {2 * ctx.d_model} (total parameters matched to "
                  f"UltraMem's at N = {n})", 2 * ctx.d_model)


def _dense_narrow(ctx: FamilyContext, num_values: int) -> Family:
    """A control, not a contender: the dense model with the FFN width that UltraMem (paper recipe) keeps
    at ``num_values`` — UltraMem with its memory taken out. Below the activated budget by construction."""
    h = MODEL_FAMILIES["ultramem_paper_k10"](ctx, num_values).ffn_hidden
    return Family("dense_narrow", lambda: build_lm("dense", ctx.vocab_size, ctx.sizes, ffn_hidden=h), {},
                  f"dense, FFN hidden {h} (UltraMem's at N = {num_values}, memory removed)", h, None, False)


MODEL_FAMILIES: dict[str, Callable[[FamilyContext, int], Family]] = {
    "dense": _dense,
    "moe": _moe,
    "moe_matched": _moe_matched,
    "pkm": _pkm,
    "ultramem_paper_k10": _ultramem("unit", 10.0, "ultramem_paper_k10"),
    "ultramem_paper_k4": _ultramem("unit", 4.0, "ultramem_paper_k4"),
    "ultramem_released": _ultramem("released", 4.0, "ultramem_released"),
    "ultramem_ln": _ultramem("layernorm", 10.0, "ultramem_ln"),
    "dense_narrow": _dense_narrow,
}


CONTROL_FAMILIES = frozenset({"dense_narrow"})   # controls for a diagnosis, deliberately not compute-matched


def register_family(name: str, factory: Callable[[FamilyContext, int], Family], replace: bool = False) -> None:
    """Add a model family: ``factory(ctx, num_values) -> Family``. Existing names need ``replace``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}")
    if name in MODEL_FAMILIES and not replace:
        raise ValueError(f"model family {name!r} is already registered; pass replace=True to replace it")
    MODEL_FAMILIES[name] = factory


def make_family(name: str, ctx: FamilyContext, num_values: int | None = None) -> Family:
    """The family ``name`` at memory size ``num_values``; a clear error for an unknown name."""
    if name not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {name!r}; choose from {sorted(MODEL_FAMILIES)}")
    fam = MODEL_FAMILIES[name](ctx, num_values)
    fam.name = name
    return fam


def with_sizes(ctx: FamilyContext, **changes) -> FamilyContext:
    return dataclasses.replace(ctx, **changes)


# chapter 12's designs (UltraMemV2, PEER, Memory+) register themselves here
from . import families_after  # noqa: E402,F401  (registers ultramem_v2, peer, memory_plus)
