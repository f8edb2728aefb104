"""Self-checks for chapter 12, "After UltraMem"."""
from __future__ import annotations

import math

from ..v2 import UltraMemV2Config, value_std_eq26

__all__ = ["check_window", "check_v2_activated", "check_eq26_std", "check_router_cost"]


def check_window(rows: int, keys_per_side: int, values_per_layer: int = 34 * 34, num_memory_layers: int = 4,
                 share_ratio: float = 0.5, key_expansion: int = 2) -> None:
    """Exercise 1: the rows one UltraMemV2 layer reads and its keys per side."""
    cfg = UltraMemV2Config(64, values_per_layer=values_per_layer, share_ratio=share_ratio,
                           key_expansion=key_expansion, init_samples=2)
    want_rows, want_keys = cfg.window(num_memory_layers), cfg.keys_per_side(num_memory_layers)
    if rows == values_per_layer:
        raise AssertionError("That is one layer's contribution to the pool; a layer reads a window of "
                             "share_ratio × the whole pool, rounded down to a square.")
    if rows == int(values_per_layer * num_memory_layers * share_ratio) and rows != want_rows:
        raise AssertionError("Close: the window must be a square grid, ⌊√(P·share)⌋² rows.")
    if rows != want_rows:
        raise AssertionError(f"Not quite: pool P = {values_per_layer}·{num_memory_layers}, "
                             f"window ⌊√(P·{share_ratio})⌋².")
    if keys_per_side == math.isqrt(want_rows):
        raise AssertionError("The keys are expanded: key_expansion × √window per side.")
    if keys_per_side != want_keys:
        raise AssertionError(f"Not quite: keys per side = {key_expansion} × √{want_rows}.")
    print(f"Correct: {want_rows:,} rows per layer (of {values_per_layer * num_memory_layers:,}), "
          f"{want_keys} keys per side, {want_keys ** 2:,} grid addresses.")


def check_v2_activated(answer: int, config: UltraMemV2Config, num_memory_layers: int) -> None:
    """Exercise 2: activated parameters per token of *all* the UltraMemV2 layers of a model."""
    counts = config.parameter_counts(num_memory_layers)
    read = min(config.num_heads * config.topm, config.window(num_memory_layers))
    if answer == counts["total"]:
        raise AssertionError("That is every parameter, pool included; a token reads only H·m rows per layer.")
    if answer == counts["activated"] - num_memory_layers * read * config.pre_value_dim:
        raise AssertionError("Each selected row holds a pre-value (D_pre) as well as a value (D_v): both are read.")
    if answer == counts["per_layer"] + read * (config.value_dim + config.pre_value_dim):
        raise AssertionError("That is one layer; the model has one memory layer per block.")
    if answer != counts["activated"]:
        raise AssertionError("Not quite: per layer, everything but the pool (query, norms, all keys, cores, P, W_o) "
                             "plus H·m·(D_v + D_pre); then times the number of memory layers.")
    print(f"Correct: {answer:,} activated of {counts['total']:,} ({answer / counts['total']:.1%}).")


def check_eq26_std(answer: float, ffn_ratio: float = 6.5, d_model: int = 768, topm: int = 32, num_heads: int = 1,
                   sigma_s_sq: float = 0.1, pre_value_dim: int = 192, value_dim: int = 192,
                   num_memory_layers: int = 20) -> None:
    """Exercise 3: σ_V of Eq. 26 for the given sizes (defaults: a released 20-layer configuration)."""
    want = value_std_eq26(ffn_ratio, d_model, topm, num_heads, sigma_s_sq, pre_value_dim, value_dim, num_memory_layers)
    if math.isclose(answer, want ** 2, rel_tol=1e-3):
        raise AssertionError("That is a variance; Eq. 26 gives the standard deviation (a fourth root).")
    if math.isclose(answer, want ** 2 * want ** 2, rel_tol=1e-3) or math.isclose(answer, want ** 4, rel_tol=1e-3):
        raise AssertionError("Take the fourth root: values and pre-values both carry σ_V, "
                             "so σ_V⁴ enters the output.")
    if not math.isclose(answer, want, rel_tol=1e-3):
        raise AssertionError("Not quite: (0.2·k_inner·D / (m·H·(1+σ_s²)·D_pre·D_v·L_mem))^(1/4).")
    print(f"Correct: σ_V ≈ {want:.4f} for values and pre-values alike.")


def check_router_cost(answer: int, num_slots: int, key_dim: int, design: str) -> None:
    """Exercise 4: dot products of length D_k a token computes to choose among ``num_slots`` slots:
    an MoE router scores every slot; product keys score √N row keys and √N column keys."""
    n = math.isqrt(num_slots)
    want = {"moe": num_slots, "product_keys": 2 * n}[design]
    if design == "product_keys" and answer == num_slots:
        raise AssertionError("That is the MoE router's cost; product keys score the rows and the columns separately.")
    if design == "product_keys" and answer == n:
        raise AssertionError("Both sides: √N row keys and √N column keys.")
    if answer != want:
        raise AssertionError(f"Not quite for {design!r} with N = {num_slots:,}.")
    print(f"Correct: {want:,} scores of width {key_dim} to address {num_slots:,} slots.")
