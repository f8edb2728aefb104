"""Colours and a shared layout for the book's figures.

Okabe & Ito's eight colours stay distinguishable under the common colour-vision deficiencies. Every
figure keeps transparent backgrounds and mid-grey text and grid lines, so it reads on a light page
and in a dark theme alike; sequential data use Cividis (designed for colour-blind readers).
"""
from __future__ import annotations

__all__ = ["OKABE_ITO", "METHOD_COLORS", "SEQUENTIAL", "TEXT", "GRID", "base_layout", "axis_style", "rgba"]

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


def base_layout(title: str, height: int = 420, width: int | None = None) -> dict:
    """Layout keys shared by all figures: transparent backgrounds, grey text, a title.

    Axes are styled per subplot with :func:`axis_style`.
    """
    layout = dict(
        title=dict(text=title, x=0.01, xanchor="left"),
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font=dict(color=TEXT, size=12),
        height=height,
        margin=dict(l=60, r=30, t=90, b=60),
        legend=dict(bgcolor="rgba(0,0,0,0)"),
    )
    if width is not None:
        layout["width"] = width
    return layout


def axis_style() -> dict:
    """Grid and zero-line colours for every x/y axis (``fig.update_xaxes(**axis_style())``)."""
    return dict(gridcolor=GRID, zerolinecolor=GRID, linecolor=GRID)
