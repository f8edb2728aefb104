"""Write the generated parts of the instructor kit from the data they come from.

    python scripts/make_instructor_kit.py          # (re)write them
    python scripts/make_instructor_kit.py --check  # exit 1 if a page is out of date (the tests use it)

* ``book/instructor/quiz_bank.md`` — every question of ``book/quizzes/chNN.json`` with its options,
  the answer, the explanation and the source the answer was checked against. The JSON files are the
  one source: the same files feed the quizzes on the chapter pages.
* the timing table of ``book/instructor/module_plan.md`` (between ``<!-- timings:start -->`` and
  ``<!-- timings:end -->``) — each chapter notebook's run time and peak memory, read from
  ``figures/notebook_stats.json`` (written by ``scripts/notebook_stats.py``).

Quiz files hold a JSON list in jupyterquiz's format (``type`` "multiple_choice", ``question``,
``answers`` with ``answer``/``correct``/``feedback``), plus a ``source`` per question that the
renderer ignores. :func:`validate_quiz` checks that format.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIZ_DIR = ROOT / "book" / "quizzes"
KIT_DIR = ROOT / "book" / "instructor"
STATS = ROOT / "figures" / "notebook_stats.json"
START, END = "<!-- timings:start -->", "<!-- timings:end -->"
LETTERS = "abcdefgh"


def validate_quiz(questions: object, name: str = "quiz") -> None:
    """Raise ValueError unless ``questions`` is a list of single-answer multiple-choice questions."""
    if not isinstance(questions, list) or not questions:
        raise ValueError(f"{name}: expected a non-empty JSON list of questions, got {type(questions).__name__}")
    for k, q in enumerate(questions):
        where = f"{name}[{k}]"
        if not isinstance(q, dict) or q.get("type") != "multiple_choice":
            raise ValueError(f"{where}: each question must be a dict with type 'multiple_choice'")
        if not isinstance(q.get("question"), str) or not q["question"].strip():
            raise ValueError(f"{where}: 'question' must be a non-empty string")
        if not isinstance(q.get("source"), str) or not q["source"].strip():
            raise ValueError(f"{where}: 'source' must name where the answer was checked")
        answers = q.get("answers")
        if not isinstance(answers, list) or not 2 <= len(answers) <= len(LETTERS):
            raise ValueError(f"{where}: 'answers' must be a list of 2 to {len(LETTERS)} options")
        for a in answers:
            if not (isinstance(a, dict) and isinstance(a.get("answer"), str) and isinstance(a.get("correct"), bool)
                    and isinstance(a.get("feedback"), str) and a["feedback"].strip()):
                raise ValueError(f"{where}: every option needs 'answer' (str), 'correct' (bool) and 'feedback' (str)")
        if sum(a["correct"] for a in answers) != 1:
            raise ValueError(f"{where}: exactly one option must be correct")
        texts = [q["question"]] + [a["answer"] for a in answers] + [a["feedback"] for a in answers]
        for text in texts:
            if re.search(r"<(?!/?(code|b|i|em|strong|sub|sup)>)", text):
                raise ValueError(f"{where}: '<' must be an allowed tag (code, b, i, em, strong, sub, sup): {text!r}")
            if text.count("$") % 2:
                raise ValueError(f"{where}: unbalanced $ in {text!r}")


def load_quizzes(quiz_dir: Path = QUIZ_DIR) -> dict[int, list[dict]]:
    """{chapter: questions} for every ``chNN.json``, validated."""
    quizzes = {}
    for path in sorted(quiz_dir.glob("ch*.json")):
        questions = json.loads(path.read_text(encoding="utf-8"))
        validate_quiz(questions, path.name)
        quizzes[int(path.stem[2:])] = questions
    if not quizzes:
        raise ValueError(f"no chNN.json quizzes in {quiz_dir}")
    return quizzes


def chapter_titles(book: Path = ROOT / "book") -> dict[int, tuple[str, str]]:
    """{chapter: (notebook stem, title)} from the first '# ' heading of each ``NN_*.ipynb``."""
    titles = {}
    for path in sorted(book.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        title = path.stem
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                first = "".join(cell["source"]).lstrip().split("\n", 1)[0]
                if first.startswith("# "):
                    title = first[2:].strip()
                    break
        titles[int(path.stem[:2])] = (path.stem, title)
    return titles


def _md(text: str) -> str:
    """Quiz text (HTML-flavoured for the JavaScript renderer) as MyST markdown."""
    text = re.sub(r"</?code>", "`", text)
    return re.sub(r"</?(b|strong)>", "**", text)


def quiz_bank(quizzes: dict[int, list[dict]], titles: dict[int, tuple[str, str]]) -> str:
    lines = [
        "# Quiz bank",
        "",
        "Multiple-choice questions for every chapter, with the answer, why it is right, and where in the",
        "book or the paper the answer was checked. The same questions, from `book/quizzes/chNN.json`, are",
        "the chapters' self-check quizzes (the files are in the format of the `jupyterquiz` package). This",
        "page is generated by `scripts/make_instructor_kit.py`; edit the JSON files, not this page.",
        "",
    ]
    for chapter, questions in sorted(quizzes.items()):
        stem, title = titles.get(chapter, (None, f"Chapter {chapter}"))
        link = f" ([notebook](../{stem}.ipynb))" if stem else ""
        lines += [f"## Chapter {chapter}: {title}", "", f"`book/quizzes/ch{chapter:02d}.json`{link}", ""]
        for k, q in enumerate(questions, 1):
            lines.append(f"**{chapter}.{k}** {_md(q['question'])}")
            lines.append("")
            for letter, a in zip(LETTERS, q["answers"]):
                lines.append(f"- ({letter}) {_md(a['answer'])}")
            right = next(i for i, a in enumerate(q["answers"]) if a["correct"])
            explain = q["answers"][right]["feedback"].removeprefix("Correct. ").strip()
            lines += ["", f"*Answer:* ({LETTERS[right]}). {_md(explain)} *Source:* {_md(q['source'])}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def timings_table(stats: dict, titles: dict[int, tuple[str, str]]) -> str:
    machine = stats.get("machine", {})
    by_stem = {Path(n["notebook"]).stem: n for n in stats["notebooks"]}
    lines = [
        f"Measured by `scripts/notebook_stats.py` (`figures/notebook_stats.json`): each notebook run top to "
        f"bottom on {machine.get('cpus', '?')} CPU cores, torch {machine.get('torch', '?')}, "
        f"{'with' if machine.get('cuda') else 'without'} a GPU.",
        "",
        "| chapter | notebook | run time (s) | peak memory (MiB) |",
        "|---|---|---|---|",
    ]
    for chapter, (stem, title) in sorted(titles.items()):
        n = by_stem.get(stem)
        if n is None:
            lines.append(f"| {chapter} | {title} | not measured yet | not measured yet |")
        elif not n.get("ok", False):
            lines.append(f"| {chapter} | {title} | failed | — |")
        else:
            lines.append(f"| {chapter} | {title} | {n['seconds']:.1f} | {n['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def with_timings(page: str, table: str) -> str:
    if START not in page or END not in page:
        raise ValueError(f"the module plan must contain {START} and {END}")
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def outputs() -> dict[Path, str]:
    """{path: the text it should have}."""
    titles = chapter_titles()
    plan_path = KIT_DIR / "module_plan.md"
    stats = json.loads(STATS.read_text(encoding="utf-8"))
    return {
        KIT_DIR / "quiz_bank.md": quiz_bank(load_quizzes(), titles),
        plan_path: with_timings(plan_path.read_text(encoding="utf-8"), timings_table(stats, titles)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report pages that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("out of date (run python scripts/make_instructor_kit.py): "
              + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    print("up to date" if not stale else "wrote " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
