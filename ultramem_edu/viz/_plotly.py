"""Showing plotly figures and widgets the same way in live notebooks and in the built book.

Notebooks show every figure and widget with :func:`show`::

    from ultramem_edu.viz._plotly import show
    show(fig)      # a plotly.graph_objects.Figure
    show(widget)   # an ipywidgets widget (or anything IPython can display)

In a live notebook (Jupyter, Colab, Binder, VS Code) ``show(fig)`` is ``fig.show()``: plotly's
own renderer for that front end. While the book is built (``scripts/build_book.py`` sets
``ULTRAMEM_BOOK_BUILD=1``) it emits plain ``text/html`` instead: a ``<div>`` and a script that
draws the figure with the page's own copy of plotly.js. Two reasons:

* plotly >= 6 under a kernel emits only ``application/vnd.plotly.v1+json``, which the book's
  renderer (myst-nb) drops, leaving a blank figure;
* plotly's HTML renderers either load plotly.js from a CDN or inline all 4.8 MB of it into every
  figure. The book serves it once, locally, and adds it only to pages that hold a figure
  (``scripts/book_assets.py``).

:func:`setup_renderer` makes bare ``fig`` (a figure as a cell's last expression) and
``fig.show()`` take the same path during a book build.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from plotly.io.base_renderers import MimetypeRenderer

from .palette import min_width

BOOK_BUILD_ENV = "ULTRAMEM_BOOK_BUILD"
BOOK_RENDERER = "ultramem_book"
_DEFAULT_HEIGHT = 450  # plotly.js's default when the layout sets none
_DEFAULT_CONFIG = {"responsive": True, "displaylogo": False}


def in_book_build() -> bool:
    """True while ``scripts/build_book.py`` executes the notebooks."""
    return os.environ.get(BOOK_BUILD_ENV, "") == "1"


def figure_html(fig: Any, config: dict | None = None, div_id: str | None = None) -> str:
    """HTML fragment that draws ``fig`` with an already loaded (or deferred) plotly.js.

    ``fig``: a plotly Figure or its dict form. The figure's JSON is the one plotly's own
    renderers produce (numpy arrays as typed arrays), so plotly.js of the same release draws it.
    The drawing waits for ``DOMContentLoaded`` when the page is still loading, which is when
    deferred scripts such as the page's plotly.js have run. The figure fills the column's width;
    a figure whose layout asks for a ``min_width`` (:func:`ultramem_edu.viz.palette.base_layout`)
    keeps it and scrolls sideways in a narrower column (a phone).
    """
    import plotly.graph_objects as go
    import plotly.io as pio

    if isinstance(fig, dict):
        fig = go.Figure(fig)
    if not isinstance(fig, go.Figure):
        raise ValueError(f"fig: expected a plotly Figure or its dict, got {type(fig).__name__}")
    fig_dict = json.loads(pio.to_json(fig, validate=False))
    payload = {
        "data": fig_dict.get("data", []),
        "layout": fig_dict.get("layout", {}),
        "frames": fig_dict.get("frames", []),
        "config": {**_DEFAULT_CONFIG, **(config or {})},
    }
    height = payload["layout"].get("height") or _DEFAULT_HEIGHT
    narrowest = min_width(payload["layout"])
    div_id = div_id or f"plotly-{uuid.uuid4().hex}"
    # "</" cannot end the <script> element early once written as "<\/" (same string in JS).
    spec = json.dumps(payload, separators=(",", ":")).replace("</", "<\\/")
    style = f"width:100%;height:{height}px;" + (f"min-width:{narrowest}px;" if narrowest else "")
    div = f'<div id="{div_id}" class="plotly-graph-div" style="{style}"></div>\n'
    if narrowest:
        # narrower than the figure can be read: scroll it sideways instead of squeezing its text
        div = f'<div class="ultramem-figure-scroll" style="overflow-x:auto;">{div}</div>\n'
    return (
        div +
        "<script>(function () {\n"
        f"  var spec = {spec};\n"
        f'  var draw = function () {{ Plotly.newPlot("{div_id}", spec); }};\n'
        '  if (document.readyState === "loading") {\n'
        '    document.addEventListener("DOMContentLoaded", draw);\n'
        "  } else { draw(); }\n"
        "})();</script>"
    )


def _mimebundle(fig: Any, config: dict | None = None) -> dict[str, str]:
    layout = fig.get("layout", {}) if isinstance(fig, dict) else fig.to_plotly_json()["layout"]
    text = layout.get("title")
    if isinstance(text, dict):
        text = text.get("text")
    title = f": {text}" if text else ""
    return {"text/html": figure_html(fig, config), "text/plain": f"<plotly figure{title}>"}


def setup_renderer() -> str:
    """During a book build, make plotly's default renderer emit the book's HTML; return its name.

    Outside a build this changes nothing and returns plotly's current default renderer.
    """
    import plotly.io as pio

    if in_book_build():
        if BOOK_RENDERER not in pio.renderers:
            pio.renderers[BOOK_RENDERER] = _BookRenderer()
        pio.renderers.default = BOOK_RENDERER
    return pio.renderers.default


def show(obj: Any, config: dict | None = None) -> None:
    """Display a plotly figure or a widget so that it appears both live and in the built book.

    ``config``: plotly.js config for a figure (e.g. ``{"scrollZoom": False}``).
    """
    import plotly.graph_objects as go
    from IPython.display import display

    if isinstance(obj, go.Figure):
        if in_book_build():
            display(_mimebundle(obj, config), raw=True)
        else:
            obj.show(config=config)
        return
    if config is not None:
        raise ValueError(f"config: only applies to plotly figures, got a {type(obj).__name__}")
    display(obj)


class _BookRenderer(MimetypeRenderer):
    """plotly renderer that returns :func:`figure_html` as ``text/html``."""

    def to_mimebundle(self, fig_dict):
        return _mimebundle(fig_dict)
