"""Write the student edition of the book: the chapters with the solutions taken out.

    python scripts/make_student_edition.py [--book book] [--out student]

reads every ``book/*.ipynb`` and writes ``student/<same name>.ipynb`` (``student/`` is generated
output and ignored by git). Instructors keep the full notebooks in ``book/``.

Cell tags (a cell's ``metadata.tags``), the convention the chapters follow:

``solution``
    Removed from the student edition: the instructor's solution of a coding exercise (a code cell
    that defines the function the reader writes), or a markdown cell that answers a question.
``stub``
    Kept: the exercise's starting point, a code cell that defines the function with its docstring
    (shapes) and a body that raises ``NotImplementedError``. In the instructor edition it runs too,
    and the ``solution`` cell after it redefines the function. Stubs come from the package
    (``ultramem_edu.exercises._grading.stub_source(name)``), so that notebook and check agree.
``answer-reveal``
    Removed from the student edition: a cell (code or markdown) that shows an exercise's answer
    before the exercise — the source of the package function the reader is about to write, or a
    worked result. The chapter must read right without it.
``needs-solution``
    Kept, and given the ``raises-exception`` tag in the student edition: a cell that runs the
    reader's function (the ``check_...`` call, or a later use of the function). Until the reader has
    written it, the cell raises ``NotImplementedError`` — and, thanks to the tag, Jupyter Book,
    nbclient and nbval carry on with the next cell. Its stored outputs (the solution's "Correct: ...")
    and any ``# NBVAL_CHECK_OUTPUT`` marker are removed.

Markdown cells also lose, wherever they are, the solutions written inline as MyST directives:
``{admonition} Solution ...`` blocks (the book's dropdown solutions) and sphinx-exercise's
``{solution}`` blocks, and everything between ``{solution-start}`` and ``{solution-end}``.
Cells without tags are copied unchanged, so the script runs on chapters that carry no tags yet.

Next to the notebooks the script writes what they load: ``quizzes/`` (each chapter's last cell shows
``quizzes/chNN.json``) and ``figures/`` (the stored results chapters 5 and 10–13 read, found as
``../figures`` inside the repository and as ``figures`` in a copy of ``student/`` anywhere else), so
that ``student/`` runs wherever an instructor hands it out.

After executing a student notebook, :func:`unexpected_errors` lists the cells that failed with
anything other than ``NotImplementedError`` in a ``needs-solution`` cell, and
:func:`stub_mismatches` lists the ``stub`` cells whose source is not the package's stub of the same
function (so that a chapter's stubs stay in step with its checks); the tests use both.
"""
from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from pathlib import Path

SOLUTION, STUB, NEEDS_SOLUTION = "solution", "stub", "needs-solution"
ANSWER_REVEAL = "answer-reveal"
RAISES = "raises-exception"
# Folders next to the book's notebooks that the chapters load, copied into the student edition.
ASSETS = ("quizzes",)
# The repository's stored results (figures/), copied without the training job's raw run folders.
FIGURES_IGNORED = ("runs", "__pycache__")

# An opening fence of a solution directive: ```{admonition} Solution..., ```{solution} ..., :::{solution}
_OPEN = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|:{3,})\s*\{(?:admonition\}\s+Solution\b|solution\})")
_START = re.compile(r"^\s*(`{3,}|:{3,})\s*\{solution-start\}")
_END = re.compile(r"^\s*(`{3,}|:{3,})\s*\{solution-end\}")


def tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def strip_inline_solutions(text: str) -> str:
    """Remove ``{admonition} Solution`` and ``{solution}`` directive blocks from markdown ``text``.

    A block ends at the first line that is the opening fence again (same character, at least as
    long) and nothing else — MyST's rule. Blank lines left doubled by a removal are merged.
    """
    lines = text.split("\n")
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        if fence is None:
            match = _OPEN.match(line)
            if match:
                fence = match.group("fence")
                continue
            out.append(line)
        else:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                fence = None
    if fence is not None:
        raise ValueError(f"an unclosed solution block (fence {fence!r}) in:\n{text[:200]}")
    merged = re.sub(r"\n{3,}", "\n\n", "\n".join(out))
    return merged.rstrip("\n") + ("\n" if text.endswith("\n") else "")


def student_notebook(nb: dict) -> dict:
    """The student edition of one notebook (a JSON dict, nbformat 4); ``nb`` is not modified."""
    if not isinstance(nb, dict) or "cells" not in nb:
        raise ValueError("nb must be a notebook dict with a 'cells' list")
    result = copy.deepcopy(nb)
    cells = []
    in_solution = False
    for cell in result["cells"]:
        cell_tags = tags(cell)
        text = _source(cell)
        if cell["cell_type"] == "markdown" and _START.search(text):
            in_solution = True
        if in_solution:
            if cell["cell_type"] == "markdown" and _END.search(text):
                in_solution = False
            continue
        if SOLUTION in cell_tags or ANSWER_REVEAL in cell_tags:
            if STUB in cell_tags or NEEDS_SOLUTION in cell_tags:
                raise ValueError("a cell cannot be tagged both 'solution'/'answer-reveal' and 'stub'/'needs-solution': "
                                 f"{text[:80]!r}")
            continue
        if cell["cell_type"] == "markdown":
            stripped = strip_inline_solutions(text)
            if stripped != text:
                cell["source"] = stripped
        if cell["cell_type"] == "code" and (STUB in cell_tags or NEEDS_SOLUTION in cell_tags):
            cell["outputs"] = []
            cell["execution_count"] = None
            if NEEDS_SOLUTION in cell_tags:
                lines = [ln for ln in text.split("\n") if ln.strip() != "# NBVAL_CHECK_OUTPUT"]
                cell["source"] = "\n".join(lines)
                if RAISES not in cell_tags:
                    cell.setdefault("metadata", {})["tags"] = cell_tags + [RAISES]
        cells.append(cell)
    result["cells"] = cells
    result.setdefault("metadata", {})["ultramem_edu"] = {"edition": "student"}
    return result


def unexpected_errors(executed_nb: dict) -> list[str]:
    """Problems in an *executed* student notebook: an error in a cell that is not ``needs-solution``,
    or a ``needs-solution`` cell that failed with something other than NotImplementedError."""
    problems = []
    for i, cell in enumerate(executed_nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") != "error":
                continue
            if NEEDS_SOLUTION not in tags(cell):
                problems.append(f"cell {i}: {out.get('ename')} in a cell that should run: {out.get('evalue')}")
            elif out.get("ename") != "NotImplementedError":
                problems.append(f"cell {i}: {out.get('ename')} instead of NotImplementedError: {out.get('evalue')}")
    return problems


def stub_mismatches(nb: dict) -> list[str]:
    """``stub`` cells of ``nb`` that do not hold exactly the package's stub of the function they define."""
    from ultramem_edu.exercises._grading import coding_exercises

    known = {e.name: e.stub for e in coding_exercises()}
    problems = []
    for i, cell in enumerate(nb["cells"]):
        if STUB not in tags(cell):
            continue
        text = _source(cell)
        match = re.search(r"^def (\w+)\(", text, re.M)
        if match is None:
            problems.append(f"cell {i}: a stub cell must define a function")
        elif match.group(1) not in known:
            problems.append(f"cell {i}: {match.group(1)} is not a coding exercise of the package")
        elif text.strip() != known[match.group(1)].strip():
            problems.append(f"cell {i}: the stub of {match.group(1)} differs from stub_source({match.group(1)!r})")
    return problems


def make_student_edition(book: Path, out: Path, figures: Path | None = None) -> list[Path]:
    """Write the student edition of every ``book/*.ipynb`` into ``out``, with the folders the chapters
    load (:data:`ASSETS` from ``book``, and ``figures``, by default ``book/../figures``, as
    ``out/figures``); return the written notebooks."""
    book, out = Path(book), Path(out)
    notebooks = sorted(book.glob("*.ipynb"))
    if not notebooks:
        raise ValueError(f"no notebooks in {book}")
    if out.resolve() == book.resolve():
        raise ValueError(f"out must differ from book ({book}): the student edition would overwrite the chapters")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        target = out / path.name
        target.write_text(json.dumps(student_notebook(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(target)
    for name in ASSETS:
        if (book / name).is_dir():
            _copy_tree(book / name, out / name)
    figures = book.parent / "figures" if figures is None else Path(figures)
    if figures.is_dir():
        _copy_tree(figures, out / "figures", ignore=shutil.ignore_patterns(*FIGURES_IGNORED))
    return written


def _copy_tree(source: Path, target: Path, ignore=None) -> None:
    """Replace ``target`` by a copy of ``source``."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=ignore)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--book", type=Path, default=root / "book", help="folder of the full notebooks")
    parser.add_argument("--out", type=Path, default=root / "student", help="folder to write (created)")
    args = parser.parse_args(argv)
    written = make_student_edition(args.book, args.out)
    print(f"wrote {len(written)} student notebooks to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
