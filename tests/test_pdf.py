"""The PDF edition, built for a few chapters through the same code path as the whole book.

``scripts/build_book.py --only-pdf --toc <a few chapters> --out <tmp>`` (the full book:
``python scripts/build_book.py --pdf``) executes the notebooks in PDF mode and runs LaTeX. The
test then renders every page with ``pdftoppm`` and checks the page count, the table of contents
(every chapter, in order, with its page), that every figure of the executed notebooks is in the
PDF and drawn on its page, and that a widget became its default view with a link to its live page.

Needs LaTeX (Debian packages: see ``scripts/build_book.py``), poppler-utils and Chromium (the
figures' PNGs); skipped without them, except with ``CI=true``, where it fails.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_book  # noqa: E402

CHAPTERS = ["book/intro", "book/00_preface", "book/02_product_keys", "book/glossary", "book/bibliography"]
TOC = f"""format: jb-book
root: {CHAPTERS[0]}
parts:
  - caption: Start here
    chapters:
      - file: {CHAPTERS[1]}
  - caption: Memory layers
    numbered: true
    chapters:
      - file: {CHAPTERS[2]}
  - caption: Appendix
    chapters:
      - file: {CHAPTERS[3]}
      - file: {CHAPTERS[4]}
"""

_missing = build_book.latex_tools_missing() + [
    tool for tool in ("pdftoppm", "pdfinfo", "pdfimages", "pdftotext") if shutil.which(tool) is None]
if not any(shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")):
    _missing.append("chromium")
if _missing:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {', '.join(_missing)} missing (see .ci/run)", pytrace=False)
    pytest.skip(f"{', '.join(_missing)} not installed", allow_module_level=True)


def title_of(doc: str) -> str:
    """A page's title: the first level-1 heading of its notebook or Markdown file."""
    path = ROOT / f"{doc}.ipynb"
    if path.is_file():
        text = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                         if c["cell_type"] == "markdown")
    else:
        text = (ROOT / f"{doc}.md").read_text()
    title = re.search(r"^# (.+)$", text, re.MULTILINE).group(1)
    return re.sub(r"[`*$\\]|\{[a-z]+\}", "", title).strip()


@pytest.fixture(scope="module")
def pdf_build(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pdf")
    (tmp / "toc.yml").write_text(TOC)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_book.py"), "--only-pdf",
         "--toc", str(tmp / "toc.yml"), "--out", str(tmp / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    pdf = tmp / "out" / build_book.PDF_NAME
    assert proc.returncode == 0 and pdf.is_file(), (proc.stdout + proc.stderr)[-6000:]
    return tmp / "out", pdf


def read_pgm(path: Path) -> tuple[int, int, bytes]:
    """Width, height and pixels of a binary greyscale PGM (what ``pdftoppm -gray`` writes)."""
    data = path.read_bytes()
    fields = data.split(maxsplit=4)
    assert fields[0] == b"P5", path
    width, height = int(fields[1]), int(fields[2])
    return width, height, fields[4][: width * height]


def test_every_page_renders_and_the_count_is_right(pdf_build, tmp_path):
    _, pdf = pdf_build
    pages = int(re.search(r"^Pages:\s+(\d+)", subprocess.run(
        ["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout, re.MULTILINE).group(1))
    assert 20 <= pages <= 120, pages  # five pages of the book: tens of pages, not a stub nor a runaway
    subprocess.run(["pdftoppm", "-r", "20", "-gray", str(pdf), str(tmp_path / "page")], check=True)
    rendered = sorted(tmp_path.glob("page-*.pgm"))
    assert len(rendered) == pages
    inked = [sum(1 for v in read_pgm(p)[2] if v < 200) for p in rendered]
    assert sum(1 for n in inked if n > 50) >= pages * 0.8, inked  # pages hold text, not blank boxes


def test_the_table_of_contents_lists_every_chapter_in_order(pdf_build):
    _, pdf = pdf_build
    text = subprocess.run(["pdftotext", "-f", "1", "-l", "4", "-layout", str(pdf), "-"],
                          capture_output=True, text=True, check=True).stdout
    contents = " ".join(text.split())
    positions = []
    for doc in CHAPTERS[1:]:
        title = " ".join(title_of(doc).split())
        found = re.search(re.escape(title[:30]) + r".*?(\d+)\b", contents)
        assert found, f"{title!r} is not in the table of contents:\n{contents[:3000]}"
        positions.append(found.start())
    assert positions == sorted(positions)


def _executed_figures(out: Path) -> dict[str, int]:
    """Figures in the executed notebooks: PNG (plotly, via kaleido) and SVG (the drawings)."""
    counts = {"png": 0, "svg": 0, "widget notes": 0}
    for nb in (out / "_build" / "jupyter_execute").rglob("*.ipynb"):
        for cell in json.loads(nb.read_text())["cells"]:
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if "image/png" in data:
                    counts["png"] += 1
                    assert base64.b64decode(data["image/png"])[:4] == b"\x89PNG"
                elif "image/svg+xml" in data:
                    counts["svg"] += 1
                if "Interactive in the [online edition]" in str(data.get("text/markdown", "")):
                    counts["widget notes"] += 1
                assert "text/html" not in data or "plotly-graph-div" not in str(data["text/html"]), \
                    "an interactive plotly figure in the PDF build"
    return counts


def test_every_figure_is_in_the_pdf_and_drawn(pdf_build, tmp_path):
    out, pdf = pdf_build
    counts = _executed_figures(out)
    assert counts["png"] >= 4 and counts["svg"] >= 1 and counts["widget notes"] >= 2, counts
    tex = (out / "_build" / "latex" / "ultramem-edu.tex").read_text()
    included = re.findall(r"\\sphinxincludegraphics(?:\[[^\]]*\])?\{\{([^}]+)\}(\.\w+)\}", tex)
    assert sum(ext == ".png" for _, ext in included) == counts["png"], included
    assert sum(ext in (".pdf", ".svg") for _, ext in included) == counts["svg"], included
    # every PNG is embedded once (pdfimages lists each with its soft mask) and its page is inked
    listing = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout.splitlines()[2:]
    images = [line.split() for line in listing if line.split()[2] == "image"]
    assert len(images) == counts["png"], listing
    for row in images:
        page = int(row[0])
        subprocess.run(["pdftoppm", "-r", "20", "-gray", "-f", str(page), "-l", str(page), str(pdf),
                        str(tmp_path / f"fig{page}")], check=True)
        (pgm,) = tmp_path.glob(f"fig{page}-*.pgm")
        width, height, pixels = read_pgm(pgm)
        assert sum(1 for v in pixels if v < 230) > 0.08 * width * height, f"page {page} looks blank"
        pgm.unlink()


def test_a_widget_is_its_default_view_with_a_link_to_its_live_page(pdf_build):
    out, pdf = pdf_build
    text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                                   check=True).stdout.split())
    assert "Interactive in the online edition: this is its default view (m = 8, rank r = 2, query seed = 0)" in text
    tex = (out / "_build" / "latex" / "ultramem-edu.tex").read_text()
    # the note's link is the chapter's own page (LaTeX escapes its underscores)
    assert r"\sphinxhref{https://ultramem-edu.github.io/ultramem-edu/book/02\_product\_keys.html}" in tex
    assert "#live-page" not in tex
