"""The SVG architecture drawings: well-formed, accessible, laid out without overlaps, parametric."""
from __future__ import annotations

import importlib.util
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ultramem_edu.viz import diagrams as D

NS = {"svg": "http://www.w3.org/2000/svg"}
ROOT = Path(__file__).resolve().parents[1]

CASES = [(name, fn, {}) for name, fn in D.ALL_DIAGRAMS.items()] + [
    ("mlp_as_memory", D.mlp_as_memory, {"num_keys": 16, "m": 5}),
    ("mlp_as_memory", D.mlp_as_memory, {"num_keys": 2, "m": 1}),
    ("product_key_grid", D.product_key_grid, {"n": 2, "m": 1}),
    ("product_key_grid", D.product_key_grid, {"n": 16, "m": 6}),
    ("product_key_grid", D.product_key_grid, {"n": 32, "m": 32}),
    ("tucker_core", D.tucker_core, {"rank": 1, "n": 4, "m": 2}),
    ("tucker_core", D.tucker_core, {"rank": 4, "n": 16, "m": 8}),
    ("virtual_memory", D.virtual_memory, {"expansion": 1}),
    ("virtual_memory", D.virtual_memory, {"expansion": 9}),
    ("virtual_memory", D.virtual_memory, {"expansion": 16}),
    ("multi_core", D.multi_core, {"num_cores": 1}),
    ("multi_core", D.multi_core, {"num_cores": 8}),
    ("skip_wiring", D.skip_wiring, {"n_layers": 20, "wiring": ((2, 5), (6, 9), (10, 13), (14, 17))}),
    ("skip_wiring", D.skip_wiring, {"n_layers": 24, "wiring": ((0, 0), (1, 1), (2, 23), (5, 9))}),
    ("skip_wiring", D.skip_wiring, {"n_layers": 1, "wiring": ((0, 0),)}),
    ("skip_wiring", D.skip_wiring, {"n_layers": 4, "wiring": ()}),
    ("value_lookup_kernel", D.value_lookup_kernel, {"k": 1, "d_v": 1, "num_blocks": 1, "num_cores": 1}),
    ("value_lookup_kernel", D.value_lookup_kernel,
     {"k": 3, "d_v": 64, "num_blocks": 16, "num_cores": 8, "value_bytes": 4}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for name, _, kw in CASES]


def parse(d: D.Diagram) -> ET.Element:
    return ET.fromstring(d.svg)


def count_class(d: D.Diagram, cls: str) -> int:
    return sum(1 for el in parse(d).iter() if cls in (el.get("class") or "").split())


@pytest.mark.parametrize("name,fn,kw", CASES, ids=IDS)
def test_well_formed_accessible_and_inside_view_box(name, fn, kw):
    d = fn(**kw)
    assert isinstance(d, D.Diagram) and d._repr_svg_() == d.svg and d.title
    root = parse(d)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    title = root.find("svg:title", NS)
    assert title is not None and title.text == d.title
    assert root.find("svg:desc", NS).text
    x0, y0, w, h = (float(v) for v in root.get("viewBox").split())
    assert (x0, y0) == (0, 0) and 640 <= w <= 760 and 200 <= h <= 1000
    assert "DejaVu Sans" in root.get("font-family")
    bg = root.find("svg:rect", NS)            # the first shape: a white background over everything
    assert bg.get("fill") == "#FFFFFF" and float(bg.get("width")) == w and float(bg.get("height")) == h
    texts = root.findall(".//svg:text", NS)
    assert texts
    for t in texts:                            # anchor points inside the view box
        assert 0 <= float(t.get("x")) <= w and 0 <= float(t.get("y")) <= h
    boxes = D.text_boxes(d.svg)                # estimated extents inside, and pairwise disjoint
    for bx0, by0, bx1, by1, s in boxes:
        assert bx0 >= 0 and by0 >= 0 and bx1 <= w and by1 <= h, f"{s!r} leaves the view box"
    for a, b in itertools.combinations(boxes, 2):
        overlap = a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        assert not overlap, f"texts overlap: {a[4]!r} and {b[4]!r}"


@pytest.mark.parametrize("name,fn,kw", CASES, ids=IDS)
def test_ids_are_unique_and_colours_okabe_ito(name, fn, kw):
    root = parse(fn(**kw))
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    assert len(ids) == len(set(ids))
    allowed_hues = {c.upper() for c in D.OKABE_ITO}
    for el in root.iter():
        for attr in ("stroke",):
            v = el.get(attr)
            # saturated strokes are Okabe-Ito; greys and tints are allowed
            if v and v.startswith("#") and v.upper() not in allowed_hues:
                r, g, b = (int(v[i:i + 2], 16) for i in (1, 3, 5))
                assert max(r, g, b) - min(r, g, b) < 40 or min(r, g, b) > 120, f"{attr}={v}"


def test_markup_renders_subscripts_and_italics():
    segs = D._parse("S_row^{T} C $x$ W_{1}")
    assert segs == [("italic", "S"), ("sub", "row"), ("sup", "T"), ("plain", " C "), ("italic", "x"),
                    ("plain", " "), ("italic", "W"), ("sub", "1")]
    svg = D.product_key_grid().svg
    assert "Sᵣₒᵥ" not in svg and 'data-kind="sub"' in svg


@pytest.mark.parametrize("n,m", [(8, 4), (8, 1), (6, 6), (16, 5)])
def test_product_key_grid_highlights(n, m):
    d = D.product_key_grid(n=n, m=m)
    assert count_class(d, "final-cell") == m
    assert count_class(d, "final-cell") + count_class(d, "candidate-cell") == m * m
    assert count_class(d, "row-topm") == m and count_class(d, "col-topm") == m
    assert count_class(d, "cell") + m * m == n * n
    # the physical row of every final cell is printed: i·n + j
    rs, cs, rows, cols, final = D._pkm_selection(n, m)
    text = "".join(b[4] for b in D.text_boxes(d.svg))
    for i, j in final[:10]:
        assert f"= {i * n + j}" in text


def test_product_key_selection_is_exact():
    for n, m in [(8, 4), (12, 7), (5, 5)]:
        rs, cs, _rows, _cols, final = D._pkm_selection(n, m, seed=3)
        brute = sorted(((i, j) for i in range(n) for j in range(n)), key=lambda ij: -(rs[ij[0]] + cs[ij[1]]))[:m]
        assert set(final) == set(brute)


def test_parameters_change_the_drawings():
    assert count_class(D.mlp_as_memory(m=2), "topm-row") == 2
    assert count_class(D.mlp_as_memory(num_keys=12, m=5), "topm-row") == 5
    t = D.tucker_core(rank=2, n=8, m=3)
    assert count_class(t, "final-cell") == 3 and count_class(t, "candidate-cell") == 9 - 3
    assert D.tucker_core(rank=3).svg != t.svg
    for e in (1, 4, 9, 16):
        assert count_class(D.virtual_memory(expansion=e), "virtual-block") == e
        assert count_class(D.virtual_memory(expansion=e), "projector") == e
    assert count_class(D.virtual_memory(), "virtual-hit") == 5
    for h in (1, 2, 4):
        mc = D.multi_core(num_cores=h)
        assert count_class(mc, "output-slice") == h and count_class(mc, "core-slice") == h
        assert count_class(mc, "final-cell") == 4
    sw = D.skip_wiring(n_layers=8, wiring=((1, 3), (4, 6)))
    assert count_class(sw, "block") == 8 and count_class(sw, "memory") == 2 and count_class(sw, "lookup") == 2
    sw20 = D.skip_wiring(20, ((2, 5), (6, 9), (10, 13), (14, 17)))
    assert count_class(sw20, "block") == 20 and count_class(sw20, "memory") == 4
    assert count_class(D.skip_wiring(4, ()), "memory") == 0
    k = D.value_lookup_kernel(num_blocks=3)
    assert count_class(k, "accumulator") == 3
    assert "16 KiB" in "".join(b[4] for b in D.text_boxes(D.value_lookup_kernel(k=32, d_v=256).svg))
    assert "32 KiB" in "".join(b[4] for b in D.text_boxes(D.value_lookup_kernel(k=32, d_v=256, value_bytes=4).svg))


def test_skip_wiring_timeline_spans_the_blocks_in_between():
    root = parse(D.skip_wiring(8, ((1, 3),)))
    slots = [el for el in root.iter() if el.get("class") == "compute-slot"]
    (bar,) = [el for el in root.iter() if el.get("class") == "lookup"]
    x = lambda el: float(el.get("x"))
    end = x(bar) + float(bar.get("width"))
    assert x(slots[1]) < x(bar) < x(slots[2])                        # starts inside block 1 (after its LN)
    assert end == pytest.approx(x(slots[3]) + float(slots[3].get("width")))   # done by the end of block 3


@pytest.mark.parametrize("call,arg", [
    (lambda: D.mlp_as_memory(num_keys=1), "num_keys"),
    (lambda: D.mlp_as_memory(m=0), "m"),
    (lambda: D.mlp_as_memory(num_keys=4, m=5), "m"),
    (lambda: D.product_key_grid(n=1), "n"),
    (lambda: D.product_key_grid(n=8, m=9), "m"),
    (lambda: D.product_key_grid(n=8.0), "n"),
    (lambda: D.product_key_grid(n=True), "n"),
    (lambda: D.tucker_core(rank=0), "rank"),
    (lambda: D.tucker_core(n=4, m=5), "m"),
    (lambda: D.virtual_memory(expansion=2), "expansion"),
    (lambda: D.virtual_memory(expansion=0), "expansion"),
    (lambda: D.virtual_memory(expansion=25), "expansion"),
    (lambda: D.multi_core(num_cores=0), "num_cores"),
    (lambda: D.multi_core(num_cores=9), "num_cores"),
    (lambda: D.skip_wiring(n_layers=0), "n_layers"),
    (lambda: D.skip_wiring(n_layers=4, wiring=((1, 4),)), "wiring"),
    (lambda: D.skip_wiring(n_layers=8, wiring=((3, 1),)), "wiring"),
    (lambda: D.skip_wiring(n_layers=8, wiring=((1,),)), "wiring"),
    (lambda: D.skip_wiring(n_layers=8, wiring=(1, 3)), "wiring"),
    (lambda: D.skip_wiring(n_layers=8, wiring="1:3"), "wiring"),
    (lambda: D.value_lookup_kernel(k=0), "k"),
    (lambda: D.value_lookup_kernel(d_v=10, num_cores=4), "d_v"),
    (lambda: D.value_lookup_kernel(value_bytes=3), "value_bytes"),
    (lambda: D.value_lookup_kernel(num_blocks=0), "num_blocks"),
])
def test_validation_names_the_argument(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_save_and_deterministic(tmp_path):
    d = D.product_key_grid()
    p = d.save(tmp_path / "sub" / "grid.svg")
    assert p.read_text(encoding="utf-8") == d.svg == D.product_key_grid().svg


def test_export_script_writes_every_diagram(tmp_path):
    # in-process (a subprocess would spend seconds re-importing plotly through ultramem_edu.viz)
    spec = importlib.util.spec_from_file_location("export_figures", ROOT / "scripts" / "export_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "figs"
    assert module.main(["--out", str(out)]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"diagram_{name}.svg" for name in D.ALL_DIAGRAMS)
    for name, fn in D.ALL_DIAGRAMS.items():
        assert (out / f"diagram_{name}.svg").read_text(encoding="utf-8") == fn().svg


def test_committed_figures_are_up_to_date():
    folder = ROOT / "figures"
    for name, fn in D.ALL_DIAGRAMS.items():
        path = folder / f"diagram_{name}.svg"
        if path.exists():
            assert path.read_text(encoding="utf-8") == fn().svg, (
                f"{path} is stale: run python scripts/export_figures.py")
