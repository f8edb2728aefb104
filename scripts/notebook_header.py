"""The first cell of every chapter notebook, defined once.

Every ``book/*.ipynb`` starts with the same code cell. On Colab it clones the repository, installs
``ultramem_edu`` from the clone without its dependencies (Colab's own torch and numpy stay), then
only the light dependencies that are missing, and moves into the clone's ``book/`` folder so that
the chapter reads ``../figures/`` exactly as it does locally. Everywhere else (local, Binder, the book build, the tests) it
does nothing: there the package is already installed. The cell is tagged ``remove-cell``, so the
rendered page does not show it; the downloaded or Colab-opened notebook does.

Use::

    python scripts/notebook_header.py --fix book/03_layer.ipynb    # insert or refresh the cell
    python scripts/notebook_header.py --check book/*.ipynb         # exit 1 on a missing/stale cell

or from Python: ``header_cell()``, ``problems(path)``, ``apply(path)``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Colab only: install ultramem_edu"
TAGS = ["remove-cell"]


def repository() -> tuple[str, str]:
    """(url, branch) of the one repository, from ``_config.yml``."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo = config["repository"]
    return repo["url"].rstrip("/"), repo.get("branch", "main")


def header_source() -> str:
    url, branch = repository()
    return (
        f"{MARKER} (Colab's torch and numpy are kept).\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        "    import importlib.util, os\n"
        "\n"
        "    # a clone, so that the chapter finds the repository's figures/ and results as it does locally\n"
        '    if not os.path.isdir("/content/ultramem-edu"):\n'
        f"        !git clone --quiet --depth 1 --branch {branch} {url}.git /content/ultramem-edu\n"
        "    %pip install --quiet --no-deps -e /content/ultramem-edu\n"
        '    _missing = " ".join(m for m in ("plotly", "ipywidgets", "tqdm") if importlib.util.find_spec(m) is None)\n'
        "    if _missing:\n"
        "        %pip install --quiet {_missing}\n"
        '    os.chdir("/content/ultramem-edu/book")'
    )


def header_cell() -> dict:
    """The first cell as an nbformat-4 code cell (a plain dict)."""
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(TAGS)},
        "outputs": [],
        "source": header_source().splitlines(keepends=True),
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
    elif _source(first) != header_source():
        found.append(f"{path}: first cell differs from scripts/notebook_header.py:header_source()")
    elif not set(TAGS) <= set(first.get("metadata", {}).get("tags", [])):
        found.append(f"{path}: install cell lacks the tags {TAGS}")
    return found


def apply(path: Path) -> bool:
    """Insert the header, or replace an older version of it; return True if the file changed."""
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb.setdefault("cells", [])
    cell = header_cell()
    if cells and cells[0].get("cell_type") == "code" and _source(cells[0]).startswith(MARKER):
        old = cells[0]
        if _source(old) == header_source() and set(TAGS) <= set(old["metadata"].get("tags", [])):
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
    mode.add_argument("--print", action="store_true", help="print the header's source")
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if args.print:
        print(header_source())
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
