"""Colours and a shared layout for the book's figures.

Okabe & Ito's eight colours stay distinguishable under the common colour-vision deficiencies. Every
figure keeps transparent backgrounds and mid-grey text and grid lines, so it reads on a light page
and in a dark theme alike; sequential data use Cividis (designed for colour-blind readers).
"""
from __future__ import annotations

__all__ = [
    "OKABE_ITO", "METHOD_COLORS", "SEQUENTIAL", "TEXT", "GRID", "TITLE_CHARS", "PHONE_WIDTH",
    "base_layout", "axis_style", "rgba", "wrap_text", "min_width", "legend_below",
]

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

# One colour per thing the book compares, the same in every figure.
METHOD_COLORS = {
    "pkm": OKABE_ITO["orange"],          # additive product keys (PKM)
    "tdqkr": OKABE_ITO["blue"],          # TDQKR / UltraMem
    "brute": OKABE_ITO["bluish_green"],  # brute force, the reference
    "missed": OKABE_ITO["vermillion"],   # what the approximate search missed
    "with_aux": OKABE_ITO["blue"],
    "without_aux": OKABE_ITO["orange"],
    "tau": OKABE_ITO["vermillion"],
}

SEQUENTIAL = "Cividis"
TEXT = "#808080"                  # mid grey: legible on white and on near-black
GRID = "rgba(128,128,128,0.25)"


def rgba(hex_colour: str, alpha: float) -> str:
    """'#RRGGBB' and an opacity in [0, 1] → 'rgba(r,g,b,a)'."""
    if not (isinstance(hex_colour, str) and len(hex_colour) == 7 and hex_colour.startswith("#")):
        raise ValueError(f"hex_colour must look like '#RRGGBB', got {hex_colour!r}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    r, g, b = (int(hex_colour[k:k + 2], 16) for k in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


# The book's text column is ~745 px wide at a 1366 px window and ~358 px on a 390 px phone.
# A figure is laid out to be legible from PHONE_WIDTH up; one that needs more room (panels side by
# side) says so with ``min_width`` and the book shows it in a horizontally scrolling box there.
PHONE_WIDTH = 358
TITLE_SIZE = 15
TITLE_CHARS = 40        # characters per title line: 40 × ~7.5 px fits the phone's column
_TITLE_LINE_PX = 20


def wrap_text(text: str, width: int) -> str:
    """Break ``text`` at spaces into lines of at most ``width`` characters, joined by ``<br>``.

    Existing ``<br>`` breaks are kept; a single word longer than ``width`` stays whole.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    lines: list[str] = []
    for paragraph in text.split("<br>"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return "<br>".join(lines)


def base_layout(
    title: str, height: int = 420, width: int | None = None, min_width: int | None = None,
    top: int = 30,
) -> dict:
    """Layout keys shared by all figures: transparent backgrounds, grey text, a title.

    The title is wrapped to :data:`TITLE_CHARS` characters a line (more when ``min_width`` gives
    more room) and pinned to the top of the figure; the top margin holds its lines plus ``top`` px (room for subplot titles). ``min_width``
    (px): the narrowest width at which the figure stays legible, when that is more than a phone's
    column (see :func:`min_width`). Axes are styled per subplot with :func:`axis_style`.
    """
    # a figure that scrolls below min_width has that much room for its title
    chars = TITLE_CHARS if min_width is None else max(TITLE_CHARS, (min_width - 40) // 8)
    text = wrap_text(title, chars)
    lines = text.count("<br>") + 1
    # plotly anchors a title's top by its first line less half a line per extra line: the pad
    # makes up for it, so every title starts ~8 px below the figure's top edge
    layout = dict(
        title=dict(text=text, x=0.01, xanchor="left", y=1, yref="container", yanchor="top",
                   pad=dict(t=12 + 10 * (lines - 1)), font=dict(size=TITLE_SIZE)),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font=dict(color=TEXT, size=12),
        height=height,
        margin=dict(l=60, r=30, t=8 + lines * _TITLE_LINE_PX + top, b=60),
    )   # no legend key: its background follows paper_bgcolor, and callers may pass legend=...
    if width is not None:
        layout["width"] = width
    if min_width is not None:
        if not (isinstance(min_width, int) and min_width > 0):
            raise ValueError(f"min_width must be a positive int (px), got {min_width!r}")
        layout["meta"] = {"min_width": min_width}
    return layout


def min_width(layout) -> int | None:
    """The ``min_width`` a figure's layout (dict or plotly Layout) asks for, or None."""
    meta = layout.get("meta") if isinstance(layout, dict) else getattr(layout, "meta", None)
    value = meta.get("min_width") if isinstance(meta, dict) else None
    return int(value) if value else None


def legend_below() -> dict:
    """A horizontal legend pinned to the figure's bottom edge (``fig.update_layout(legend=...)``).

    plotly pushes the plots up to make room for it, so it never sits on a curve or an axis title
    however many rows it wraps into on a narrow screen; keep ~60 px of the height for each row.
    """
    return dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left",
                bgcolor="rgba(0,0,0,0)")


def axis_style() -> dict:
    """Grid and zero-line colours for every x/y axis (``fig.update_xaxes(**axis_style())``).

    The tick labels stand 4 px further off their axis than plotly's default, so the first label
    of the x axis and the lowest of the y axis do not run into each other at the plot's corner.
    """
    return dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID, ticklabelstandoff=4)
