"""The book: its real build, its pages, its locally served assets, and the conventions around it."""

from __future__ import annotations

import html.parser
import json
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from conftest_book import HTML_DIR, ROOT, built_book  # noqa: F401  (built_book is a fixture)

import book_assets
import build_book
import notebook_header

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPO_URL = CONFIG["repository"]["url"].rstrip("/")


def site_pages() -> list[Path]:
    """Built pages, without vendored files and the theme's template fragments in _static/."""
    skip = {"vendor", "_static", "_sources"}
    return sorted(p for p in HTML_DIR.rglob("*.html") if not skip & set(p.relative_to(HTML_DIR).parts))


class _Loads(html.parser.HTMLParser):
    """Collect what a page makes the browser load: script src and stylesheet/preload/icon href."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.urls.append(a["src"])
            self.scripts.append(a["src"])
        elif tag == "link" and a.get("href"):
            rels = set((a.get("rel") or "").lower().split())
            if rels & {"stylesheet", "preload", "icon", "modulepreload"}:
                self.urls.append(a["href"])
        elif tag in ("img", "source", "iframe") and a.get("src"):
            self.urls.append(a["src"])


def loads(page: Path) -> _Loads:
    parser = _Loads()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


# --- the build ---------------------------------------------------------------------------------


def test_every_toc_page_is_built(built_book):
    assert build_book.toc_files()[0] == "book/intro"
    assert build_book.missing_pages(built_book.html_dir) == []


def test_missing_page_check_reports_absent_pages(tmp_path):
    (tmp_path / "index.html").write_text("<html></html>")
    missing = build_book.missing_pages(tmp_path)
    assert "book/00_preface.html" in missing and "index.html" not in missing


def test_no_page_loads_anything_from_another_host(built_book):
    pages = site_pages()
    assert len(pages) >= len(build_book.toc_files())
    offenders = {}
    for page in pages:
        external = [u for u in loads(page).urls if re.match(r"(https?:)?//", u)]
        external += book_assets.external_references(page.read_text(encoding="utf-8"))
        if external:
            offenders[str(page.relative_to(HTML_DIR))] = sorted(set(external))
    assert offenders == {}


def test_every_loaded_file_exists_locally(built_book):
    broken = []
    for page in site_pages():
        for url in loads(page).urls:
            path = urllib.parse.urlsplit(url).path
            if not path or re.match(r"(https?:)?//", url) or url.startswith("data:"):
                continue
            target = (page.parent / urllib.parse.unquote(path)).resolve()
            if not target.is_file():
                broken.append(f"{page.relative_to(HTML_DIR)} -> {url}")
    assert broken == []


def test_plotly_js_is_the_installed_release_and_only_where_needed(built_book):
    import plotly

    served = HTML_DIR / book_assets.PLOTLY_FILE
    installed = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert served.read_bytes() == installed.read_bytes()
    for page in site_pages():
        text = page.read_text(encoding="utf-8")
        has_figure = 'class="plotly-graph-div"' in text
        loads_plotly = any(s.split("?")[0].endswith("plotly.min.js") for s in loads(page).scripts)
        assert has_figure == loads_plotly, page
    preface = (HTML_DIR / "book" / "00_preface.html").read_text(encoding="utf-8")
    assert preface.count('class="plotly-graph-div"') >= 1
    assert "application/vnd.plotly.v1+json" not in preface


def test_mathjax_is_local_with_its_fonts(built_book):
    mathjax = HTML_DIR / book_assets.MATHJAX_FILE
    assert mathjax.is_file() and mathjax.stat().st_size > 500_000
    fonts = list((mathjax.parent / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))
    assert len(fonts) > 10
    notation = HTML_DIR / "book" / "notation.html"
    assert any(s.split("?")[0].endswith(book_assets.MATHJAX_FILE) for s in loads(notation).scripts)


def test_widget_manager_is_local(built_book):
    preface = HTML_DIR / "book" / "00_preface.html"
    text = preface.read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in text
    assert any(s.split("?")[0].endswith(book_assets.HTML_MANAGER_FILE) for s in loads(preface).scripts)


def test_launch_buttons_point_at_the_repository(built_book):
    text = (HTML_DIR / "book" / "00_preface.html").read_text(encoding="utf-8")
    slug = REPO_URL.removeprefix("https://github.com/")
    assert f"https://colab.research.google.com/github/{slug}/blob/main/book/00_preface.ipynb" in text
    assert f"https://mybinder.org/v2/gh/{slug}/main?urlpath=tree/book/00_preface.ipynb" in text


# --- the checker itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ('<script src="https://cdn.example.org/x.js"></script>', ["https://cdn.example.org/x.js"]),
        ("<link rel='stylesheet' href='//fonts.example.org/a.css'>", ["//fonts.example.org/a.css"]),
        ("<style>@import url('https://fonts.example.org/css');</style>", ["https://fonts.example.org/css"]),
        ('<link rel="canonical" href="https://site.example.org/page.html">', []),
        ('<a href="https://arxiv.org/abs/2411.12364">paper</a>', []),
        ('<script src="../_static/../vendor/plotly/plotly.min.js"></script>', []),
    ],
)
def test_external_reference_checker(snippet, expected):
    assert book_assets.external_references(snippet) == expected


# --- conventions -------------------------------------------------------------------------------


def test_every_notebook_starts_with_the_install_cell():
    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    assert notebooks, "no notebooks in book/"
    assert [p for nb in notebooks for p in notebook_header.problems(nb)] == []


def test_install_cell_check_detects_a_changed_cell(tmp_path):
    nb = json.loads((ROOT / "book" / "00_preface.ipynb").read_text())
    nb["cells"][0]["source"] = ["import sys\n"]
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert notebook_header.problems(path)
    assert notebook_header.apply(path) and notebook_header.problems(path) == []
    assert not notebook_header.apply(path)


def test_install_cell_installs_from_the_repository_only_on_colab():
    # tests/test_colab.py runs the cell in a simulated Colab runtime; this checks its text.
    for triton in (False, True):
        source = notebook_header.header_source(triton=triton)
        assert f'"{REPO_URL}.git"' in source and "git clone --quiet --depth 1 --branch main" in source
        assert 'if "google.colab" in sys.modules:' in source
        installs = [line.strip() for line in source.splitlines() if line.strip().startswith("%pip")]
        assert len(installs) == 1 and "-e" not in installs[0].split()
        assert ('"triton"' in source) == triton
    assert not {"torch", "numpy", "triton"} & {pip for pip, _ in notebook_header.LIGHT_DEPENDENCIES}


def test_toc_pages_exist_as_sources():
    for name in build_book.toc_files():
        assert any((ROOT / f"{name}{ext}").is_file() for ext in (".md", ".ipynb")), name


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)\n```", text, re.DOTALL)
    assert match, f"README.md has no ```bash block after <!-- {marker} -->"
    return match.group(1).strip()


def test_ci_runs_the_readme_test_command():
    command = readme_command("test-command")
    assert command.startswith("python3.11 -m venv .venv && ")
    assert "python -m pytest" in command and "--nbval-lax" in command
    printed = subprocess.run(
        [str(ROOT / ".ci" / "run"), "--print-command"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == command


def test_readme_build_command_uses_the_build_script():
    assert readme_command("build-command").endswith("python scripts/build_book.py")


def test_links_derive_from_the_one_repository_url():
    owner, name = REPO_URL.removeprefix("https://github.com/").split("/")
    pages = f"https://{owner}.github.io/{name}/"
    assert CONFIG["html"]["baseurl"] == pages
    assert pages in (ROOT / "README.md").read_text()
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["repository-code"] == REPO_URL
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
