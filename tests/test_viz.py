"""Tests of ultramem_edu.viz: trace counts, native slider/button data, JSON size, widgets."""
import json

import plotly.graph_objects as go
import pytest

from ultramem_edu.diagnostics import core_spectrum_run, diversity_sweep, retrieval_example
from ultramem_edu.viz import (
    core_spectrum_figure,
    core_spectrum_widget,
    diversity_figure,
    diversity_widget,
    retrieval_topology_figure,
    retrieval_topology_widget,
)
from ultramem_edu.viz._plotly import figure_html
from ultramem_edu.viz.palette import (
    METHOD_COLORS, OKABE_ITO, PHONE_WIDTH, TITLE_CHARS, axis_style, base_layout, min_width, rgba,
    wrap_text,
)

MAX_JSON = 300_000
BOOK_COLUMN = 745   # px: the built book's text column at a 1366 px window (tests/test_browser.py)


# ------------------------------------------------------------------------------------- topology
@pytest.fixture(scope="module")
def topo():
    return retrieval_topology_figure(n=8, m_values=(2, 4), r_values=(2, 1), seeds=(0, 1), m_default=4)


def test_topology_traces_steps_and_buttons(topo):
    assert isinstance(topo, go.Figure)
    assert len(topo.data) == 4 * 7                         # 4 (r, seed) pairs × (3 heatmaps + 4 markers)
    assert sum(isinstance(t, go.Heatmap) for t in topo.data) == 12
    assert [t.visible for t in topo.data[:7]] == [True] * 7
    assert not any(t.visible for t in topo.data[7:])
    (slider,) = topo.layout.sliders
    assert [s.label for s in slider.steps] == ["2", "4"] and slider.active == 1
    a, b = (s.args[0] for s in slider.steps)
    assert a["x"] != b["x"]                                # each step changes the drawn cells
    assert all(len(x) == 2 for x in a["x"][0::4])          # PKM picks: m = 2 cells
    buttons = topo.layout.updatemenus[0].buttons
    assert len(buttons) == 4
    for k, button in enumerate(buttons):
        vis = button.args[0]["visible"]
        assert sum(vis) == 7 and all(vis[7 * k: 7 * k + 7])


def test_topology_markers_are_the_package_selections(topo):
    ex = retrieval_example(8, 2, 1, seed=1)                # combo 3 = (r=1, seed 1), slider step m=2
    step = topo.layout.sliders[0].steps[0].args
    ids = list(step[1])
    pkm = ids.index(3 * 7 + 3)
    cells = {(y, x) for x, y in zip(step[0]["x"][pkm], step[0]["y"][pkm])}
    assert cells == {(int(a) // 8, int(a) % 8) for a in ex.pkm}
    assert f"{ex.distinct_rows['pkm']} rows" in step[0]["name"][pkm]
    brute = ids.index(3 * 7 + 6)
    assert {(y, x) for x, y in zip(step[0]["x"][brute], step[0]["y"][brute])} == {
        (int(a) // 8, int(a) % 8) for a in ex.brute
    }


def test_topology_default_is_small_and_serialises():
    fig = retrieval_topology_figure()
    text = fig.to_json()
    assert len(text) < MAX_JSON
    assert json.loads(text)["layout"]["sliders"][0]["steps"]


def test_topology_validates():
    with pytest.raises(ValueError):
        retrieval_topology_figure(n=64)
    with pytest.raises(ValueError):
        retrieval_topology_figure(n=8, m_values=(9,))
    with pytest.raises(ValueError):
        retrieval_topology_figure(n=8, m_values=(2, 4), m_default=3)


# ------------------------------------------------------------------------------------- spectrum
@pytest.fixture(scope="module")
def runs():
    kw = dict(steps=6, seed=1, batch=16, probe=8)
    return core_spectrum_run(with_aux=True, aux_alpha=1.0, tau=0.0, **kw), core_spectrum_run(with_aux=False, **kw)


def test_spectrum_figure_traces(runs):
    with_aux, without = runs
    fig = core_spectrum_figure(with_aux, without, tau=0.15)
    # per run: r = 2 summed σ's + h·r = 4 per-core σ's + 2 recall curves; then τ
    assert len(fig.data) == 2 * 8 + 1
    tau = fig.data[-1]
    assert list(tau.y) == [0.15, 0.15] and tau.line.dash == "dash"
    assert fig.data[0].y[-1] == pytest.approx(float(with_aux.summed_sv[-1, 0, 0]), rel=1e-4)
    assert sum(t.line.dash == "dash" for t in fig.data[:-1]) == 2 * 4
    assert fig.layout.yaxis.type == "log"
    labels = [b.label for b in fig.layout.updatemenus[0].buttons]
    assert labels == ["log σ", "linear σ"]
    assert len(fig.to_json()) < MAX_JSON


def test_spectrum_figure_validates(runs):
    with pytest.raises(TypeError):
        core_spectrum_figure(runs[0], "not a run")
    with pytest.raises(ValueError):
        core_spectrum_figure(*runs, head=1)
    with pytest.raises(ValueError):
        core_spectrum_figure(*runs, tau=-1.0)


# ------------------------------------------------------------------------------------- diversity
@pytest.fixture(scope="module")
def sweep():
    return diversity_sweep(ns=(4, 8), ms=(2, 4), queries=24)


def test_diversity_traces_steps_and_buttons(sweep):
    fig = diversity_figure(sweep)
    assert len(fig.data) == 2 * (2 * 3 + 1)                # per n: 2 methods × 3 panels + the diagonal
    (slider,) = fig.layout.sliders
    assert [s.label for s in slider.steps] == ["2", "4"]
    a, b = (s.args[0] for s in slider.steps)
    assert a["y"] != b["y"]
    first = list(slider.steps[0].args[1])[0]
    d = sweep[(4, 2)]["PKM"]
    assert a["y"][0][0] == pytest.approx(float(d.distinct_rows.double().mean()), abs=1e-3)
    assert "entropy" in a["name"][1]
    assert fig.data[first].name == "PKM"
    buttons = fig.layout.updatemenus[0].buttons
    assert [bt.label for bt in buttons] == ["n = 4 (N = 16)", "n = 8 (N = 64)"]
    assert [bt.args[0]["visible"] for bt in buttons][1] == [t.visible for t in fig.data]   # default n = 8
    assert len(fig.to_json()) < MAX_JSON


def test_diversity_default_sweep_figure_is_small():
    fig = diversity_figure(diversity_sweep(ns=(16, 32), ms=(4, 8, 16), queries=64))
    assert len(fig.to_json()) < MAX_JSON


def test_diversity_figure_validates(sweep):
    partial = {k: v for k, v in sweep.items() if k != (8, 4)}
    with pytest.raises(ValueError, match="missing"):
        diversity_figure(partial)
    with pytest.raises(ValueError):
        diversity_figure({})
    with pytest.raises(ValueError):
        diversity_figure(sweep, n_default=5)


# ------------------------------------------------------------------------------------- widgets & palette
def test_topology_widget_rebuilds_on_change(capsys):
    import ipywidgets as widgets

    box = retrieval_topology_widget(n=8)
    assert isinstance(box, widgets.VBox)
    before = box.figure
    assert len(before.data) == 7 and not before.layout.sliders and not before.layout.updatemenus
    m_slider = box.children[0].children[0]
    m_slider.value = 3
    assert box.figure is not before
    assert len(box.figure.data[3].x) == 3                  # PKM now shows 3 cells
    capsys.readouterr()


def test_diversity_and_spectrum_widgets_build(capsys):
    import ipywidgets as widgets

    box = diversity_widget(queries=8)
    assert isinstance(box.figure, go.Figure)
    spectrum = core_spectrum_widget(steps=10)
    assert any(isinstance(w, widgets.Button) for w in spectrum.children[0].children)
    assert len(spectrum.figure.data) == 17
    capsys.readouterr()


def test_palette_is_okabe_ito():
    assert set(METHOD_COLORS.values()) <= set(OKABE_ITO.values())
    assert rgba("#0072B2", 0.5) == "rgba(0,114,178,0.5)"
    with pytest.raises(ValueError):
        rgba("blue", 0.5)


# ------------------------------------------------------------------------------------- fitting the column
# How the figures look at the column's width is checked in the built book (tests/test_browser.py);
# these are the layout rules that make it work.
def test_wrap_text_breaks_at_spaces_and_keeps_breaks():
    text = "Retrieval topology: one query's top-m cells on the 16×16 grid<br>second line"
    wrapped = wrap_text(text, 20)
    lines = wrapped.split("<br>")
    assert all(len(line) <= 20 for line in lines)
    assert lines[-1] == "second line"
    assert " ".join(wrapped.replace("<br>", " ").split()) == text.replace("<br>", " ")
    assert wrap_text("a-very-long-single-word", 5) == "a-very-long-single-word"
    with pytest.raises(ValueError, match="width"):
        wrap_text("x", 0)
    with pytest.raises(TypeError, match="text"):
        wrap_text(3, 10)


def test_base_layout_wraps_the_title_and_makes_room_for_it():
    short = base_layout("Short title")
    long = base_layout("Scoring every key costs O(N·D_k); product keys cost O(√N·D_k) per query")
    assert "<br>" not in short["title"]["text"]
    assert all(len(line) <= TITLE_CHARS for line in long["title"]["text"].split("<br>"))
    assert long["margin"]["t"] > short["margin"]["t"]
    assert long["title"]["yref"] == "container" and long["title"]["yanchor"] == "top"
    assert min_width(short) is None
    wide = base_layout("A figure with three panels side by side", min_width=620)
    assert min_width(wide) == 620
    with pytest.raises(ValueError, match="min_width"):
        base_layout("t", min_width=0)


def test_figure_html_scrolls_only_figures_wider_than_the_column():
    plain = go.Figure(go.Scatter(y=[1, 2]), layout=base_layout("plain", height=300))
    html = figure_html(plain, div_id="a")
    assert "min-width" not in html and "overflow-x" not in html
    wide = go.Figure(go.Scatter(y=[1, 2]), layout=base_layout("wide", height=300, min_width=640))
    html = figure_html(wide, div_id="b")
    assert html.startswith('<div class="ultramem-figure-scroll" style="overflow-x:auto;">')
    assert 'style="width:100%;height:300px;min-width:640px;"' in html


def test_side_by_side_figures_fit_the_book_column_and_stacked_ones_a_phone(topo, runs, sweep):
    # three panels side by side need more than a phone's column, but never more than the book's
    for fig in (topo, diversity_figure(sweep)):
        assert PHONE_WIDTH < min_width(fig.layout) <= BOOK_COLUMN
        assert fig.layout.margin.b >= 150                  # legend, slider and menu below the panels
        assert fig.layout.legend.orientation == "h"
    spectrum = core_spectrum_figure(*runs)
    assert min_width(spectrum.layout) is None              # stacked rows: legible on a phone
    # its legend sits below the plots, pinned to the figure's bottom, not on the curves
    assert spectrum.layout.legend.orientation == "h"
    assert spectrum.layout.legend.yref == "container" and spectrum.layout.legend.y == 0
    (menu,) = spectrum.layout.updatemenus
    assert menu.y == 1 and menu.yanchor == "bottom"        # the log/linear switch above the plots
    # tick labels stand off their axes: the x axis' first and the y axis' lowest clear the corner
    assert spectrum.layout.xaxis.ticklabelstandoff == axis_style()["ticklabelstandoff"] > 0
