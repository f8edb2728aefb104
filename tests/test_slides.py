"""The chapters' slides (scripts/make_slides.py): reveal.js decks built from the executed notebooks.

The first tests build a deck from a small notebook (no book build): slide types, hidden cells, no
load from another host. The browser tests open every deck of the built site in headless Chromium,
with the fixtures of tests/test_browser.py: reveal.js starts, the deck has slides, math is typeset,
figures are drawn, a key press moves to the next slide, and nothing is asked of another host.
"""
from __future__ import annotations

import json
import re
import sys
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import book_assets  # noqa: E402
import make_slides  # noqa: E402

pytest.importorskip("nbconvert")


def _cell(kind, source, tags=(), outputs=None):
    cell = {"cell_type": kind, "metadata": {"tags": list(tags)}, "source": source}
    if kind == "code":
        cell.update(execution_count=1, outputs=outputs or [])
    return cell


def _notebook():
    figure = '<div id="plotly-x" class="plotly-graph-div" style="width:100%;height:100px;"></div>'
    cells = [
        _cell("code", "import sys  # the Colab cell", ["remove-cell"]),
        _cell("markdown", "# A chapter\n\nIt has math: $a + b \\le m + 1$."),
        _cell("code", "x = 1\nprint(x)", outputs=[{"output_type": "stream", "name": "stdout", "text": "1\n"}]),
        _cell("markdown", "## A section\n\nText."),
        _cell("code", "assert x == 1  # a hidden check", ["remove-input"],
              [{"output_type": "display_data", "metadata": {}, "data": {"text/html": figure, "text/plain": "fig"}}]),
        _cell("code", "assert x == 1", ["remove-input"]),
        _cell("markdown", "### A sub-section\n\nMore."),
    ]
    return {"cells": cells, "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 4}


def test_slide_types_follow_the_headings_and_hidden_cells_go():
    nb = make_slides.slide_notebook(_notebook())
    kinds = [(c["cell_type"], c["metadata"]["slideshow"]["slide_type"]) for c in nb["cells"]]
    assert kinds == [("markdown", "slide"), ("code", "-"), ("markdown", "slide"), ("code", "-"),
                     ("markdown", "subslide")]
    assert "widgets" not in nb["metadata"]
    assert all("Colab" not in "".join(c["source"]) for c in nb["cells"])
    assert nb["cells"][3]["source"] == "", "a remove-input cell keeps only its output"
    assert len(_notebook()["cells"]) == 7, "the notebook itself is not changed"
    with pytest.raises(ValueError, match="cells"):
        make_slides.slide_notebook({"nothing": 1})


def test_markdown_cells_are_cut_before_their_headings():
    text = "Text.\n\n## Next\n\nMore.\n\n```bash\n# a comment, not a heading\n```\n### Sub\nEnd."
    assert make_slides.split_at_headings(text) == [
        "Text.", "## Next\n\nMore.\n\n```bash\n# a comment, not a heading\n```", "### Sub\nEnd."]
    nb = _notebook()
    nb["cells"].insert(3, _cell("markdown", "Closing words.\n\n## Inside a cell\n\nIts text."))
    kinds = [c["metadata"]["slideshow"]["slide_type"] for c in make_slides.slide_notebook(nb)["cells"]]
    assert kinds == ["slide", "-", "-", "slide", "slide", "-", "subslide"]


def test_myst_becomes_plain_markdown_and_solutions_stay_out():
    text = ("See {cite:p}`a2019, b2020` and {doc}`the plan <instructor/module_plan>`.\n\n"
            "```{exercise} Where\n:label: l1\n\nDo it.\n```\n\n```{solution} l1\n:class: dropdown\n\nSecret.\n```\n"
            "```{admonition} A tip\n:class: tip\nAt $N$ see {cite}`x`.\n```")
    out = make_slides.myst_to_markdown(text)
    assert out.startswith("See [a2019, b2020] and the plan.")
    assert "> **Exercise: Where**" in out and "> Do it." in out and "> **A tip**" in out and "[x]" in out
    assert "Secret" not in out and "{" not in out and ":label:" not in out and ":class:" not in out


def test_a_deck_loads_nothing_from_another_host(tmp_path):
    page = make_slides.deck_html(make_slides.slide_notebook(_notebook()))
    assert book_assets.external_references(page) == []
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert 'src="reveal.js/dist/reveal.js"' in page and 'href="reveal.js/dist/theme/white.css"' in page
    assert make_slides.PLOTLY_JS in page, "a deck with a figure loads the book's plotly.js"
    assert "../vendor/mathjax/tex-mml-chtml.js" in page
    assert page.count('<section') >= 3 and "assert x == 1" not in page and "It has math" in page
    # without a figure, no plotly.js
    nb = _notebook()
    nb["cells"] = nb["cells"][:4]
    assert make_slides.PLOTLY_JS not in make_slides.deck_html(make_slides.slide_notebook(nb))


def test_build_all_writes_a_deck_per_chapter_and_reveal_js(tmp_path):
    executed = tmp_path / "executed"
    executed.mkdir()
    for name in ("01_first", "02_second"):
        (executed / f"{name}.ipynb").write_text(json.dumps(_notebook()))
    (executed / "notes.ipynb").write_text(json.dumps(_notebook()))  # not a chapter
    decks = make_slides.build_all(tmp_path / "html", executed)
    assert [d.name for d in decks] == ["01_first.slides.html", "02_second.slides.html"]
    reveal = tmp_path / "html" / "slides" / "reveal.js"
    for part in ("dist/reveal.js", "dist/reveal.css", "dist/theme/white.css", "plugin/notes/notes.js", "LICENSE"):
        assert (reveal / part).is_file(), part
    fonts = (reveal / "dist/theme/white.css").read_text()
    assert not re.search(r"@import url\((https?:)?//", fonts), "the theme's fonts are local"
    index = (tmp_path / "html" / "slides" / "index.html").read_text()
    assert index.count("<li>") == 2 and "A chapter" in index
    with pytest.raises(ValueError, match="executed_dir"):
        make_slides.build_all(tmp_path / "html", tmp_path / "empty")


def test_build_book_writes_the_slides_into_the_site():
    source = (ROOT / "scripts" / "build_book.py").read_text()
    assert "make_slides.build_all(HTML_DIR)" in source


# --- in the browser ------------------------------------------------------------------------------

from conftest_book import browser, built_book, require_chromium, site, visit  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="module")
def chromium():
    """Skip (fail under CI=true) the browser tests without Chromium; the tests above run anyway."""
    require_chromium()


CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


def test_every_chapter_has_a_deck(built_book):
    slides = built_book.html_dir / make_slides.SLIDES
    assert sorted(p.name for p in slides.glob("*.slides.html")) == [f"{c}.slides.html" for c in CHAPTERS]
    for deck in slides.glob("*.slides.html"):
        assert book_assets.external_references(deck.read_text(encoding="utf-8")) == [], deck.name


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_deck_opens_and_moves_in_the_browser(chromium, browser, site, chapter):
    result = visit(browser, urllib.parse.urljoin(site, f"{make_slides.SLIDES}/{chapter}.slides.html"))
    hosts = {urllib.parse.urlsplit(u).hostname for u in result["requests"]
             if urllib.parse.urlsplit(u).scheme in ("http", "https", "ws", "wss")}
    assert hosts <= {"127.0.0.1"}, result["requests"]
    assert result["failed"] == [] and result["console"] == [], result
    browser.wait_for("window.Reveal && Reveal.isReady()", timeout=30)
    state = browser.evaluate(
        """(() => ({
          slides: Reveal.getTotalSlides(),
          index: Reveal.getIndices().h,
          mathSource: /\\$[^$]+\\$|\\\\\\(/.test(document.querySelector('.slides').innerText),
          typeset: document.querySelectorAll('mjx-container').length,
          figures: document.querySelectorAll('.plotly-graph-div').length,
          drawn: [...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('svg.main-svg')).length,
        }))()"""
    )
    assert state["slides"] >= 4 and state["index"] == 0, state
    assert state["drawn"] == state["figures"], state
    if state["mathSource"] or state["typeset"]:
        assert state["typeset"] > 0, state
    browser.evaluate("Reveal.next(), true")
    moved = browser.wait_for("Reveal.getIndices().h + Reveal.getIndices().v > 0 && Reveal.getIndices()", timeout=10)
    assert moved, state


def test_slides_index_links_every_deck(chromium, browser, site):
    result = visit(browser, urllib.parse.urljoin(site, f"{make_slides.SLIDES}/index.html"))
    assert result["failed"] == [] and result["console"] == []
    links = browser.evaluate("[...document.querySelectorAll('a')].map(a => a.getAttribute('href'))")
    assert [link for link in links if link.endswith(".slides.html")] == [f"{c}.slides.html" for c in CHAPTERS]
