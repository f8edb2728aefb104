"""The instructor kit: quizzes in jupyterquiz's format, the generated pages up to date, the glossary
and notation complete."""
import ast
import copy
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_instructor_kit", ROOT / "scripts" / "make_instructor_kit.py")
kit = importlib.util.module_from_spec(spec)
sys.modules["make_instructor_kit"] = kit
spec.loader.exec_module(kit)


def test_every_chapter_1_to_14_has_at_least_five_valid_questions():
    quizzes = kit.load_quizzes()
    assert set(quizzes) == set(range(1, 15))
    for chapter in quizzes:
        assert len(quizzes[chapter]) >= 5, chapter


def test_correct_answers_are_not_always_in_the_same_place():
    positions = [next(i for i, a in enumerate(q["answers"]) if a["correct"])
                 for qs in kit.load_quizzes().values() for q in qs]
    assert len(set(positions)) >= 3


@pytest.mark.parametrize(
    "change,hint",
    [
        (lambda q: q.update(type="numeric"), "multiple_choice"),
        (lambda q: q.pop("source"), "source"),
        (lambda q: q["answers"][0].update(correct=not q["answers"][0]["correct"]), "exactly one"),
        (lambda q: q.update(question="Is 1 < 2?"), "allowed tag"),
        (lambda q: q.update(question="What is $x?"), "unbalanced"),
        (lambda q: q["answers"][1].pop("feedback"), "feedback"),
        (lambda q: q.update(answers=q["answers"][:1]), "2 to"),
        (lambda q: q["answers"][1].update(answer=q["answers"][0]["answer"]), "same text"),
        (lambda q: q.update(variant={"name": "nope", "params": {}}), "variant"),
    ],
)
def test_validate_quiz_rejects_broken_questions(change, hint):
    question = copy.deepcopy(kit.load_quizzes()[1][0])
    change(question)
    with pytest.raises(ValueError, match=hint):
        kit.validate_quiz([question])


def test_generated_pages_are_up_to_date(capsys):
    assert kit.main(["--check"]) == 0, capsys.readouterr().out


def test_the_answer_bank_is_not_on_the_public_site():
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    assert "quiz_bank" not in toc
    assert not (ROOT / "book" / "instructor" / "quiz_bank.md").exists()
    with pytest.raises(SystemExit):
        kit.main(["--out", str(ROOT / "book" / "instructor")])
    with pytest.raises(SystemExit):
        kit.main(["--seed", "3"])


@pytest.mark.parametrize("seed", [None, 11])
def test_the_private_kit_holds_the_bank_the_gift_and_the_ta_guide(tmp_path, seed, capsys):
    args = ["--out", str(tmp_path)] + ([] if seed is None else ["--seed", str(seed)])
    assert kit.main(args) == 0, capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quiz_bank.md", "quizzes.gift", "quizzes_qti.zip",
                                                          "ta_guide.md"]
    bank = (tmp_path / "quiz_bank.md").read_text(encoding="utf-8")
    quizzes = kit.seeded_quizzes(seed)
    total = sum(len(qs) for qs in quizzes.values())
    assert bank.count("*Answer:*") == total and bank.count("*Source:*") == total
    # the bank's letters are those of the GIFT file (the same seeded order)
    gift = (tmp_path / "quizzes.gift").read_text(encoding="utf-8")
    assert gift.count("\n\t=") == total
    for chapter, questions in quizzes.items():
        for k, q in enumerate(questions, 1):
            right = next(i for i, a in enumerate(q["answers"]) if a["correct"])
            assert f"**{chapter}.{k}**" in bank
            block = bank.split(f"**{chapter}.{k}**", 1)[1]
            assert f"*Answer:* ({kit.LETTERS[right]})." in block.split("*Source:*", 1)[0]
    if seed is not None:
        assert quizzes != kit.seeded_quizzes(None)


def test_diagnoses_are_collected_from_raise_fail_and_diagnose(tmp_path):
    (tmp_path / "ch42.py").write_text(
        "def check_x(fn):\n"
        "    if fn is None:\n"
        "        raise AssertionError('softmax over the wrong axis')\n"
        "    fail(case, f'off by {n} rows')\n"
        "    diagnose(case, out, ref, [(wrong, 'integer division in the schedule')], 'output differs')\n"
        "    raise ValueError(f'n must be an int, got {n}')\n"
        "    raise NotImplementedError('stub')\n"
        "def helper():\n"
        "    return 1\n",
        encoding="utf-8",
    )
    (tmp_path / "notes.py").write_text("def check_y():\n    raise AssertionError('ignored: not a chapter')\n")
    found = kit.diagnoses(tmp_path)
    assert found == {"ch42": {"check_x": ["softmax over the wrong axis", "off by {n} rows",
                                           "integer division in the schedule", "output differs"]}}
    with pytest.raises(ValueError, match="no exercise checks"):
        kit.diagnoses(tmp_path / "missing")


def test_the_ta_guide_lists_the_real_checks_diagnoses():
    found = kit.diagnoses()
    assert {f"ch{n:02d}" for n in range(1, 9)} | {"puzzles"} <= set(found)
    guide = kit.ta_guide(found)
    assert sum(len(m) for fns in found.values() for m in fns.values()) >= 60
    # a message the check of chapter 3's first exercise gives, read from its source
    source = (ROOT / "ultramem_edu" / "exercises" / "ch03.py").read_text(encoding="utf-8")
    assert "each side grows by √E, not by E" in source and "each side grows by √E, not by E" in guide
    assert "## Triton puzzles (chapter 9), session 7" in guide


def test_timing_table_reads_the_measured_stats():
    stats = json.loads((ROOT / "figures" / "notebook_stats.json").read_text())
    table = kit.timings_table(stats)
    first = stats["notebooks"][1]
    assert f"| {first['seconds']:.1f} | {first['peak_rss_mib']:.0f} |" in table
    with pytest.raises(ValueError, match="timings:start"):
        kit.with_timings("no markers here", table)


def test_glossary_and_notation_define_the_terms_the_book_uses():
    glossary = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    for term in ["Virtual block", "Shuffle", "Recall@m", "Sign alignment", "Activated parameters",
                 "Value learning-rate multiplier", "Staircase", "Sub-key"]:
        assert f"\n{term}\n" in glossary, term
    notation = (ROOT / "book" / "notation.md").read_text(encoding="utf-8")
    assert "sub-key width" in notation
    for paper_value in ["| 2 |", "| 4 |", "0.15, 0.001", "2:5, 6:9, 10:13, 14:17", "$k = 10$"]:
        assert paper_value in notation, paper_value


# --- one plan: the preface, the module plan and ultramem_edu.course agree ---------------------------

from ultramem_edu import course  # noqa: E402


def _table(text, header):
    """Rows (lists of cells) of the markdown table whose header line starts with ``header``."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _preface_plan_text():
    nb = json.loads((ROOT / "book" / "00_preface.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if "".join(c["source"]).startswith("## A course plan")]
    assert len(cells) == 1
    return cells[0]


def test_the_preface_and_the_module_plan_give_the_same_sessions():
    preface = _table(_preface_plan_text(), "| session | chapters | topic")
    plan = _table((ROOT / "book" / "instructor" / "module_plan.md").read_text(encoding="utf-8"),
                  "| session | chapters | lecture")
    assert len(preface) == len(plan) == len(course.PLAN) == 11
    for p_row, m_row, session in zip(preface, plan, course.PLAN):
        assert p_row[0] == m_row[0] == (f"{session.number} (optional)" if session.optional else str(session.number))
        chapters = [int(c) for c in re.findall(r"\[(\d+)\]", m_row[1])]
        assert [int(c) for c in p_row[1].split(", ")] == chapters == list(session.chapters)
        assert p_row[3] == m_row[2] == f"{session.lecture_min} min"
        assert p_row[4] == m_row[3] == f"{session.lab_min} min"
        hours = sum(course.CHAPTERS[c][3] for c in chapters)
        assert p_row[5] == f"{hours:g} h" and session.minutes == 60 * hours
    text = _preface_plan_text()
    graded = sum(not s.optional for s in course.PLAN)
    assert graded == 10 and "fit ten sessions" in text and "optional eleventh" in text
    assert "Every chapter\nends with a short quiz" in text or "Every chapter ends with a short quiz" in text


def test_every_chapter_has_a_quiz_and_every_session_its_quizzes():
    quizzes = set(kit.load_quizzes())
    assert {q for s in course.PLAN for q in s.quizzes} == quizzes == set(range(1, 15))
    for s in course.PLAN:
        assert set(s.quizzes) <= set(s.chapters)


def test_objectives_name_checks_that_exist():
    names = {}
    for path in (ROOT / "ultramem_edu" / "exercises").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names[path.stem] = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    refs = [ref for s in course.PLAN for o in s.objectives for ref in o.checks]
    assert len(refs) >= 40
    for ref in refs:
        module, name = ref.split(":")
        assert name in names.get(module, set()), ref
    for s in course.PLAN:
        assert s.objectives and all(o.checks for o in s.objectives), s.number
        for ref in (r for o in s.objectives for r in o.checks):
            module = ref.split(":")[0]
            chapter = 9 if module == "puzzles" else int(module[2:])
            assert chapter in s.chapters, (s.number, ref)


def test_weights_add_to_100_and_the_optional_session_carries_none():
    assert course.weights_total() == pytest.approx(100.0)
    assert all(not s.weights for s in course.PLAN if s.optional)
    assert all(s.weights for s in course.PLAN if not s.optional)
    block = kit.sessions_block()
    assert "| total | | 100 % |" in block and course.SOLUTION_RELEASE in block
    with pytest.raises(ValueError, match="chapter must be one of"):
        course.session_of(15)
