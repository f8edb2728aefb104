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


def _bound_names(source):
    """Names a code cell binds (imports, definitions, assignments); magics and shell lines left out."""
    import ast

    lines = [ln for ln in source.split("\n") if not ln.lstrip().startswith(("%", "!"))]
    bound = set()
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return bound


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_only_the_stub_binds_the_exercises_name_in_the_student_edition(path):
    """No import or other cell of the student edition binds an exercise's name: a student who skips
    the stub, or misnames the function, must not be graded on the package's code."""
    pytest.importorskip("triton")
    from ultramem_edu.exercises._grading import coding_exercises

    names = {e.name for e in coding_exercises(int(path.name[:2]))}
    for i, cell in enumerate(mse.student_notebook(_load(path))["cells"]):
        if cell["cell_type"] == "code" and "stub" not in mse.tags(cell):
            assert not _bound_names(_source(cell)) & names, (path.name, i, _source(cell)[:120])


ALL_NOTEBOOKS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def student_edition(tmp_path_factory):
    """The student edition as the script writes it, in a folder of its own (as an instructor hands it
    out, away from the repository): notebooks, quizzes/ and figures/."""
    out = tmp_path_factory.mktemp("edition") / "student"
    written = mse.make_student_edition(ROOT / "book", out)
    assert [p.name for p in written] == [p.name for p in ALL_NOTEBOOKS]
    return out


def test_the_student_edition_carries_what_the_chapters_load(student_edition):
    for path in ALL_NOTEBOOKS:
        nb = _load(student_edition / path.name)
        for cell in nb["cells"]:
            assert not {"solution", "answer-reveal"} & set(mse.tags(cell)), (path.name, _source(cell)[:80])
            for quiz in re.findall(r'show_quiz\("([^"]+)"\)', _source(cell)):
                assert (student_edition / quiz).is_file(), (path.name, quiz)
            for name in re.findall(r'FIGURES / "([^"]+)"', _source(cell)):
                assert (student_edition / "figures" / name).exists(), (path.name, name)
    assert not (student_edition / "figures" / "runs").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in ALL_NOTEBOOKS], ids=lambda n: n[:2])
def test_student_edition_runs_with_only_not_implemented(student_edition, name):
    """Every chapter of the written student edition runs top to bottom in its own folder; only the
    exercise cells (tagged ``needs-solution``) raise, and only NotImplementedError."""
    executor = _script("execute_notebook")
    path = student_edition / name
    student = nbformat.read(path, as_version=4)
    executor.run(student, path)          # a cell without raises-exception that fails stops the run here
    executed = json.loads(nbformat.writes(student))
    assert mse.unexpected_errors(executed) == []
    exercise_cells = [c for c in executed["cells"] if "needs-solution" in mse.tags(c)]
    if int(name[:2]) in range(1, 10):
        assert exercise_cells, name
    for cell in exercise_cells:
        errors = [o["ename"] for o in cell["outputs"] if o["output_type"] == "error"]
        assert errors == ["NotImplementedError"], (name, _source(cell)[:80], errors)
