"""Build the book exactly as CI does: ``python scripts/build_book.py``.

1. removes the previous build (``_build``, keeping the downloaded-asset cache),
2. fetches MathJax and the ipywidgets HTML manager by name from npm (cached) and copies plotly.js
   from the installed plotly (``scripts/book_assets.py``),
3. runs ``jupyter-book build . --all -W -n --keep-going`` with every notebook executed
   (``ULTRAMEM_BOOK_BUILD=1`` switches figures to the book's own plotly.js),
4. checks that every page of ``_toc.yml`` was written,
5. writes the chapters' reveal.js slides into the site (``scripts/make_slides.py``).

Exits non-zero on any warning, failed notebook or missing page. A cell still running after the
per-cell ``execute.timeout`` of ``_config.yml`` is such a failure: the log shows nbclient's
``CellTimeoutError`` with a preview of the cell under the notebook's name. A finished cell never
waits for that limit: the ``kernel_poll`` extension (``scripts/kernel_poll.py``) waits for kernel
messages in short slices.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import book_assets  # noqa: E402  (a sibling module, also the book's Sphinx extension)
import make_slides  # noqa: E402  (a sibling module: the chapters' slides)

ROOT = book_assets.ROOT
BUILD_DIR = ROOT / "_build"
HTML_DIR = BUILD_DIR / "html"


def toc_files(toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """Every ``file:`` of a jb-book table of contents, root first, without suffix."""
    toc = yaml.safe_load(toc_path.read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return [str(Path(f).with_suffix("")) for f in files]


def missing_pages(html_dir: Path = HTML_DIR, toc_path: Path = ROOT / "_toc.yml") -> list[str]:
    """``_toc.yml`` pages (and the site's index) that have no HTML file."""
    wanted = [f"{f}.html" for f in toc_files(toc_path)] + ["index.html"]
    return [page for page in wanted if not (html_dir / page).is_file()]


def clean(build_dir: Path = BUILD_DIR) -> None:
    """Remove the previous build but keep the cache of downloaded assets."""
    if not build_dir.is_dir():
        return
    for child in build_dir.iterdir():
        if child == book_assets.CACHE_DIR:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def jupyter_book_command(toc_path: Path) -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.is_file():
        found = shutil.which("jupyter-book")
        if found is None:
            raise RuntimeError("jupyter-book is not installed: pip install -r requirements.txt")
        exe = Path(found)
    return [str(exe), "build", str(ROOT), "--all", "-W", "-n", "--keep-going", "--toc", str(toc_path)]


def build(toc_path: Path = ROOT / "_toc.yml") -> int:
    start = time.perf_counter()
    clean()
    book_assets.ensure_assets()
    env = {**os.environ, "ULTRAMEM_BOOK_BUILD": "1"}
    # A kernel started by the build must import this checkout's package, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(jupyter_book_command(toc_path), cwd=ROOT, env=env)
    seconds = time.perf_counter() - start
    missing = missing_pages(HTML_DIR, toc_path)
    if result.returncode != 0:
        print(f"\nbook build FAILED (jupyter-book exit {result.returncode}) after {seconds:.0f} s")
        return result.returncode
    if missing:
        print(f"\nbook build FAILED after {seconds:.0f} s: no HTML for {', '.join(missing)}")
        return 1
    decks = make_slides.build_all(HTML_DIR)
    print(f"slides: {len(decks)} decks in {HTML_DIR / make_slides.SLIDES}")
    print(f"\nbook built in {seconds:.0f} s: open {HTML_DIR / 'index.html'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--toc", type=Path, default=ROOT / "_toc.yml",
        help="another table of contents, e.g. to try a new chapter (default: _toc.yml)",
    )
    args = parser.parse_args(argv)
    return build(args.toc.resolve())


if __name__ == "__main__":
    sys.exit(main())
