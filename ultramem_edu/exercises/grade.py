"""Grade students' chapter notebooks: run them, run the coding exercises' checks, write Gradescope's results.json.

    python -m ultramem_edu.exercises.grade NOTEBOOK [NOTEBOOK ...] [--seed S] --out results.json
        [--assets DIR] [--timeout SECONDS] [--points NAME=POINTS ...]
    python -m ultramem_edu.exercises.grade --submission DIR [--seed S] --out results.json ...

Each notebook (a student's copy of a chapter of the student edition, ``NN_*.ipynb``) is executed top
to bottom in a fresh Jupyter kernel, in a scratch folder holding a copy of it and of ``--assets`` (the
``quizzes/`` and ``figures/`` of the student edition, which the chapters load). Errors do not stop the
run: every cell executes. Then, in the same kernel, the grader runs the check of every coding
exercise of the chapter (:func:`ultramem_edu.exercises._grading.coding_exercises`) on the function of
that name the notebook defined — itself, not the check cells of the notebook, which a student can
edit — with the package's own implementation refused (:func:`~ultramem_edu.exercises._grading.refusing`)
and the hidden inputs drawn from the instructor's ``--seed`` (the book's inputs without one). The
cells that display a quiz are left out: the quizzes are not graded here.

The output is Gradescope's autograder format: ``{"score", "execution_time", "output", "tests": [...]}``
with one test per exercise: ``name``, ``number``, ``score``, ``max_score`` (``--points``, default 1
each), ``status`` (``passed``/``failed``) and ``output``, the check's confirmation or its diagnosis
(which mistake, on which case). Cells that failed with anything other than NotImplementedError are
listed in the top-level ``output``. ``scripts/make_autograder.py`` packs this command into a Gradescope
autograder bundle.

The checks run in the student's kernel, after the student's code: a student who sets out to subvert
the grader from inside the notebook (patching the package in the kernel) is not stopped; what is
refused is using the package's implementation of an exercise, knowingly or not.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ._grading import SEED_ENV, coding_exercises, grading_seed

__all__ = ["run_checks", "grade_notebooks", "exercises_of", "submitted_notebooks", "main"]

_MARK = "ULTRAMEM_EDU_GRADE_RESULT "
_QUIZ = re.compile(r"\bshow_quiz\(")
_DEF = re.compile(r"^def (\w+)\(", re.M)
CELL_TIMEOUT_S = 300


def run_checks(namespace: dict[str, Any], names: list[str], seed: int | None = None) -> list[dict[str, Any]]:
    """Run the check of each exercise in ``names`` on ``namespace[name]``; one dict per exercise:
    ``name``, ``passed`` (bool), ``output`` (the check's print, or the failure's message)."""
    known = {e.name: e for e in coding_exercises()}
    results = []
    for name in names:
        if name not in known:
            raise ValueError(f"no coding exercise named {name!r}; known: {sorted(known)}")
        fn = namespace.get(name)
        if fn is None:
            results.append({"name": name, "passed": False,
                            "output": f"{name} is not defined in the notebook: keep the stub's name and run its cell."})
            continue
        printed = io.StringIO()
        try:
            with grading_seed(seed), contextlib.redirect_stdout(printed):
                known[name].check(fn)
        except NotImplementedError as err:
            results.append({"name": name, "passed": False, "output": f"Not done yet: {err}"})
        except AssertionError as err:
            results.append({"name": name, "passed": False, "output": str(err) or "the check failed"})
        except Exception as err:  # the check itself could not run the function: report, never crash
            results.append({"name": name, "passed": False,
                            "output": f"The check could not run {name}: {type(err).__name__}: {err}"})
        else:
            results.append({"name": name, "passed": True, "output": printed.getvalue().strip()})
    return results


def exercises_of(nb: dict[str, Any], filename: str = "") -> list[str]:
    """The coding exercises a notebook is graded on: every exercise of its chapter (from the file name
    ``NN_*.ipynb``), and any other exercise whose function one of its code cells defines."""
    exercises = coding_exercises()
    names = []
    match = re.match(r"(\d\d)_", Path(filename).name)
    if match:
        names += [e.name for e in exercises if e.chapter == int(match.group(1))]
    defined = set()
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            defined.update(_DEF.findall(_source(cell)))
    names += [e.name for e in exercises if e.name in defined and e.name not in names]
    return names


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _grading_cell(names: list[str], seed: int | None) -> str:
    return (
        "import json as _ultramem_json\n"
        "from ultramem_edu.exercises.grade import run_checks as _ultramem_run_checks\n"
        f"print({_MARK!r} + _ultramem_json.dumps(_ultramem_run_checks(globals(), {names!r}, {seed!r})))\n"
    )


def _install_kernel_poll() -> None:
    """Install the repository's fix of nbclient's stalled waits (``scripts/kernel_poll.py``: a widget
    cell's reply can otherwise sit out the whole cell timeout) when it is at hand: importable (the
    autograder bundle puts it on the path) or in the repository this package runs from."""
    try:
        import kernel_poll  # type: ignore[import-not-found]
    except ImportError:
        path = Path(__file__).resolve().parents[2] / "scripts" / "kernel_poll.py"
        if not path.is_file():
            return
        import importlib.util

        spec = importlib.util.spec_from_file_location("kernel_poll", path)
        kernel_poll = importlib.util.module_from_spec(spec)
        sys.modules["kernel_poll"] = kernel_poll
        spec.loader.exec_module(kernel_poll)
    kernel_poll.install()


def _execute(nb_path: Path, names: list[str], seed: int | None, timeout: int) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Execute the notebook with a grading cell appended; return (check results or None, problems)."""
    import nbformat
    from nbclient import NotebookClient

    _install_kernel_poll()
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells = [c for c in nb.cells if not (c.cell_type == "code" and _QUIZ.search(c.source))]
    nb.cells.append(nbformat.v4.new_code_cell(_grading_cell(names, seed)))
    env_seed = os.environ.get(SEED_ENV)
    if seed is None:
        os.environ.pop(SEED_ENV, None)
    else:
        os.environ[SEED_ENV] = str(seed)                    # the kernel inherits it: the notebook's own checks too
    problems: list[str] = []
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": str(nb_path.parent)}})
        client.execute()
    except Exception as err:  # the kernel died, or a cell hung past the timeout
        problems.append(f"{nb_path.name}: the notebook did not run to the end: {type(err).__name__}: "
                        f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}")
    finally:
        if env_seed is None:
            os.environ.pop(SEED_ENV, None)
        else:
            os.environ[SEED_ENV] = env_seed
    results = None
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and _MARK in out.get("text", "") and i == len(nb.cells) - 1:
                line = next(ln for ln in out["text"].splitlines() if ln.startswith(_MARK))
                results = json.loads(line[len(_MARK):])
            elif (out.get("output_type") == "error" and out.get("ename") != "NotImplementedError"
                  and "needs-solution" not in cell.metadata.get("tags", [])):   # a check cell: graded below
                first = next((ln for ln in cell.source.splitlines() if ln.strip()), "")
                where = "the grader's cell" if i == len(nb.cells) - 1 else f"cell {i} ({first[:60]!r})"
                problems.append(f"{nb_path.name}: {where} raised {out.get('ename')}: {out.get('evalue')}")
    return results, problems


def grade_notebooks(notebooks: list[Path], seed: int | None = None, assets: Path | None = None,
                    points: dict[str, float] | None = None, timeout: int = CELL_TIMEOUT_S) -> dict[str, Any]:
    """Grade ``notebooks``; return Gradescope's results.json as a dict (see the module's docstring)."""
    if not notebooks:
        raise ValueError("notebooks must name at least one .ipynb file")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    if not (isinstance(timeout, int) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    points = dict(points or {})
    known = {e.name for e in coding_exercises()}
    unknown = sorted(set(points) - known)
    if unknown:
        raise ValueError(f"points names unknown exercises {unknown}; known: {sorted(known)}")
    start = time.perf_counter()
    tests: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in map(Path, notebooks):
        if path.suffix != ".ipynb" or not path.is_file():
            raise ValueError(f"each notebook must be an existing .ipynb file, got {path}")
        nb = json.loads(path.read_text(encoding="utf-8"))
        names = exercises_of(nb, path.name)
        if not names:
            problems.append(f"{path.name}: no coding exercise to grade (name the file NN_*.ipynb as the chapter is).")
            continue
        with tempfile.TemporaryDirectory(prefix="ultramem-grade-") as tmp:
            work = Path(tmp)
            if assets is not None:
                for item in Path(assets).iterdir():
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, work / item.name)
            target = work / path.name
            shutil.copy2(path, target)
            try:
                results, found = _execute(target, names, seed, timeout)
            except Exception:  # noqa: BLE001 - a grader error must still produce a results file
                results, found = None, [f"{path.name}: the grader failed: {traceback.format_exc(limit=2)}"]
        problems += found
        by_name = {r["name"]: r for r in results or []}
        for name in names:
            r = by_name.get(name, {"passed": False, "output": "The checks did not run: the notebook stopped first "
                                                               "(see the output above)."})
            max_score = float(points.get(name, 1.0))
            tests.append({
                "name": f"{path.stem}: {name}",
                "number": f"{len(tests) + 1}",
                "score": max_score if r["passed"] else 0.0,
                "max_score": max_score,
                "status": "passed" if r["passed"] else "failed",
                "output": r["output"],
                "visibility": "visible",
            })
    total = sum(t["score"] for t in tests)
    output = [f"{sum(t['status'] == 'passed' for t in tests)} of {len(tests)} exercises pass"
              + (f" (grading seed {seed})" if seed is not None else "") + "."]
    if problems:
        output += ["", "Cells that failed (other than unfinished exercises):"] + [f"- {p}" for p in problems]
    return {
        "score": total,
        "execution_time": round(time.perf_counter() - start, 1),
        "output": "\n".join(output),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }


def submitted_notebooks(folder: Path) -> list[Path]:
    """The chapter notebooks (``NN_*.ipynb``) anywhere under ``folder``, checkpoints left out."""
    found = [p for p in Path(folder).rglob("*.ipynb")
             if re.match(r"\d\d_", p.name) and ".ipynb_checkpoints" not in p.parts]
    return sorted(found, key=lambda p: (p.name, str(p)))


def _no_notebook(folder: Path) -> dict[str, Any]:
    return {"score": 0.0, "execution_time": 0.0, "visibility": "visible", "stdout_visibility": "hidden",
            "output": f"No chapter notebook found in the submission ({folder}): submit the notebooks of the "
                      "student edition under their names (e.g. 02_product_keys.ipynb).",
            "tests": []}


def _points(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            sep = ""
        if not sep or out[name] < 0:
            raise SystemExit(f"--points takes NAME=POINTS with POINTS >= 0, got {item!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ultramem_edu.exercises.grade",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="the student's chapter notebooks (NN_*.ipynb)")
    parser.add_argument("--submission", type=Path, default=None,
                        help="grade every chapter notebook (NN_*.ipynb) under this folder instead")
    parser.add_argument("--seed", type=int, default=None, help="grading seed: the hidden inputs of the checks")
    parser.add_argument("--out", type=Path, required=True, help="where to write results.json")
    parser.add_argument("--assets", type=Path, default=None,
                        help="a folder whose contents the notebooks load (the student edition's quizzes/, figures/)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S, help="per-cell timeout in seconds")
    parser.add_argument("--points", nargs="*", default=[], metavar="NAME=POINTS",
                        help="points of an exercise (default 1 each)")
    args = parser.parse_args(argv)
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if bool(args.notebooks) == (args.submission is not None):
        parser.error("give the notebooks, or --submission DIR, not both")
    notebooks = args.notebooks if args.submission is None else submitted_notebooks(args.submission)
    if notebooks:
        result = grade_notebooks(notebooks, seed=args.seed, assets=args.assets, points=_points(args.points),
                                 timeout=args.timeout)
    else:
        result = _no_notebook(args.submission)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{result['output'].splitlines()[0]} Score {result['score']:g} of "
          f"{sum(t['max_score'] for t in result['tests']):g}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
