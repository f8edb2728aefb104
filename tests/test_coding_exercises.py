"""The coding exercises as a set: every chapter 1–9 has one; each stub, solution and check agree; the
package holds no solution and a check refuses the package's own implementation.

(The typical wrong implementations each check must catch are in tests/test_exercises_chNN.py and
tests/test_exercises_puzzles.py; the instructor's solutions the tests use are in
tests/exercise_solutions.py and tests/puzzle_solutions.py.)
"""
import importlib
import inspect
import json
import re
import threading
from pathlib import Path

import pytest
import torch

import exercise_solutions
from ultramem_edu.exercises import _grading
from ultramem_edu.exercises._grading import coding_exercises, load_stub, stub_source

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = {e.name: e for e in coding_exercises()}
PLAIN = [name for name, e in EXERCISES.items() if e.chapter != 9]
REFUSED = "this calls the package's implementation of the exercise"


def _solution(name):
    if EXERCISES[name].chapter == 9:
        return getattr(importlib.import_module("puzzle_solutions"), name)
    return getattr(exercise_solutions, name)


def _python_function(fn):
    return getattr(fn, "fn", fn)                      # a @triton.jit kernel wraps the Python function


def test_every_chapter_1_to_9_has_a_coding_exercise():
    chapters = {e.chapter for e in EXERCISES.values()}
    assert chapters >= set(range(1, 9)), sorted(chapters)
    assert sum(e.chapter == 5 for e in EXERCISES.values()) == 2      # Tucker scores and the search


def test_chapter_9_has_the_kernel_puzzles():
    pytest.importorskip("triton")
    names = [e.name for e in coding_exercises(9)]
    assert names == ["gather_row_kernel", "gather_rows_kernel", "weighted_sum_kernel", "block_lookup_kernel",
                     "lookup_backward_kernel"]


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_stub_has_the_solutions_signature_and_raises(name):
    stub = load_stub(name)
    def parameters(fn):                               # names, kinds and defaults (annotations may be strings)
        return [(p.name, p.kind, p.default) for p in inspect.signature(_python_function(fn)).parameters.values()]

    assert parameters(stub) == parameters(_solution(name))
    source = stub_source(name)
    assert "raise NotImplementedError" in source
    assert '"""' in source and "(" in source.split('"""')[1], "the docstring gives the shapes"
    assert "Returns" in source or "Spec:" in source


@pytest.mark.parametrize("name", PLAIN)
def test_check_reports_an_unwritten_stub_as_not_implemented(name):
    with pytest.raises(NotImplementedError, match="still the stub"):
        EXERCISES[name].check(load_stub(name))


@pytest.mark.parametrize("name", PLAIN)
def test_check_accepts_the_solution(name, capsys):
    EXERCISES[name].check(_solution(name))
    assert "Correct" in capsys.readouterr().out


def test_the_package_exports_no_solution():
    assert not hasattr(_grading.CodingExercise, "solution")
    assert not hasattr(_grading, "source_of")
    for name, exercise in EXERCISES.items():
        assert not hasattr(exercise, "solution")
        module = importlib.import_module(_chapter_module(exercise))
        assert not hasattr(module, name), f"{module.__name__}.{name} is importable"
        assert name not in getattr(module, "__all__", ())


def _chapter_module(exercise):
    return ("ultramem_edu.exercises.puzzles" if exercise.chapter == 9
            else f"ultramem_edu.exercises.ch{exercise.chapter:02d}")


@pytest.mark.parametrize("name", PLAIN)
def test_check_refuses_each_guarded_package_function(name):
    """Passing the package's implementation fails with the clear message, and afterwards the package
    functions work again (restored in ``finally``)."""
    exercise = EXERCISES[name]
    assert exercise.guarded, f"{name} names no package function to refuse"
    for target in exercise.guarded:
        before = _grading._resolve(target)[2]
        code = getattr(_python_function(before), "__code__", None)
        with pytest.raises(AssertionError, match=REFUSED):
            exercise.check(before)
        after = _grading._resolve(target)[2]
        assert after is before and getattr(_python_function(after), "__code__", None) is code


def test_refusing_covers_other_names_and_restores_after_an_error():
    import ultramem_edu.tdqkr as tdqkr
    from ultramem_edu.tdqkr import tucker_scores as alias

    row, col = torch.randn(1, 2, 3), torch.randn(1, 2, 4)
    expected = alias(row, col, torch.eye(2))
    with pytest.raises(RuntimeError, match="boom"):
        with _grading.refusing(["ultramem_edu.tdqkr:tucker_scores"], "tucker_scores"):
            with pytest.raises(_grading.PackageImplementationCalled, match=re.escape("ultramem_edu.tdqkr.tucker_scores")):
                alias(row, col, torch.eye(2))                        # a name bound before the block
            with pytest.raises(_grading.PackageImplementationCalled):
                tdqkr.tucker_scores(row, col, torch.eye(2))
            raise RuntimeError("boom")
    torch.testing.assert_close(tdqkr.tucker_scores(row, col, torch.eye(2)), expected)
    torch.testing.assert_close(alias(row, col, torch.eye(2)), expected)


def test_refusing_restores_an_inherited_method_and_a_guard_typo_fails_at_once():
    from ultramem_edu.memory import TopMMemory

    assert "forward" in vars(TopMMemory)
    with _grading.refusing(["ultramem_edu.memory:TopMMemory.forward"]):
        with pytest.raises(_grading.PackageImplementationCalled):
            TopMMemory(4, 2, 2, 1)(torch.ones(1, 2))
    assert TopMMemory(4, 2, 2, 1)(torch.ones(1, 2))[0].shape == (1, 2)
    with pytest.raises(ValueError, match="module:attribute"):
        _grading.exercise(1, "def f(x):\n    raise NotImplementedError\n", guarded=("ultramem_edu.memory",))
    with pytest.raises(AttributeError):
        _grading.exercise(1, "def f(x):\n    raise NotImplementedError\n", guarded=("ultramem_edu.memory:nothing",))


def test_checks_in_threads_grade_their_own_functions(capsys):
    """Two checks at once in two threads: each passes its solution, the package is intact afterwards."""
    errors = []

    def run(name):
        try:
            for _ in range(3):
                EXERCISES[name].check(_solution(name))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("tucker_scores", "value_lr_multiplier", "mcs_pool")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert capsys.readouterr().out.count("Correct") == 9
    from ultramem_edu.layer import value_lr_multiplier

    assert value_lr_multiplier(0, 10, 3.0) == 3.0


def test_registry_refuses_duplicates_and_unknown_names():
    with pytest.raises(ValueError, match="already registered"):
        _grading.exercise(1, "def topm_read(x):\n    raise NotImplementedError\n")
    with pytest.raises(ValueError, match="no coding exercise"):
        stub_source("no_such_exercise")


def test_a_crashing_function_is_reported_with_its_case():
    from ultramem_edu.exercises import ch01

    def topm_read(query, keys, values, m, softmax=True):
        return query @ values                          # wrong inner dimension

    with pytest.raises(AssertionError, match="On the case 'random, softmax', topm_read raised RuntimeError"):
        ch01.check_topm_read(topm_read)
    with pytest.raises(AssertionError, match="Pass the function itself"):
        ch01.check_topm_read(0.5)


@pytest.mark.parametrize("seed", [1, 7, 2026])
@pytest.mark.parametrize("name", PLAIN)
def test_a_grading_seed_changes_the_inputs_and_the_solution_still_passes(name, seed, capsys):
    with _grading.grading_seed(seed):
        assert _grading.seed_for(11) != 11
        EXERCISES[name].check(_solution(name))
    assert "Correct" in capsys.readouterr().out
    assert _grading.seed_for(11) == 11


def test_the_grading_seed_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(_grading.SEED_ENV, "5")
    assert _grading.current_seed() == 5 and _grading.seed_for(3) != 3
    monkeypatch.setenv(_grading.SEED_ENV, "five")
    with pytest.raises(ValueError, match=_grading.SEED_ENV):
        _grading.current_seed()
    with pytest.raises(ValueError, match="seed must be"):
        with _grading.grading_seed(-1):
            pass


def _notebook_solution_cells():
    """(chapter notebook, exercise name, source) of each code cell tagged ``solution`` that defines
    a coding exercise, in the instructor edition."""
    found = []
    for path in sorted((ROOT / "book").glob("0[1-9]_*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code" or "solution" not in cell.get("metadata", {}).get("tags", []):
                continue
            source = "".join(cell["source"])
            match = re.search(r"^def (\w+)\(", source, re.M)
            if match and match.group(1) in EXERCISES:
                found.append((path.name, match.group(1), source))
    return found


@pytest.mark.parametrize("notebook,name,source", _notebook_solution_cells(), ids=lambda x: str(x)[:30])
def test_the_instructor_editions_solution_cell_passes_its_check(notebook, name, source, capsys):
    """The chapter's solution cell, run alone (after the chapter's imports of math and torch), passes."""
    import linecache
    import math

    scope = {"math": math, "torch": torch}
    if EXERCISES[name].chapter == 9:
        triton = pytest.importorskip("triton")
        import triton.language as tl

        scope.update(triton=triton, tl=tl)
    filename = f"<{notebook} solution {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), scope)
    EXERCISES[name].check(scope[name])
    assert "Correct" in capsys.readouterr().out
