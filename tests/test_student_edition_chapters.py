"""Chapters 1-9 as students get them: each holds its coding exercises (stub, solution, check) and at
least two predict-then-run prompts, and its student edition runs with NotImplementedError in the
unfinished exercise cells and nowhere else."""
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("0[1-9]_*.ipynb"))


def _script(name):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mse = _script("make_student_edition")


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _defined(cell):
    match = re.search(r"^def (\w+)\(", _source(cell), re.M)
    return match.group(1) if match else None


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_there_are_nine_chapters():
    assert [p.name[:2] for p in CHAPTERS] == [f"{n:02d}" for n in range(1, 10)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_holds_its_coding_exercises(path):
    pytest.importorskip("triton")  # chapter 9's puzzles are registered only where triton imports
    from ultramem_edu.exercises._grading import coding_exercises

    nb = _load(path)
    chapter = int(path.name[:2])
    cells = nb["cells"]
    tagged = {tag: [i for i, c in enumerate(cells) if tag in mse.tags(c)] for tag in ("stub", "solution", "needs-solution")}
    names = [e.name for e in coding_exercises(chapter)]
    assert names, f"chapter {chapter} has no coding exercise in the package"
    for name in names:
        stubs = [i for i in tagged["stub"] if _defined(cells[i]) == name]
        solutions = [i for i in tagged["solution"] if cells[i]["cell_type"] == "code" and _defined(cells[i]) == name]
        checks = [i for i in tagged["needs-solution"] if re.search(rf"\.check_\w+\({name}\)", _source(cells[i]))]
        assert len(stubs) == 1 and len(solutions) == 1 and len(checks) == 1, (path.name, name, stubs, solutions, checks)
        assert stubs[0] < solutions[0] < checks[0], f"{path.name}: {name} needs stub, solution, check in that order"
    assert mse.stub_mismatches(nb) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_has_two_predict_then_run_prompts(path):
    cells = _load(path)["cells"]
    prompts = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "{admonition} Predict, then run" in _source(c)]
    assert len(prompts) >= 2, path.name
    for i in prompts:
        answer = next(j for j in range(i + 1, len(cells)) if "{admonition} What happened" in _source(cells[j]))
        between = cells[i + 1:answer]
        assert any(c["cell_type"] == "code" for c in between), f"{path.name}: the prompt of cell {i} runs nothing"
        assert not any("{admonition} Predict, then run" in _source(c) for c in between), \
            f"{path.name}: the prompt of cell {i} is answered after the next prompt"
        text = _source(cells[answer])
        assert ":class: dropdown" in text, f"{path.name}: the answer after cell {i} is not hidden until opened"


@pytest.mark.slow
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_edition_runs_with_only_not_implemented(path):
    executor = _script("execute_notebook")
    student = nbformat.reads(json.dumps(mse.student_notebook(_load(path))), as_version=4)
    assert not any("solution" in c.get("metadata", {}).get("tags", []) for c in student.cells)
    executor.run(student, path)
    executed = json.loads(nbformat.writes(student))
    assert mse.unexpected_errors(executed) == []
    exercise_cells = [c for c in executed["cells"] if "needs-solution" in mse.tags(c)]
    assert exercise_cells
    for cell in exercise_cells:
        errors = [o["ename"] for o in cell["outputs"] if o["output_type"] == "error"]
        assert errors == ["NotImplementedError"], (path.name, _source(cell)[:80], errors)
