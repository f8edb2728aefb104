"""Locally served JavaScript for the book, and the Sphinx extension that wires it in.

Every page of the built book loads its scripts, styles and fonts from the book itself:

* MathJax 3 (npm package ``mathjax``) for the math,
* plotly.js, copied from the installed ``plotly`` Python package so that the figures' JSON and the
  library that draws it always come from the same release,
* the ipywidgets HTML manager (npm package ``@jupyter-widgets/html-manager``), which draws the
  saved state of widgets on a page without a kernel.

The npm packages are fetched by name with ``npm pack`` into ``_build/asset-cache/`` (gitignored,
kept across builds) and unpacked into ``book/_extra/vendor/`` (gitignored), which Sphinx copies
to the root of the site (``html_extra_path``). Nothing large is committed.

As a Sphinx extension (``_config.yml``: ``sphinx.local_extensions``) this module

* fetches the assets when the build starts, so a plain ``jupyter-book build .`` works too,
* adds plotly.js to exactly the pages that hold a plotly figure,
* warns (an error under ``-W``) about any page that still loads a script, stylesheet or font
  from another host,
* names bibliography entries list items (their ARIA role is deprecated) and lets a hidden
  cell's toggle be named by what it shows,
* gives the sidebar's link to the PDF edition its address (``pdf_url``), and for the PDF edition
  (Sphinx's LaTeX builder) turns the widgets' "online edition" links into the chapter's own web
  address and the SVG drawings into PDF (Debian's ``rsvg-convert``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = ROOT / "_build" / "asset-cache"
EXTRA_DIR = ROOT / "book" / "_extra"
VENDOR_DIR = EXTRA_DIR / "vendor"

MATHJAX_SPEC = "mathjax@3.2.2"
HTML_MANAGER_SPEC = "@jupyter-widgets/html-manager@1.0.13"
# The accessibility checker the browser tests inject into every built page (never served by the
# book itself): fetched and cached the same way.
AXE_SPEC = "axe-core@4.14.1"

# The PDF edition's file name; scripts/build_book.py --pdf copies it to the site's root.
PDF_NAME = "ultramem-edu.pdf"
# Set by build_book.py --pdf: the sidebar then links to the site's own copy of the PDF, otherwise
# to the published one.
LOCAL_PDF_ENV = "ULTRAMEM_BOOK_LOCAL_PDF"
# What ultramem_edu.viz._plotly.widget_note links to; the chapter's address in the PDF.
LIVE_PAGE_URL = "https://ultramem-edu.github.io/ultramem-edu/#live-page"

# Paths as seen from the site root, i.e. relative to _build/html.
MATHJAX_FILE = "vendor/mathjax/tex-mml-chtml.js"
PLOTLY_FILE = "vendor/plotly/plotly.min.js"
HTML_MANAGER_FILE = "vendor/html-manager/embed.js"

# What MathJax's combined CommonHTML bundle loads at run time: its fonts, the TeX extensions it
# autoloads, and the accessibility/menu components a reader can switch on from its menu.
_MATHJAX_PARTS = (
    "tex-mml-chtml.js",
    "input",
    "output/chtml.js",
    "output/chtml",
    "a11y",
    "ui",
    "sre",
    "adaptors",
)


def _tarball_name(spec: str) -> str:
    """File name ``npm pack`` gives a spec: ``@scope/name@1.2.3`` -> ``scope-name-1.2.3.tgz``."""
    name, _, version = spec.rpartition("@")
    return f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"


def fetch_npm(spec: str, cache_dir: Path = CACHE_DIR) -> Path:
    """Return the cached tarball of an exact npm spec, downloading it with ``npm pack`` once."""
    tarball = cache_dir / _tarball_name(spec)
    if tarball.is_file():
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"npm is needed once to fetch {spec} for the book (then it is cached in {cache_dir}); "
            "install Node.js/npm, e.g. `apt-get install -y npm`."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
        subprocess.run(
            [npm, "pack", spec, "--pack-destination", tmp, "--silent"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (packed,) = Path(tmp).glob("*.tgz")
        packed.replace(tarball)
    return tarball


def _unpack(tarball: Path, dest: Path) -> Path:
    with tarfile.open(tarball) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package"


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.map"))
    else:
        shutil.copy2(src, dst)


def _plotly_js() -> tuple[Path, str]:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"the installed plotly {plotly.__version__} has no {path}")
    return path, plotly.__version__


def ensure_assets(vendor_dir: Path = VENDOR_DIR, cache_dir: Path = CACHE_DIR) -> Path:
    """Make ``vendor_dir`` hold MathJax, plotly.js and the widget manager; return it.

    Idempotent and cheap when nothing changed (a stamp records what was unpacked). Two builds
    at once (the tests build the site and a PDF side by side) take turns: a file lock.
    """
    import fcntl

    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".assets.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _ensure_assets(vendor_dir, cache_dir)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_assets(vendor_dir: Path, cache_dir: Path) -> Path:
    plotly_js, plotly_version = _plotly_js()
    wanted = {"layout": 2, "mathjax": MATHJAX_SPEC, "html-manager": HTML_MANAGER_SPEC, "plotly": plotly_version}
    stamp = vendor_dir / "versions.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return vendor_dir

    if vendor_dir.exists():
        shutil.rmtree(vendor_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mathjax = _unpack(fetch_npm(MATHJAX_SPEC, cache_dir), tmp / "mathjax")
        for part in _MATHJAX_PARTS:
            _copy(mathjax / "es5" / part, vendor_dir / "mathjax" / part)
        _copy(mathjax / "LICENSE", vendor_dir / "mathjax" / "LICENSE")

        manager = _unpack(fetch_npm(HTML_MANAGER_SPEC, cache_dir), tmp / "html-manager")
        # Only the standalone bundle (no require.js needed) and the fonts/images it loads.
        for item in (manager / "dist").iterdir():
            if "amd" not in item.name and item.suffix != ".map":
                _copy(item, vendor_dir / "html-manager" / item.name)
        _copy(manager / "LICENSE", vendor_dir / "html-manager" / "LICENSE")

    _copy(plotly_js, vendor_dir / "plotly" / "plotly.min.js")
    stamp.write_text(json.dumps(wanted, indent=1) + "\n")
    return vendor_dir


def axe_js(cache_dir: Path = CACHE_DIR) -> Path:
    """Path of ``axe.min.js`` (npm package ``axe-core``), fetched by name once and cached."""
    dest = cache_dir / _tarball_name(AXE_SPEC).removesuffix(".tgz")
    script = dest / "package" / "axe.min.js"
    if not script.is_file():
        tarball = fetch_npm(AXE_SPEC, cache_dir)
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            _unpack(tarball, Path(tmp))
            if dest.exists():
                shutil.rmtree(dest)
            Path(tmp).replace(dest)
            dest.chmod(0o755)
            Path(tmp).mkdir()  # TemporaryDirectory removes what it made
    return script


# --- external references in built pages ------------------------------------------------------

_TAG = re.compile(r"<(script|link|img|iframe|source|video|audio)\b[^>]*>", re.IGNORECASE)
_ATTR = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_REL = re.compile(r"""\brel\s*=\s*(["'])(.*?)\1""", re.IGNORECASE)
_CSS_URL = re.compile(r"""(?:@import\s+|url\()\s*["']?((?:https?:)?//[^"')\s]+)""", re.IGNORECASE)
# <link rel=...> kinds a browser fetches by itself; others (canonical, next, ...) are just links.
_LOADED_LINK_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "prefetch",
                     "preconnect", "dns-prefetch", "manifest", "apple-touch-icon"}


def external_references(html: str) -> list[str]:
    """URLs on other hosts that a browser would load for this page (scripts, styles, fonts, media).

    Plain hyperlinks (``<a href>``, ``<link rel="canonical">``) are not loads and are not listed.
    """
    found = []
    for tag in _TAG.finditer(html):
        text = tag.group(0)
        kind = tag.group(1).lower()
        attrs = {m.group(1).lower(): m.group(3) for m in _ATTR.finditer(text)}
        if kind == "link":
            rels = set((_REL.search(text) or [None, None, ""])[2].lower().split())
            if not rels & _LOADED_LINK_RELS:
                continue
            url = attrs.get("href", "")
        else:
            url = attrs.get("src", "")
        if re.match(r"(https?:)?//", url, re.IGNORECASE):
            found.append(url)
    for style in re.finditer(r"<style\b[^>]*>(.*?)</style>", html, re.IGNORECASE | re.DOTALL):
        found.extend(m.group(1) for m in _CSS_URL.finditer(style.group(1)))
    return found


# --- the Sphinx extension ----------------------------------------------------------------------


def _on_config_inited(app, config) -> None:
    ensure_assets()


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    # sphinx-thebe adds its inline configuration script twice under jupyter-book, and the
    # second `const THEBE_JS_URL` is a SyntaxError in the console of every page.
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        seen = set()
        unique = []
        for js in scripts:
            key = (js.filename or "", js.attributes.get("body"))
            if not js.filename and key in seen:
                continue
            seen.add(key)
            unique.append(js)
        scripts[:] = unique
    # docutils marks each bibliography entry role="doc-biblioentry", deprecated in ARIA 1.2; its
    # list (role="list") then has no listitem children (axe: aria-deprecated-role, and the critical
    # aria-required-children). A list item is what an entry is.
    # myst-nb names a hidden cell's <summary> "Toggle hidden content" while it shows "Show code
    # cell source": a speech-input user says what they see (axe: label-content-name-mismatch).
    # Without the aria-label the summary is named by its visible text.
    body = context.get("body")
    if isinstance(body, str):
        context["body"] = (body.replace('role="doc-biblioentry"', 'role="listitem"')
                           .replace('<summary aria-label="Toggle hidden content">', "<summary>"))
    if os.environ.get(LOCAL_PDF_ENV) == "1":
        context["pdf_url"] = context["pathto"](PDF_NAME, 1)
    else:
        context["pdf_url"] = (app.config.html_baseurl or "").rstrip("/") + "/" + PDF_NAME
    if 'class="plotly-graph-div"' in context.get("body", ""):
        # Relative to _static/, as Sphinx resolves script paths; defer: figures draw on
        # DOMContentLoaded (see ultramem_edu.viz._plotly), after deferred scripts have run.
        app.add_js_file("../" + PLOTLY_FILE, loading_method="defer")


def _on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    outdir = Path(app.outdir)
    for page in sorted(outdir.rglob("*.html")):
        if {VENDOR_DIR.name, "_static", "_sources"} & set(page.relative_to(outdir).parts):
            continue
        for url in external_references(page.read_text(encoding="utf-8")):
            logger.warning(
                "%s loads %s from another host; serve it from the book (scripts/book_assets.py)",
                page.relative_to(outdir),
                url,
                type="book_assets",
                subtype="external",
            )


def _on_doctree_read(app, doctree) -> None:
    # A page's notebook outputs are parsed as it is read: the page is known (the LaTeX builder
    # later joins every page into one tree).
    from docutils import nodes

    page = (app.config.html_baseurl or "").rstrip("/") + f"/{app.env.docname}.html"
    for ref in doctree.findall(nodes.reference):
        if ref.get("refuri") == LIVE_PAGE_URL:
            ref["refuri"] = page


def _on_doctree_resolved(app, doctree, docname) -> None:
    # LaTeX sets a long table's columns as wide as their longest cell ({lll}), which runs the
    # notation table off the page: give every table's columns their source widths, wrapping text.
    if app.builder.format != "latex":
        return
    from docutils import nodes

    for table in doctree.findall(nodes.table):
        specs = list(table.findall(nodes.colspec))
        if specs and all("colwidth" in spec for spec in specs) and "colwidths-given" not in table["classes"]:
            table["classes"].append("colwidths-given")


def _svg_converter():
    from sphinx.transforms.post_transforms.images import ImageConverter

    class RsvgConverter(ImageConverter):
        """SVG drawings to PDF for LaTeX, vector to vector (Debian package librsvg2-bin)."""

        conversion_rules = [("image/svg+xml", "application/pdf")]

        def is_available(self) -> bool:
            return shutil.which("rsvg-convert") is not None

        def convert(self, _from: str, _to: str) -> bool:
            subprocess.run(["rsvg-convert", "-f", "pdf", "-o", _to, _from], check=True)
            return True

    return RsvgConverter


def setup(app):
    # Before Sphinx checks that html_extra_path exists (its own handler runs at priority 800).
    app.connect("config-inited", _on_config_inited, priority=100)
    app.connect("html-page-context", _on_page_context)
    app.connect("build-finished", _on_build_finished)
    app.connect("doctree-read", _on_doctree_read)
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.add_post_transform(_svg_converter())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
