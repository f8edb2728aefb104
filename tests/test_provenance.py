"""The git metadata every result file carries."""
import re

from ultramem_edu import provenance


def test_git_commit_is_a_hash_or_unknown():
    commit = provenance.git_commit()
    # CI runs in a copy without .git: then "unknown", never an error or an empty string
    assert commit == "unknown" or re.fullmatch(r"[0-9a-f]{40}", commit), commit


def test_git_failures_give_none(monkeypatch):
    assert provenance.git("no-such-subcommand-xyz") is None                     # git fails (or is absent)
    monkeypatch.setenv("PATH", "/nonexistent")                                  # no git at all
    assert provenance.git("rev-parse", "HEAD") is None
    assert provenance.git_commit() == "unknown"
