"""Build the book exactly as CI does: ``python scripts/build_book.py``.

1. removes the previous build (``_build``, keeping the downloaded-asset cache),
2. fetches MathJax and the ipywidgets HTML manager by name from npm (cached) and copies plotly.js
   from the installed plotly (``scripts/book_assets.py``),
3. runs ``jupyter-book build . --all -W -n --keep-going`` with every notebook executed
   (``ULTRAMEM_BOOK_BUILD=1`` switches figures to the book's own plotly.js),
4. checks that every page of ``_toc.yml`` was written,
5. writes the chapters' reveal.js slides into the site (``scripts/make_slides.py``).

``python scripts/build_book.py --pdf`` then builds the PDF edition as well (``build_pdf``): the same
notebooks executed again with ``ULTRAMEM_BOOK_PDF=1`` (figures as static images, widgets as their
default view with a link to the live page), through Sphinx's LaTeX builder and ``latexmk``
(XeLaTeX), into ``_build/pdf/ultramem-edu.pdf``, copied into the site as ``ultramem-edu.pdf``
(the sidebar links to it). ``--only-pdf --out DIR`` builds just the PDF, into DIR. LaTeX comes
from Debian: ``apt-get install -y texlive-latex-recommended texlive-latex-extra
texlive-fonts-recommended texlive-xetex latexmk fonts-freefont-otf fonts-dejavu-core librsvg2-bin``.

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
PDF_DIR = BUILD_DIR / "pdf"
PDF_NAME = book_assets.PDF_NAME


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


def jupyter_book_command(toc_path: Path, pdf_out: Path | None = None) -> list[str]:
    exe = Path(sys.executable).with_name("jupyter-book")
    if not exe.is_file():
        found = shutil.which("jupyter-book")
        if found is None:
            raise RuntimeError("jupyter-book is not installed: pip install -r requirements.txt")
        exe = Path(found)
    command = [str(exe), "build", str(ROOT), "--all", "-W", "-n", "--keep-going", "--toc", str(toc_path)]
    if pdf_out is not None:
        command += ["--builder", "pdflatex", "--path-output", str(pdf_out)]
        if toc_path.resolve() != (ROOT / "_toc.yml").resolve():
            # some chapters only (a test): their links to the others cannot resolve
            command.remove("-W")
    return command


def _book_env(pdf: bool = False) -> dict[str, str]:
    env = {**os.environ, "ULTRAMEM_BOOK_BUILD": "1"}
    if pdf:
        env["ULTRAMEM_BOOK_PDF"] = "1"
    # A kernel started by the build must import this checkout's package, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def latex_tools_missing() -> list[str]:
    """The programs the PDF build needs that are not on the path."""
    return [tool for tool in ("latexmk", "xelatex", "rsvg-convert") if shutil.which(tool) is None]


def build_pdf(toc_path: Path = ROOT / "_toc.yml", out_dir: Path = PDF_DIR) -> Path | None:
    """Build the PDF edition of the chapters in ``toc_path`` into ``out_dir``; its path, or None."""
    missing = latex_tools_missing()
    if missing:
        print(f"PDF build FAILED: {', '.join(missing)} not found; see scripts/build_book.py's docstring")
        return None
    start = time.perf_counter()
    book_assets.ensure_assets()
    out_dir = out_dir.resolve()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    result = subprocess.run(jupyter_book_command(toc_path, pdf_out=out_dir), cwd=ROOT, env=_book_env(pdf=True))
    made = out_dir / "_build" / "latex" / PDF_NAME
    seconds = time.perf_counter() - start
    if result.returncode != 0 or not made.is_file():
        print(f"\nPDF build FAILED (jupyter-book exit {result.returncode}) after {seconds:.0f} s")
        return None
    pdf = out_dir / PDF_NAME
    shutil.copy2(made, pdf)
    print(f"\nPDF built in {seconds:.0f} s: {pdf}")
    return pdf


def build(toc_path: Path = ROOT / "_toc.yml", pdf: bool = False) -> int:
    start = time.perf_counter()
    clean()
    book_assets.ensure_assets()
    env = _book_env()
    if pdf:  # the sidebar links to the PDF copied into the site, not to the published one
        env[book_assets.LOCAL_PDF_ENV] = "1"
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
    if pdf:
        made = build_pdf(toc_path, PDF_DIR)
        if made is None:
            return 1
        shutil.copy2(made, HTML_DIR / PDF_NAME)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--toc", type=Path, default=ROOT / "_toc.yml",
        help="another table of contents, e.g. to try a new chapter (default: _toc.yml)",
    )
    parser.add_argument("--pdf", action="store_true", help="also build the PDF edition (LaTeX)")
    parser.add_argument("--only-pdf", action="store_true", help="build only the PDF edition")
    parser.add_argument("--out", type=Path, default=PDF_DIR, help="where --only-pdf writes (default: _build/pdf)")
    args = parser.parse_args(argv)
    if args.only_pdf:
        return 0 if build_pdf(args.toc.resolve(), args.out) else 1
    return build(args.toc.resolve(), pdf=args.pdf)


if __name__ == "__main__":
    sys.exit(main())
