"""Top-m diversity: how PKM and UltraMem spread a batch of selections over the value table.

Three panels per (n, m): distinct rows and columns per query (bars, mean ± std), the cumulative
share of selections taken by the most-used values (the diagonal is perfectly even use; entropy in
the legend), and the fraction of the table used and the mean overlap between queries. A slider
changes m and buttons change n, all precomputed, so it works in a static page. The numbers come
from :func:`ultramem_edu.diagnostics.diversity_sweep` (or any mapping of
:class:`~ultramem_edu.diagnostics.TopmDiversity`, e.g. from trained layers).
"""
from __future__ import annotations

from typing import Mapping

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._checks import check_int
from ..diagnostics import TopmDiversity, diversity_sweep
from .palette import METHOD_COLORS, OKABE_ITO, TEXT, axis_style, base_layout
from .topology import figure_explorer

__all__ = ["diversity_figure", "diversity_widget"]

_FALLBACK = [OKABE_ITO[k] for k in ("reddish_purple", "sky_blue", "vermillion", "bluish_green")]
# Laid out in pixels for a text column from _MIN_WIDTH px up (the book's is ~745 px); narrower, the
# book scrolls it sideways. Below the panels: axis titles, the legend, the slider (m), the buttons (n).
_MIN_WIDTH = 640
_TOP, _PLOT, _BOTTOM = 80, 230, 200


def _below(px: float) -> float:
    """Paper y of a point ``px`` pixels below the panels' bottom edge."""
    return -px / _PLOT


def _colour(method: str, k: int) -> str:
    key = {"pkm": "pkm", "ultramem": "tdqkr", "tdqkr": "tdqkr"}.get(method.lower())
    return METHOD_COLORS[key] if key else _FALLBACK[k % len(_FALLBACK)]


def _panel_data(d: TopmDiversity, method: str) -> list[dict]:
    """Data of the three traces of one method: distinct bars, usage curve, table bars."""
    rows, cols = d.distinct_rows.double(), d.distinct_cols.double()
    x, share = d.usage_curve(51)
    return [
        dict(
            y=[round(float(rows.mean()), 3), round(float(cols.mean()), 3)],
            error_y=dict(type="data", color=TEXT, array=[
                round(float(rows.std()), 3) if rows.numel() > 1 else 0.0,
                round(float(cols.std()), 3) if cols.numel() > 1 else 0.0,
            ]),
            name=method,
        ),
        dict(
            x=[round(float(v), 3) for v in x], y=[round(float(v), 4) for v in share],
            name=f"{method}: entropy {d.entropy_normalised:.3f}·log N",
        ),
        dict(y=[round(d.fraction_used, 4), round(d.mean_jaccard, 4)], name=method),
    ]


def diversity_figure(
    sweep: Mapping[tuple[int, int], Mapping[str, TopmDiversity]],
    n_default: int | None = None,
    m_default: int | None = None,
) -> go.Figure:
    """PKM vs UltraMem selection diversity, with a slider over m and buttons over n.

    Args:
        sweep: {(n, m): {method name: TopmDiversity}} on a full grid of n's × m's, the same methods
            everywhere, as returned by :func:`ultramem_edu.diagnostics.diversity_sweep`.
        n_default, m_default: the values shown first (default: the largest n, the middle m).

    Returns:
        A plotly Figure with three panels (see the module docstring).
    """
    if not isinstance(sweep, Mapping) or not sweep:
        raise ValueError("sweep must be a non-empty mapping {(n, m): {method: TopmDiversity}}")
    ns = sorted({n for n, _ in sweep})
    ms = sorted({m for _, m in sweep})
    missing = [(n, m) for n in ns for m in ms if (n, m) not in sweep]
    if missing:
        raise ValueError(f"sweep must hold every (n, m) of n in {ns}, m in {ms}; missing {missing}")
    methods = list(next(iter(sweep.values())))
    for key, per in sweep.items():
        if list(per) != methods:
            raise ValueError(f"every entry must hold the methods {methods}, got {list(per)} at {key}")
        for d in per.values():
            if not isinstance(d, TopmDiversity):
                raise TypeError(f"sweep values must be TopmDiversity, got {type(d).__name__} at {key}")
    n_default = ns[-1] if n_default is None else n_default
    m_default = ms[len(ms) // 2] if m_default is None else m_default
    if n_default not in ns or m_default not in ms:
        raise ValueError(f"n_default/m_default must be among n {ns} and m {ms}, got {n_default}, {m_default}")

    fig = make_subplots(
        rows=1, cols=3, horizontal_spacing=0.11,
        subplot_titles=("distinct per query", "share of selections", "coverage, overlap"),
    )
    traces: list[tuple[int, int, str, int]] = []      # (trace index, n, method, panel)
    for n in ns:
        visible = n == n_default
        for k, method in enumerate(methods):
            colour = _colour(method, k)
            data = _panel_data(sweep[(n, m_default)][method], method)
            traces.append((len(fig.data), n, method, 0))
            fig.add_trace(go.Bar(x=["rows", "columns"], marker_color=colour, visible=visible,
                                 legendgroup=method, showlegend=False, **data[0]), row=1, col=1)
            traces.append((len(fig.data), n, method, 1))
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=colour, width=2.5), visible=visible,
                                     legendgroup=method, **data[1]), row=1, col=2)
            traces.append((len(fig.data), n, method, 2))
            fig.add_trace(go.Bar(x=["values used", "mean Jaccard"], marker_color=colour,
                                 visible=visible, legendgroup=method, showlegend=False,
                                 texttemplate="%{y:.3f}", textposition="outside", **data[2]),
                          row=1, col=3)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", visible=visible,
                                 line=dict(color="rgba(128,128,128,0.6)", dash="dot", width=1.5),
                                 name="even use (entropy = log N)", legendgroup="even"), row=1, col=2)
        traces.append((len(fig.data) - 1, n, "", -1))

    data_traces = [t for t in traces if t[3] >= 0]
    steps = []
    for m in ms:
        update: dict[str, list] = {"x": [], "y": [], "name": [], "error_y": []}
        for _, n, method, panel in data_traces:
            d = _panel_data(sweep[(n, m)][method], method)[panel]
            update["y"].append(d["y"])
            update["name"].append(d["name"])
            update["x"].append(d.get("x", ["rows", "columns"] if panel == 0
                                      else ["values used", "mean Jaccard"]))
            update["error_y"].append(d.get("error_y", {}))
        steps.append(dict(method="restyle", label=str(m), args=[update, [t for t, *_ in data_traces]]))

    buttons = []
    for n in ns:
        visible = [t_n == n for _, t_n, _, _ in traces]
        buttons.append(dict(label=f"n = {n} (N = {n * n})", method="restyle", args=[{"visible": visible}]))

    queries = next(iter(sweep.values()))[methods[0]].distinct_rows.shape[0]
    fig.update_layout(**base_layout(f"Top-m diversity over a batch of {queries} queries",
                                    height=_TOP + _PLOT + _BOTTOM, min_width=_MIN_WIDTH))
    fig.update_annotations(font_size=13)       # the panels' titles
    fig.update_layout(
        margin=dict(l=60, r=20, t=_TOP, b=_BOTTOM),
        barmode="group",
        legend=dict(orientation="h", y=_below(60), x=0, yanchor="top", bgcolor="rgba(0,0,0,0)"),
        sliders=[dict(active=ms.index(m_default), steps=steps, currentvalue=dict(prefix="m = "),
                      pad=dict(t=0, b=0), x=0.0, len=0.4, y=_below(115), yanchor="top")],
        updatemenus=[dict(type="buttons", direction="right", buttons=buttons, active=ns.index(n_default),
                          x=0.5, xanchor="left", y=_below(135), yanchor="top",
                          bgcolor="rgba(128,128,128,0.15)")],
    )
    fig.update_yaxes(title_text="count (mean ± std)", rangemode="tozero", row=1, col=1, **axis_style())
    fig.update_xaxes(title_text="values, most used first", range=[0, 1], row=1, col=2, **axis_style())
    fig.update_yaxes(title_text="share of selections", range=[0, 1.02], row=1, col=2, **axis_style())
    fig.update_yaxes(title_text="fraction", range=[0, 1.12], row=1, col=3, **axis_style())
    fig.update_xaxes(row=1, col=1, **axis_style())
    fig.update_xaxes(row=1, col=3, **axis_style())
    return fig


def diversity_widget(queries: int = 512):
    """Live version: sliders for n, m and the seed recompute PKM vs UltraMem diversity.

    Returns an ipywidgets VBox; display it to use it.
    """
    import ipywidgets as widgets

    check_int("queries", queries, 2)
    controls = {
        "n": widgets.IntSlider(value=32, min=4, max=64, step=4, description="n"),
        "m": widgets.IntSlider(value=8, min=1, max=32, description="m"),
        "seed": widgets.IntSlider(value=0, min=0, max=20, description="seed"),
    }

    def build(n: int, m: int, seed: int) -> go.Figure:
        return diversity_figure(diversity_sweep((n,), (min(m, n),), queries=queries, seed=seed))

    return figure_explorer(build, controls)
