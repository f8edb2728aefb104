"""Every built page in headless Chromium, driven over the Chrome DevTools Protocol.

For each page of ``_toc.yml``: no failed request, no request to another host, no console error or
uncaught exception, every plotly figure drawn (an ``svg.main-svg``), math typeset by MathJax
where the page has math, widgets drawn where the page has widget state. On the preface, a real
mouse click on a plotly slider step must change the figure. Every plotly figure of every page,
in a 1366×900 window and on a 390 px phone: no two of its texts overlap, none leaves the figure,
no legend or title sits on a plot, no figure is wider than its column unless it scrolls
(``test_figure_texts_do_not_collide``; the rules are spelled out above it); in the light and the
dark theme, where every such text also keeps WCAG's contrast against what it is drawn on.

Chromium: ``$CHROMIUM``, else ``chromium`` / ``chromium-browser`` / ``google-chrome`` on the path.
Without one the tests are skipped, except with ``CI=true``, where they fail.
"""

from __future__ import annotations

import itertools
import time
import urllib.parse

import pytest

from conftest_book import (  # noqa: F401  (built_book, browser and site are fixtures)
    DevTools, browser, built_book, require_chromium, site, visit,
)

import build_book

require_chromium()

# index.html only redirects to the root page (tested on its own below: following a redirect
# aborts the first page's requests, which would read as failures here).
PAGES = [f"{name}.html" for name in build_book.toc_files()] + ["search.html"]


def test_index_redirects_to_the_root_page(browser, site):
    browser.send("Page.navigate", {"url": urllib.parse.urljoin(site, "index.html")})
    root = build_book.toc_files()[0]
    assert browser.wait_for(f"location.pathname.endsWith('/{root}.html') && location.pathname", 20)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_cleanly(browser, site, page):
    result = visit(browser, urllib.parse.urljoin(site, page))
    hosts = {urllib.parse.urlsplit(u).hostname for u in result["requests"]
             if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, result["requests"]
    assert result["failed"] == []
    assert result["console"] == []

    state = browser.evaluate(
        """(() => ({
          figures: document.querySelectorAll('.plotly-graph-div').length,
          drawn: [...document.querySelectorAll('.plotly-graph-div')]
                   .filter(d => d.querySelector('svg.main-svg')).length,
          mathSource: document.querySelectorAll('.math').length,
          typeset: document.querySelectorAll('mjx-container').length,
          widgetViews: document.querySelectorAll(
            'script[type="application/vnd.jupyter.widget-view+json"]').length,
          widgets: document.querySelectorAll('.jupyter-widgets, .widget-dropdown').length,
        }))()"""
    )
    assert state["drawn"] == state["figures"], state
    if state["mathSource"]:
        assert state["typeset"] > 0, state
    if state["widgetViews"]:
        assert state["widgets"] > 0, state


def test_the_sidebar_links_to_the_pdf_edition(browser, site):
    visit(browser, urllib.parse.urljoin(site, "book/02_product_keys.html"))
    link = browser.evaluate(
        """(() => { const a = document.querySelector('.bd-sidebar-primary .ultramem-pdf-link a');
                    return a && {text: a.innerText.trim(), href: a.href,
                                 shown: a.checkVisibility() && a.getBoundingClientRect().width > 0}; })()""")
    assert link and link["text"] == "PDF edition" and link["shown"], link
    # the published PDF, or with build_book.py --pdf the site's own copy
    assert link["href"].endswith("/ultramem-edu.pdf"), link


def test_preface_has_math_a_figure_and_a_widget(browser, site):
    visit(browser, urllib.parse.urljoin(site, "book/00_preface.html"))
    counts = browser.evaluate(
        """({figures: document.querySelectorAll('.plotly-graph-div svg.main-svg').length > 0,
             math: document.querySelectorAll('mjx-container').length > 0,
             dropdown: !!document.querySelector('.widget-dropdown select')})"""
    )
    assert counts == {"figures": True, "math": True, "dropdown": True}


def test_plotly_slider_click_changes_the_figure(browser, site):
    visit(browser, urllib.parse.urljoin(site, "book/00_preface.html"))
    before = browser.evaluate(
        """(() => {
          const gd = [...document.querySelectorAll('.plotly-graph-div')]
                       .find(d => d.layout && d.layout.sliders && d.layout.sliders.length);
          gd.id = gd.id || 'slider-figure';
          window.__sliderFigure = gd;
          const blanks = gd.data[0].z.flat().filter(v => v === null).length;
          const label = gd.querySelector('.slider-container .slider-label-group text');
          label.scrollIntoView({block: 'center'});
          const box = label.getBoundingClientRect();
          return {active: gd.layout.sliders[0].active, blanks: blanks,
                  x: box.x + box.width / 2, y: box.y + box.height / 2};
        })()"""
    )
    assert before["blanks"] == 0  # the full map is the static default
    # Plotly's slider moves on mouse down anywhere over the rail: press over the first step label.
    rail = browser.evaluate(
        """(() => {
          const rect = window.__sliderFigure.querySelector('.slider-rail-touch-rect')
                        .getBoundingClientRect();
          return {y: rect.y + rect.height / 2};
        })()"""
    )
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", {
            "type": kind, "x": before["x"], "y": rail["y"], "button": "left", "clickCount": 1,
        })
    # Plotly sets the slider's `active` at once and runs the step's restyle on the next frame.
    browser.wait_for("window.__sliderFigure.layout.sliders[0].active === 0", timeout=10)
    blanks = "window.__sliderFigure.data[0].z.flat().filter(v => v === null).length"
    try:
        browser.wait_for(f"{blanks} > 0", timeout=10)
    except TimeoutError:
        pytest.fail("moving the slider to session 1 should blank the later chapters")


# ---------------------------------------------------------------------------------------------
# Figure text legibility: no two texts of a plotly figure overlap, none leaves the figure.
# ---------------------------------------------------------------------------------------------
#
# What counts as a text: the main title, annotations (subplot titles are annotations), axis
# titles, each legend (as one box: its items are laid out by plotly and cannot collide inside it),
# slider step labels and the slider's current-value label, update-menu buttons and dropdown
# headers, colorbar titles, and tick labels (of axes and colorbars).
# Each text is its own box as drawn, turned with it (a rotated tick label is a rotated rectangle,
# not the upright box around it), so texts that only share a corner of their upright boxes pass.
# Tick labels are compared with every other text and with the figure's edge, but not with tick
# labels of the same axis: plotly spaces those itself (auto ticks), and neighbours touch by design.
# Data labels drawn on traces (bar texts, heatmap texts) and the hover layer are not layout text
# and are left out; empty and invisible texts are ignored.
# Two more rules catch what overlapping text boxes alone would not: a legend, title, axis title,
# slider, menu or colorbar text must not sit on a plot area (the "legend on its own curves" case;
# a tick label may sit on its own subplot only), and a figure must not be wider than the column
# that holds it, unless that box scrolls sideways (the book's ``min_width`` figures on a phone).
#
# Windows: the desktop one the book is read in (1366×900) and a 390 px wide phone.

FIGURE_VIEWPORTS = {
    "desktop 1366x900": {"width": 1366, "height": 900, "deviceScaleFactor": 1, "mobile": False},
    "phone 390x844": {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True},
}
OVERLAP_TOLERANCE_PX = 1.0  # boxes may touch; anti-aliased glyph edges are not an overlap
PLOT_AREA_TOLERANCE_PX = 2.0  # a text box's blank side bearing may graze a plot's edge

# Returns, per figure: its box, the box of the column that clips it, its title, its texts and
# its plot areas, all in CSS pixels relative to the viewport.
_COLLECT_FIGURE_TEXTS = r"""
(() => {
  const box = el => { const r = el.getBoundingClientRect();
                      return [r.left, r.top, r.right, r.bottom]; };
  // an SVG element's own box, turned as it is drawn (rotated tick labels, vertical axis titles)
  const quad = el => { const b = el.getBBox(), m = el.getScreenCTM();
                       return [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height],
                               [b.x, b.y + b.height]].map(([x, y]) => [m.a * x + m.c * y + m.e,
                                                                      m.b * x + m.d * y + m.f]); };
  const shown = el => el.checkVisibility({opacityProperty: true, visibilityProperty: true}) &&
                      el.getBoundingClientRect().width > 0 && el.getBoundingClientRect().height > 0;
  const words = el => (el.textContent || '').replace(/\s+/g, ' ').trim();
  const subplotOf = el => { const g = el.closest('g.subplot');
                            return g ? [...g.classList].find(c => c !== 'subplot') : ''; };
  return [...document.querySelectorAll('.plotly-graph-div')].map((gd, index) => {
    const items = [];
    const add = (kind, el, label, group) => {
      if (!shown(el)) return;
      const text = label === undefined ? words(el) : label;
      if (!text) return;
      items.push({kind, text: text.slice(0, 60), group: group || '', box: box(el), quad: quad(el)});
    };
    gd.querySelectorAll('text.gtitle').forEach(el => add('title', el));
    gd.querySelectorAll('g.annotation').forEach(g => {
      const t = g.querySelector('text.annotation-text');
      if (t) add('annotation', t);
    });
    gd.querySelectorAll('.infolayer > g[class$="title"] > text').forEach(el => {
      if (/^[xy]\d*title$/.test(el.getAttribute('class') || '')) add('axis title', el);
    });
    gd.querySelectorAll('g.legend').forEach(g => {
      const bg = g.querySelector('rect.bg');
      const label = [...g.querySelectorAll('text.legendtext, text.legendtitletext')]
                      .map(words).filter(Boolean).slice(0, 2).join(' | ');
      if (bg && label) add('legend', bg, label);
    });
    gd.querySelectorAll('g.slider-group').forEach((g, k) => {
      g.querySelectorAll('text.slider-label').forEach(el => add('slider label', el, undefined, 'slider ' + k));
      g.querySelectorAll('text.slider-current-value').forEach(el => add('slider value', el));
    });
    // a row of buttons: each button; a dropdown: its header (its items are drawn only when open)
    gd.querySelectorAll('g.updatemenu-button, g.updatemenu-header-group:has(> g.updatemenu-header)')
      .forEach(g => add('menu', g, words(g).replace(/▼$/, '')));
    gd.querySelectorAll('g.colorbar').forEach((cb, k) => {
      cb.querySelectorAll('.cbtitle text').forEach(el => add('colorbar title', el));
      cb.querySelectorAll('.cbaxis text').forEach(el => add('tick', el, undefined, 'colorbar ' + k));
    });
    gd.querySelectorAll('g.xtick > text, g.ytick > text').forEach(el => {
      if (el.closest('g.colorbar')) return;
      const axis = el.parentNode.classList.contains('xtick') ? 'x' : 'y';
      add('tick', el, undefined, subplotOf(el) + ':' + axis);
    });
    const plots = [...gd.querySelectorAll('.draglayer > g')].map(g => {
      const r = g.querySelector('rect.nsewdrag');
      return r ? {subplot: [...g.classList][0] || '', box: box(r), quad: quad(r)} : null;
    }).filter(Boolean);
    // the box that clips the figure sideways: a scrolling one lets the reader reach all of it
    let clip = gd.parentElement;
    while (clip && clip !== document.body && getComputedStyle(clip).overflowX === 'visible')
      clip = clip.parentElement;
    const inBody = !clip || clip === document.body;
    const scrolls = !inBody && ['auto', 'scroll'].includes(getComputedStyle(clip).overflowX);
    const column = inBody ? [0, 0, document.documentElement.clientWidth, 0] : box(clip);
    const title = gd.layout && gd.layout.title &&
                  (typeof gd.layout.title === 'string' ? gd.layout.title : gd.layout.title.text);
    return {index, title: title || '', box: box(gd), column, scrolls, items, plots};
  });
})()
"""

_FIGURES_SETTLED = r"""
(() => [...document.querySelectorAll('.plotly-graph-div')].every(
  gd => gd._fullLayout && gd.querySelector('svg.main-svg') && !(gd._promises || []).length
        && gd.dataset.theme === document.documentElement.dataset.theme))()
"""

# The contrast of every figure text of the collector above (title, annotations, axis titles,
# legend, slider, menus, colorbar and tick labels) against what it is drawn on: the page's
# background (the figures' own are transparent), a menu button's fill, an annotation's box.
# WCAG 2.1 AA: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold).
_COLLECT_TEXT_CONTRAST = r"""
(() => {
  const parse = c => { const m = /rgba?\(([^)]+)\)/.exec(c || '');
                       if (!m) return null; const p = m[1].split(',').map(Number);
                       return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const over = (fg, bg) => ({r: fg.r * fg.a + bg.r * (1 - fg.a), g: fg.g * fg.a + bg.g * (1 - fg.a),
                             b: fg.b * fg.a + bg.b * (1 - fg.a), a: 1});
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                     return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (a, b) => { const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x); return (hi + 0.05) / (lo + 0.05); };
  const page = el => { for (let e = el; e; e = e.parentElement) {
                         const c = parse(getComputedStyle(e).backgroundColor);
                         if (c && c.a > 0) return c; }
                       return {r: 255, g: 255, b: 255, a: 1}; };
  const fill = (el, bg) => { const s = getComputedStyle(el); const c = parse(s.fill);
                             if (!c) return null; c.a *= parseFloat(s.fillOpacity || '1'); return over(c, bg); };
  const shown = el => el.checkVisibility({opacityProperty: true, visibilityProperty: true}) &&
                      el.getBoundingClientRect().width > 0 && (el.textContent || '').trim();
  const selector = ['text.gtitle', 'g.annotation text.annotation-text', '.infolayer > g[class$="title"] > text',
                    'text.legendtext', 'text.legendtitletext', 'text.slider-label', 'text.slider-current-value',
                    'g.updatemenu-button text', 'g.updatemenu-header text', '.cbtitle text', '.cbaxis text',
                    'g.xtick > text', 'g.ytick > text'].join(', ');
  const found = [];
  document.querySelectorAll('.plotly-graph-div').forEach((gd, index) => {
    const bg = page(gd);
    gd.querySelectorAll(selector).forEach(t => {
      if (!shown(t)) return;
      let back = bg;
      const box = t.closest('g.updatemenu-button, g.updatemenu-header-group, g.annotation');
      const rect = box && box.querySelector('rect');
      if (rect) back = fill(rect, bg) || bg;
      const fg = fill(t, back);
      if (!fg) return;
      const style = getComputedStyle(t);
      const size = parseFloat(style.fontSize), bold = parseInt(style.fontWeight, 10) >= 700;
      found.push({index, text: t.textContent.trim().slice(0, 40), ratio: ratio(fg, back),
                  need: size >= 24 || (bold && size >= 18.66) ? 3 : 4.5,
                  fg: style.fill, bg: `rgb(${Math.round(back.r)}, ${Math.round(back.g)}, ${Math.round(back.b)})`});
    });
  });
  return found;
})()
"""


def contrast_problems(page: str, texts: list[dict]) -> list[str]:
    return [f"{page}, figure {t['index'] + 1}: {t['text']!r} has contrast {t['ratio']:.2f}:1 "
            f"({t['fg']} on {t['bg']}), needs {t['need']}:1" for t in texts if t["ratio"] < t["need"]]


def _intersection(a: list[float], b: list[float]) -> tuple[float, float]:
    return min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])


def _depth(p: list[list[float]], q: list[list[float]]) -> float:
    """How far two convex quadrilaterals overlap: the smallest overlap of their projections on
    the edge normals of either (separating axis theorem); <= 0 when they are apart. For two
    upright boxes it is min(width, height) of their intersection."""
    depth = float("inf")
    for poly in (p, q):
        for k in range(4):
            (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            norm = (nx * nx + ny * ny) ** 0.5
            if norm == 0:
                continue
            on_p = [(x * nx + y * ny) / norm for x, y in p]
            on_q = [(x * nx + y * ny) / norm for x, y in q]
            depth = min(depth, min(max(on_p), max(on_q)) - max(min(on_p), min(on_q)))
    return depth


def _overlaps(a: dict, b: dict, tol: float = OVERLAP_TOLERANCE_PX) -> bool:
    w, h = _intersection(a["box"], b["box"])
    return w > tol and h > tol and _depth(a["quad"], b["quad"]) > tol


def figure_text_problems(page: str, figures: list[dict]) -> list[str]:
    """Every collision of one page's figures, as readable lines (see the comment above)."""
    problems = []
    tol = OVERLAP_TOLERANCE_PX
    for fig in figures:
        where = f"{page}, figure {fig['index'] + 1}" + (f" ({fig['title'][:50]!r})" if fig["title"] else "")
        fl, ft, fr, fb = fig["box"]
        if not fig["scrolls"] and fr > fig["column"][2] + tol:
            problems.append(f"{where}: the figure ({fr - fl:.0f} px wide) sticks out of its column "
                            f"by {fr - fig['column'][2]:.0f} px")
        items = fig["items"]
        for item in items:
            xs, ys = [x for x, _ in item["quad"]], [y for _, y in item["quad"]]
            out = max(fl - min(xs), ft - min(ys), max(xs) - fr, max(ys) - fb)
            if out > tol:
                problems.append(f"{where}: {item['kind']} {item['text']!r} extends {out:.0f} px "
                                f"outside the figure")
        for one, two in itertools.combinations(items, 2):
            if one["kind"] == two["kind"] == "tick" and one["group"] == two["group"]:
                continue
            if _overlaps(one, two):
                w, h = _intersection(one["box"], two["box"])
                problems.append(f"{where}: {one['kind']} {one['text']!r} overlaps {two['kind']} "
                                f"{two['text']!r} ({w:.0f}×{h:.0f} px)")
        for item in items:
            if item["kind"] == "annotation":
                continue  # annotations may label a point inside a plot on purpose
            for plot in fig["plots"]:
                if item["kind"] == "tick" and item["group"].split(":")[0] == plot["subplot"]:
                    continue
                if _overlaps(item, plot, PLOT_AREA_TOLERANCE_PX):
                    w, h = _intersection(item["box"], plot["box"])
                    problems.append(f"{where}: {item['kind']} {item['text']!r} sits on the plot "
                                    f"area of subplot {plot['subplot']} ({w:.0f}×{h:.0f} px)")
    return problems


def collect_figures(tools: DevTools, url: str) -> list[dict]:
    """Visit ``url`` and return its figures' text boxes once plotly has finished drawing."""
    visit(tools, url)
    tools.wait_for(_FIGURES_SETTLED)
    previous = None
    end = time.monotonic() + 10
    while True:  # plotly may redraw (responsive resize, async text measuring): wait until still
        figures = tools.evaluate(_COLLECT_FIGURE_TEXTS)
        if figures == previous or time.monotonic() > end:
            return figures
        previous = figures
        tools.pump(0.3)


@pytest.fixture(scope="module")
def figure_pages(built_book) -> list[str]:
    """The pages whose HTML holds a plotly figure."""
    return [p for p in PAGES if "plotly-graph-div" in (built_book.html_dir / p).read_text()]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("viewport", list(FIGURE_VIEWPORTS))
def test_figure_texts_do_not_collide(browser, site, figure_pages, viewport, theme):
    assert figure_pages, "no page of the book holds a plotly figure"
    browser.send("Emulation.setDeviceMetricsOverride", FIGURE_VIEWPORTS[viewport])
    # the theme's default mode is "auto" (_config.yml): it follows the reader's system setting
    browser.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": theme}]})
    try:
        problems, figures_seen, texts_seen = [], 0, 0
        for page in figure_pages:
            figures = collect_figures(browser, urllib.parse.urljoin(site, page))
            figures_seen += len(figures)
            assert all(f["items"] for f in figures), f"{page}: a figure with no text was drawn"
            problems += figure_text_problems(page, figures)
            texts = browser.evaluate(_COLLECT_TEXT_CONTRAST)
            texts_seen += len(texts)
            problems += contrast_problems(page, texts)
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
        browser.send("Emulation.setEmulatedMedia", {"features": []})
    assert figures_seen > 0 and texts_seen > figures_seen
    assert not problems, (f"{len(problems)} text collisions or low contrasts in the figures at "
                          f"{viewport}, {theme} theme:\n" + "\n".join(problems))


# ---------------------------------------------------------------------------------------------
# Quizzes: static HTML at the end of chapters 1-11, answered by clicking, without a kernel.
# ---------------------------------------------------------------------------------------------

QUIZ_PAGE = "book/01_memory_layers.html"


def test_quiz_gives_feedback_on_click_offline(browser, site):
    """A chapter's quiz renders with its math typeset, every feedback hidden until an answer is
    chosen; a real click on a wrong and then on the right answer shows each one's verdict and
    feedback (and only the chosen one's); the page asks no other host and logs no error."""
    result = visit(browser, urllib.parse.urljoin(site, QUIZ_PAGE))
    hosts = {urllib.parse.urlsplit(u).hostname for u in result["requests"]
             if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, result["requests"]
    assert result["failed"] == [] and result["console"] == []
    quiz = browser.evaluate(
        """(() => {
          const q = document.querySelector('.ue-quiz');
          if (!q) return null;
          return {questions: q.querySelectorAll('fieldset').length,
                  hidden: [...q.querySelectorAll('.ue-feedback')].every(f => getComputedStyle(f).display === 'none'),
                  typeset: q.querySelectorAll('mjx-container').length,
                  rawTex: q.innerText.includes('\\\\(')};
        })()"""
    )
    assert quiz is not None, f"no quiz on {QUIZ_PAGE}"
    assert quiz["questions"] >= 5 and quiz["hidden"] and quiz["typeset"] > 0 and not quiz["rawTex"], quiz
    for kind, verdict in (("wrong", "Not quite."), ("right", "Right.")):
        target = browser.evaluate(
            f"""(() => {{
              const input = document.querySelector('.ue-quiz fieldset input.ue-{kind}');
              const label = document.querySelector('label[for="' + input.id + '"]');
              label.scrollIntoView({{block: 'center'}});
              const box = label.getBoundingClientRect();
              return {{id: input.id, x: box.x + box.width / 2, y: box.y + box.height / 2}};
            }})()"""
        )
        for event in ("mouseMoved", "mousePressed", "mouseReleased"):
            browser.send("Input.dispatchMouseEvent", {
                "type": event, "x": target["x"], "y": target["y"], "button": "left", "clickCount": 1,
            })
        shown = browser.wait_for(
            f"""(() => {{
              const input = document.getElementById('{target["id"]}');
              const visible = [...input.closest('fieldset').querySelectorAll('.ue-feedback')]
                                .filter(f => getComputedStyle(f).display !== 'none');
              return input.checked && visible.length === 1 && visible[0].parentElement.contains(input)
                     && visible[0].innerText.trim();
            }})()""",
            timeout=10,
        )
        assert shown.startswith(verdict), shown


def _text(kind: str, text: str, left: float, top: float, width: float, height: float,
          group: str = "", turn: float = 0.0) -> dict:
    """A text as the collector reports it: a rectangle turned by ``turn`` radians about its centre."""
    import math

    cx, cy = left + width / 2, top + height / 2
    c, s = math.cos(turn), math.sin(turn)
    corners = [(-width / 2, -height / 2), (width / 2, -height / 2), (width / 2, height / 2),
               (-width / 2, height / 2)]
    quad = [[cx + c * x - s * y, cy + s * x + c * y] for x, y in corners]
    xs, ys = [x for x, _ in quad], [y for _, y in quad]
    return {"kind": kind, "text": text, "group": group, "quad": quad,
            "box": [min(xs), min(ys), max(xs), max(ys)]}


def _figure(items: list[dict], plots: list[dict] = (), width: float = 700, scrolls: bool = False,
            column: float = 745) -> dict:
    return {"index": 0, "title": "t", "box": [0, 0, width, 400], "column": [0, 0, column, 0],
            "scrolls": scrolls, "items": items, "plots": list(plots)}


def test_the_contrast_check_uses_wcag_ratios():
    texts = [{"index": 0, "text": "grey on white", "ratio": 3.95, "need": 4.5, "fg": "a", "bg": "b"},
             {"index": 0, "text": "large", "ratio": 3.95, "need": 3, "fg": "a", "bg": "b"}]
    (problem,) = contrast_problems("p.html", texts)
    assert "'grey on white' has contrast 3.95:1 (a on b), needs 4.5:1" in problem


def test_the_collision_check_finds_what_it_should_and_only_that():
    # two subplot titles running into each other, one running off the right edge
    found = figure_text_problems("p.html", [_figure([
        _text("annotation", "left title", 100, 40, 250, 16),
        _text("annotation", "right title", 330, 40, 400, 16),
    ])])
    assert any("'left title' overlaps annotation 'right title' (20×16 px)" in p for p in found)
    assert any("'right title' extends 30 px outside the figure" in p for p in found)
    # touching boxes, tick labels of one axis side by side, and two long labels turned 45°
    # whose upright boxes overlap although the labels themselves do not: no problem
    assert figure_text_problems("p.html", [_figure([
        _text("axis title", "a", 100, 40, 50, 16), _text("axis title", "b", 150.5, 40, 50, 16),
        _text("tick", "1", 10, 300, 20, 14, group="xy:x"), _text("tick", "2", 25, 300, 20, 14, group="xy:x"),
        _text("tick", "long label one", 200, 330, 100, 14, group="xy:x", turn=0.785),
        _text("tick", "long label two", 240, 330, 100, 14, group="xy:y", turn=0.785),
    ])]) == []
    # ...but the same labels on two different axes overlapping as drawn are reported
    assert figure_text_problems("p.html", [_figure([
        _text("tick", "one", 200, 330, 100, 14, group="xy:x", turn=0.785),
        _text("tick", "two", 210, 330, 100, 14, group="x2y2:x", turn=0.785),
    ])])
    # a legend on a plot area is reported; a tick label on its own subplot is not
    plot = {"subplot": "xy", "box": [60, 80, 660, 330], "quad": [[60, 80], [660, 80], [660, 330], [60, 330]]}
    found = figure_text_problems("p.html", [_figure([
        _text("legend", "with aux | without aux", 500, 100, 150, 80),
        _text("tick", "0.5", 62, 200, 20, 14, group="xy:y"),
    ], plots=[plot])])
    assert len(found) == 1 and "legend 'with aux | without aux' sits on the plot area of subplot xy" in found[0]
    # a figure wider than its column: reported unless its box scrolls sideways
    assert "sticks out of its column" in figure_text_problems("p.html", [_figure([], width=640, column=358)])[0]
    assert figure_text_problems("p.html", [_figure([], width=640, column=358, scrolls=True)]) == []
