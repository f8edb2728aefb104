"""ultramem_edu.viz.quiz: the chapters' quizzes as static HTML (no script, no external resource)."""
import json
import re
from pathlib import Path

import pytest

from ultramem_edu.viz.quiz import load_quiz, quiz_html, show_quiz

ROOT = Path(__file__).resolve().parent.parent
QUIZZES = sorted((ROOT / "book" / "quizzes").glob("ch*.json"))


def test_there_is_a_quiz_for_chapters_1_to_13():
    assert [p.stem for p in QUIZZES] == [f"ch{n:02d}" for n in range(1, 14)]


@pytest.mark.parametrize("path", QUIZZES, ids=lambda p: p.stem)
def test_every_quiz_renders_one_right_answer_per_question(path):
    questions = load_quiz(path)
    page = quiz_html(questions, f"quiz-{path.stem}")
    assert page.count("<fieldset") == len(questions)
    assert page.count('class="ue-right"') == len(questions)
    assert page.count('class="ue-wrong"') == sum(len(q["answers"]) for q in questions) - len(questions)
    assert "<script" not in page.lower() and not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids are unique"
    for name in set(re.findall(r'name="([^"]+)"', page)):
        assert page.count(f'name="{name}"') >= 2, "each question's answers share one radio group"
    # every $...$ became \(...\): the book's MathJax typesets \( \), not single dollars
    assert "$" not in re.sub(r"<[^>]+>", "", page.replace("\\$", ""))


def test_math_delimiters_and_feedback():
    questions = [{"type": "multiple_choice", "question": "Is $a + b$ at most $$m + 1$$?",
                  "answers": [{"answer": "yes, $a + b \\le m + 1$", "correct": True, "feedback": "Correct. The staircase."},
                              {"answer": "no", "correct": False, "feedback": "Try $m = 1$."}]}]
    page = quiz_html(questions, "q")
    assert r"\(a + b\)" in page and r"\[m + 1\]" in page and r"\(a + b \le m + 1\)" in page
    assert "Correct. The staircase." in page and r"Try \(m = 1\)." in page
    assert 'for="q-q1-a1"' in page and 'id="q-q1-a2"' in page


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(ValueError, match="path must be an existing quiz file"):
        load_quiz(tmp_path / "missing.json")
    bad = tmp_path / "ch99.json"
    two_right = [{"type": "multiple_choice", "question": "q",
                  "answers": [{"answer": "a", "correct": True}, {"answer": "b", "correct": True}]}]
    bad.write_text(json.dumps(two_right))
    with pytest.raises(ValueError, match="exactly one answer must be correct, got 2"):
        load_quiz(bad)
    bad.write_text(json.dumps([{"type": "numeric", "question": "q", "answers": []}]))
    with pytest.raises(ValueError, match="multiple_choice"):
        load_quiz(bad)
    with pytest.raises(ValueError, match="quiz_id"):
        quiz_html(two_right, "1 bad id")


def test_show_quiz_returns_displayable_html():
    shown = show_quiz(QUIZZES[0])
    assert 'id="quiz-ch01"' in shown.data


@pytest.mark.parametrize("number", range(1, 14))
def test_every_chapter_ends_with_its_quiz(number):
    path = next((ROOT / "book").glob(f"{number:02d}_*.ipynb"))
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    quiz = [c for c in cells if "show_quiz(" in "".join(c["source"])]
    assert len(quiz) == 1 and quiz[0] is cells[-1], path.name
    assert f'"quizzes/ch{number:02d}.json"' in "".join(quiz[0]["source"])
    assert "remove-input" in quiz[0]["metadata"].get("tags", [])
