"""Architecture drawings for the book, generated as plain SVG text.

Every function returns a :class:`Diagram`: the SVG as a string plus a title. A diagram displays
itself as a notebook cell's last expression (``_repr_svg_``) and ``save(path)`` writes it to a file,
so the same drawing appears in the built book, in Colab and on GitHub.

    from ultramem_edu.viz import diagrams
    diagrams.product_key_grid(n=8, m=4)          # shows the drawing in a notebook
    diagrams.skip_wiring(8, ((1, 3), (4, 6))).save("figures/wiring.svg")

The drawings are computed, not hand-placed: every parameter changes the picture, and the example
numbers in them (selected cells, recall, bytes moved) come from a small deterministic computation
done here with the same rules as the package. Conventions: white background (readable in light and
dark page themes), Okabe-Ito colours, DejaVu Sans / Arial, every text's estimated box inside the
view box and disjoint from every other text's box (see :func:`text_boxes`, used by the tests).
Elements that a reader (or a test) may want to count carry a ``class`` attribute, e.g.
``final-cell`` for the final top-m cells of :func:`product_key_grid`.

Arguments are validated: a bad value raises :class:`DiagramArgumentError`, which is a ValueError
(and, for a value of the wrong type, also a TypeError), with the argument's name in the message.
"""
from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

__all__ = [
    "Diagram",
    "DiagramArgumentError",
    "mlp_as_memory",
    "product_key_grid",
    "tucker_core",
    "virtual_memory",
    "multi_core",
    "skip_wiring",
    "value_lookup_kernel",
    "text_boxes",
    "ALL_DIAGRAMS",
]

# Okabe-Ito.
BLUE = "#0072B2"
ORANGE = "#E69F00"
GREEN = "#009E73"
VERMILLION = "#D55E00"
PINK = "#CC79A7"
SKY = "#56B4E9"
YELLOW = "#F0E442"
BLACK = "#000000"
OKABE_ITO = (BLUE, ORANGE, GREEN, PINK, SKY, VERMILLION, YELLOW, BLACK)
INK = "#1A1A1A"      # text
GREY = "#7F7F7F"     # inactive strokes
LIGHT = "#F2F2F2"    # inactive fills
FONT = "DejaVu Sans, Arial, sans-serif"
WIDTH = 720
SVG_NS = "http://www.w3.org/2000/svg"


class DiagramArgumentError(ValueError, TypeError):
    """A diagram argument is out of range or of the wrong type (a ValueError and a TypeError)."""


@dataclass(frozen=True)
class Diagram:
    """An SVG drawing. ``svg``: the SVG document as text; ``title``: its one-line title."""

    svg: str
    title: str

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path) -> Path:
        """Write the SVG to ``path`` (UTF-8; parent folders are created). Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.svg, encoding="utf-8")
        return path

    def __repr__(self) -> str:
        return f"Diagram({self.title!r}, {len(self.svg)} characters of SVG)"


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _int_arg(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DiagramArgumentError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if not low <= value <= high:
        raise DiagramArgumentError(f"{name} must be in [{low}, {high}], got {value}")
    return value


# --------------------------------------------------------------------------------------------
# Text measurement (DejaVu Sans advance widths, rounded up; Arial is narrower, so this is safe)
# --------------------------------------------------------------------------------------------
_NARROW = set("ijl.,:;'|!()[]{}`·")
_SEMI = set("frtI \u00a0")
_WIDE = set("mwMW—%@")


def _char_width(ch: str) -> float:
    if ch in _NARROW:
        return 0.34
    if ch in _SEMI:
        return 0.44
    if ch in _WIDE:
        return 0.98
    if ch.isupper() or ch in "ΣΛ→←↔⊕×≈":
        return 0.76
    return 0.64


def _text_width(segments: Sequence[tuple[str, str]], size: float, bold: bool = False) -> float:
    w = 0.0
    for kind, s in segments:
        scale = 0.72 if kind in ("sub", "sup") else 1.0
        w += sum(_char_width(c) for c in s) * size * scale
    return w * (1.08 if bold else 1.0)


_MARKUP = re.compile(r"_\{([^}]*)\}|\^\{([^}]*)\}|\$([^$]*)\$|_([A-Za-z0-9]+)|ᵀ")


def _parse(text: str) -> list[tuple[str, str]]:
    """Mini markup for math in labels.

    ``_{sub}`` or ``_sub`` (letters/digits): subscript; ``^{sup}`` or ``ᵀ``: superscript;
    ``$italic$``: italic. A single letter right before a subscript is set in italic (S_row → *S*
    with subscript "row"), as in typeset math. Everything else is plain text.
    """
    out: list[tuple[str, str]] = []
    pos = 0

    def plain(chunk: str, before_sub: bool) -> None:
        if before_sub and chunk and (chunk[-1].isascii() and chunk[-1].isalpha() or chunk[-1] == "ŝ") and (len(chunk) == 1 or not chunk[-2].isalnum()):
            if chunk[:-1]:
                out.append(("plain", chunk[:-1]))
            out.append(("italic", chunk[-1]))
        elif chunk:
            out.append(("plain", chunk))

    for mt in _MARKUP.finditer(text):
        is_sub = mt.group(1) is not None or mt.group(4) is not None
        plain(text[pos:mt.start()], is_sub)
        if mt.group(1) is not None:
            out.append(("sub", mt.group(1)))
        elif mt.group(4) is not None:
            out.append(("sub", mt.group(4)))
        elif mt.group(2) is not None:
            out.append(("sup", mt.group(2)))
        elif mt.group(3) is not None:
            out.append(("italic", mt.group(3)))
        else:
            out.append(("sup", "T"))
        pos = mt.end()
    plain(text[pos:], False)
    return out


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v - round(v)) > 1e-9 else str(int(round(v)))


def text_boxes(svg: str) -> list[tuple[float, float, float, float, str]]:
    """Estimated boxes (x0, y0, x1, y1, text) of every ``<text>`` element of an SVG from this module.

    Used by the tests to check that no text leaves the view box and no two texts overlap. The width
    is estimated from DejaVu Sans advance widths (the widest of the fonts we name).
    """
    root = ET.fromstring(svg)
    boxes = []
    for el in root.iter(f"{{{SVG_NS}}}text"):
        size = float(el.get("font-size", "12"))
        bold = el.get("font-weight") == "bold"
        segs: list[tuple[str, str]] = []
        if el.text:
            segs.append(("plain", el.text))
        for ts in el:
            kind = ts.get("data-kind", "plain")
            segs.append((kind, ts.text or ""))
            if ts.tail:
                segs.append(("plain", ts.tail))
        width = _text_width(segs, size, bold)
        x, y = float(el.get("x")), float(el.get("y"))
        anchor = el.get("text-anchor", "start")
        x0 = x - width / 2 if anchor == "middle" else (x - width if anchor == "end" else x)
        has_sup = any(k == "sup" for k, _ in segs)
        has_sub = any(k == "sub" for k, _ in segs)
        top = y - size * (1.0 if has_sup else 0.78)
        bottom = y + size * (0.46 if has_sub else 0.22)
        boxes.append((x0, top, x0 + width, bottom, "".join(s for _, s in segs)))
    return boxes


# --------------------------------------------------------------------------------------------
# A tiny SVG builder
# --------------------------------------------------------------------------------------------
def _tint(color: str, amount: float) -> str:
    """Mix ``color`` with white: amount 0 is the colour, 1 is white."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02X}" for c in mix)


class _Svg:
    def __init__(self, uid: str, title: str, desc: str, width: float = WIDTH):
        self.uid = uid
        self.title = title
        self.desc = desc
        self.width = width
        self.body: list[str] = []
        self.markers: dict[str, str] = {}

    # shapes -------------------------------------------------------------------------------
    def rect(self, x, y, w, h, fill="none", stroke=None, sw=1.0, rx=0.0, dash=None, cls=None,
             opacity=None) -> None:
        a = [f'x="{_f(x)}" y="{_f(y)}" width="{_f(w)}" height="{_f(h)}" fill="{fill}"']
        if stroke:
            a.append(f'stroke="{stroke}" stroke-width="{sw}"')
        if rx:
            a.append(f'rx="{_f(rx)}"')
        if dash:
            a.append(f'stroke-dasharray="{dash}"')
        if cls:
            a.append(f'class="{cls}"')
        if opacity is not None:
            a.append(f'fill-opacity="{opacity}"')
        self.body.append(f"<rect {' '.join(a)}/>")

    def _marker(self, color: str) -> str:
        mid = f"{self.uid}-arrow-{color.lstrip('#').lower()}"
        if mid not in self.markers:
            self.markers[mid] = (
                f'<marker id="{mid}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
                f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
                f'fill="{color}"/></marker>'
            )
        return mid

    def line(self, x1, y1, x2, y2, stroke=INK, sw=1.2, dash=None, arrow=False, cls=None) -> None:
        self.path(f"M{_f(x1)},{_f(y1)} L{_f(x2)},{_f(y2)}", stroke, sw, dash, arrow, cls)

    def path(self, d, stroke=INK, sw=1.2, dash=None, arrow=False, cls=None, fill="none") -> None:
        a = [f'd="{d}" fill="{fill}" stroke="{stroke}" stroke-width="{sw}"']
        if dash:
            a.append(f'stroke-dasharray="{dash}"')
        if arrow:
            a.append(f'marker-end="url(#{self._marker(stroke)})"')
        if cls:
            a.append(f'class="{cls}"')
        self.body.append(f"<path {' '.join(a)}/>")

    def circle(self, cx, cy, r, fill="none", stroke=INK, sw=1.2) -> None:
        self.body.append(
            f'<circle cx="{_f(cx)}" cy="{_f(cy)}" r="{_f(r)}" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{sw}"/>'
        )

    def plus(self, cx, cy, r=7, stroke=INK) -> None:
        """A summation node ⊕."""
        self.circle(cx, cy, r, fill="#FFFFFF", stroke=stroke)
        self.line(cx - r + 2, cy, cx + r - 2, cy, stroke=stroke)
        self.line(cx, cy - r + 2, cx, cy + r - 2, stroke=stroke)

    def text(self, x, y, s, size=12.0, anchor="start", bold=False, fill=INK, cls=None) -> None:
        segs = _parse(s)
        # xml:space="preserve": spaces at a tspan's edge survive in every renderer (librsvg drops them)
        a = [f'x="{_f(x)}" y="{_f(y)}" font-size="{_f(size)}" xml:space="preserve"']
        if anchor != "start":
            a.append(f'text-anchor="{anchor}"')
        if bold:
            a.append('font-weight="bold"')
        if fill != INK:
            a.append(f'fill="{fill}"')
        if cls:
            a.append(f'class="{cls}"')
        parts = []
        offset = 0.0
        for kind, chunk in segs:
            target = {"sub": 0.3, "sup": -0.45}.get(kind, 0.0) * size
            ta = [f'data-kind="{kind}"']
            if abs(target - offset) > 1e-9:
                ta.append(f'dy="{_f(target - offset)}"')
                offset = target
            if kind in ("sub", "sup"):
                ta.append(f'font-size="{_f(size * 0.72)}"')
            if kind == "italic":
                ta.append('font-style="italic"')
            parts.append(f"<tspan {' '.join(ta)}>{_esc(chunk)}</tspan>")
        self.body.append(f"<text {' '.join(a)}>{''.join(parts)}</text>")

    def width_of(self, s: str, size: float = 12.0, bold: bool = False) -> float:
        return _text_width(_parse(s), size, bold)

    def swatch(self, x, y, fill, stroke, label, size=11.0, dash=None) -> float:
        """A legend entry; returns the x where the next entry may start."""
        self.rect(x, y - size * 0.8, size, size, fill=fill, stroke=stroke, dash=dash)
        self.text(x + size + 5, y, label, size=size)
        return x + size + 5 + self.width_of(label, size) + 16

    def render(self, height: float) -> str:
        head = (
            f'<svg xmlns="{SVG_NS}" viewBox="0 0 {_f(self.width)} {_f(height)}" '
            f'width="{_f(self.width)}" height="{_f(height)}" font-family="{FONT}" '
            f'role="img" aria-labelledby="{self.uid}-title {self.uid}-desc" '
            f'style="max-width:100%;height:auto;background:#FFFFFF">'
        )
        parts = [
            head,
            f'<title id="{self.uid}-title">{_esc(self.title)}</title>',
            f'<desc id="{self.uid}-desc">{_esc(self.desc)}</desc>',
        ]
        if self.markers:
            parts.append("<defs>" + "".join(self.markers.values()) + "</defs>")
        parts.append(
            f'<rect x="0" y="0" width="{_f(self.width)}" height="{_f(height)}" fill="#FFFFFF" '
            f'class="background"/>'
        )
        parts.extend(self.body)
        parts.append("</svg>")
        return "\n".join(parts) + "\n"


def _header(svg: _Svg, subtitle: str | None = None) -> float:
    """The visible title (and a grey subtitle); returns the y below it."""
    svg.text(16, 26, svg.title, size=16, bold=True)
    if subtitle:
        svg.text(16, 46, subtitle, size=12, fill="#4D4D4D")
        return 60
    return 40


def _top(scores: Sequence[float], m: int) -> list[int]:
    """Indices of the m largest scores (ties by index), in descending score order."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:m]


def _gelu(z: float) -> float:
    return 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0)))


# --------------------------------------------------------------------------------------------
# 1. MLP as a key-value memory
# --------------------------------------------------------------------------------------------
def mlp_as_memory(num_keys: int = 8, m: int = 3) -> Diagram:
    """An MLP drawn as a key-value memory, above the same memory with top-m selection.

    Input x; keys K = W_1 (rows = the first layer's weights); scores s = σ(Kx) as bars; values
    V = W_2 (rows); output o = Vᵀs. The lower panel keeps the m largest scores: only m value rows
    (class ``topm-row``) are read, but all N keys are still scored.

    Args:
        num_keys: N, rows of K and V (2..16).
        m: kept scores in the lower panel (1..N).
    """
    n_rows = _int_arg("num_keys", num_keys, 2, 16)
    m = _int_arg("m", m, 1, n_rows)
    rng = random.Random(3)
    z = [rng.gauss(0.2, 1.0) for _ in range(n_rows)]
    s = [_gelu(v) for v in z]
    top = set(_top(s, m))
    d = 4  # drawn width of a key / value row
    svg = _Svg(f"mlp-{n_rows}-{m}", "An MLP is a key-value memory",
               f"Two panels. Above: a dense MLP with N = {n_rows} keys (rows of W1) and values (rows "
               f"of W2); every score and every value row is used. Below: top-m memory with m = {m}; "
               f"all keys are scored but only {m} value rows are read.")
    y = _header(svg, "o = W_2ᵀ σ(W_1 x): the rows of W_1 are keys, the rows of W_2 are values")
    row_h = min(18.0, 160.0 / n_rows)
    cell = 13.0
    xs = {"x": 40, "K": 120, "s": 292, "V": 448, "o": 590}
    smax = max(abs(v) for v in s)
    bar_max = 62.0

    def panel(y0: float, topm: bool) -> float:
        heading = (f"Top-m memory: σ = TopM keeps the m = {m} largest scores"
                   if topm else f"Dense MLP: σ = GeLU, all N = {n_rows} scores used")
        svg.text(16, y0 + 14, heading, size=13, bold=True)
        yl = y0 + 40            # labels
        yt = y0 + 50            # first row
        hgt = n_rows * row_h
        mid = yt + hgt / 2
        # input x
        for k in range(d):
            svg.rect(xs["x"], mid - d * cell / 2 + k * cell, cell, cell, fill=_tint(SKY, 0.55), stroke=BLUE)
        svg.text(xs["x"] + cell / 2, yl, "$x$", size=13, anchor="middle")
        svg.line(xs["x"] + cell + 4, mid, xs["K"] - 6, mid, arrow=True)
        # keys
        for r in range(n_rows):
            for k in range(d):
                svg.rect(xs["K"] + k * cell, yt + r * row_h + 1, cell, row_h - 2,
                         fill=_tint(BLUE, 0.62), stroke=BLUE, sw=0.8)
        svg.text(xs["K"] + d * cell / 2, yl, "keys $K$ = $W$_{1}", size=12, anchor="middle")
        svg.line(xs["K"] + d * cell + 6, mid, xs["s"] - bar_max * 0.3 - 12, mid, arrow=True)
        # score bars (zero line at xs["s"])
        zero = xs["s"]
        for r in range(n_rows):
            length = bar_max * s[r] / smax
            x0 = zero + min(0.0, length)
            yy = yt + r * row_h + row_h * 0.2
            hh = row_h * 0.6
            if not topm:
                svg.rect(x0, yy, abs(length), hh, fill=SKY, stroke=BLUE, sw=0.6, cls="score")
            elif r in top:
                svg.rect(x0, yy, abs(length), hh, fill=GREEN, stroke=GREEN, sw=0.6, cls="topm-score")
            else:
                svg.rect(x0, yy, abs(length), hh, fill="#FFFFFF", stroke=GREY, sw=0.6, dash="2 2",
                         cls="dropped-score")
        svg.line(zero, yt - 2, zero, yt + hgt + 2, stroke=GREY, sw=0.8)
        svg.text(zero + 8, yl, "scores $s$ = σ($Kx$)", size=12, anchor="middle")
        svg.line(zero + bar_max + 10, mid, xs["V"] - 6, mid, arrow=True)
        # values
        for r in range(n_rows):
            lit = (not topm) or r in top
            for k in range(d):
                svg.rect(xs["V"] + k * cell, yt + r * row_h + 1, cell, row_h - 2,
                         fill=_tint(ORANGE, 0.45) if lit else LIGHT, stroke=ORANGE if lit else "#BFBFBF",
                         sw=0.8, dash=None if lit else "2 2")
            if topm and r in top:
                svg.rect(xs["V"] - 3, yt + r * row_h, d * cell + 6, row_h, stroke=GREEN, sw=1.6,
                         cls="topm-row")
        svg.text(xs["V"] + d * cell / 2, yl, "values $V$ = $W$_{2}", size=12, anchor="middle")
        svg.line(xs["V"] + d * cell + 8, mid, xs["o"] - 6, mid, arrow=True)
        for k in range(d):
            svg.rect(xs["o"], mid - d * cell / 2 + k * cell, cell, cell, fill=_tint(VERMILLION, 0.55),
                     stroke=VERMILLION)
        svg.text(xs["o"] + cell / 2, yl, "$o$ = $V$^{T}$s$", size=12, anchor="middle")
        note = (f"All {n_rows} keys are still scored (O(N·D) work); only {m} value rows are read."
                if topm else f"Every key is scored and every one of the {n_rows} value rows is read.")
        svg.text(16, yt + hgt + 22, note, size=12, fill="#333333")
        return yt + hgt + 34

    y = panel(y, topm=False)
    svg.line(16, y, WIDTH - 16, y, stroke="#D9D9D9", sw=1)
    y = panel(y + 6, topm=True)
    return Diagram(svg.render(y + 6), svg.title)


# --------------------------------------------------------------------------------------------
# 2. Product keys
# --------------------------------------------------------------------------------------------
def _pkm_selection(n: int, m: int, seed: int = 11):
    rng = random.Random(seed)
    rs = [rng.gauss(0, 1) for _ in range(n)]
    cs = [rng.gauss(0, 1) for _ in range(n)]
    rows = _top(rs, m)
    cols = _top(cs, m)
    cands = [(i, j) for i in rows for j in cols]
    final = sorted(cands, key=lambda ij: (-(rs[ij[0]] + cs[ij[1]]), ij))[:m]
    brute = sorted(((i, j) for i in range(n) for j in range(n)),
                   key=lambda ij: (-(rs[ij[0]] + cs[ij[1]]), ij))[:m]
    assert set(final) == set(brute)  # the two-stage search is exact for additive scores
    return rs, cs, rows, cols, final


def product_key_grid(n: int = 8, m: int = 4) -> Diagram:
    """The n×n grid of values addressed by (row key i, column key j), and the two-stage top-m.

    The query splits into q_row and q_col; each scores its n sub-keys (bars). The m best rows and m
    best columns are highlighted (classes ``row-topm``/``col-topm`` on the keys), their m×m
    intersection is the candidate block (``candidate-cell``), and the m best candidates are the final
    cells (``final-cell``), labelled with their physical row i·n + j. The scores are a deterministic
    example; the drawn selection is exact (equal to brute force over all n² cells).

    Args:
        n: keys per side (2..32). m: values kept (1..n).
    """
    n = _int_arg("n", n, 2, 32)
    m = _int_arg("m", m, 1, n)
    rs, cs, rows, cols, final = _pkm_selection(n, m)
    rows_s, cols_s, final_s = set(rows), set(cols), set(final)
    svg = _Svg(f"pkm-{n}-{m}", "Product keys: two-stage top-m on an n × n grid",
               f"An {n} by {n} grid of values. Row keys score q_row, column keys score q_col; the top "
               f"{m} rows and top {m} columns intersect in {m * m} candidates; the {m} best are "
               f"selected and each maps to physical row i*n + j.")
    _header(svg, "score(i, j) = K_row[i]·q_row + K_col[j]·q_col; value (i, j) is physical row i·n + j")
    cell = float(max(7, min(32, 256 // n)))
    grid = cell * n
    gx, gy = 262.0, 176.0
    key = 14.0
    label_idx = cell >= 13
    # query split
    qx, qy, qw = 40.0, 86.0, 176.0
    for k in range(8):
        col = BLUE if k < 4 else ORANGE
        svg.rect(qx + k * qw / 8, qy, qw / 8, 16, fill=_tint(col, 0.6), stroke=col, sw=0.8)
    svg.text(qx - 8, qy + 12, "$q$", size=13, anchor="end")
    svg.text(qx + qw / 4, qy + 32, "$q$_{row}", size=12, anchor="middle", fill=BLUE)
    svg.text(qx + 3 * qw / 4, qy + 32, "$q$_{col}", size=12, anchor="middle", fill=VERMILLION)
    # column keys above the grid
    bar_h = 40.0
    cmin, cmax = min(cs), max(cs)
    for j in range(n):
        x = gx + j * cell
        sel = j in cols_s
        svg.rect(x + 1, gy - 4 - key, cell - 2, key, fill=ORANGE if sel else _tint(ORANGE, 0.75),
                 stroke=ORANGE, sw=0.8, cls="col-topm" if sel else "col-key")
        if label_idx:
            svg.text(x + cell / 2, gy - 7, str(j), size=9, anchor="middle")
        h = 4 + bar_h * (cs[j] - cmin) / (cmax - cmin)
        svg.rect(x + cell * 0.2, gy - 22 - h, cell * 0.6, h, fill=ORANGE if sel else _tint(ORANGE, 0.7),
                 stroke="none")
    svg.text(gx + grid / 2, gy - 72, "column keys: s_col(j) = K_col[j]·q_col", size=12, anchor="middle")
    svg.line(qx + qw + 6, qy + 8, gx + grid / 2 - svg.width_of("column keys: s_col(j) = K_col[j]·q_col") / 2 - 8,
             gy - 76, arrow=True, stroke=VERMILLION)
    # row keys left of the grid
    rmin, rmax = min(rs), max(rs)
    for i in range(n):
        y = gy + i * cell
        sel = i in rows_s
        svg.rect(gx - 4 - key, y + 1, key, cell - 2, fill=BLUE if sel else _tint(BLUE, 0.75), stroke=BLUE,
                 sw=0.8, cls="row-topm" if sel else "row-key")
        if label_idx:
            svg.text(gx - 4 - key / 2, y + cell / 2 + 3, str(i), size=9, anchor="middle",
                     fill="#FFFFFF" if sel else INK)
        w = 4 + bar_h * (rs[i] - rmin) / (rmax - rmin)
        svg.rect(gx - 22 - w, y + cell * 0.2, w, cell * 0.6, fill=BLUE if sel else _tint(BLUE, 0.7),
                 stroke="none")
    ly = gy + grid / 2 - 16
    for k, line in enumerate(("row keys:", "s_row(i) =", "K_row[i]·q_row")):
        svg.text(qx, ly + 16 * k, line, size=12)
    svg.line(qx + qw / 4, qy + 38, qx + qw / 4, ly - 16, arrow=True, stroke=BLUE)
    # the grid
    for i in range(n):
        for j in range(n):
            x, y = gx + j * cell, gy + i * cell
            if (i, j) in final_s:
                fill, cls = GREEN, "final-cell"
            elif i in rows_s and j in cols_s:
                fill, cls = _tint(GREEN, 0.7), "candidate-cell"
            elif i in rows_s:
                fill, cls = _tint(BLUE, 0.88), "cell"
            elif j in cols_s:
                fill, cls = _tint(ORANGE, 0.85), "cell"
            else:
                fill, cls = "#FFFFFF", "cell"
            svg.rect(x, y, cell, cell, fill=fill, stroke="#C8C8C8", sw=0.6, cls=cls)
    for (i, j) in final:
        # candidate cells also get a green outline, so the m×m block reads as one
        pass
    for i in rows:
        for j in cols:
            svg.rect(gx + j * cell, gy + i * cell, cell, cell, stroke=GREEN, sw=1.2)
    if cell >= 22:
        for (i, j) in final:
            svg.text(gx + j * cell + cell / 2, gy + i * cell + cell / 2 + 3.5, str(i * n + j), size=9.5,
                     anchor="middle", fill="#FFFFFF", bold=True)
    svg.rect(gx, gy, grid, grid, stroke=INK, sw=1)
    # legend and address list
    lx, y = gx + grid + 22, gy + 6
    for fill, stroke, label in ((BLUE, BLUE, f"row top-m (m = {m})"), (ORANGE, ORANGE, "column top-m"),
                                (_tint(GREEN, 0.7), GREEN, "m×m candidates"), (GREEN, GREEN, "final top-m")):
        svg.swatch(lx, y, fill, stroke, label)
        y += 20
    y += 14
    svg.text(lx, y, "cell (i, j) → row i·n + j", size=11, bold=True)
    shown = final[:10]
    for (i, j) in shown:
        y += 17
        svg.text(lx, y, f"({i}, {j}) → {i}·{n} + {j} = {i * n + j}", size=11)
    if len(final) > len(shown):
        y += 17
        svg.text(lx, y, f"… {len(final) - len(shown)} more", size=11)
    # cost line
    yb = max(gy + grid, y) + 28
    svg.text(16, yb, f"Scoring: 2n = {2 * n} sub-key scores + m² = {m * m} candidate sums, "
                     f"instead of n² = {n * n} full scores.", size=12)
    svg.text(16, yb + 18, "Exact: every global top-m cell lies in a top-m row and a top-m column "
                          "(scores are additive).", size=12)
    return Diagram(svg.render(yb + 30), svg.title)


# --------------------------------------------------------------------------------------------
# 3. TDQKR
# --------------------------------------------------------------------------------------------
def _svd_leading(c: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Leading singular pair and all singular values of a small square matrix (power iteration)."""
    r = len(c)
    ctc = [[sum(c[k][a] * c[k][b] for k in range(r)) for b in range(r)] for a in range(r)]
    # eigenvalues of CᵀC by repeated deflation (r <= 4)
    vals: list[float] = []
    vecs: list[list[float]] = []
    mat = [row[:] for row in ctc]
    for _ in range(r):
        v = [1.0 + 0.1 * k for k in range(r)]
        lam = 0.0
        for _ in range(500):
            w = [sum(mat[a][b] * v[b] for b in range(r)) for a in range(r)]
            norm = math.sqrt(sum(x * x for x in w)) or 1.0
            v = [x / norm for x in w]
            lam = norm
        vals.append(math.sqrt(max(lam, 0.0)))
        vecs.append(v)
        mat = [[mat[a][b] - lam * v[a] * v[b] for b in range(r)] for a in range(r)]
    t = vecs[0]
    u = [sum(c[a][b] * t[b] for b in range(r)) for a in range(r)]
    norm = math.sqrt(sum(x * x for x in u)) or 1.0
    u = [x / norm for x in u]
    if sum(u) < 0:  # sign alignment: prefer the pair that scores large values high
        u, t = [-x for x in u], [-x for x in t]
    return u, t, vals


def tucker_core(rank: int = 2, n: int = 8, m: int = 3) -> Diagram:
    """TDQKR: S_grid = S_rowᵀ C S_col as a block matrix product, and the two-stage search on it.

    S_row, S_col (r×n) and the core C (r×r) are drawn as heat maps laid out so that row i of S_rowᵀ
    and column j of S_col meet at cell (i, j) of S_grid. Stage 1 uses the rank-1 approximation
    C ≈ λ₁ u tᵀ to pick m rows (top-m of uᵀS_row) and m columns (top-m of tᵀS_col); stage 2 rescores
    the m×m candidates (``candidate-cell``) exactly and keeps the top m (``final-cell``). Brute-force
    top-m cells the approximation misses are outlined (``missed-cell``). Deterministic example.

    Args:
        rank: r (1..4). n: keys per side (2..16). m: values kept (1..n).
    """
    r = _int_arg("rank", rank, 1, 4)
    n = _int_arg("n", n, 2, 16)
    m = _int_arg("m", m, 1, n)
    rng = random.Random(5)
    s_row = [[rng.gauss(0, 1) for _ in range(n)] for _ in range(r)]
    s_col = [[rng.gauss(0, 1) for _ in range(n)] for _ in range(r)]
    core = [[rng.uniform(0, 1) for _ in range(r)] for _ in range(r)]
    u, t, lams = _svd_leading(core)
    grid_s = [[sum(s_row[a][i] * core[a][b] * s_col[b][j] for a in range(r) for b in range(r))
               for j in range(n)] for i in range(n)]
    row1 = [sum(u[a] * s_row[a][i] for a in range(r)) for i in range(n)]
    col1 = [sum(t[b] * s_col[b][j] for b in range(r)) for j in range(n)]
    rows, cols = _top(row1, m), _top(col1, m)
    cands = [(i, j) for i in rows for j in cols]
    final = sorted(cands, key=lambda ij: (-grid_s[ij[0]][ij[1]], ij))[:m]
    brute = sorted(((i, j) for i in range(n) for j in range(n)), key=lambda ij: (-grid_s[ij[0]][ij[1]], ij))[:m]
    recall = len(set(final) & set(brute))
    svg = _Svg(f"tdqkr-{r}-{n}-{m}", "TDQKR: Tucker-decomposed query-key retrieval",
               f"S_grid = S_row transposed times C times S_col for r = {r}, n = {n}; stage 1 selects "
               f"{m} rows and {m} columns with the rank-1 part of C, stage 2 rescores the {m * m} "
               f"candidates exactly and keeps {m}; it finds {recall} of the {m} true best cells.")
    _header(svg, "score(i, j) = Σ_a Σ_b S_row[a, i] · C[a, b] · S_col[b, j]")
    cs = float(min(18, 160 // n))
    x0, y0 = 112.0, 104.0
    gap = 10.0
    gx, gy = x0 + r * cs + gap, y0 + r * cs + gap

    def heat(v: float, vmax: float, color: str) -> str:
        return _tint(color, 0.92 - 0.72 * min(1.0, abs(v) / vmax))

    vmax_s = max(abs(v) for row in s_row + s_col for v in row)
    for a in range(r):
        for b in range(r):
            svg.rect(x0 + b * cs, y0 + a * cs, cs, cs, fill=heat(core[a][b], 1.0, PINK), stroke=PINK, sw=0.7)
        for j in range(n):
            sel = j in cols
            svg.rect(gx + j * cs, y0 + a * cs, cs, cs, fill=heat(s_col[a][j], vmax_s, ORANGE),
                     stroke=VERMILLION if sel else "#C8C8C8", sw=1.6 if sel else 0.6)
        for i in range(n):
            sel = i in rows
            svg.rect(x0 + a * cs, gy + i * cs, cs, cs, fill=heat(s_row[a][i], vmax_s, SKY),
                     stroke=BLUE if sel else "#C8C8C8", sw=1.6 if sel else 0.6)
    vmax_g = max(abs(v) for row in grid_s for v in row)
    cand_s, final_s = set(cands), set(final)
    for i in range(n):
        for j in range(n):
            x, y = gx + j * cs, gy + i * cs
            if (i, j) in final_s:
                svg.rect(x, y, cs, cs, fill=GREEN, stroke=GREEN, sw=0.8, cls="final-cell")
            else:
                svg.rect(x, y, cs, cs, fill=heat(grid_s[i][j], vmax_g, "#6E6E6E"), stroke="#D0D0D0", sw=0.5,
                         cls="candidate-cell" if (i, j) in cand_s else "cell")
    for (i, j) in cands:
        svg.rect(gx + j * cs, gy + i * cs, cs, cs, stroke=GREEN, sw=1.4)
    for (i, j) in brute:
        if (i, j) not in final_s:
            svg.rect(gx + j * cs + 1.5, gy + i * cs + 1.5, cs - 3, cs - 3, stroke=VERMILLION, sw=1.8,
                     dash="3 2", cls="missed-cell")
    svg.rect(gx, gy, n * cs, n * cs, stroke=INK, sw=1)
    svg.text(x0 + r * cs / 2, y0 - 8, "$C$", size=12, anchor="middle")
    svg.text(gx + n * cs / 2, y0 - 8, "S_col (r × n)", size=12, anchor="middle")
    svg.text(x0 - 8, gy + n * cs / 2 - 2, "S_row^{T}", size=12, anchor="end")
    svg.text(x0 - 8, gy + n * cs / 2 + 14, "(n × r)", size=12, anchor="end")
    svg.text(gx + n * cs / 2, gy + n * cs + 20, "S_grid = S_row^{T} C S_col", size=12, anchor="middle")
    svg.text(gx + n * cs / 2, gy + n * cs + 36, f"(n × n, r = {r}, n = {n})", size=12, anchor="middle",
             fill="#4D4D4D")
    bottom_left = gy + n * cs + 44
    # the pipeline on the right
    bx, bw = 396.0, 308.0
    lam_txt = ", ".join(f"{v:.2f}" for v in lams)
    boxes = [
        ("1. SVD of the core (no gradient)", PINK,
         [f"C = U Λ T^{{T}},  λ = ({lam_txt})", "C ≈ λ_{1} u t^{T}: leading pair, sign-aligned"]),
        ("2. Stage 1: approximate", BLUE,
         [f"rows: top-{m} of u^{{T}}S_row   (blue)", f"columns: top-{m} of t^{{T}}S_col   (red)",
          f"→ m × m = {m * m} candidates (green outline)"]),
        ("3. Stage 2: exact rescoring", GREEN,
         [f"S_row^{{T}} C S_col on the {m * m} candidates", f"keep the top-{m} (filled green)",
          f"finds {recall} of the {m} brute-force best cells"]
         + (["missed ones: dashed red outline"] if recall < m else [])),
    ]
    y = 76.0
    prev = None
    for head, color, lines in boxes:
        h = 30 + 18 * len(lines)
        if prev is not None:
            svg.line(bx + bw / 2, prev + 2, bx + bw / 2, y - 2, arrow=True)
        svg.rect(bx, y, bw, h, fill=_tint(color, 0.9), stroke=color, sw=1.2, rx=6)
        svg.text(bx + 10, y + 19, head, size=12.5, bold=True)
        for k, line in enumerate(lines):
            svg.text(bx + 10, y + 38 + 18 * k, line, size=12)
        prev = y + h
        y = prev + 18
    return Diagram(svg.render(max(bottom_left, prev) + 14), svg.title)


# --------------------------------------------------------------------------------------------
# 4. IVE
# --------------------------------------------------------------------------------------------
def virtual_memory(expansion: int = 4) -> Diagram:
    """IVE: E virtual blocks Ṽ_p = V W_p of one physical table V, the shuffle, pool-then-project.

    Top: the virtual address grid (n'×n' = E·N cells; selected cells ``virtual-hit``), the fixed
    random shuffle π from a grid address to (block p, physical row), and the E virtual blocks drawn
    dashed (never materialised). Bottom: the efficient path: the selected physical rows
    (``physical-hit``) are pooled per block into E vectors, each projected by its W_p, and summed.

    Args:
        expansion: E, a perfect square in 1..16 (keys grow by √E per side).
    """
    e = _int_arg("expansion", expansion, 1, 16)
    if math.isqrt(e) ** 2 != e:
        raise DiagramArgumentError(f"expansion must be a perfect square (1, 4, 9, 16), got {e}")
    n = 4
    big_n = n * n
    side = math.isqrt(e) * n
    rng = random.Random(2)
    perm = list(range(e * big_n))
    rng.shuffle(perm)
    k_sel = 5
    picks = random.Random(8).sample(range(e * big_n), k_sel)
    hits = [(v, perm[v], perm[v] // big_n, perm[v] % big_n) for v in picks]
    svg = _Svg(f"ive-{e}", "IVE: implicit value expansion",
               f"A physical table of N = {big_n} rows and E = {e} projectors give {e * big_n} virtual rows "
               f"that are never materialised; a fixed shuffle maps grid addresses to (block, row); the "
               f"lookup pools the selected physical rows per block and then projects each block.")
    _header(svg, f"E = {e} virtual blocks Ṽ_p = V W_p of one physical table V (N = {big_n} rows)")
    # --- top band: grid, shuffle table, virtual blocks
    ytop = 92.0
    gsz = 128.0
    cell = gsz / side
    gx = 20.0
    svg.text(gx, ytop - 12, f"virtual grid {side} × {side} = E·N", size=12)
    hit_v = {v: k for k, (v, *_r) in enumerate(hits)}
    for a in range(side):
        for b in range(side):
            v = a * side + b
            hit = v in hit_v
            svg.rect(gx + b * cell, ytop + a * cell, cell, cell, fill=GREEN if hit else "#FFFFFF",
                     stroke="#C8C8C8", sw=0.5, cls="virtual-hit" if hit else "cell")
            if hit and cell >= 12:
                svg.text(gx + b * cell + cell / 2, ytop + a * cell + cell / 2 + 3.5, str(hit_v[v] + 1),
                         size=9, anchor="middle", fill="#FFFFFF", bold=True)
    svg.rect(gx, ytop, gsz, gsz, stroke=INK, sw=1)
    svg.text(gx, ytop + gsz + 18, "address v = i·n' + j", size=11, fill="#4D4D4D")
    # shuffle table
    tx = gx + gsz + 20
    cols_x = (tx, tx + 22, tx + 60, tx + 104, tx + 148)
    svg.text(tx + 84, ytop - 12, "shuffle π (fixed)", size=12, anchor="middle")
    for cx, head in zip(cols_x, ("#", "v", "π(v)", "block", "row")):
        svg.text(cx + (0 if head == "#" else 12), ytop + 6, head, size=11, bold=True, anchor="middle")
    for k, (v, pv, p, row) in enumerate(hits):
        yy = ytop + 26 + 18 * k
        for cx, val in zip(cols_x, (str(k + 1), str(v), str(pv), str(p), str(row))):
            svg.text(cx + (0 if cx == tx else 12), yy, val, size=11, anchor="middle")
    svg.text(tx, ytop + 26 + 18 * k_sel + 4, "block = π(v) div N", size=10.5, fill="#4D4D4D")
    svg.text(tx, ytop + 26 + 18 * k_sel + 19, "row = π(v) mod N", size=10.5, fill="#4D4D4D")
    # virtual blocks
    vx0, vx1 = 370.0, 704.0
    pitch = (vx1 - vx0) / e
    bw = min(48.0, pitch - 6)
    rh = gsz / big_n
    svg.text((vx0 + vx1) / 2, ytop - 12, "virtual blocks (dashed: never materialised)", size=12,
             anchor="middle")
    hits_by_block: dict[int, set[int]] = {}
    for _v, _pv, p, row in hits:
        hits_by_block.setdefault(p, set()).add(row)
    for p in range(e):
        bx = vx0 + p * pitch + (pitch - bw) / 2
        for row in range(big_n):
            hit = row in hits_by_block.get(p, set())
            svg.rect(bx, ytop + row * rh, bw, rh, fill=GREEN if hit else _tint(ORANGE, 0.86),
                     stroke="#FFFFFF" if not hit else GREEN, sw=0.4, cls="virtual-row-hit" if hit else None)
        svg.rect(bx, ytop, bw, gsz, stroke=ORANGE, sw=1.3, dash="4 3", cls="virtual-block")
        label = f"Ṽ_{{{p}}}" if pitch >= 30 else str(p)
        svg.text(bx + bw / 2, ytop + gsz + 16, label, size=11 if pitch >= 20 else 9, anchor="middle")
    # --- bottom band: pool per block, then project
    yb = ytop + gsz + 52
    svg.line(16, yb - 16, WIDTH - 16, yb - 16, stroke="#D9D9D9", sw=1)
    svg.text(16, yb + 4, "What is computed: pool per block, then project", size=13, bold=True)
    vy = yb + 30
    vx, vw = 40.0, 44.0
    phys_rows = {}
    for k, (_v, _pv, p, row) in enumerate(hits):
        phys_rows.setdefault(row, []).append(p)
    for row in range(big_n):
        hit = row in phys_rows
        svg.rect(vx, vy + row * rh, vw, rh, fill=GREEN if hit else _tint(ORANGE, 0.55),
                 stroke="#FFFFFF", sw=0.4, cls="physical-hit" if hit else None)
    svg.rect(vx, vy, vw, gsz, stroke=ORANGE, sw=1.3)
    svg.text(vx + vw / 2, vy + gsz + 16, f"$V$ (N = {big_n})", size=11, anchor="middle")
    # pooled vectors
    px, pw = 250.0, 96.0
    ph = min(18.0, (gsz + 20) / e - 3)
    pool_top = max(vy + gsz / 2 - (e * (ph + 3)) / 2, yb + 40)
    pool_y = [pool_top + p * (ph + 3) for p in range(e)]
    for p in range(e):
        yy = pool_y[p]
        used = p in hits_by_block
        svg.rect(px, yy, pw, ph, fill=_tint(GREEN, 0.75) if used else LIGHT,
                 stroke=GREEN if used else "#BFBFBF", sw=0.8, cls="pooled")
        if ph >= 9:
            svg.text(px + 6, yy + ph / 2 + 3.5, f"block {p}", size=min(10.5, ph - 0.5))
    for _v, _pv, p, row in hits:
        svg.line(vx + vw + 2, vy + row * rh + rh / 2, px - 2, pool_y[p] + ph / 2,
                 stroke=GREEN, sw=1)
    svg.text(px + pw / 2, pool_y[0] - 8, "Vᵀ ŝ_p: (B, E, D_v)", size=11, anchor="middle")
    # projectors and sum
    wx = 420.0
    for p in range(e):
        yy = pool_y[p]
        svg.line(px + pw + 4, yy + ph / 2, wx - 4, yy + ph / 2, stroke=GREY, sw=0.9, arrow=ph >= 9)
        svg.rect(wx, yy, 34, ph, fill=_tint(PINK, 0.6), stroke=PINK, sw=0.8, cls="projector")
    sx = 520.0
    sy = vy + gsz / 2
    for p in range(e):
        yy = pool_y[p] + ph / 2
        svg.line(wx + 36, yy, sx - 9, sy, stroke=GREY, sw=0.9)
    svg.text(wx + 17, pool_y[0] - 8, "· W_p", size=11, anchor="middle")
    svg.plus(sx, sy, 9)
    svg.line(sx + 11, sy, 600, sy, arrow=True)
    for k in range(4):
        svg.rect(604 + k * 13, sy - 7, 13, 14, fill=_tint(VERMILLION, 0.55), stroke=VERMILLION, sw=0.8)
    svg.text(630, sy - 14, "$o$", size=12, anchor="middle")
    yt = max(vy + gsz + 44, pool_y[-1] + ph + 30)
    svg.text(16, yt, "o = Σ_p W_pᵀ (Vᵀ ŝ_p), where ŝ_p holds the selected scores that fall "
                                "in block p.", size=12)
    svg.text(16, yt + 18, "Extra cost ≈ E·B·D_v·D_v' (project the pooled vectors), not E·N·D_v·D_v' "
                                "(materialise Ṽ);", size=12)
    svg.text(16, yt + 36, "memory traffic is still only the selected physical rows.", size=12)
    return Diagram(svg.render(yt + 50), svg.title)


# --------------------------------------------------------------------------------------------
# 5. MCS
# --------------------------------------------------------------------------------------------
def multi_core(num_cores: int = 2) -> Diagram:
    """MCS: h Tucker cores; their score maps are summed to select, each weights its own slice of V.

    Top: the h per-core score maps S_c = S_rowᵀ C_c S_col and their sum, whose top-m cells are
    selected (``final-cell``). Bottom: the m selected value rows, their columns split into h slices
    (``core-slice``); slice c is weighted by core c's own score at that address, and the pooled
    slices are concatenated into the output.

    Args:
        num_cores: h (1..8).
    """
    h = _int_arg("num_cores", num_cores, 1, 8)
    n, r, m = 6, 2, 4
    rng = random.Random(4)
    s_row = [[rng.gauss(0, 1) for _ in range(n)] for _ in range(r)]
    s_col = [[rng.gauss(0, 1) for _ in range(n)] for _ in range(r)]
    cores = [[[rng.uniform(-0.2, 1) for _ in range(r)] for _ in range(r)] for _ in range(h)]
    maps = [[[sum(s_row[a][i] * cc[a][b] * s_col[b][j] for a in range(r) for b in range(r)) for j in range(n)]
             for i in range(n)] for cc in cores]
    total = [[sum(mp[i][j] for mp in maps) for j in range(n)] for i in range(n)]
    final = sorted(((i, j) for i in range(n) for j in range(n)), key=lambda ij: (-total[ij[0]][ij[1]], ij))[:m]
    final_s = set(final)
    colors = OKABE_ITO[:h]
    svg = _Svg(f"mcs-{h}", "MCS: multi-core scoring",
               f"{h} Tucker cores give {h} score maps; their sum selects the top {m} addresses; at each "
               f"address core c's own score weights column slice c of the value row, and the {h} pooled "
               f"slices are concatenated.")
    _header(svg, "C = Σ_c C_c selects; core c's score S_c = S_row^{T} C_c S_col weights its own slice of V")
    # --- top: the maps
    y0 = 100.0
    op_w = 24.0
    ms = min(96.0, (WIDTH - 40 - (h + 1) * op_w) / (h + 1))
    cell = ms / n
    x = 20.0
    map_x = []
    for c in range(h + 1):
        mp = maps[c] if c < h else total
        col = colors[c] if c < h else "#555555"
        for i in range(n):
            for j in range(n):
                sel = (i, j) in final_s
                if c == h and sel:
                    svg.rect(x + j * cell, y0 + i * cell, cell, cell, fill=GREEN, stroke=GREEN, sw=0.6,
                             cls="final-cell")
                else:
                    t = 0.93 - 0.75 * max(0.0, mp[i][j]) / (max(max(row) for row in mp) or 1.0)
                    svg.rect(x + j * cell, y0 + i * cell, cell, cell, fill=_tint(col if col != BLACK else "#444444", t),
                             stroke="#D8D8D8", sw=0.4)
        if c < h:
            for (i, j) in final:
                svg.rect(x + j * cell + 1, y0 + i * cell + 1, cell - 2, cell - 2, stroke=INK, sw=1.1,
                         cls="core-cell")
        svg.rect(x, y0, ms, ms, stroke=col if c < h else INK, sw=1.4)
        label = (f"S_{{{c + 1}}}" if c < h else "S = Σ_c S_c")
        svg.text(x + ms / 2, y0 - 8, label, size=12 if ms >= 48 else 10.5, anchor="middle",
                 bold=c == h)
        if c < h and ms >= 60:
            svg.text(x + ms / 2, y0 + ms + 16, f"core {c + 1}", size=11, anchor="middle", fill="#4D4D4D")
        map_x.append(x)
        x += ms
        if c < h:
            svg.text(x + op_w / 2, y0 + ms / 2 + 5, "=" if c == h - 1 else "+", size=15, anchor="middle")
        x += op_w
    sum_x = map_x[-1]
    svg.text(sum_x + ms / 2, y0 + ms + 16, f"top-{m} (green)", size=11, anchor="middle")
    # --- bottom: the value rows split into slices
    yb = y0 + ms + 54
    svg.line(16, yb - 20, WIDTH - 16, yb - 20, stroke="#D9D9D9", sw=1)
    svg.text(16, yb, f"Pooling: each core weights its own slice of the {m} selected value rows", size=13, bold=True)
    mx, mw = 200.0, 400.0
    rh = 24.0
    ry = yb + 34
    sw_ = mw / h
    svg.text(mx + mw / 2, ry - 8, f"selected rows of V, D_v split into h = {h} slices", size=11,
             anchor="middle")
    for k, (i, j) in enumerate(final):
        yy = ry + k * rh
        svg.text(mx - 10, yy + rh / 2 + 4, f"address ({i}, {j})", size=11, anchor="end")
        for c in range(h):
            svg.rect(mx + c * sw_, yy, sw_, rh - 3, fill=_tint(colors[c], 0.72), stroke=colors[c], sw=0.8,
                     cls="core-slice" if k == 0 else None)
            score = maps[c][i][j]
            fs = 10.0 if sw_ >= 44 else 9.0
            txt = f"× {score:.2f}" if sw_ >= 60 else f"{score:.2f}"
            if svg.width_of(txt, fs) <= sw_ - 4:
                svg.text(mx + c * sw_ + sw_ / 2, yy + rh / 2 + 2, txt, size=fs, anchor="middle")
    oy = ry + m * rh + 30
    svg.line(mx + mw / 2, ry + m * rh + 2, mx + mw / 2, oy - 4, arrow=True)
    svg.text(mx + mw / 2 + 10, ry + m * rh + 20, "Σ over the selected rows, per slice", size=11)
    for c in range(h):
        svg.rect(mx + c * sw_, oy, sw_, rh - 3, fill=colors[c] if colors[c] != BLACK else "#444444",
                 stroke="#FFFFFF", sw=1, cls="output-slice")
        if sw_ >= 28:
            svg.text(mx + c * sw_ + sw_ / 2, oy + rh / 2 + 2, f"o_{{{c + 1}}}", size=11, anchor="middle",
                     fill="#FFFFFF" if colors[c] in (BLUE, BLACK, VERMILLION, GREEN) else INK)
    svg.text(mx - 10, oy + rh / 2 + 2, "o = concat", size=11, anchor="end")
    svg.text(16, oy + rh + 26, "Numbers in a row: each core's own score S_c at that address (the h of them "
                               "sum to the selecting score).", size=11.5)
    svg.text(16, oy + rh + 44, "Slice c of the output pools slice c of the rows with core c's scores; "
                               "the slices are concatenated.", size=11.5)
    return Diagram(svg.render(oy + rh + 58), svg.title)


# --------------------------------------------------------------------------------------------
# 6. Skip-layer wiring
# --------------------------------------------------------------------------------------------
def _check_wiring(wiring: object, n_layers: int) -> tuple[tuple[int, int], ...]:
    """The model's own wiring rules (:func:`ultramem_edu.model.normalise_wiring`), plus a drawing limit."""
    from ..model import normalise_wiring

    try:
        out = normalise_wiring(wiring, n_layers)
    except (TypeError, ValueError) as err:
        raise DiagramArgumentError(str(err).replace("memory_wiring", "wiring")) from err
    if len(out) > 8:
        raise DiagramArgumentError(f"wiring: at most 8 memory layers can be drawn, got {len(out)}")
    return out


def skip_wiring(n_layers: int = 8, wiring: Sequence[tuple[int, int]] = ((1, 3), (4, 6))) -> Diagram:
    """Skip-layer memory wiring and the overlap it buys.

    A row of transformer blocks (attention, LN, FFN) on the residual stream; memory layer k reads
    the pre-FFN normalised state (LN output) of block i and adds its output to the residual stream
    after block j (0-based, i <= j). Below, a timeline: memory k's lookup can start once block i's
    LN output exists and must finish by the end of block j, so it overlaps the blocks in between.
    Memory boxes carry class ``memory``, timeline bars ``lookup``.

    Args:
        n_layers: blocks (1..24). wiring: (i, j) pairs, 0 <= i <= j < n_layers, at most 8.
    """
    n_layers = _int_arg("n_layers", n_layers, 1, 24)
    pairs = _check_wiring(wiring, n_layers)
    desc = ", ".join(f"memory {k} reads block {i} and adds after block {j}" for k, (i, j) in enumerate(pairs))
    svg = _Svg(f"skip-{n_layers}-" + "-".join(f"{i}_{j}" for i, j in pairs), "Skip-layer memory wiring",
               f"{n_layers} transformer blocks on the residual stream; " + (desc or "no memory layers") + ".")
    _header(svg, "a memory layer reads the LN output of block i and adds into the residual stream after block j")
    x0, x1 = 84.0, 700.0
    gap = max(16.0, min(24.0, (x1 - x0) / n_layers * 0.28))
    pitch = (x1 - x0) / n_layers
    bw = pitch - gap
    ys = 92.0          # residual stream
    by0, by1 = 106.0, 206.0
    sub = [("Attn", by0 + 6, 36, _tint(BLUE, 0.7), BLUE), ("LN", by0 + 46, 18, _tint(YELLOW, 0.45), GREY),
           ("FFN", by0 + 68, 26, _tint(ORANGE, 0.6), ORANGE)]
    show_labels = bw >= 34
    svg.text(x0 - 8, ys + 4, "residual", size=11, anchor="end")
    svg.line(x0 - 4, ys, x1 + 8, ys, stroke=INK, sw=1.6, arrow=True)

    def bx(k: int) -> float:
        return x0 + k * pitch + gap / 2

    for k in range(n_layers):
        x = bx(k)
        svg.rect(x, by0, bw, by1 - by0, fill="#FAFAFA", stroke="#9A9A9A", sw=1, rx=4, cls="block")
        svg.line(x + 5, ys, x + 5, by0, stroke="#9A9A9A", sw=1)
        svg.line(x + bw - 5, by0, x + bw - 5, ys + 2, stroke="#9A9A9A", sw=1, arrow=True)
        for name, yy, hh, fill, stroke in sub:
            svg.rect(x + 4, yy, bw - 8, hh, fill=fill, stroke=stroke, sw=0.8, rx=2)
            if show_labels:
                svg.text(x + bw / 2, yy + hh / 2 + 4, name, size=10.5 if name != "LN" else 10, anchor="middle")
        svg.text(x + bw / 2, by1 + 14, str(k), size=10.5 if pitch >= 22 else 9, anchor="middle")
    svg.text(x0 - 8, by1 + 14, "block", size=11, anchor="end")
    # memory lanes (interval colouring so overlapping spans go to separate lanes)
    ln_y = sub[1][1] + sub[1][2] / 2
    lane_top = by1 + 34
    lane_h, lane_pitch = 26.0, 38.0
    spans = []
    for k, (i, j) in enumerate(pairs):
        xr = bx(i) + bw + gap * 0.3
        xw = bx(j) + bw + gap * 0.7
        left, right = xr - 6, xw + 6
        if right - left < 40:
            mid = (left + right) / 2
            left, right = mid - 20, mid + 20
        spans.append((left, right, xr, xw))
    lanes: list[float] = []
    lane_of = []
    for left, right, _xr, _xw in spans:
        for li, end in enumerate(lanes):
            if left > end + 8:
                lanes[li] = right
                lane_of.append(li)
                break
        else:
            lanes.append(right)
            lane_of.append(len(lanes) - 1)
    lines_layer: list[tuple] = []
    for k, ((i, j), (left, right, xr, xw)) in enumerate(zip(pairs, spans)):
        ly = lane_top + lane_of[k] * lane_pitch
        lines_layer.append((k, i, j, left, right, xr, xw, ly))
    for k, i, j, left, right, xr, xw, ly in lines_layer:   # lines first, boxes on top
        svg.path(f"M{_f(bx(i) + bw - 4)},{_f(ln_y)} L{_f(xr)},{_f(ln_y)} L{_f(xr)},{_f(ly - 2)}",
                 stroke=VERMILLION, sw=1.4, arrow=True)
        svg.line(xw, ly, xw, ys + 9, stroke=VERMILLION, sw=1.4, arrow=True)
    for k, i, j, left, right, xr, xw, ly in lines_layer:
        svg.rect(left, ly, right - left, lane_h, fill=_tint(VERMILLION, 0.8), stroke=VERMILLION, sw=1.2, rx=5,
                 cls="memory")
        for label in (f"memory {k}: {i} → {j}", f"memory {k}", f"M{k}", str(k)):
            if svg.width_of(label, 11) <= right - left - 8:
                svg.text((left + right) / 2, ly + lane_h / 2 + 4, label, size=11, anchor="middle")
                break
        svg.plus(xw, ys, 6, stroke=VERMILLION)
    n_lanes = max(1, len(lanes))
    # timeline
    ty = lane_top + n_lanes * lane_pitch + 22
    svg.line(16, ty - 14, WIDTH - 16, ty - 14, stroke="#D9D9D9", sw=1)
    svg.text(16, ty + 4, "Timeline of one forward step", size=13, bold=True)
    row_h = 20.0
    t0 = ty + 18
    svg.text(x0 - 8, t0 + 14, "compute", size=11, anchor="end")
    for k in range(n_layers):
        svg.rect(x0 + k * pitch, t0, pitch, row_h - 2, fill=_tint(BLUE, 0.7), stroke="#FFFFFF", sw=1,
                 cls="compute-slot")
        if pitch >= 16:
            svg.text(x0 + k * pitch + pitch / 2, t0 + 13, str(k), size=10 if pitch >= 22 else 8.5, anchor="middle")
    for k, (i, j) in enumerate(pairs):
        yy = t0 + (k + 1) * (row_h + 4)
        start = x0 + i * pitch + pitch * 0.62   # the LN output of block i exists after its attention
        end = x0 + (j + 1) * pitch
        svg.text(x0 - 8, yy + 14, f"memory {k}", size=11, anchor="end")
        svg.rect(start, yy, end - start, row_h - 2, fill=_tint(VERMILLION, 0.55), stroke=VERMILLION, sw=1,
                 rx=3, cls="lookup")
        label = f"lookup hidden by blocks {i + 1}–{j}" if j > i else f"lookup during FFN {i}"
        for lab in (label, "lookup"):
            if svg.width_of(lab, 10) <= end - start - 8:
                svg.text((start + end) / 2, yy + 13, lab, size=10, anchor="middle")
                break
    tend = t0 + (len(pairs) + 1) * (row_h + 4)
    svg.line(x0, tend + 4, x1, tend + 4, stroke=INK, sw=1, arrow=True)
    svg.text(x1, tend + 20, "time", size=11, anchor="end")
    # legend
    ly = tend + 44
    x = 16.0
    for fill, stroke, label in ((_tint(BLUE, 0.7), BLUE, "attention"), (_tint(YELLOW, 0.45), GREY, "LN (pre-FFN)"),
                                (_tint(ORANGE, 0.6), ORANGE, "FFN"), (_tint(VERMILLION, 0.8), VERMILLION, "memory layer")):
        x = svg.swatch(x, ly, fill, stroke, label)
    return Diagram(svg.render(ly + 14), svg.title)


# --------------------------------------------------------------------------------------------
# 7. The value-lookup kernel
# --------------------------------------------------------------------------------------------
def _bytes(b: float) -> str:
    for unit, div in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}".replace(".0 ", " ")
    return f"{int(b)} B"


def value_lookup_kernel(k: int = 32, d_v: int = 256, num_blocks: int = 4, num_cores: int = 2,
                        value_bytes: int = 2) -> Diagram:
    """The value-lookup kernel's data flow for one token, with the bytes it moves.

    Per token b: k virtual indices and k×h scores → gather the k rows V[idx mod N] from HBM →
    multiply slice c of each row by its core-c score → accumulate into the row's virtual block
    idx div N, in fp32 registers → write the (E, D_v) result of (B, E, D_v) back to HBM. The
    annotation counts bytes per token (int32 indices, scores and values in the value dtype).

    Args:
        k: selected rows per token (1..4096). d_v: value width (1..65536, divisible by num_cores).
        num_blocks: E (1..64). num_cores: h (1..8). value_bytes: 2 (bf16/fp16) or 4 (fp32).
    """
    k = _int_arg("k", k, 1, 4096)
    d_v = _int_arg("d_v", d_v, 1, 65536)
    e = _int_arg("num_blocks", num_blocks, 1, 64)
    h = _int_arg("num_cores", num_cores, 1, 8)
    value_bytes = _int_arg("value_bytes", value_bytes, 2, 4)
    if value_bytes == 3:
        raise DiagramArgumentError("value_bytes must be 2 (bf16/fp16) or 4 (fp32), got 3")
    if d_v % h:
        raise DiagramArgumentError(f"d_v must be divisible by num_cores, got d_v={d_v}, num_cores={h}")
    colors = OKABE_ITO[:h]
    svg = _Svg(f"kernel-{k}-{d_v}-{e}-{h}-{value_bytes}", "The value-lookup kernel, per token",
               f"For each token: read {k} indices and {k}x{h} scores, gather {k} rows of the value table "
               f"from HBM, scale each core slice by its score, accumulate per virtual block in fp32 "
               f"registers, and write {e} x {d_v} outputs.")
    _header(svg, "out[b, p, slice c] = Σ_k [idx div N = p] · score[b, k, c] · V[idx mod N, slice c]")
    shown = min(k, 5)
    rng = random.Random(6)
    big_n = 24
    idx_rows = sorted(rng.sample(range(big_n), shown))
    blocks = [rng.randrange(e) for _ in range(shown)]
    # column positions: inputs, table, scaled rows, accumulators
    c1, c2, c3, c4 = 20.0, 188.0, 344.0, 556.0
    ytitle = 84.0
    for x, ttl in zip((c1, c2, c3, c4), ("1. inputs", "2. gather (HBM)", "3. scale by core", "4. accumulate")):
        svg.text(x, ytitle, ttl, size=12.5, bold=True)
    y0 = 100.0
    rh = 22.0
    row_y = [y0 + 22 + s * rh for s in range(shown)]
    # 1. per-token inputs
    svg.text(c1, y0 + 12, f"token b: k = {k} picks", size=11, fill="#4D4D4D")
    for s in range(shown):
        yy = row_y[s]
        v = blocks[s] * big_n + idx_rows[s]
        svg.rect(c1, yy, 60, rh - 4, fill=_tint(SKY, 0.65), stroke=BLUE, sw=0.8, cls="index")
        svg.text(c1 + 30, yy + 13, f"idx {v}", size=10, anchor="middle")
        cw = 56.0 / h
        for c in range(h):
            svg.rect(c1 + 66 + c * cw, yy, cw, rh - 4, fill=_tint(colors[c], 0.55) if colors[c] != BLACK
                     else "#BBBBBB", stroke="#FFFFFF", sw=0.8)
    yl = y0 + 22 + shown * rh
    if k > shown:
        svg.text(c1 + 30, yl + 6, "⋮", size=12, anchor="middle")
    svg.text(c1 + 94, yl + 12, f"h = {h} scores", size=10, anchor="middle", fill="#4D4D4D")
    # 2. value table in HBM
    tx, tw, th = c2 + 8, 112.0, 6.5
    ty = y0 + 4
    svg.rect(tx - 8, ty - 6, tw + 16, big_n * th + 30, fill=_tint(GREY, 0.9), stroke=GREY, sw=1, rx=5, dash="4 3")
    for row in range(big_n):
        hit = row in idx_rows
        svg.rect(tx, ty + row * th, tw, th, fill=ORANGE if hit else _tint(ORANGE, 0.82), stroke="#FFFFFF", sw=0.5,
                 cls="gathered-row" if hit else None)
    svg.text(tx + tw / 2, ty + big_n * th + 17, "V (N, D_v), HBM", size=10.5, anchor="middle")
    for s in range(shown):
        svg.line(c1 + 126, row_y[s] + (rh - 4) / 2, tx - 10, ty + idx_rows[s] * th + th / 2, stroke=BLUE,
                 sw=0.9, arrow=True)
    svg.text(c1, yl + 34, "row = idx mod N", size=10, fill="#4D4D4D")
    svg.text(c1, yl + 48, "block p = idx div N", size=10, fill="#4D4D4D")
    # 3. scaled rows
    sx, sw_ = c3 + 4, 120.0
    for s in range(shown):
        yy = row_y[s]
        svg.line(tx + tw + 10, ty + idx_rows[s] * th + th / 2, sx - 4, yy + (rh - 4) / 2, stroke=ORANGE, sw=0.9,
                 arrow=True)
        for c in range(h):
            svg.rect(sx + c * sw_ / h, yy, sw_ / h, rh - 4, fill=_tint(colors[c], 0.7) if colors[c] != BLACK
                     else "#BBBBBB", stroke="#FFFFFF", sw=1)
        svg.text(sx + sw_ + 6, yy + 13, f"p = {blocks[s]}", size=10)
    svg.text(sx + sw_ / 2, yl + 12, "slice c × score c", size=10, anchor="middle", fill="#4D4D4D")
    # 4. accumulators in registers
    ax, aw = c4 + 8, 136.0
    e_shown = min(e, 6)
    ah = 18.0
    acc_y = [y0 + 22 + p * (ah + 6) for p in range(e_shown)]
    reg_h = acc_y[-1] + ah + (22 if e > e_shown else 8) - (y0 + 14)
    svg.rect(ax - 8, y0 + 14, aw + 16, reg_h + 18, fill=_tint(GREEN, 0.93), stroke=GREEN, sw=1, rx=5, dash="4 3")
    for p in range(e_shown):
        svg.rect(ax, acc_y[p], aw, ah, fill="#FFFFFF", stroke=GREEN, sw=1.2, cls="accumulator")
        for c in range(h):
            svg.rect(ax + c * aw / h + 1, acc_y[p] + 2, aw / h - 2, ah - 4,
                     fill=_tint(colors[c], 0.82) if colors[c] != BLACK else "#DDDDDD", stroke="none")
        svg.text(ax + aw / 2, acc_y[p] + 13, f"acc[{p}]", size=10, anchor="middle")
    if e > e_shown:
        svg.text(ax + aw / 2, acc_y[-1] + ah + 14, f"… {e} blocks", size=10, anchor="middle")
    svg.text(ax + aw / 2, y0 + 14 + reg_h + 12, "registers, fp32", size=10, anchor="middle", fill="#4D4D4D")
    for s in range(shown):
        p = blocks[s]
        if p < e_shown:
            svg.line(sx + sw_ + 42, row_y[s] + (rh - 4) / 2, ax - 12, acc_y[p] + ah / 2, stroke=GREEN,
                     sw=0.9, arrow=True)
    # 5. write
    wy = y0 + 14 + reg_h + 20
    svg.line(ax + aw / 2, wy, ax + aw / 2, wy + 20, arrow=True)
    svg.rect(ax - 8, wy + 24, aw + 16, 22, fill=_tint(VERMILLION, 0.6), stroke=VERMILLION, sw=1)
    svg.text(ax + aw / 2, wy + 39, "5. write (B, E, D_v)", size=10.5, anchor="middle")
    wy = max(wy + 46, yl + 56, ty + big_n * th + 30) - 50
    # bytes
    dtype = "bf16/fp16" if value_bytes == 2 else "fp32"
    rows_b = k * d_v * value_bytes
    meta_b = k * (4 + h * value_bytes)
    out_b = e * d_v * value_bytes
    flops = 2 * k * d_v
    total = rows_b + meta_b + out_b
    yb = wy + 76
    svg.line(16, yb - 20, WIDTH - 16, yb - 20, stroke="#D9D9D9", sw=1)
    svg.text(16, yb, f"Bytes per token (k = {k}, D_v = {d_v}, E = {e}, h = {h}, values in {dtype})", size=12.5,
             bold=True)
    lines = [
        f"value rows read:  k · D_v · {value_bytes} B = {_bytes(rows_b)}   (the floor: each selected row once)",
        f"indices + scores:  k · (4 + h · {value_bytes}) B = {_bytes(meta_b)}",
        f"output written:  E · D_v · {value_bytes} B = {_bytes(out_b)}   (accumulators stay in registers)",
        f"{flops:,} FLOPs / {_bytes(total)} ≈ {flops / total:.2f} FLOP/byte: bandwidth-bound, "
        f"time ≈ bytes / HBM bandwidth",
    ]
    for q, line in enumerate(lines):
        svg.text(16, yb + 20 + 18 * q, line, size=12)
    return Diagram(svg.render(yb + 20 + 18 * len(lines) + 6), svg.title)


#: name → zero-argument function producing the book's default drawing (used by scripts/export_figures.py).
ALL_DIAGRAMS = {
    "mlp_as_memory": mlp_as_memory,
    "product_key_grid": product_key_grid,
    "tucker_core": tucker_core,
    "virtual_memory": virtual_memory,
    "multi_core": multi_core,
    "skip_wiring": skip_wiring,
    "value_lookup_kernel": value_lookup_kernel,
}
