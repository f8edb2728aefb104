"""Text alternatives of the plotly figures, and the PDF edition's figures and widgets
(``ultramem_edu.viz._plotly``): no browser, no LaTeX."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from ultramem_edu.viz import _plotly
from ultramem_edu.viz._plotly import describe_figure, figure_html, widget_note

ROOT = Path(__file__).resolve().parents[1]


def _lines() -> go.Figure:
    return go.Figure(
        [go.Scatter(x=[1, 2, 4], y=np.array([0.5, 0.25, 0.125]), name="dense"),
         go.Scatter(x=[1, 2, 4], y=np.array([0.6, 0.7, np.nan]), name="UltraMem")],
        layout=dict(title="Loss <b>by</b> width", xaxis_title="width", yaxis_title="loss"),
    )


def test_a_line_chart_is_described_by_its_data():
    text = describe_figure(_lines())
    assert text.startswith("Figure: Loss by width.")             # the title, without its markup
    assert "x axis: width; y axis: loss." in text
    assert "'dense': 3 points, y from 0.125 to 0.5, highest at x = 1" in text
    assert "'UltraMem': 2 points, y from 0.6 to 0.7, highest at x = 2" in text  # NaN left out
    assert text.endswith("Highest: UltraMem (0.7 at x = 2).")


def test_the_same_description_from_the_figure_or_its_json():
    # the book's renderer gets the figure as JSON, with numpy arrays base64-encoded
    fig = go.Figure(go.Heatmap(z=np.arange(6, dtype=np.int8).reshape(2, 3), x=["a", "b", "c"], y=["r0", "r1"]))
    as_json = json.loads(pio.to_json(fig))
    assert "bdata" in json.dumps(as_json["data"][0]["z"])
    text = describe_figure(fig)
    assert describe_figure(as_json) == text
    assert "2 by 3 cells, values from 0 to 5, largest at x = c, y = r1" in text


def test_sliders_menus_and_hidden_traces():
    fig = _lines()
    fig.data[1].visible = "legendonly"
    fig.update_layout(
        sliders=[dict(active=1, currentvalue=dict(prefix="m = "),
                      steps=[dict(label=str(m), method="restyle", args=[{}]) for m in (2, 4, 8)])],
        updatemenus=[dict(buttons=[dict(label=f"seed {s}", method="restyle", args=[{}]) for s in (0, 1)])],
    )
    text = describe_figure(fig)
    assert "UltraMem" not in text and "1 series" in text
    assert "A slider (m) steps through 3 settings from 2 to 8; shown: 4." in text
    assert "A menu switches between seed 0, seed 1." in text


def test_describe_figure_rejects_other_objects():
    with pytest.raises(ValueError, match="fig"):
        describe_figure([1, 2])


def test_the_figure_html_names_and_describes_the_figure():
    html = figure_html(_lines(), div_id="f")
    description = re.search(r'<p id="f-description" class="ultramem-figure-description" style="[^"]*">(.*?)</p>',
                            html).group(1)
    assert description.startswith("Figure: Loss by width.")
    assert 'el.setAttribute("role", "figure")' in html
    assert 'el.setAttribute("aria-label", "Figure: Loss by width")' in html
    assert 'el.setAttribute("aria-describedby", "f-description")' in html
    assert "window.ultramemFollowTheme" in html  # recoloured by the book's theme script


def test_the_live_page_placeholder_is_the_one_the_pdf_build_replaces():
    sys.path.insert(0, str(ROOT / "scripts"))
    import book_assets

    assert _plotly.LIVE_PAGE_URL == book_assets.LIVE_PAGE_URL


def test_a_widget_in_the_pdf_is_its_settings_and_a_link():
    widgets = pytest.importorskip("ipywidgets")
    box = widgets.VBox([
        widgets.HBox([widgets.IntSlider(value=8, min=1, max=16, description="m"),
                      widgets.FloatSlider(value=0.15, description="margin τ"),
                      widgets.Dropdown(options=[("5. TDQKR", 5), ("6. IVE", 6)], value=5, description="Reach:"),
                      widgets.Button(description="Run")]),
        widgets.HTML("<p>1. Memory → <b>2. Keys</b></p>"),
    ])
    note = widget_note(box)
    assert note.startswith(f"*Interactive in the [online edition]({_plotly.LIVE_PAGE_URL}):* "
                           "this is its default view (m = 8, margin τ = 0.15, Reach = 5. TDQKR).")
    assert note.endswith("> 1\\. Memory → 2. Keys")  # escaped: plain text, not a numbered list
    with pytest.raises(TypeError, match="widget"):
        widget_note("not a widget")


def test_show_in_the_pdf_build_gives_an_image_and_the_note(monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    shown = []
    monkeypatch.setenv(_plotly.BOOK_BUILD_ENV, "1")
    monkeypatch.setenv(_plotly.PDF_BUILD_ENV, "1")
    monkeypatch.setattr("IPython.display.display", lambda obj, raw=False: shown.append(obj))
    monkeypatch.setattr(_plotly, "figure_png", lambda fig, width=None: b"\x89PNG fake")
    _plotly.show(_lines())
    box = widgets.VBox([widgets.IntSlider(value=3, description="seed")])
    box.figure = _lines()
    _plotly.show(box)
    figure, note, widget_figure = shown
    assert set(figure) == {"image/png", "text/plain"} and figure["text/plain"] == describe_figure(_lines())
    assert "(seed = 3)" in note["text/markdown"]
    assert "image/png" in widget_figure


def test_print_colours_darken_only_the_grey_text():
    from ultramem_edu.viz.palette import OKABE_ITO, TEXT, base_layout

    fig = go.Figure(go.Scatter(y=[1, 2], line=dict(color=OKABE_ITO["blue"])), layout=base_layout("t"))
    printed = _plotly._for_print(fig)
    assert printed.layout.font.color == _plotly.PRINT_TEXT != TEXT
    assert printed.data[0].line.color == OKABE_ITO["blue"]
