"""A memory table in host memory: when each design's copy can start, and what it costs (chapter 12).

Both figures draw what :func:`ultramem_edu.offload.host_offload_comparison` computes:

- :func:`prefetch_timeline_figure` — one decode step at one batch size, block by block: Engram's copy
  starts with the step (its rows are a function of the token ids), UltraMem's after its routing; a
  block that needs rows still in flight waits, and the wait is the exposed time.
- :func:`offload_cost_figure` — over batch sizes: each copy's time (latency + bytes / bandwidth)
  against the compute it can hide behind.

The assumptions (link bandwidth and latency, block times) are the caller's and go in the title.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import plotly.graph_objects as go

from .._checks import check_int
from .palette import OKABE_ITO, TEXT, axis_style, base_layout, legend_below, rgba

__all__ = ["prefetch_timeline_figure", "offload_cost_figure"]

_COLOURS = {"engram": OKABE_ITO["blue"], "ultramem": OKABE_ITO["vermillion"]}
_LABELS = {"engram": "Engram", "ultramem": "UltraMem"}
_KEYS = ("fetch_s", "overlap_s", "exposed_s")


def _check_comparison(comparison: object, arrays: bool) -> None:
    if not isinstance(comparison, Mapping):
        raise TypeError(f"comparison must be the dict of host_offload_comparison, got {type(comparison).__name__}")
    for name in _LABELS:
        for key in _KEYS + ("bytes",):
            if f"{name}_{key}" not in comparison:
                raise ValueError(f"comparison must hold '{name}_{key}' (host_offload_comparison's keys)")
            value = np.asarray(comparison[f"{name}_{key}"])
            if arrays != (value.ndim == 1):
                want = "one value per batch size" if arrays else "scalars (one batch size)"
                raise ValueError(f"comparison['{name}_{key}'] must be {want}, got shape {value.shape}")


def _timeline(n_blocks: int, block_s: float, copy_start: float, fetch_s: float, needed_before: int):
    """Start times of the blocks when block ``needed_before`` cannot start before the copy ends."""
    starts, t = [], 0.0
    for b in range(n_blocks):
        if b == needed_before:
            t = max(t, copy_start + fetch_s)
        starts.append(t)
        t += block_s
    return starts


def prefetch_timeline_figure(comparison: Mapping, n_blocks: int, block_seconds: float, engram_block: int,
                             ultramem_wiring: tuple[int, int], title: str) -> go.Figure:
    """One decode step of each model as a timeline (µs): blocks as grey bars, the host copy as a coloured bar.

    Args:
        comparison: :func:`~ultramem_edu.offload.host_offload_comparison` at one batch size (scalars),
            computed with ``engram_blocks_before = engram_block`` and ``ultramem_blocks_between = j − i``.
        n_blocks: blocks of the model.
        block_seconds: compute time of one block (the same the comparison used).
        engram_block: the block whose start needs Engram's rows (the copy starts with the step).
        ultramem_wiring: (i, j): the copy starts when block i ends (routing), block j + 1 needs the rows.
        title: the figure's title; name the assumptions in it.
    """
    _check_comparison(comparison, arrays=False)
    check_int("n_blocks", n_blocks, low=1)
    check_int("engram_block", engram_block, low=0, high=n_blocks - 1)
    if not (isinstance(ultramem_wiring, tuple) and len(ultramem_wiring) == 2):
        raise TypeError(f"ultramem_wiring must be a tuple (i, j), got {ultramem_wiring!r}")
    i, j = (check_int(f"ultramem_wiring[{k}]", v, low=0, high=n_blocks - 1) for k, v in enumerate(ultramem_wiring))
    if j < i or j + 1 >= n_blocks:
        raise ValueError(f"ultramem_wiring must have i <= j < n_blocks - 1, got {ultramem_wiring} for {n_blocks} blocks")
    if isinstance(block_seconds, bool) or not isinstance(block_seconds, (int, float)) or not block_seconds > 0:
        raise ValueError(f"block_seconds must be a float > 0, got {block_seconds!r}")
    if abs(float(comparison["ultramem_overlap_s"]) - (j - i) * block_seconds) > 1e-12 or \
            abs(float(comparison["engram_overlap_s"]) - engram_block * block_seconds) > 1e-12:
        raise ValueError("comparison must be computed with engram_blocks_before = engram_block, "
                         "ultramem_blocks_between = j - i and the same block_seconds")
    us = 1e6
    plans = {"engram": (0.0, engram_block), "ultramem": (None, j + 1)}
    fig = go.Figure()
    rows = []
    for name, (start, needed) in plans.items():
        fetch = float(comparison[f"{name}_fetch_s"])
        if start is None:
            start = _timeline(n_blocks, block_seconds, 0.0, 0.0, n_blocks)[i] + block_seconds
        starts = _timeline(n_blocks, block_seconds, start, fetch, needed)
        label = _LABELS[name]
        rows.append(label)
        fig.add_trace(go.Bar(
            y=[label] * n_blocks, x=[block_seconds * us] * n_blocks, base=[s * us for s in starts],
            orientation="h", width=0.35, offset=-0.4, marker=dict(color=rgba("#808080", 0.55), line=dict(width=0)),
            text=[str(b) for b in range(n_blocks)], textposition="inside", insidetextanchor="middle",
            name="blocks (compute)", legendgroup="blocks", showlegend=name == "engram",
            hovertemplate=f"{label} block %{{text}}: %{{base:.1f}}–%{{x:.1f}} µs long<extra></extra>"))
        fig.add_trace(go.Bar(
            y=[label], x=[fetch * us], base=[start * us], orientation="h", width=0.3, offset=0.05,
            marker=dict(color=_COLOURS[name]), name=f"{label}: host copy",
            hovertemplate=f"{label} copy: starts %{{base:.1f}} µs, lasts %{{x:.1f}} µs<extra></extra>"))
        exposed = float(comparison[f"{name}_exposed_s"])
        if exposed > 0:
            fig.add_trace(go.Bar(
                y=[label], x=[exposed * us], base=[(starts[needed] - exposed) * us], orientation="h", width=0.35,
                offset=-0.4, marker=dict(color=rgba(_COLOURS[name], 0.25), line=dict(color=_COLOURS[name], width=1)),
                name=f"{label}: wait {exposed * us:.1f} µs", hovertemplate=f"{label} waits %{{x:.1f}} µs<extra></extra>"))
    fig.update_layout(**base_layout(title, height=330), barmode="overlay", legend=legend_below())
    fig.update_xaxes(title_text="time in one decode step (µs)", rangemode="tozero", **axis_style())
    fig.update_yaxes(categoryorder="array", categoryarray=rows[::-1], **axis_style())
    return fig


def offload_cost_figure(batch_sizes, comparison: Mapping, title: str) -> go.Figure:
    """Copy time (solid) against the compute it can hide behind (dotted), per batch size, log–log (µs).

    Args:
        batch_sizes: the B of ``comparison`` (1-D, increasing, ≥ 1).
        comparison: :func:`~ultramem_edu.offload.host_offload_comparison` over those batch sizes (arrays).
        title: the figure's title; name the assumptions in it.
    """
    _check_comparison(comparison, arrays=True)
    b = np.asarray(batch_sizes)
    if b.ndim != 1 or b.size < 2 or b.dtype.kind not in "iu" or int(b.min()) < 1 or np.any(np.diff(b) <= 0):
        raise ValueError(f"batch_sizes must be a 1-D increasing integer array >= 1 of at least 2, got {batch_sizes!r}")
    if any(np.asarray(comparison[f"{n}_fetch_s"]).shape != b.shape for n in _LABELS):
        raise ValueError(f"comparison's arrays must have the shape of batch_sizes {b.shape}")
    fig = go.Figure()
    for name, label in _LABELS.items():
        colour = _COLOURS[name]
        fig.add_trace(go.Scatter(x=b, y=np.asarray(comparison[f"{name}_fetch_s"]) * 1e6, mode="lines+markers",
                                 line=dict(color=colour), marker=dict(size=5), name=f"{label}: copy",
                                 hovertemplate=f"{label}, B=%{{x}}: copy %{{y:.3g}} µs<extra></extra>"))
        fig.add_trace(go.Scatter(x=b, y=np.asarray(comparison[f"{name}_overlap_s"]) * 1e6, mode="lines",
                                 line=dict(color=colour, dash="dot"), name=f"{label}: compute to hide it behind",
                                 hovertemplate=f"{label}, B=%{{x}}: %{{y:.3g}} µs of compute<extra></extra>"))
    fig.update_layout(**base_layout(title, height=440), legend=legend_below())
    fig.update_xaxes(type="log", title_text="tokens per decode step (batch B)", **axis_style())
    fig.update_yaxes(type="log", title_text="µs per step", tickfont=dict(color=TEXT), **axis_style())
    return fig
