"""The autograder: ``ultramem_edu.exercises.grade`` scores a student's notebooks in Gradescope's format,
and the bundle of scripts/make_autograder.py runs it on a correct and on a broken submission."""
import importlib.util
import inspect
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import exercise_solutions as solutions
from ultramem_edu.exercises import grade
from ultramem_edu.exercises._grading import load_stub

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "03_pkm_to_ultramem.ipynb"          # one coding exercise, value_lr_multiplier


def _script(name):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_run_checks_scores_a_solution_a_stub_a_mistake_and_the_package():
    from ultramem_edu.layer import value_lr_multiplier as package_version

    def integer_division(step, total_steps, k):
        return 1.0 + (k - 1.0) * max(0, 1 - step // total_steps)

    for namespace, passed, says in [
        ({"value_lr_multiplier": solutions.value_lr_multiplier}, True, "Correct"),
        ({"value_lr_multiplier": load_stub("value_lr_multiplier")}, False, "Not done yet"),
        ({"value_lr_multiplier": integer_division}, False, "integer division"),
        ({"value_lr_multiplier": package_version}, False, "this calls the package's implementation"),
        ({}, False, "not defined in the notebook"),
    ]:
        (result,) = grade.run_checks(namespace, ["value_lr_multiplier"], seed=3)
        assert result["passed"] is passed and says in result["output"], result
    with pytest.raises(ValueError, match="no coding exercise"):
        grade.run_checks({}, ["nothing"])


def test_exercises_of_a_notebook_follow_its_chapter_and_its_definitions():
    nb = {"cells": [{"cell_type": "code", "source": "def mcs_pool(values, indices, core_scores, num_blocks=1):\n  pass"}]}
    assert grade.exercises_of(nb, "05_tdqkr.ipynb") == ["tucker_scores", "tdqkr_two_stage", "mcs_pool"]
    assert grade.exercises_of({"cells": []}, "homework.ipynb") == []


def test_grade_refuses_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        grade.grade_notebooks([])
    with pytest.raises(ValueError, match="seed must be"):
        grade.grade_notebooks([tmp_path / "01_x.ipynb"], seed=-2)
    with pytest.raises(ValueError, match="points names unknown"):
        grade.grade_notebooks([tmp_path / "01_x.ipynb"], points={"nothing": 1})
    with pytest.raises(ValueError, match="existing .ipynb"):
        grade.grade_notebooks([tmp_path / "01_x.ipynb"])
    with pytest.raises(SystemExit):
        grade.main(["--out", str(tmp_path / "r.json")])            # neither notebooks nor --submission


def test_an_empty_submission_gets_a_results_file_that_says_so(tmp_path):
    (tmp_path / "submission").mkdir()
    assert grade.main(["--submission", str(tmp_path / "submission"), "--out", str(tmp_path / "results.json")]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert result["score"] == 0 and result["tests"] == [] and "No chapter notebook" in result["output"]


def _submission(function_source):
    """The student edition of chapter 3 with the stub cell replaced by ``function_source``."""
    mse = _script("make_student_edition")
    nb = mse.student_notebook(json.loads((ROOT / "book" / CHAPTER).read_text(encoding="utf-8")))
    stubs = [c for c in nb["cells"] if "stub" in mse.tags(c) and "def value_lr_multiplier(" in "".join(c["source"])]
    assert len(stubs) == 1
    stubs[0]["source"] = function_source
    return nb


INTEGER_DIVISION = '''def value_lr_multiplier(step, total_steps, k):
    return 1.0 + (k - 1.0) * max(0, 1 - step // total_steps)
'''
PACKAGE = '''from ultramem_edu.layer import value_lr_multiplier
'''


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    """The bundle, built by the script with seed 7 and 2 points for the exercise, unpacked as Gradescope
    unpacks it into /autograder/source."""
    tmp = tmp_path_factory.mktemp("autograder")
    bundle = _script("make_autograder").build(tmp / "autograder.zip", seed=7, points={"value_lr_multiplier": 2.0})
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) for i in zf.infolist()}
        zf.extractall(tmp / "source")
    for name in ("setup.sh", "run_autograder"):
        assert name in names and modes[name] & stat.S_IXUSR, name
        (tmp / "source" / name).chmod(0o755)
    return tmp / "source", names


def test_the_bundle_holds_what_gradescope_runs(autograder):
    source, names = autograder
    assert {"setup.sh", "run_autograder", "requirements.txt", "config.json", "kernel_poll.py",
            "package/pyproject.toml", "package/ultramem_edu/exercises/grade.py", "assets/quizzes/ch03.json"} <= names
    assert json.loads((source / "config.json").read_text()) == {"seed": 7, "points": {"value_lr_multiplier": 2.0}}
    pins = (source / "requirements.txt").read_text().split()
    repo_pins = (ROOT / "requirements.txt").read_text()
    assert "torch==2.13.0" in pins and all(pin in repo_pins for pin in pins)
    assert not any(n.startswith("package/ultramem_edu/") and "__pycache__" in n for n in names)
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(source / script)], check=True)   # parses


def _run_autograder(source, submission_notebooks, tmp):
    """run_autograder with /autograder moved to ``tmp`` (source, submission, results), with this
    test's Python; returns results.json."""
    root = tmp
    (root / "submission").mkdir(parents=True)
    for relative, nb in submission_notebooks.items():
        path = root / "submission" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(nb), encoding="utf-8")
    os.symlink(source, root / "source")
    env = dict(os.environ, AUTOGRADER_ROOT=str(root), AUTOGRADER_PYTHON=sys.executable)
    run = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((root / "results" / "results.json").read_text())


@pytest.mark.slow
def test_the_bundle_scores_a_correct_submission(autograder, tmp_path):
    source, _ = autograder
    correct = inspect.getsource(solutions.value_lr_multiplier)
    result = _run_autograder(source, {CHAPTER: _submission(correct)}, tmp_path)
    (test,) = result["tests"]
    assert test["status"] == "passed" and test["score"] == test["max_score"] == 2.0, result
    assert result["score"] == 2.0 and "Correct" in test["output"]
    assert "grading seed 7" in result["output"]


@pytest.mark.slow
def test_the_bundle_scores_a_broken_submission(autograder, tmp_path):
    source, _ = autograder
    result = _run_autograder(source, {f"mistake/{CHAPTER}": _submission(INTEGER_DIVISION),
                                      f"package/{CHAPTER}": _submission(PACKAGE)}, tmp_path)
    assert result["score"] == 0.0 and len(result["tests"]) == 2, result
    outputs = sorted(t["output"] for t in result["tests"])
    assert all(t["status"] == "failed" and t["max_score"] == 2.0 for t in result["tests"])
    assert "integer division" in outputs[0]
    assert "this calls the package's implementation of the exercise" in outputs[1]
