"""The instructor kit: the generated parts of the public pages, and the private kit an instructor builds.

    python scripts/make_instructor_kit.py                      # (re)write the generated public parts
    python scripts/make_instructor_kit.py --check              # exit 1 if one is out of date (tests use it)
    python scripts/make_instructor_kit.py --out DIR [--seed S] # write the private kit into DIR

Public, generated in place (``--check`` compares them):

* ``book/instructor/module_plan.md``: the sessions (between ``<!-- sessions:start -->`` and
  ``<!-- sessions:end -->``: minutes, objectives tied to exercise checks, quizzes, grading weights,
  the solution-release policy) from :mod:`ultramem_edu.course`, and the timing table (between
  ``<!-- timings:start -->`` and ``<!-- timings:end -->``) from ``figures/notebook_stats.json``;
* the course-plan cell of ``book/00_preface.ipynb`` (the markdown cell that starts with
  ``## A course plan``), its table from the same :mod:`ultramem_edu.course`.

Private, written by ``--out DIR`` and never part of the site:

* ``quiz_bank.md``: every question with its options (in the order of the seed), the answer, why, and
  the source the answer was checked against;
* ``quizzes.gift``: the same quizzes in Moodle's GIFT format (:func:`ultramem_edu.quizbank.to_gift`);
* ``quizzes_qti.zip``: the same quizzes as a QTI 1.2 package for Canvas (:func:`ultramem_edu.quizbank.to_qti_zip`);
* ``ta_guide.md``: the common mistakes the exercise checks diagnose, per chapter and check, collected
  from the checks' source (:func:`diagnoses`: the messages of ``raise``, of ``fail(case, message)``
  and of the ``(wrong answer, message)`` pairs handed to ``diagnose``).

``--seed S`` draws fresh numeric variants (keys computed by the package) and a fresh order of the
options; without it the kit matches the public self-check quizzes.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ultramem_edu import course, quizbank  # noqa: E402

QUIZ_DIR = ROOT / "book" / "quizzes"
KIT_DIR = ROOT / "book" / "instructor"
PREFACE = ROOT / "book" / "00_preface.ipynb"
EXERCISES = ROOT / "ultramem_edu" / "exercises"
STATS = ROOT / "figures" / "notebook_stats.json"
START, END = "<!-- timings:start -->", "<!-- timings:end -->"
SESSIONS_START, SESSIONS_END = "<!-- sessions:start -->", "<!-- sessions:end -->"
PLAN_HEADING = "## A course plan"
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
        if len({a["answer"] for a in answers}) != len(answers):
            raise ValueError(f"{where}: two options have the same text")
        texts = [q["question"]] + [a["answer"] for a in answers] + [a["feedback"] for a in answers]
        for text in texts:
            if re.search(r"<(?!/?(code|b|i|em|strong|sub|sup)>)", text):
                raise ValueError(f"{where}: '<' must be an allowed tag (code, b, i, em, strong, sub, sup): {text!r}")
            if text.count("$") % 2:
                raise ValueError(f"{where}: unbalanced $ in {text!r}")
        if "variant" in q:
            variant = q["variant"]
            if not (isinstance(variant, dict) and variant.get("name") in quizbank.VARIANTS
                    and isinstance(variant.get("params"), dict)):
                raise ValueError(f"{where}: 'variant' must be {{'name': one of {sorted(quizbank.VARIANTS)}, "
                                 f"'params': {{...}}}}, got {variant!r}")


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


def seeded_quizzes(seed: int | None, quiz_dir: Path = QUIZ_DIR) -> dict[int, list[dict]]:
    """Every chapter's quiz as :func:`ultramem_edu.quizbank.build_quiz` gives it for ``seed``."""
    return {ch: quizbank.build_quiz(ch, seed, quiz_dir) for ch in load_quizzes(quiz_dir)}


def chapter_notebooks(book: Path = ROOT / "book") -> dict[int, str]:
    """{chapter: notebook stem} for every ``NN_*.ipynb``."""
    return {int(path.stem[:2]): path.stem for path in sorted(book.glob("[0-9][0-9]_*.ipynb"))}


def _md(text: str) -> str:
    """Quiz text (HTML-flavoured for the renderer) as markdown."""
    text = re.sub(r"</?code>", "`", text)
    return re.sub(r"</?(b|strong)>", "**", text)


def quiz_bank(quizzes: dict[int, list[dict]], seed: int | None = None) -> str:
    """The answer bank of ``quizzes`` (options in the order given) as markdown."""
    drawn = (f"drawn with seed {seed}: numeric questions are fresh variants, their keys computed by the "
             "package, and the options are in that seed's order (the same as in `quizzes.gift`)"
             if seed is not None else
             "as on the public pages (the stored variants, the options in the pages' order)")
    lines = [
        "# Quiz bank",
        "",
        "Multiple-choice questions for every chapter, with the answer, why it is right, and where in the",
        f"book or the paper the answer was checked; {drawn}. Written by",
        "`python scripts/make_instructor_kit.py --out DIR`; edit `book/quizzes/chNN.json`, not this page.",
        "",
    ]
    for chapter, questions in sorted(quizzes.items()):
        lines += [f"## Chapter {chapter}", ""]
        for k, q in enumerate(questions, 1):
            lines.append(f"**{chapter}.{k}** {_md(q['question'])}")
            lines.append("")
            for letter, a in zip(LETTERS, q["answers"]):
                lines.append(f"- ({letter}) {_md(a['answer'])}")
            right = next(i for i, a in enumerate(q["answers"]) if a["correct"])
            explain = q["answers"][right]["feedback"].removeprefix("Correct. ").strip()
            lines += ["", f"*Answer:* ({LETTERS[right]}). {_md(explain)} *Source:* {_md(q['source'])}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- the TA guide: what the checks diagnose -------------------------------------------------------

def _message(node: ast.AST) -> str | None:
    """A message literal as text; an f-string's fields shown as ``{expression}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue):
                parts.append("{" + ast.unparse(value.value) + "}")
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _message(node.left), _message(node.right)
        if left is not None and right is not None:
            return left + right
    return None


_VALIDATION = re.compile(r"\bmust (be|hold)\b.*\bgot\b|^\{name\} must", re.S)


def _call_name(node: ast.Call) -> str:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")


def _messages_in(func: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(func):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args:
            if _call_name(node.exc) == "NotImplementedError":
                continue
            found.append(_message(node.exc.args[0]))
        elif isinstance(node, ast.Call) and _call_name(node) == "fail" and len(node.args) >= 2:
            found.append(_message(node.args[1]))
        elif isinstance(node, ast.Call) and _call_name(node) == "diagnose":
            mistakes = node.args[3] if len(node.args) > 3 else next(
                (kw.value for kw in node.keywords if kw.arg == "mistakes"), None)
            for pair in ast.walk(mistakes) if mistakes is not None else []:
                if isinstance(pair, ast.Tuple) and len(pair.elts) == 2:
                    found.append(_message(pair.elts[1]))
            generic = node.args[4] if len(node.args) > 4 else next(
                (kw.value for kw in node.keywords if kw.arg == "generic"), None)
            if generic is not None:
                found.append(_message(generic))
    out = []
    for m in found:
        if m and _VALIDATION.search(m):
            continue  # argument validation ("x must be ..., got ..."), not a diagnosis
        if m and m.strip() and m not in out:
            out.append(" ".join(m.split()))
    return out


def diagnoses(exercises_dir: Path = EXERCISES) -> dict[str, dict[str, list[str]]]:
    """{module: {function: [diagnosis messages]}} for every function of ``chNN.py`` and ``puzzles.py``
    that raises or reports a mistake, read from the source with ``ast`` (nothing is imported)."""
    result: dict[str, dict[str, list[str]]] = {}
    for path in sorted(exercises_dir.glob("*.py")):
        if not (re.fullmatch(r"ch\d\d", path.stem) or path.stem == "puzzles"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        per_function = {}
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.endswith("_stub"):
                messages = _messages_in(node)
                if messages:
                    per_function[node.name] = messages
        if per_function:
            result[path.stem] = per_function
    if not result:
        raise ValueError(f"no exercise checks with diagnoses found in {exercises_dir}")
    return result


def ta_guide(found: dict[str, dict[str, list[str]]]) -> str:
    lines = [
        "# TA guide: the mistakes the checks name",
        "",
        "Every message a chapter's exercise checks can give, per check, read from the checks' source",
        "(`ultramem_edu/exercises/chNN.py` and `puzzles.py`) by `scripts/make_instructor_kit.py`. A",
        "student who reports one of these has made the mistake it names; the message says what to look",
        "at. `{...}` stands for a value filled in at run time. Functions whose names start with `_` are",
        "helpers shared by several checks of the chapter. Argument-validation messages (\"… must be …,",
        "got …\") are left out.",
        "",
    ]
    sessions = {f"ch{ch:02d}": course.session_of(ch) for ch in course.CHAPTERS}
    sessions["puzzles"] = course.session_of(9)
    for module, functions in found.items():
        heading = "Triton puzzles (chapter 9)" if module == "puzzles" else f"Chapter {int(module[2:])}"
        lines += [f"## {heading}, session {sessions.get(module, '?')}", ""]
        for name, messages in functions.items():
            lines.append(f"### `{module}.{name}`")
            lines.append("")
            lines += [f"- {m}" for m in messages]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# --- the course plan, in the module plan and the preface ------------------------------------------

def _hours(minutes: int) -> str:
    return f"{minutes / 60:g} h"


def _chapters(session: course.Session, link: str) -> str:
    return ", ".join(f"[{ch}]({link}{stem}.ipynb)" if (stem := chapter_notebooks().get(ch)) else str(ch)
                     for ch in session.chapters)


def _check_ref(ref: str) -> str:
    module, name = ref.split(":")
    return f"`{module}.{name}`"


def sessions_block() -> str:
    """The generated part of the module plan: the sessions, the weights and the release policy."""
    graded = course.graded_sessions()
    components = sorted({c for s in course.PLAN for c in s.weights})
    lines = [
        f"Generated from `ultramem_edu.course` by `scripts/make_instructor_kit.py`; the preface's course plan "
        f"comes from the same data. {len(graded)} sessions, one per working day, and an optional "
        f"{len(course.PLAN)}th.",
        "",
        "| session | chapters | lecture | lab | paper | lab: what students write | quiz | weight |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in course.PLAN:
        number = f"{s.number} (optional)" if s.optional else str(s.number)
        quizzes = ", ".join(f"ch{q:02d}" for q in s.quizzes) or "—"
        weight = f"{sum(s.weights.values()):g} %" if s.weights else "—"
        lines.append(f"| {number} | {_chapters(s, '../')} | {s.lecture_min} min | {s.lab_min} min | {s.paper} "
                     f"| {s.lab} | {quizzes} | {weight} |")
    lines.append("")
    for s in course.PLAN:
        title = f"### Session {s.number}{' (optional)' if s.optional else ''}: {s.topic}"
        lines += [title, "", f"{s.lecture_min} min lecture, {s.lab_min} min lab. After it, students can:", ""]
        for o in s.objectives:
            lines.append(f"* {o.text} — assessed by {', '.join(_check_ref(c) for c in o.checks)}.")
        parts = [f"{name} {w:g} %" for name, w in s.weights.items()]
        lines.append("")
        lines.append(f"Grade: {', '.join(parts) if parts else 'none (optional)'}."
                     + (f" Project milestone: {s.milestone}." if s.milestone else ""))
        lines.append("")
    lines += ["### Grading weights", "", "| component | what is graded | weight |", "|---|---|---|"]
    for c in components:
        total = sum(s.weights.get(c, 0.0) for s in course.PLAN)
        lines.append(f"| {c} | {course.GRADING[c]} | {total:g} % |")
    lines += [f"| total | | {course.weights_total():g} % |", "", "### Releasing solutions", "",
              course.SOLUTION_RELEASE]
    return "\n".join(lines)


def preface_plan_cell() -> str:
    """The markdown of the preface's course-plan cell."""
    graded = course.graded_sessions()
    optional = [s for s in course.PLAN if s.optional]
    lines = [
        PLAN_HEADING,
        "",
        textwrap.fill(
            f"The chapters fit {_words(len(graded))} sessions of two to three hours, one per working day of a "
            f"two-week module, each a lecture and a lab, and an optional "
            f"{_ordinal(len(course.PLAN))} on {_topic_head(optional[0])} (chapter"
            f"{'s' if len(optional[0].chapters) > 1 else ''} {' and '.join(str(c) for c in optional[0].chapters)}). "
            "Times include running the notebook and the "
            "exercises.", width=100),
        "",
        "| session | chapters | topic | lecture | lab | time |",
        "|---|---|---|---|---|---|",
    ]
    for s in course.PLAN:
        number = f"{s.number} (optional)" if s.optional else str(s.number)
        lines.append(f"| {number} | {', '.join(str(c) for c in s.chapters)} | {s.topic} | {s.lecture_min} min "
                     f"| {s.lab_min} min | {_hours(s.minutes)} |")
    lines += [
        "",
        "Chapters 10 and 11 read results that scripts in the package produced (training runs take about",
        "an hour on two CPU cores); each chapter shows the one command that reproduces them. Every chapter",
        "ends with a short quiz. The [module plan](instructor/module_plan.md) gives each session its",
        "objectives, the exercises that assess them, the grading weights and when solutions are released.",
        "",
        "The package holds this plan as data (`ultramem_edu.course`; the table above and the module plan are",
        "generated from it); the cell below loads it, the figure and the planner further down are drawn",
        "from it, and the assertions check the two claims the plan rests on.",
    ]
    return "\n".join(lines)


def _words(n: int) -> str:
    return {10: "ten", 11: "eleven", 12: "twelve", 9: "nine"}.get(n, str(n))


def _ordinal(n: int) -> str:
    return {10: "tenth", 11: "eleventh", 12: "twelfth"}.get(n, f"{n}th")


def _topic_head(s: course.Session) -> str:
    return s.topic.split(":")[0]


def _source_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def preface_with_plan(notebook_text: str) -> str:
    """The preface notebook's JSON text with its course-plan cell replaced (nothing else changes)."""
    nb = json.loads(notebook_text)
    cells = [c for c in nb["cells"] if c["cell_type"] == "markdown"
             and "".join(c["source"]).startswith(PLAN_HEADING)]
    if len(cells) != 1:
        raise ValueError(f"the preface must have exactly one markdown cell starting with {PLAN_HEADING!r}, "
                         f"found {len(cells)}")
    cells[0]["source"] = _source_lines(preface_plan_cell())
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


# --- timings ---------------------------------------------------------------------------------------

def timings_table(stats: dict) -> str:
    """The measured run time and peak memory of each notebook in ``stats``, as a markdown table."""
    machine = stats.get("machine", {})
    lines = [
        f"Measured by `scripts/notebook_stats.py` (`figures/notebook_stats.json`): each notebook run top to "
        f"bottom on {machine.get('cpus', '?')} CPU cores, torch {machine.get('torch', '?')}, "
        f"{'with' if machine.get('cuda') else 'without'} a GPU. A chapter missing here was not measured yet.",
        "",
        "| notebook | run time (s) | peak memory (MiB) |",
        "|---|---|---|",
    ]
    for n in stats["notebooks"]:
        name = f"`{Path(n['notebook']).name}`"
        if not n.get("ok", False):
            lines.append(f"| {name} | failed | — |")
        else:
            lines.append(f"| {name} | {n['seconds']:.1f} | {n['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


def _between(page: str, start: str, end: str, block: str) -> str:
    if start not in page or end not in page:
        raise ValueError(f"the page must contain {start} and {end}")
    head, rest = page.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def with_timings(page: str, table: str) -> str:
    return _between(page, START, END, table)


def with_sessions(page: str, block: str) -> str:
    return _between(page, SESSIONS_START, SESSIONS_END, block)


def outputs() -> dict[Path, str]:
    """{path: the text it should have} for the generated public parts."""
    plan_path = KIT_DIR / "module_plan.md"
    stats = json.loads(STATS.read_text(encoding="utf-8"))
    plan = with_timings(plan_path.read_text(encoding="utf-8"), timings_table(stats))
    return {
        plan_path: with_sessions(plan, sessions_block()),
        PREFACE: preface_with_plan(PREFACE.read_text(encoding="utf-8")),
    }


def private_kit(seed: int | None = None) -> dict[str, str | bytes]:
    """{file name: text or bytes} of the kit ``--out`` writes."""
    quizzes = seeded_quizzes(seed)
    return {
        "quiz_bank.md": quiz_bank(quizzes, seed),
        "quizzes.gift": quizbank.to_gift(quizzes),
        "quizzes_qti.zip": quizbank.to_qti_zip(quizzes),
        "ta_guide.md": ta_guide(diagnoses()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report public parts that are out of date")
    parser.add_argument("--out", type=Path,
                        help="write the private kit (quiz bank, GIFT, QTI, TA guide) into this folder")
    parser.add_argument("--seed", type=int, help="with --out: draw fresh numeric variants and option orders")
    args = parser.parse_args(argv)
    if args.seed is not None and args.out is None:
        parser.error("--seed needs --out")
    if args.out is not None:
        out = args.out.resolve()
        if out == KIT_DIR.resolve() or ROOT / "book" in out.parents or out == ROOT / "book":
            parser.error(f"--out must be outside book/ (the kit holds the answers), got {args.out}")
        out.mkdir(parents=True, exist_ok=True)
        kit = private_kit(args.seed)
        for name, content in kit.items():
            if isinstance(content, bytes):
                (out / name).write_bytes(content)
            else:
                (out / name).write_text(content, encoding="utf-8")
        print(f"wrote the instructor kit to {out}: {', '.join(sorted(kit))}")
        return 0
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
