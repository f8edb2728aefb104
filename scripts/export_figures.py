"""Write every architecture drawing of ``ultramem_edu.viz.diagrams`` to ``figures/diagram_<name>.svg``.

    python scripts/export_figures.py              # into figures/ at the repository root
    python scripts/export_figures.py --out /tmp/f # somewhere else

The drawings use their default arguments (the ones the chapters show). The output is deterministic,
so re-running the script on unchanged code leaves the files unchanged.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def export(out: Path) -> list[Path]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ultramem_edu.viz.diagrams import ALL_DIAGRAMS

    out.mkdir(parents=True, exist_ok=True)
    return [fn().save(out / f"diagram_{name}.svg") for name, fn in ALL_DIAGRAMS.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "figures", help="output folder (default: figures/)")
    args = parser.parse_args(argv)
    for path in export(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
