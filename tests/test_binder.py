"""binder/: the environment mybinder.org builds is pinned like requirements.txt and stays CPU-only.

(How Binder is recognised at run time is tested in tests/test_check_env.py.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)")


def pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of the ``name==version`` lines of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return found


BINDER = pins(ROOT / "binder" / "requirements.txt")
MAIN = pins(ROOT / "requirements.txt")


def test_binder_pins_what_the_package_pulls_in():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0].lower() for dep in project["dependencies"]}
    assert names - set(BINDER) == set(), "`-e .` would install these unpinned on Binder"
    assert "-e ." in (ROOT / "binder" / "requirements.txt").read_text().splitlines()


def test_binder_pins_agree_with_requirements_txt():
    for name, version in BINDER.items():
        assert name in MAIN, f"{name} is pinned for Binder only"
        # the CPU wheel index labels torch 2.13.0+cpu; requirements.txt's 2.13.0 is the same release
        assert version.split("+")[0] == MAIN[name].split("+")[0], name


def test_binder_gets_the_cpu_build_of_torch():
    text = (ROOT / "binder" / "requirements.txt").read_text()
    assert BINDER["torch"].endswith("+cpu")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text.splitlines()
    assert not any(name.startswith("nvidia") for name in BINDER)
