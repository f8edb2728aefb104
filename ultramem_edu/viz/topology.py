"""Retrieval topology: where one query's top-m cells lie on the n×n address grid.

Three panels share one query: additive product keys (PKM), TDQKR (rank-1 stage, exact rescoring)
and brute force over the same Tucker grid. A native slider changes m and a dropdown changes the
Tucker rank r and the query, so the figure works in a static page; the widget version recomputes
on demand when a kernel is running. The numbers come from :func:`ultramem_edu.diagnostics.retrieval_example`.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .._checks import check_int
from ..diagnostics import RetrievalExample, retrieval_example
from .palette import METHOD_COLORS, axis_style, base_layout, wrap_text

__all__ = ["retrieval_topology_figure", "retrieval_topology_widget", "figure_explorer"]

_PANELS = (
    ("pkm", "PKM: s_row[i] + s_col[j]"),
    ("tdqkr", "TDQKR: rank-1, rescored"),
    ("brute", "brute force: S_rowᵀ C S_col"),
)
_LABELS = {"pkm": "PKM", "tdqkr": "TDQKR", "brute": "brute force"}
_KEY = ("grey: grid score (darker = higher) · squares: the top-m picks · circles: brute-force cells "
        "TDQKR missed (its rank-1 stage searches only the top rows and columns; where both signed "
        "scores are very negative, their product is large too, and that corner is never seen)")
# Laid out in pixels for a text column from _MIN_WIDTH px up (the book's is ~745 px); narrower,
# the book scrolls the figure sideways. Top: title, the key, the panels' titles; bottom: axis
# titles, the legend, the slider for m and the dropdown for (r, query).
_MIN_WIDTH = 620
_TOP, _PLOT, _BOTTOM = 125, 210, 200   # px: the panels' domain is _PLOT tall, cells are square
_HEIGHT = _TOP + _PLOT + _BOTTOM
_PANEL_PX = 180        # a panel's width at the narrowest: sets the marker size
_TRACES_PER_COMBO = 7  # 3 heatmaps, PKM / TDQKR / missed / brute picks


def _below(px: float) -> float:
    """Paper y of a point ``px`` pixels below the panels' bottom edge."""
    return -px / _PLOT


def _rounded(grid) -> list[list[float]]:
    """(n, n) tensor → nested lists with 3 decimals: keeps the figure's JSON small."""
    return [[round(float(v), 3) for v in row] for row in grid]


def _cells(indices, n: int) -> tuple[list[int], list[int]]:
    """Addresses (k,) → (columns j, rows i) for a scatter on the grid."""
    idx = [int(a) for a in indices]
    return [a % n for a in idx], [a // n for a in idx]


def _picks(ex: RetrievalExample) -> dict[str, dict]:
    """x, y and legend name of the four marker traces for one example."""
    n = ex.n
    out = {}
    for key in ("pkm", "tdqkr", "brute"):
        x, y = _cells(ex.selections()[key], n)
        out[key] = dict(
            x=x, y=y,
            name=f"{_LABELS[key]}: {ex.distinct_rows[key]} rows, {ex.distinct_cols[key]} cols",
        )
    found = {int(a) for a in ex.tdqkr}
    missed = [int(a) for a in ex.brute if int(a) not in found]
    x, y = _cells(missed, n)
    hits = ex.m - len(missed)
    out["missed"] = dict(x=x, y=y, name=f"missed by TDQKR (recall {hits}/{ex.m})")
    return out


def _marker(colour: str, n: int, symbol: str = "square", open_: bool = False) -> dict:
    size = max(4, int(0.7 * _PANEL_PX / n))
    if open_:
        return dict(symbol=symbol + "-open", size=size, color=colour, line=dict(width=2.5, color=colour))
    return dict(symbol=symbol, size=size, color=colour, line=dict(width=1.2, color="white"))


def retrieval_topology_figure(
    n: int = 16,
    m_values: Sequence[int] = (2, 4, 8, 16),
    r_values: Sequence[int] = (2, 1, 3),
    seeds: Sequence[int] = (0, 1, 2),
    m_default: int | None = None,
) -> go.Figure:
    """Three grids, one query: PKM vs TDQKR vs brute force, with a slider for m and a dropdown for r/query.

    Args:
        n: keys per side (2 ≤ n ≤ 32 keeps the figure's JSON small).
        m_values: the slider's values of m (each 1 ≤ m ≤ n).
        r_values, seeds: the dropdown offers every (r, seed) pair; the first pair is shown first.
        m_default: the slider's starting m (default: the value nearest n/2).

    Returns:
        A plotly Figure (slider and dropdown only where there is more than one choice). Grey heatmaps are the grid scores (darker = higher); filled squares are the
        selected cells; open circles in the TDQKR panel are brute-force cells that TDQKR missed. The
        legend gives the distinct rows and columns among the top-m.
    """
    check_int("n", n, 2, 32)
    m_values, r_values, seeds = list(m_values), list(r_values), list(seeds)
    if not m_values or not r_values or not seeds:
        raise ValueError("m_values, r_values and seeds must each hold at least one value")
    for m in m_values:
        check_int("m in m_values", m, 1, n)
    if m_default is None:
        m_default = min(m_values, key=lambda m: abs(m - n / 2))
    if m_default not in m_values:
        raise ValueError(f"m_default must be one of m_values {m_values}, got {m_default}")
    combos = [(r, s) for r in r_values for s in seeds]
    # examples[(r, seed)][m]; the grids do not depend on m
    examples = {c: {m: retrieval_example(n, m, c[0], c[1]) for m in m_values} for c in combos}

    fig = make_subplots(rows=1, cols=3, subplot_titles=[t for _, t in _PANELS], horizontal_spacing=0.07)
    marker_traces: list[tuple[int, tuple[int, int], str]] = []   # (trace index, combo, pick key)
    for c_idx, combo in enumerate(combos):
        visible = c_idx == 0
        ex = examples[combo][m_default]
        for col, grid in ((1, ex.additive_grid), (2, ex.tucker_grid), (3, ex.tucker_grid)):
            fig.add_trace(
                go.Heatmap(
                    z=_rounded(grid), colorscale="Greys", showscale=False, opacity=0.85, visible=visible,
                    hovertemplate="row %{y}, col %{x}<br>score %{z}<extra></extra>",
                ),
                row=1, col=col,
            )
        picks = _picks(ex)
        for key, col, colour, open_ in (
            ("pkm", 1, METHOD_COLORS["pkm"], False),
            ("tdqkr", 2, METHOD_COLORS["tdqkr"], False),
            ("missed", 2, METHOD_COLORS["missed"], True),
            ("brute", 3, METHOD_COLORS["brute"], False),
        ):
            marker_traces.append((len(fig.data), combo, key))
            fig.add_trace(
                go.Scatter(
                    x=picks[key]["x"], y=picks[key]["y"], name=picks[key]["name"], mode="markers",
                    marker=_marker(colour, n, "circle" if open_ else "square", open_), visible=visible,
                    hovertemplate="row %{y}, col %{x}<extra>%{fullData.name}</extra>",
                ),
                row=1, col=col,
            )

    steps = []
    trace_ids = [t for t, _, _ in marker_traces]
    for m in m_values:
        per = {combo: _picks(examples[combo][m]) for combo in combos}
        xs = [per[combo][key]["x"] for _, combo, key in marker_traces]
        ys = [per[combo][key]["y"] for _, combo, key in marker_traces]
        names = [per[combo][key]["name"] for _, combo, key in marker_traces]
        steps.append(dict(method="restyle", label=str(m), args=[{"x": xs, "y": ys, "name": names}, trace_ids]))

    buttons = []
    total = len(fig.data)
    for c_idx, (r, seed) in enumerate(combos):
        visible = [c_idx * _TRACES_PER_COMBO <= t < (c_idx + 1) * _TRACES_PER_COMBO for t in range(total)]
        buttons.append(dict(method="restyle", label=f"r = {r}, query {seed}", args=[{"visible": visible}]))

    layout = base_layout(
        f"Retrieval topology: one query's top-m cells on the {n}×{n} grid", height=_HEIGHT,
        min_width=_MIN_WIDTH,
    )
    layout["margin"] = dict(l=50, r=20, t=_TOP, b=_BOTTOM)
    fig.update_layout(**layout)
    fig.update_annotations(font_size=13)       # the panels' titles
    fig.update_layout(legend=dict(orientation="h", x=0, y=_below(55), yanchor="top",
                                  bgcolor="rgba(0,0,0,0)"))
    fig.add_annotation(
        text=wrap_text(_KEY, 105), xref="paper", yref="paper", x=0, y=1 + 32 / _PLOT,
        xanchor="left", yanchor="bottom", showarrow=False, font=dict(size=11), align="left",
    )
    if len(m_values) > 1:
        fig.update_layout(sliders=[dict(
            active=m_values.index(m_default), steps=steps, currentvalue=dict(prefix="m = "),
            pad=dict(t=0, b=0), x=0.0, len=0.45, y=_below(110), yanchor="top",
        )])
    if len(combos) > 1:
        fig.update_layout(updatemenus=[dict(
            type="dropdown", buttons=buttons, active=0, x=0.55, xanchor="left", y=_below(130),
            yanchor="top", bgcolor="rgba(128,128,128,0.15)",
        )])
    for col in (1, 2, 3):
        axis = "" if col == 1 else str(col)
        fig.update_xaxes(title_text="column j", range=[-0.5, n - 0.5], constrain="domain",
                         row=1, col=col, **axis_style())
        fig.update_yaxes(title_text="row i" if col == 1 else None, range=[n - 0.5, -0.5],
                         scaleanchor=f"x{axis}", constrain="domain", constraintoward="top",
                         row=1, col=col, **axis_style())
    return fig


def figure_explorer(build: Callable[..., go.Figure], controls: Mapping[str, object], auto: bool = True):
    """Controls + an Output that shows ``build(**values)``; rebuilt when a control changes.

    Args:
        build: keyword arguments named like ``controls`` → a plotly Figure.
        controls: name → ipywidgets value widget (IntSlider, FloatSlider, Checkbox, ...).
        auto: True rebuilds on every change; False adds a "Run" button (for slow builds).

    Returns:
        An ipywidgets VBox; its ``figure`` attribute holds the latest figure. No FigureWidget (it
        needs anywidget and fails on some hosts); the figure is shown with IPython's ``display``
        inside the Output, which works with ipywidgets 7 and 8.
    """
    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()
    box = widgets.VBox()

    def render(*_):
        fig = build(**{name: w.value for name, w in controls.items()})
        box.figure = fig
        with out:
            out.clear_output(wait=True)
            display(fig)

    rows: list = list(controls.values())
    if auto:
        for w in controls.values():
            w.observe(render, names="value")
    else:
        button = widgets.Button(description="Run", button_style="primary")
        button.on_click(render)
        rows.append(button)
    box.children = [widgets.HBox(rows, layout=widgets.Layout(flex_flow="row wrap")), out]
    render()
    return box


def retrieval_topology_widget(n: int = 16):
    """Live version for a running kernel: sliders for m, r and the query seed rebuild the figure.

    Returns an ipywidgets VBox (controls + Output); display it to use it. Works with ipywidgets 7 and 8.
    """
    import ipywidgets as widgets

    check_int("n", n, 2, 32)
    controls = {
        "m": widgets.IntSlider(value=min(8, n), min=1, max=n, description="m"),
        "r": widgets.IntSlider(value=2, min=1, max=4, description="rank r"),
        "seed": widgets.IntSlider(value=0, min=0, max=99, description="query seed"),
    }

    def build(m: int, r: int, seed: int) -> go.Figure:
        return retrieval_topology_figure(n=n, m_values=(m,), r_values=(r,), seeds=(seed,))

    return figure_explorer(build, controls)
