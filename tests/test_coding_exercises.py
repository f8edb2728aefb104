"""The coding exercises as a set: every chapter 1–9 has one, and each stub, solution and check agree.

(The typical wrong implementations each check must catch are in tests/test_exercises_chNN.py and
tests/test_exercises_puzzles.py.)
"""
import inspect

import pytest

from ultramem_edu.exercises import _grading
from ultramem_edu.exercises._grading import coding_exercises, load_stub, stub_source

EXERCISES = {e.name: e for e in coding_exercises()}
PLAIN = [name for name, e in EXERCISES.items() if e.chapter != 9]


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
    exercise = EXERCISES[name]
    stub = load_stub(name)
    assert inspect.signature(_python_function(stub)) == inspect.signature(_python_function(exercise.solution))
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
    EXERCISES[name].check(EXERCISES[name].solution)
    assert "Correct" in capsys.readouterr().out


def test_registry_refuses_mismatched_names_and_duplicates():
    def other():
        pass

    with pytest.raises(ValueError, match="must be called"):
        _grading.register(1, "def topm_read(x):\n    raise NotImplementedError\n", other, lambda fn: None)
    with pytest.raises(ValueError, match="already registered"):
        _grading.register(1, "def topm_read(x):\n    raise NotImplementedError\n",
                          EXERCISES["topm_read"].solution, lambda fn: None)
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


@pytest.mark.parametrize("name", PLAIN)
def test_solution_source_is_self_contained(name, capsys):
    """The solution's source, pasted alone into a notebook cell (after the chapter's imports of math
    and torch), defines a function that passes the check."""
    import math

    import torch

    scope = {"math": math, "torch": torch}
    exec(compile(_grading.source_of(EXERCISES[name].solution), f"<solution {name}>", "exec"), scope)
    EXERCISES[name].check(scope[name])
    assert "Correct" in capsys.readouterr().out
