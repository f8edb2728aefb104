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

Every figure carries a text alternative generated from the data it draws (:func:`describe_figure`:
what is plotted, the ranges, the extremes), read by screen readers through ``aria-describedby``.

For the PDF edition (``scripts/build_book.py --pdf`` also sets ``ULTRAMEM_BOOK_PDF=1``) a figure
is a static PNG (rendered by kaleido with the same headless Chromium the browser tests use) and a
widget its static state: the figure its controls show by default, the controls' settings, and a
note that links to the chapter's live page.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import uuid
from typing import Any

from plotly.io.base_renderers import MimetypeRenderer

from .palette import GRID, TEXT, min_width

BOOK_BUILD_ENV = "ULTRAMEM_BOOK_BUILD"
PDF_BUILD_ENV = "ULTRAMEM_BOOK_PDF"
# Replaced by the chapter's web address in the PDF (scripts/book_assets.py, for the latex builder).
LIVE_PAGE_URL = "https://ultramem-edu.github.io/ultramem-edu/#live-page"
PDF_FIGURE_WIDTH = 700   # px: the book's text column; the PNG is drawn at twice that resolution
PRINT_TEXT = "#333333"   # the figures' grey text, darkened for paper
BOOK_RENDERER = "ultramem_book"
_DEFAULT_HEIGHT = 450  # plotly.js's default when the layout sets none
_DEFAULT_CONFIG = {"responsive": True, "displaylogo": False}


def in_book_build() -> bool:
    """True while ``scripts/build_book.py`` executes the notebooks."""
    return os.environ.get(BOOK_BUILD_ENV, "") == "1"


def in_pdf_build() -> bool:
    """True while ``scripts/build_book.py --pdf`` executes the notebooks for the PDF edition."""
    return in_book_build() and os.environ.get(PDF_BUILD_ENV, "") == "1"


# --- text alternatives -----------------------------------------------------------------------

_TAG = re.compile(r"<[^>]+>")


def _plain(text: Any) -> str:
    """Plotly rich text (``<br>``, ``<b>``, ``<sub>``...) as one line of plain text."""
    if isinstance(text, dict):
        text = text.get("text")
    if not text:
        return ""
    return " ".join(html.unescape(_TAG.sub(" ", str(text).replace("<br>", " "))).split())


def _num(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e5 else f"{value:.3e}"


def _array(value: Any) -> Any:
    """A trace's array as a list (or nested lists): plotly's base64 typed-array form decoded."""
    if value is None:
        return None
    if isinstance(value, dict) and "bdata" in value:
        import numpy as np

        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value.get("dtype", "f8")))
        shape = [int(n) for n in str(value.get("shape", len(flat))).split(",") if n.strip()]
        return flat.reshape(shape).tolist()
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value) if isinstance(value, (list, tuple)) else value


def _axis_title(layout: dict, axis: str) -> str:
    return _plain((layout.get(axis) or {}).get("title"))


def _trace_summary(trace: dict, k: int) -> tuple[str, list[tuple[float, str, str]]]:
    """One sentence about a trace, and its highest point (value, where, axes) for the finding."""
    trace = {key: (_array(v) if key in ("x", "y", "z") else v) for key, v in trace.items() if v is not None}
    kind = trace.get("type") or "scatter"
    panel = str(trace.get("xaxis") or "x")[1:]
    name = _plain(trace.get("name")) or (f"panel {panel}" if panel else f"series {k + 1}")
    if kind in ("heatmap", "contour", "surface") and trace.get("z") is not None:
        import numpy as np

        try:
            grid = np.array(trace["z"], dtype=float)  # None becomes nan
        except (TypeError, ValueError):
            grid = np.zeros((0, 0))
        if grid.ndim != 2:
            grid = np.zeros((0, 0))
        rows = grid.tolist()
        cells = [(v, i, j) for i, r in enumerate(rows) for j, v in enumerate(r) if math.isfinite(v)]
        if not cells:
            return f"{kind} {name!r}: no numeric values", []
        xs, ys = trace.get("x"), trace.get("y")
        top = max(cells)
        where = (f"x = {xs[top[2]]}" if xs is not None and top[2] < len(xs) else f"column {top[2] + 1}")
        where += (f", y = {ys[top[1]]}" if ys is not None and top[1] < len(ys) else f", row {top[1] + 1}")
        low = min(v for v, _, _ in cells)
        return (f"{kind} {name!r}: {len(rows)} by {max(len(r) for r in rows)} cells, values from "
                f"{_num(low)} to {_num(top[0])}, largest at {where}"), []
    values_key = "x" if trace.get("orientation") == "h" else "y"
    where_key = "y" if values_key == "x" else "x"
    raw = trace.get(values_key)
    if raw is None and kind in ("histogram", "box", "violin"):
        raw, values_key, where_key = trace.get("x"), "x", "y"
    raw = raw if isinstance(raw, list) else []
    places = trace.get(where_key)
    places = places if isinstance(places, list) and len(places) == len(raw) else list(range(len(raw)))
    pairs = []
    for value, place in zip(raw, places):
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            pairs.append((value, place))
    if not pairs:
        return f"{kind} {name!r}", []
    values = [v for v, _ in pairs]
    at = max(pairs, key=lambda pair: pair[0])[1]
    at = _num(at) if isinstance(at, (int, float)) else str(at)
    text = (f"{'bars' if kind == 'bar' else kind} {name!r}: {len(values)} points, "
            f"{values_key} from {_num(min(values))} to {_num(max(values))}, highest at {where_key} = {at}")
    axis = f"{trace.get('xaxis') or 'x'}{trace.get('yaxis') or 'y'}"
    return text, [(max(values), f"{name} ({_num(max(values))} at {where_key} = {at})", axis)]


def describe_figure(fig: Any) -> str:
    """A text alternative for a plotly figure, generated from its data.

    Says what is plotted (title, axes, each series), the ranges of the values and the main
    finding (which series reaches the highest value, and where), and what the figure's sliders
    and menus switch between. Used by :func:`figure_html` for screen readers.
    """
    import plotly.graph_objects as go

    if isinstance(fig, dict):
        fig = go.Figure(fig)
    if not isinstance(fig, go.Figure):
        raise ValueError(f"fig: expected a plotly Figure or its dict, got {type(fig).__name__}")
    layout = fig.layout.to_plotly_json()
    # the traces' arrays as Python/numpy values (to_plotly_json would base64-encode them)
    keys = ("type", "name", "visible", "orientation", "x", "y", "z", "xaxis", "yaxis")
    traces = [{k: getattr(t, k, None) for k in keys} for t in fig.data]
    traces = [t for t in traces if t["visible"] not in (False, "legendonly")]
    title = _plain(layout.get("title")) or "untitled figure"
    parts = [f"Figure: {title}."]
    axes = [f"{a[0]} axis: {_axis_title(layout, a)}" for a in ("xaxis", "yaxis") if _axis_title(layout, a)]
    panels = sum(1 for key in layout if re.fullmatch(r"xaxis\d+", key))
    if panels:
        parts.append(f"{panels + 1} panels.")
    if axes:
        parts.append("; ".join(axes) + ".")
    summaries, extremes = [], []
    for k, trace in enumerate(traces):
        text, found = _trace_summary(trace, k)
        summaries.append(text)
        extremes.extend(found)
    shown = summaries[:8]
    if len(summaries) > 8:
        shown.append(f"and {len(summaries) - 8} more")
    if shown:
        parts.append(f"{len(summaries)} series: " + "; ".join(shown) + ".")
    # the main finding: which series of one plot reaches highest (only where they share its axes)
    if len(extremes) > 1 and len({axis for _, _, axis in extremes}) == 1:
        parts.append(f"Highest: {max(extremes, key=lambda e: e[0])[1]}.")
    for slider in layout.get("sliders") or []:
        labels = [_plain(step.get("label")) for step in slider.get("steps") or []]
        if labels:
            prefix = _plain((slider.get("currentvalue") or {}).get("prefix")).rstrip(":= ")
            active = labels[min(int(slider.get("active") or 0), len(labels) - 1)]
            parts.append(f"A slider{f' ({prefix})' if prefix else ''} steps through {len(labels)} "
                         f"settings from {labels[0]} to {labels[-1]}; shown: {active}.")
    for menu in layout.get("updatemenus") or []:
        labels = [_plain(b.get("label")) for b in menu.get("buttons") or []]
        if labels:
            parts.append("A menu switches between " + ", ".join(labels) + ".")
    return " ".join(parts)


_SR_ONLY = ("position:absolute;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;"
            "clip:rect(0,0,0,0);white-space:nowrap;border:0;")


def figure_html(fig: Any, config: dict | None = None, div_id: str | None = None) -> str:
    """HTML fragment that draws ``fig`` with an already loaded (or deferred) plotly.js.

    ``fig``: a plotly Figure or its dict form. The figure's JSON is the one plotly's own
    renderers produce (numpy arrays as typed arrays), so plotly.js of the same release draws it.
    The drawing waits for ``DOMContentLoaded`` when the page is still loading, which is when
    deferred scripts such as the page's plotly.js have run. The figure fills the column's width;
    a figure whose layout asks for a ``min_width`` (:func:`ultramem_edu.viz.palette.base_layout`)
    keeps it and scrolls sideways in a narrower column (a phone). The drawn figure is a
    ``role="figure"`` named by its title and described by a visually hidden paragraph written
    by :func:`describe_figure`.
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
    description = describe_figure(fig)
    name = json.dumps(f"Figure: {_plain(payload['layout'].get('title')) or 'plot'}").replace("</", "<\\/")
    div += (f'<p id="{div_id}-description" class="ultramem-figure-description" style="{_SR_ONLY}">'
            f"{html.escape(description)}</p>\n")
    return (
        div +
        "<script>(function () {\n"
        f"  var spec = {spec};\n"
        f'  var el = document.getElementById("{div_id}");\n'
        f'  el.setAttribute("role", "figure"); el.setAttribute("aria-label", {name});\n'
        f'  el.setAttribute("aria-describedby", "{div_id}-description");\n'
        # the book's theme script (book/_static/ultramem-theme.js) recolours it for light or dark
        "  var draw = function () { Plotly.newPlot(el, spec).then(function () {\n"
        "    if (window.ultramemFollowTheme) { window.ultramemFollowTheme(el); } }); };\n"
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
        if in_pdf_build():
            display(pdf_mimebundle(obj), raw=True)
        elif in_book_build():
            display(_mimebundle(obj, config), raw=True)
        else:
            obj.show(config=config)
        return
    if config is not None:
        raise ValueError(f"config: only applies to plotly figures, got a {type(obj).__name__}")
    if in_pdf_build() and _is_widget(obj):
        display({"text/markdown": widget_note(obj), "text/plain": widget_note(obj)}, raw=True)
        figure = getattr(obj, "figure", None)
        if isinstance(figure, go.Figure):
            display(pdf_mimebundle(figure), raw=True)
        return
    display(obj)


# --- the PDF edition -------------------------------------------------------------------------


def _is_widget(obj: Any) -> bool:
    try:
        import ipywidgets
    except ImportError:
        return False
    return isinstance(obj, ipywidgets.Widget)


def _controls(widget: Any) -> list[Any]:
    """The widget and every widget below it, depth first."""
    found = [widget]
    for child in getattr(widget, "children", ()) or ():
        found.extend(_controls(child))
    return found


def widget_note(widget: Any) -> str:
    """Markdown for a widget in the PDF edition: its controls' settings and a link to the live page.

    Controls are listed by their description with the value they show; an HTML or Label widget's
    text is given as plain text. :data:`LIVE_PAGE_URL` becomes the chapter's address in the PDF.
    """
    if not _is_widget(widget):
        raise TypeError(f"widget: expected an ipywidgets Widget, got {type(widget).__name__}")
    settings, texts = [], []
    for w in _controls(widget):
        kind = type(w).__name__
        if kind in ("HTML", "HTMLMath", "Label"):
            text = _plain(getattr(w, "value", ""))
            if text:
                texts.append(text)
        elif hasattr(w, "value") and getattr(w, "description", "") and kind != "Button":
            value = getattr(w, "label", None) if hasattr(w, "label") else None
            value = value if value is not None else w.value
            if isinstance(value, float):
                value = _num(value)
            settings.append(f"{_plain(w.description).rstrip(':')} = {value}")
    lines = [f"*Interactive in the [online edition]({LIVE_PAGE_URL}):* this is its default view"
             + (f" ({', '.join(settings)})." if settings else ".")]
    # quoted as plain text: "1. Memory" must not become a numbered list, "*" no emphasis
    lines += ["> " + re.sub(r"^(\d+)\.", r"\1\\.", re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", text))
              for text in texts]
    return "\n\n".join(lines)


def _browser_path() -> str | None:
    """The Chromium kaleido should drive: ``$BROWSER_PATH``, else one on the path (Debian's)."""
    for name in (os.environ.get("BROWSER_PATH"), "chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def _for_print(fig: Any) -> Any:
    """A copy whose mid-grey text is darkened for paper (backgrounds stay transparent = white)."""
    spec = json.loads(fig.to_json())

    def swap(node):
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        if isinstance(node, str) and node.lower() == TEXT.lower():
            return PRINT_TEXT
        return node

    spec["layout"] = swap(spec.get("layout", {}))
    spec.pop("frames", None)
    import plotly.graph_objects as go

    return go.Figure(spec)


def figure_png(fig: Any, width: int | None = None) -> bytes:
    """The figure as a PNG at twice the book column's resolution (kaleido, headless Chromium)."""
    import plotly.graph_objects as go

    if not isinstance(fig, go.Figure):
        raise ValueError(f"fig: expected a plotly Figure, got {type(fig).__name__}")
    browser = _browser_path()
    if browser and not os.environ.get("BROWSER_PATH"):
        os.environ["BROWSER_PATH"] = browser  # kaleido (choreographer) then uses it, downloads nothing
    layout = fig.layout
    width = width or layout.width or max(min_width(layout) or 0, PDF_FIGURE_WIDTH)
    height = layout.height or _DEFAULT_HEIGHT
    return _for_print(fig).to_image(format="png", width=width, height=height, scale=2)


def pdf_mimebundle(fig: Any) -> dict[str, str]:
    """A figure for the PDF edition: a PNG, with its text alternative as the plain-text form."""
    png = base64.b64encode(figure_png(fig)).decode("ascii")
    return {"image/png": png, "text/plain": describe_figure(fig)}


class _BookRenderer(MimetypeRenderer):
    """plotly renderer that returns :func:`figure_html` as ``text/html``."""

    def to_mimebundle(self, fig_dict):
        return _mimebundle(fig_dict)
