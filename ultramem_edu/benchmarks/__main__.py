"""``python -m ultramem_edu.benchmarks {decode,peer} [options]`` (``--help`` on each for its options)."""
from __future__ import annotations

import sys

USAGE = "usage: python -m ultramem_edu.benchmarks {decode,peer} [--quick] [--out DIR] [...]"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "decode":
        from .decode import main as run
    elif command == "peer":
        from .peer import main as run
    else:
        print(f"unknown benchmark {command!r}; {USAGE}", file=sys.stderr)
        return 2
    run(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
