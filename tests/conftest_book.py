"""The book build shared by tests/test_book.py and tests/test_browser.py.

``from conftest_book import built_book`` gives a test the result of one real
``python scripts/build_book.py`` per test run. Under pytest-xdist the two test files may land on
different workers; a file lock and a stamp holding the run's id (``PYTEST_XDIST_TESTRUNUID``,
the same on every worker) make the first worker build and the others reuse its result.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML_DIR = ROOT / "_build" / "html"
SCRIPTS = ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

_STATE_DIR = Path(tempfile.gettempdir()) / (
    "ultramem-book-" + hashlib.sha256(str(ROOT).encode()).hexdigest()[:12]
)


@dataclass(frozen=True)
class BuiltBook:
    returncode: int
    seconds: float
    log: str
    html_dir: Path = HTML_DIR

    def check(self) -> None:
        if self.returncode != 0:
            pytest.fail(f"scripts/build_book.py exited {self.returncode}:\n{self.log[-6000:]}")


def _run_id() -> str:
    return os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"


def build_once() -> BuiltBook:
    _STATE_DIR.mkdir(parents=True, exist_ok=True)
    stamp = _STATE_DIR / "stamp.json"
    with open(_STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if stamp.is_file():
                saved = json.loads(stamp.read_text())
                if saved["run_id"] == _run_id():
                    return BuiltBook(saved["returncode"], saved["seconds"], saved["log"])
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(SCRIPTS / "build_book.py")],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            result = BuiltBook(proc.returncode, time.perf_counter() - start, proc.stdout + proc.stderr)
            stamp.write_text(
                json.dumps({"run_id": _run_id(), "returncode": result.returncode,
                            "seconds": result.seconds, "log": result.log[-20000:]})
            )
            return result
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def built_book() -> BuiltBook:
    book = build_once()
    book.check()
    return book
