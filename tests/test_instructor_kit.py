"""The instructor kit: quizzes in jupyterquiz's format, the generated pages up to date, the glossary
and notation complete."""
import copy
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_instructor_kit", ROOT / "scripts" / "make_instructor_kit.py")
kit = importlib.util.module_from_spec(spec)
sys.modules["make_instructor_kit"] = kit
spec.loader.exec_module(kit)


def test_every_chapter_1_to_11_has_at_least_five_valid_questions():
    quizzes = kit.load_quizzes()
    assert set(quizzes) >= set(range(1, 12))
    for chapter in range(1, 12):
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
    ],
)
def test_validate_quiz_rejects_broken_questions(change, hint):
    question = copy.deepcopy(kit.load_quizzes()[1][0])
    change(question)
    with pytest.raises(ValueError, match=hint):
        kit.validate_quiz([question])


def test_generated_pages_are_up_to_date(capsys):
    assert kit.main(["--check"]) == 0, capsys.readouterr().out


def test_quiz_bank_lists_every_question_with_its_answer():
    bank = (ROOT / "book" / "instructor" / "quiz_bank.md").read_text(encoding="utf-8")
    quizzes = kit.load_quizzes()
    total = sum(len(qs) for qs in quizzes.values())
    assert bank.count("*Answer:*") == total and bank.count("*Source:*") == total


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
