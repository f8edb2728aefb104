"""Slides per chapter, generated from the executed notebooks with nbconvert's reveal.js exporter.

    python scripts/make_slides.py [--html-dir _build/html] [--executed _build/jupyter_execute/book]

``scripts/build_book.py`` calls :func:`build_all` after the book is built: it takes the notebooks
jupyter-book executed (so the slides show the same outputs as the pages), and writes one deck per
chapter, ``slides/NN_name.slides.html``, into the site, with an index ``slides/index.html``.

Nothing is loaded from another host: reveal.js comes from the npm package ``reveal.js`` (fetched by
name with ``npm pack`` and cached in ``_build/asset-cache/`` like the book's MathJax,
``scripts/book_assets.py``) and is copied to ``slides/reveal.js/`` (``--SlidesExporter.reveal_url_prefix``
points there); math is typeset by the book's own MathJax 3 and figures are drawn by the book's
plotly.js (``vendor/`` at the site's root). The template replaces the parts of nbconvert's reveal
template that load jQuery, require.js, mermaid and MathJax 2 from CDNs.

How a notebook becomes slides (on a copy; the notebooks are not changed): markdown cells are cut
before their headings; a piece that starts with a ``#`` or ``##`` heading starts a slide, one with
``###`` a sub-slide (below it), every other cell continues the current slide, which scrolls when it is long. Cells tagged ``remove-cell``
are left out, cells tagged ``remove-input`` or ``hide-input`` show only their output. MyST that
plain markdown does not know is rewritten (:func:`myst_to_markdown`): citations as ``[key]``,
exercises and admonitions as quotes, solutions left out.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_assets  # noqa: E402

ROOT = book_assets.ROOT
HTML_DIR = ROOT / "_build" / "html"
EXECUTED_DIR = ROOT / "_build" / "jupyter_execute" / "book"
REVEAL_SPEC = "reveal.js@5.2.1"
SLIDES = "slides"
REVEAL_DIR = "reveal.js"        # under slides/
PLOTLY_JS = "../vendor/plotly/plotly.min.js"   # the book's own copy, relative to slides/
THEME = "white"                 # its fonts ship with the package (simple.css imports Google fonts)

# nbconvert's reveal template with every CDN load replaced by the site's own files.
TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}<link rel="icon" href="data:,">{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<script>
window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
                        processEscapes: true},
                  options: {ignoreHtmlClass: 'tex2jax_ignore', processHtmlClass: 'tex2jax_process'}};
</script>
<script defer src="../vendor/mathjax/tex-mml-chtml.js"></script>
<style>
.reveal .slides > section, .reveal .slides > section > section { height: 100%; overflow-y: auto; }
.reveal .slides { text-align: left; }
.reveal pre { box-shadow: none; }
</style>
{%- endblock html_head_js_mathjax -%}
{% block footer_js %}
<script src="{{ resources.reveal.url_prefix }}/dist/reveal.js"></script>
<script src="{{ resources.reveal.url_prefix }}/plugin/notes/notes.js"></script>
<script>
Reveal.initialize({
  controls: true, progress: true, hash: true, slideNumber: 'c/t', transition: 'none',
  width: 1200, height: 800, margin: 0.04, plugins: [RevealNotes],
});
Reveal.on('slidechanged', () => {
  if (window.MathJax && MathJax.typesetPromise) { MathJax.typesetPromise([Reveal.getCurrentSlide()]); }
  if (window.Plotly) {
    Reveal.getCurrentSlide().querySelectorAll('.plotly-graph-div').forEach(d => Plotly.Plots.resize(d));
  }
});
</script>
{% endblock footer_js %}
"""


def ensure_reveal(dest: Path, cache_dir: Path = book_assets.CACHE_DIR) -> Path:
    """Copy reveal.js (its ``dist`` bundle, the white theme and its fonts, the notes plugin) to ``dest``."""
    stamp = dest / "version.txt"
    if stamp.is_file() and stamp.read_text().strip() == REVEAL_SPEC:
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    tarball = book_assets.fetch_npm(REVEAL_SPEC, cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        package = Path(tmp) / "package"
        for part in ("dist/reveal.js", "dist/reveal.css", "dist/reset.css", f"dist/theme/{THEME}.css",
                     "dist/theme/fonts/source-sans-pro", "plugin/notes/notes.js", "LICENSE"):
            src, dst = package / part, dest / part
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst)
            else:
                shutil.copy2(src, dst)
    stamp.write_text(REVEAL_SPEC + "\n")
    return dest


_ROLE = re.compile(r"\{([a-z]+)(?::[a-z]+)?\}`([^`]+)`")
_FENCE = re.compile(r"^(`{3,}|:{3,})\{([a-z-]+)\}[ \t]*(.*)$")


def _role(m: re.Match) -> str:
    name, text = m.group(1), m.group(2)
    if name == "cite":
        return "[" + ", ".join(key.strip() for key in text.split(",")) + "]"
    return re.sub(r"\s*<[^>]*>$", "", text)  # {doc}`text <target>` -> text


def myst_to_markdown(text: str) -> str:
    """MyST that plain markdown does not know, for nbconvert: roles as text (citations as [key]),
    ``{exercise}`` and ``{admonition}`` blocks as quotes with a bold title, ``{solution}`` blocks left out."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            out.append(_ROLE.sub(_role, lines[i]))
            i += 1
            continue
        fence, name, title = m.groups()
        body, i = [], i + 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        while body and body[0].startswith(":"):
            body.pop(0)  # the directive's options (:label:, :class:)
        if name == "solution":
            continue
        heading = {"exercise": "Exercise"}.get(name, "")
        heading = f"{heading}: {title}" if heading and title else (heading or title or name.capitalize())
        out.append(f"> **{heading}**")
        out.append(">")
        out += [("> " + _ROLE.sub(_role, line)).rstrip() for line in myst_to_markdown("\n".join(body)).split("\n")]
    return "\n".join(out)


def split_at_headings(text: str) -> list[str]:
    """``text`` cut before every ``#``, ``##`` or ``###`` heading line outside code fences."""
    parts: list[list[str]] = [[]]
    fence = None
    for line in text.split("\n"):
        stripped = line.lstrip()
        if fence is None and re.match(r"(`{3,}|~{3,})", stripped):
            fence = re.match(r"(`{3,}|~{3,})", stripped).group(1)
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and re.match(r"#{1,3} ", line) and any(part.strip() for part in parts[-1]):
            parts.append([])
        parts[-1].append(line)
    return ["\n".join(part).strip("\n") for part in parts if "".join(part).strip()]


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def slide_notebook(nb: dict) -> dict:
    """A copy of ``nb`` with slide types set and hidden cells taken out (see the module docstring)."""
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(f"nb must be a notebook dict with a 'cells' list, got {type(nb).__name__}")
    nb = copy.deepcopy(nb)
    nb.get("metadata", {}).pop("widgets", None)
    pieces = []
    for cell in nb["cells"]:  # a markdown cell with headings inside becomes one cell per section
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for k, part in enumerate(split_at_headings(myst_to_markdown(text))):
                piece = {**copy.deepcopy(cell), "source": part}
                if k and "id" in cell:
                    piece["id"] = f"{cell['id']}-{k}"  # ids stay unique
                pieces.append(piece)
        else:
            pieces.append(cell)
    cells = []
    for cell in pieces:
        tags = _tags(cell)
        if "remove-cell" in tags:
            continue
        if cell["cell_type"] == "code" and tags & {"remove-input", "hide-input"}:
            cell["source"] = ""
            cell.setdefault("metadata", {})["transient"] = {"remove_source": True}
            if not cell.get("outputs"):
                continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        kind = "-"
        if cell["cell_type"] == "markdown":
            first = source.lstrip().split("\n", 1)[0]
            if first.startswith("# ") or first.startswith("## "):
                kind = "slide"
            elif first.startswith("### "):
                kind = "subslide"
        if not cells:
            kind = "slide"
        cell.setdefault("metadata", {})["slideshow"] = {"slide_type": kind}
        cells.append(cell)
    if not cells:
        raise ValueError("the notebook has no cell to show")
    nb["cells"] = cells
    return nb


def deck_html(nb: dict, reveal_prefix: str = REVEAL_DIR) -> str:
    """The reveal.js deck of a notebook (already passed through :func:`slide_notebook`)."""
    import jinja2
    import nbformat
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = SlidesExporter(
        reveal_url_prefix=reveal_prefix,
        reveal_theme=THEME,
        reveal_scroll=True,
        jquery_url="",
        require_js_url="",
        mathjax_url="",
        mermaid_js_url="",
        font_awesome_url="",
        jupyter_widgets_base_url="",
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        extra_loaders=[jinja2.DictLoader({"ultramem_slides.html.j2": TEMPLATE})],
        template_file="ultramem_slides.html.j2",
    )
    remove = TagRemovePreprocessor(remove_input_tags={"remove-input", "hide-input"},
                                   remove_cell_tags={"remove-cell"})
    exporter.register_preprocessor(remove, enabled=True)
    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins the multi-line strings
    body, _ = exporter.from_notebook_node(node)
    if 'class="plotly-graph-div"' in body:
        # the figures draw on DOMContentLoaded, after deferred scripts (ultramem_edu.viz._plotly)
        body = body.replace("</head>", f'<script defer src="{PLOTLY_JS}"></script>\n</head>', 1)
    return body


def _title(nb: dict, fallback: str) -> str:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            first = "".join(cell["source"]).lstrip().split("\n", 1)[0]
            if first.startswith("# "):
                return first[2:].strip()
    return fallback


def build_all(html_dir: Path = HTML_DIR, executed_dir: Path = EXECUTED_DIR) -> list[Path]:
    """Write a deck per executed chapter notebook and an index into ``html_dir/slides``; return the decks."""
    notebooks = sorted(Path(executed_dir).glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(f"executed_dir must hold the executed chapter notebooks (NN_*.ipynb), found none in "
                         f"{executed_dir}")
    out = Path(html_dir) / SLIDES
    out.mkdir(parents=True, exist_ok=True)
    ensure_reveal(out / REVEAL_DIR)
    decks, items = [], []
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        deck = out / f"{path.stem}.slides.html"
        deck.write_text(deck_html(slide_notebook(nb)), encoding="utf-8")
        decks.append(deck)
        items.append(f'<li><a href="{deck.name}">{html.escape(_title(nb, path.stem))}</a></li>')
    (out / "index.html").write_text(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Slides</title><link rel=\"icon\" href=\"data:,\"></head>\n"
        "<body><main><h1>Slides, one deck per chapter</h1>\n<p>Generated from the executed chapters with "
        "nbconvert's reveal.js exporter; <a href=\"../book/00_preface.html\">back to the book</a>.</p>\n<ol start=\"0\">\n"
        + "\n".join(items) + "\n</ol></main></body></html>\n", encoding="utf-8")
    return decks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html-dir", type=Path, default=HTML_DIR)
    parser.add_argument("--executed", type=Path, default=EXECUTED_DIR)
    args = parser.parse_args(argv)
    decks = build_all(args.html_dir, args.executed)
    print(f"wrote {len(decks)} decks to {args.html_dir / SLIDES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
