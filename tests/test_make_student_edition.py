"""scripts/make_student_edition.py: solutions out, stubs in, and the student notebook runs through
with NotImplementedError in the exercise cells only."""
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("make_student_edition", ROOT / "scripts" / "make_student_edition.py")
mse = importlib.util.module_from_spec(spec)
sys.modules["make_student_edition"] = mse
spec.loader.exec_module(mse)

QUESTION = """**1. Read the memory.** Write `double`.

```{admonition} Solution
:class: dropdown
Multiply by two:

    def double(x): return 2 * x
```

Then run the check."""


def _notebook():
    nb = nbformat.v4.new_notebook()
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    nb.cells = [
        code("# Colab header\nimport sys"),
        md(QUESTION),
        code('def double(x):\n    """x (B,) -> (B,)."""\n    raise NotImplementedError("Exercise: write double")',
             metadata={"tags": ["stub"]}),
        code("def double(x):\n    return 2 * x", metadata={"tags": ["solution"]}),
        code("# NBVAL_CHECK_OUTPUT\nassert double(3) == 6\nprint('Correct')", metadata={"tags": ["needs-solution"]},
             outputs=[nbformat.v4.new_output("stream", name="stdout", text="Correct\n")], execution_count=4),
        md("The answer, explained.", metadata={"tags": ["solution"]}),
        md("```{solution-start} ex1\n```"),
        code("print('inside a solution span')"),
        md("```{solution-end}\n```"),
        code("y = 1 + 1\nprint(y)"),
    ]
    return nb


def test_student_edition_of_a_small_notebook():
    nb = json.loads(nbformat.writes(_notebook()))
    student = mse.student_notebook(nb)
    sources = ["".join(c["source"]) for c in student["cells"]]
    assert len(student["cells"]) == 5
    assert sources[0] == "# Colab header\nimport sys"
    assert "Solution" not in sources[1] and "def double(x): return" not in sources[1]
    assert sources[1].startswith("**1. Read the memory.**") and sources[1].endswith("Then run the check.")
    assert "NotImplementedError" in sources[2]
    assert "return 2 * x" not in "".join(sources)
    assert "NBVAL_CHECK_OUTPUT" not in sources[3] and "raises-exception" in student["cells"][3]["metadata"]["tags"]
    assert student["cells"][3]["outputs"] == [] and student["cells"][3]["execution_count"] is None
    assert "inside a solution span" not in "".join(sources) and "answer, explained" not in "".join(sources)
    assert student["metadata"]["ultramem_edu"] == {"edition": "student"}
    assert len(nb["cells"]) == 10, "the input notebook is left alone"


@pytest.mark.slow
def test_student_notebook_raises_not_implemented_and_nothing_else(tmp_path):
    from nbclient import NotebookClient

    instructor = _notebook()
    NotebookClient(instructor, timeout=60, kernel_name="python3").execute()
    assert mse.unexpected_errors(json.loads(nbformat.writes(instructor))) == []
    student = nbformat.reads(json.dumps(mse.student_notebook(json.loads(nbformat.writes(_notebook())))), as_version=4)
    NotebookClient(student, timeout=60, kernel_name="python3").execute()
    executed = json.loads(nbformat.writes(student))
    assert mse.unexpected_errors(executed) == []
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["ename"] for e in errors] == ["NotImplementedError"]
    assert "".join(executed["cells"][-1]["outputs"][0]["text"]) == "2\n", "cells after the exercise still run"


def test_unexpected_errors_flags_other_failures():
    err = {"output_type": "error", "ename": "TypeError", "evalue": "bad", "traceback": []}
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": ["needs-solution"]}, "outputs": [err], "source": ""},
                    {"cell_type": "code", "metadata": {}, "outputs": [dict(err, ename="NotImplementedError")],
                     "source": ""}]}
    problems = mse.unexpected_errors(nb)
    assert len(problems) == 2 and "instead of NotImplementedError" in problems[0] and "should run" in problems[1]


def test_strip_inline_solutions_respects_fences():
    text = "Q\n\n````{admonition} Solution\n```python\nx = 1\n```\n````\n\nafter\n"
    assert mse.strip_inline_solutions(text) == "Q\n\nafter\n"
    text = ":::{solution} ex\nhidden\n:::\nkept"
    assert mse.strip_inline_solutions(text) == "kept"
    assert mse.strip_inline_solutions("```{admonition} Note\nkept\n```") == "```{admonition} Note\nkept\n```"
    with pytest.raises(ValueError, match="unclosed"):
        mse.strip_inline_solutions("```{admonition} Solution\nnever closed")


def test_a_cell_tagged_solution_and_stub_is_refused():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x", metadata={"tags": ["solution", "stub"]})]
    with pytest.raises(ValueError, match="both"):
        mse.student_notebook(json.loads(nbformat.writes(nb)))


def test_the_real_book_converts(tmp_path):
    written = mse.make_student_edition(ROOT / "book", tmp_path)
    originals = sorted((ROOT / "book").glob("*.ipynb"))
    assert [p.name for p in written] == [p.name for p in originals]
    for original, student_path in zip(originals, written):
        nb = json.loads(original.read_text(encoding="utf-8"))
        student = json.loads(student_path.read_text(encoding="utf-8"))
        nbformat.validate(nbformat.reads(json.dumps(student), as_version=4))
        n_solutions = sum(bool({"solution", "answer-reveal"} & set(c.get("metadata", {}).get("tags", [])))
                          for c in nb["cells"])
        assert len(student["cells"]) <= len(nb["cells"]) - n_solutions
        assert student["cells"][0] == nb["cells"][0], "the Colab header stays first and unchanged"
        text = "".join("".join(c["source"]) for c in student["cells"] if c["cell_type"] == "markdown")
        assert "{admonition} Solution" not in text
        assert mse.stub_mismatches(nb) == [], original.name


def test_main_writes_into_the_given_folder(tmp_path, capsys):
    assert mse.main(["--out", str(tmp_path / "student")]) == 0
    assert "student notebooks" in capsys.readouterr().out
    assert (tmp_path / "student" / "01_memory_layers.ipynb").exists()


def test_student_folder_is_ignored_by_git():
    assert "/student/" in (ROOT / ".gitignore").read_text().split()


def test_stub_mismatches_compares_stub_cells_with_the_package():
    from ultramem_edu.exercises._grading import stub_source

    def nb_with(source):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": ["stub"]}),
                    nbformat.v4.new_code_cell("x = 1")]
        return json.loads(nbformat.writes(nb))

    assert mse.stub_mismatches(nb_with(stub_source("topm_read"))) == []
    edited = stub_source("topm_read").replace("(B, D_v)", "(B, D)")
    assert "differs from stub_source('topm_read')" in mse.stub_mismatches(nb_with(edited))[0]
    assert "not a coding exercise" in mse.stub_mismatches(nb_with("def nothing():\n    pass"))[0]
    assert "must define a function" in mse.stub_mismatches(nb_with("x = 2"))[0]


def test_answer_reveal_cells_are_dropped_and_may_not_be_exercise_cells():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("show_source(answer)", metadata={"tags": ["answer-reveal"]}),
                nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"tags": ["answer-reveal", "remove-input"]}),
                nbformat.v4.new_code_cell("x = 1")]
    student = mse.student_notebook(json.loads(nbformat.writes(nb)))
    assert ["".join(c["source"]) for c in student["cells"]] == ["x = 1"]
    nb.cells = [nbformat.v4.new_code_cell("x", metadata={"tags": ["answer-reveal", "needs-solution"]})]
    with pytest.raises(ValueError, match="both"):
        mse.student_notebook(json.loads(nbformat.writes(nb)))


def test_the_edition_carries_the_quizzes_and_the_figures_and_not_the_runs(tmp_path):
    book, figures = tmp_path / "book", tmp_path / "figures"
    (book / "quizzes").mkdir(parents=True)
    (book / "quizzes" / "ch01.json").write_text("{}")
    (figures / "runs").mkdir(parents=True)
    (figures / "exp_lm.json").write_text("{}")
    (figures / "runs" / "log.txt").write_text("raw")
    (book / "01_x.ipynb").write_text(nbformat.writes(_notebook()))
    out = tmp_path / "student"
    (out / "quizzes").mkdir(parents=True)
    (out / "quizzes" / "stale.json").write_text("{}")                 # an older edition's file
    mse.make_student_edition(book, out)
    assert sorted(p.name for p in (out / "quizzes").iterdir()) == ["ch01.json"]
    assert (out / "figures" / "exp_lm.json").exists() and not (out / "figures" / "runs").exists()
    with pytest.raises(ValueError, match="must differ"):
        mse.make_student_edition(book, book)
