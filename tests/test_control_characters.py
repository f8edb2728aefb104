"""No notebook, page source or built page contains an ASCII control character.

Only newline, tab and carriage return belong in text. Anything else is almost always an escape
sequence that Python swallowed: ``"\\approx"`` written in a normal string literal is a BEL
character followed by ``pprox``, and the formula renders broken. The check covers every string of
every notebook (cell sources, outputs, metadata), the Markdown, BibTeX and JSON sources of the
book (the quizzes), and every page of the built site.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest_book import built_book  # noqa: F401  (the fixture)

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all of C0 and DEL except \t \n \r


def control_characters(text: str, where: str) -> list[str]:
    """One line per control character in ``text``: where, which character, and its context."""
    found = []
    for match in CONTROL.finditer(text):
        start = max(0, match.start() - 30)
        context = text[start : match.end() + 30]
        found.append(f"{where}: U+{ord(match.group()):04X} at offset {match.start()}: {context!r}")
    return found


def _strings(node, path: str):
    """(path, string) for every string leaf of a JSON document."""
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _strings(item, f"{path}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}/{key}")


def notebook_control_characters(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        # a cell's source is stored as a list of lines: join them so a report shows whole context
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        found += control_characters(source, f"{path.name} cell {i} source")
        rest = {k: v for k, v in cell.items() if k != "source"}
        for where, text in _strings(rest, f"{path.name} cell {i} "):
            found += control_characters(text, where)
    for where, text in _strings(nb.get("metadata", {}), f"{path.name} metadata"):
        found += control_characters(text, where)
    return found


NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
SOURCES = sorted(BOOK.glob("*.md")) + sorted(BOOK.glob("*.bib"))
DATA = sorted(BOOK.glob("**/*.json"))  # e.g. the chapters' quizzes, rendered into the pages


def test_the_check_finds_a_swallowed_escape():
    text = "bfloat16 has 8 bits ($2^{-8} \approx 0.4\\,\\%$)"  # noqa: the BEL is the point
    (line,) = control_characters(text, "x")
    assert "U+0007" in line and "pprox 0.4" in line
    assert control_characters("tabs\tnewlines\nand\r\nCRLF are fine", "x") == []
    assert len(control_characters("\x00\x1b[31m\x7f", "x")) == 3


def test_the_notebook_check_reads_sources_and_outputs(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["ok\n", "$a \u0007pprox b$"]},
            {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "print(1)",
             "outputs": [{"output_type": "stream", "name": "stdout", "text": ["\u001b[31mred\n"]}]},
        ],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5,
    }
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    found = notebook_control_characters(path)
    assert len(found) == 2
    assert found[0].startswith("x.ipynb cell 0 source: U+0007")
    assert found[1].startswith("x.ipynb cell 1 /outputs[0]/text[0]: U+001B")


def test_every_chapter_is_checked():
    assert len(NOTEBOOKS) >= 12 and any(p.name.startswith("09_") for p in NOTEBOOKS)
    assert any(p.name == "intro.md" for p in SOURCES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_control_characters_in_notebooks(path):
    found = notebook_control_characters(path)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_no_control_characters_in_page_sources(path):
    found = control_characters(path.read_text(encoding="utf-8"), path.name)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("path", DATA, ids=lambda p: str(p.relative_to(BOOK)))
def test_no_control_characters_in_book_data(path):
    # JSON writes a control character as an escape (\u0007): check the decoded strings
    found = []
    for where, text in _strings(json.loads(path.read_text(encoding="utf-8")), path.name):
        found += control_characters(text, where)
    assert found == [], "\n".join(found)


def test_no_control_characters_in_built_pages(built_book):  # noqa: F811
    built_book.check()
    pages = sorted(built_book.html_dir.rglob("*.html"))
    assert len(pages) >= len(NOTEBOOKS)
    found = []
    for page in pages:
        found += control_characters(page.read_text(encoding="utf-8"), str(page.relative_to(built_book.html_dir)))
    assert found == [], "\n".join(found[:50])
