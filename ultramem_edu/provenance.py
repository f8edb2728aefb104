"""Where a result came from: the repository's git state, for the metadata every result file carries.

Used by the experiments, the benchmarks, the distributed measurements and chapter 12's comparison,
so that each records its commit the same way.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

__all__ = ["REPO_ROOT", "git", "git_commit"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str | None:
    """The stripped stdout of ``git <args>`` run in the repository, or None if git fails or is absent."""
    try:
        res = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() if res.returncode == 0 else None


def git_commit() -> str:
    """``git rev-parse HEAD`` of the repository, or ``"unknown"`` outside a git checkout."""
    return git("rev-parse", "HEAD") or "unknown"
