"""Who sends what: the two sharding schemes as sequence diagrams (SVG), for chapter 13.

Two ranks, time running down the page; boxes are work a rank does alone, crossing arrows are an
exchange, labelled with what travels and how many bytes each rank sends (the terms of
:mod:`.comm_model`). Drawn narrow (450 px) so that it stays legible in a phone's column.
"""
from __future__ import annotations

from ..viz.diagrams import BLUE, GREY, INK, ORANGE, Diagram, DiagramArgumentError, _Svg, _tint

__all__ = ["scheme_diagram", "STEPS"]

WIDTH = 450
LANES = (115.0, 335.0)            # x of rank 0's and rank 1's lane
BOX_W = 196.0
COLOURS = (BLUE, ORANGE)

# ("work", first line, second line) or ("send", what travels, bytes each rank sends)
STEPS = {
    "column": [
        ("work", "score keys, select top-m", "for my own tokens"),
        ("send", "all-gather: indices + scores", "(P−1)·B·k·(b_i + h·b_f)"),
        ("work", "pool my D_v/P columns", "for every rank's tokens"),
        ("send", "all-to-all: partial pooled vectors", "(P−1)·B·E·(D_v/P)·b_f"),
        ("work", "join the columns, project", "my tokens' output"),
    ],
    "row": [
        ("work", "score keys, select top-m", "row ids grouped by owner"),
        ("send", "all-to-all: counts, row ids", "(P−1)·b_i + (rows I ask)·b_i"),
        ("work", "look up the rows asked", "in my N/P rows"),
        ("send", "all-to-all: the rows themselves", "(rows I serve)·D_v·b_f"),
        ("work", "pool and project", "my tokens' output"),
    ],
}
BACKWARD = {
    "column": ("Backward: the partial outputs' gradients travel back,", "the score gradients are reduce-scattered."),
    "row": ("Backward: the gradients of the fetched rows travel", "back to their owners (no scores travel)."),
}


def scheme_diagram(scheme: str = "column") -> Diagram:
    """The exchanges of one forward pass of a sharded layer on two ranks, ``"column"`` or ``"row"``."""
    if scheme not in STEPS:
        raise DiagramArgumentError(f"scheme must be one of {tuple(STEPS)}, got {scheme!r}")
    title = f"{scheme.capitalize()} sharding: who sends what"
    svg = _Svg(f"shard-{scheme}", title,
               f"Sequence diagram of the {scheme} scheme on two ranks: local work and the exchanges between them.",
               width=WIDTH)
    svg.text(16, 26, title, size=16, bold=True)
    svg.text(16, 46, "two ranks; time runs down the page", size=12, fill="#4D4D4D")
    y = 74.0
    for x, colour, name in zip(LANES, COLOURS, ("rank 0", "rank 1")):
        svg.text(x, y, name, size=13, anchor="middle", bold=True, fill=colour)
    y += 10
    top = y
    body_start = len(svg.body)
    for kind, first, second in STEPS[scheme]:
        if kind == "work":
            for x, colour in zip(LANES, COLOURS):
                svg.rect(x - BOX_W / 2, y, BOX_W, 40, fill=_tint(colour, 0.85), stroke=colour, rx=5, cls="work")
                svg.text(x, y + 17, first, size=12, anchor="middle")
                svg.text(x, y + 32, second, size=11, anchor="middle", fill="#4D4D4D")
            y += 40
        else:
            mid = (LANES[0] + LANES[1]) / 2
            svg.rect(mid - 150, y + 5, 300, 34, fill="#FFFFFF", cls="label-back")
            svg.text(mid, y + 19, first, size=12, anchor="middle", bold=True)
            svg.text(mid, y + 34, second, size=11, anchor="middle", fill="#4D4D4D")
            a, b = y + 44, y + 76
            svg.line(LANES[0], a, LANES[1] - 4, b, stroke=COLOURS[0], sw=1.8, arrow=True, cls="message")
            svg.line(LANES[1], a, LANES[0] + 4, b, stroke=COLOURS[1], sw=1.8, arrow=True, cls="message")
            y = b + 4
    lanes = [f'<path d="M{x:g},{top:g} L{x:g},{y:g}" stroke="{GREY}" stroke-width="1" stroke-dasharray="3 3" '
             'fill="none"/>' for x in LANES]
    svg.body[body_start:body_start] = lanes                      # lanes under everything else
    for line in BACKWARD[scheme]:
        y += 18
        svg.text(16, y, line, size=12, fill=INK)
    return Diagram(svg.render(y + 14), title)
