"""A chapter's self-check quiz as static HTML: questions with clickable answers and their feedback.

The questions live in ``book/quizzes/chNN.json``, in the format of the ``jupyterquiz`` package: a list
of ``{"type": "multiple_choice", "question": ..., "answers": [{"answer", "correct", "feedback"}, ...]}``
(extra keys such as ``"source"`` are ignored). The text may hold HTML (``<code>``) and TeX between
``$...$``.

:func:`quiz_html` writes plain HTML and CSS, no JavaScript: every answer is a radio button with its
own ``<label for=...>`` (ids unique on the page), and choosing one reveals its feedback through a CSS
``:checked`` rule. The options are shown in an order shuffled by a seed
(:func:`ultramem_edu.quizbank.shuffle_answers`; the book's pages use the fixed
:data:`~ultramem_edu.quizbank.PUBLIC_SEED`), so the key is not always in the same place. So the quiz works on the static
site without a kernel, offline, and before or after MathJax has loaded: the TeX is written with
``\\(...\\)`` and ``\\[...\\]`` delimiters and typeset with the rest of the page. jupyterquiz's own
renderer, by contrast, typesets from JavaScript half a second after it runs and fetches MathJax from a
CDN when the page's MathJax has not finished loading.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

__all__ = ["load_quiz", "quiz_html", "show_quiz"]

_STYLE = """
<style>
.ue-quiz { border: 1px solid #999; border-radius: 6px; padding: 0.6em 1em; margin: 1em 0; max-width: 700px; }
.ue-quiz-title { font-weight: bold; margin: 0.2em 0 0.6em 0; }
.ue-quiz fieldset { border: none; margin: 0 0 1em 0; padding: 0; min-width: 0; }
.ue-quiz legend { font-size: 1rem; font-weight: 600; line-height: 1.5; margin-bottom: 0.4em; padding: 0;
  white-space: normal; float: none; width: auto; }
.ue-quiz .ue-answer { margin: 0.25em 0; }
.ue-quiz .ue-answer input { position: absolute; opacity: 0; width: 1px; height: 1px; }
.ue-quiz .ue-answer label { display: block; cursor: pointer; border: 1px solid #aaa; border-radius: 4px;
  padding: 0.3em 0.6em; }
.ue-quiz .ue-answer input:focus-visible + label { outline: 2px solid #0072B2; }
.ue-quiz .ue-answer input.ue-right:checked + label { border: 2px solid #009E73; }
.ue-quiz .ue-answer input.ue-wrong:checked + label { border: 2px solid #D55E00; }
.ue-quiz .ue-feedback { display: none; margin: 0.2em 0 0.4em 1em; font-size: 0.95em; }
.ue-quiz .ue-answer input:checked ~ .ue-feedback { display: block; }
.ue-quiz .ue-verdict-right { color: #009E73; font-weight: bold; }
.ue-quiz .ue-verdict-wrong { color: #D55E00; font-weight: bold; }
</style>
"""

_DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$(?!\$)", re.S)


def _tex_delimiters(text: str) -> str:
    """``$$x$$`` -> ``\\[x\\]`` and ``$x$`` -> ``\\(x\\)``, the delimiters the book's MathJax typesets."""
    text = _DISPLAY_MATH.sub(lambda m: r"\[" + m.group(1) + r"\]", text)
    return _INLINE_MATH.sub(lambda m: r"\(" + m.group(1) + r"\)", text)


def load_quiz(path: str | Path) -> list[dict]:
    """Read and validate a quiz file; raises ValueError naming the file and the faulty question."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing quiz file (chNN.json), got {str(path)!r}")
    questions = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(questions, list) or not questions:
        raise ValueError(f"{path.name}: expected a non-empty JSON list of questions, got {type(questions).__name__}")
    for i, q in enumerate(questions, 1):
        if not isinstance(q, dict) or q.get("type") != "multiple_choice":
            raise ValueError(f"{path.name}, question {i}: expected type 'multiple_choice', got {q!r:.80}")
        answers = q.get("answers")
        if not isinstance(q.get("question"), str) or not isinstance(answers, list) or len(answers) < 2:
            raise ValueError(f"{path.name}, question {i}: needs a 'question' string and at least two 'answers'")
        if any(not isinstance(a.get("answer"), str) or not isinstance(a.get("correct"), bool) for a in answers):
            raise ValueError(f"{path.name}, question {i}: every answer needs 'answer' (str) and 'correct' (bool)")
        if sum(a["correct"] for a in answers) != 1:
            raise ValueError(f"{path.name}, question {i}: exactly one answer must be correct, "
                             f"got {sum(a['correct'] for a in answers)}")
    return questions


def quiz_html(questions: list[dict], quiz_id: str, title: str = "Check yourself", seed: int | None = 0) -> str:
    """The HTML of a quiz (see the module docstring); ``quiz_id`` makes its element ids unique on a page.

    ``seed`` shuffles each question's options (with ``quiz_id`` as salt); ``None`` keeps the stored order.
    """
    if not re.fullmatch(r"[A-Za-z][\w-]*", quiz_id or ""):
        raise ValueError(f"quiz_id must be a letter followed by letters, digits, '_' or '-', got {quiz_id!r}")
    if seed is not None:
        from ultramem_edu.quizbank import shuffle_answers

        questions = shuffle_answers(questions, seed, quiz_id)
    parts = [_STYLE, f'<div class="ue-quiz mathjax_process" id="{quiz_id}">',
             f'<p class="ue-quiz-title">{html.escape(title)} <span style="font-weight:normal">'
             f"(choose an answer to see whether it is right, and why)</span></p>"]
    for i, q in enumerate(questions, 1):
        name = f"{quiz_id}-q{i}"
        parts.append(f'<fieldset class="ue-question"><legend>{i}. {_tex_delimiters(q["question"])}</legend>')
        for j, a in enumerate(q["answers"], 1):
            kind = "right" if a["correct"] else "wrong"
            verdict = "Right." if a["correct"] else "Not quite."
            feedback = _tex_delimiters(a.get("feedback", ""))
            spoken = _spoken(a["answer"])
            aria = f' aria-label="{html.escape(spoken)}"' if spoken != a["answer"] else ""
            parts.append(
                f'<div class="ue-answer"><input type="radio" class="ue-{kind}" name="{name}" id="{name}-a{j}"{aria}>'
                f'<label for="{name}-a{j}">{_tex_delimiters(a["answer"])}</label>'
                f'<div class="ue-feedback"><span class="ue-verdict-{kind}">{verdict}</span> {feedback}</div></div>')
        parts.append("</fieldset>")
    parts.append("</div>")
    return "\n".join(parts)


_TEX_WORDS = {r"\cdot": "·", r"\times": "×", r"\sqrt": "√", r"\sigma": "σ", r"\pi": "π", r"\ln": "ln ",
              r"\log": "log ", r"\text": "", r"\mathrm": "", r"\left": "", r"\right": ""}


def _spoken(answer: str) -> str:
    """The answer as plain text for a screen reader when it holds math (MathJax's rendering of a label that
    is nothing but math leaves the radio button without an accessible name): TeX delimiters and markup
    dropped, a few commands written as symbols. Answers without math come back unchanged."""
    if "$" not in answer and "\\(" not in answer:
        return answer
    text = re.sub(r"<[^>]+>", "", answer).replace("$", "").replace("\\(", "").replace("\\)", "")
    for tex, word in _TEX_WORDS.items():
        text = text.replace(tex, word)
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)          # any other command: its name
    text = text.replace("{", "").replace("}", "")
    return re.sub(r"\s+", " ", text).strip()


def show_quiz(path: str | Path, seed: int | None = 0):
    """Display the quiz of ``path`` (e.g. ``"quizzes/ch01.json"``, relative to the notebook) in a notebook,
    its options shuffled by ``seed`` (the book's pages use 0)."""
    from IPython.display import HTML

    path = Path(path)
    return HTML(quiz_html(load_quiz(path), f"quiz-{path.stem}", seed=seed))
