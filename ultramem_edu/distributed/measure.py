"""Measure what the sharded layer sends on real gloo groups and store it beside the model's count.

    python -m ultramem_edu.distributed.measure --out figures/sharding/comm_measured.json

Runs :func:`~ultramem_edu.distributed.checks.layer_equivalence` (the layer on random inputs) for
2 and 4 ranks and both schemes, and :func:`~ultramem_edu.distributed.checks.lookup_equivalence`
with every rank asking rank 0 for its rows (the row scheme's worst load) on 4 ranks. Writes, per
run and rank, the bytes measured per exchange and per destination, the model's bytes and the
largest differences from the single-process layer, with the command, versions and commit.
A minute or two on two CPU cores.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

from ..provenance import git_commit
from .checks import TEST_CONFIG, layer_equivalence, lookup_equivalence
from .launch import run_group


def measure() -> dict:
    runs = []
    for world in (2, 4):
        for scheme in ("column", "row"):
            t0 = time.perf_counter()
            ranks = run_group(layer_equivalence, world, scheme, 6, 0, True, timeout=180)
            runs.append({"kind": "layer", "pattern": "random inputs", "world_size": world, "scheme": scheme,
                         "tokens_per_rank": 6, "seconds": time.perf_counter() - t0, "ranks": ranks})
    for scheme in ("column", "row"):
        t0 = time.perf_counter()
        ranks = run_group(lookup_equivalence, 4, scheme, "hot", timeout=180)
        runs.append({"kind": "lookup", "pattern": "hot", "world_size": 4, "scheme": scheme, "tokens_per_rank": 5,
                     "seconds": time.perf_counter() - t0, "ranks": ranks})
    return {"config": TEST_CONFIG, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ultramem_edu.distributed.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures/sharding/comm_measured.json")
    args = parser.parse_args(argv)
    payload = {
        "command": "python -m ultramem_edu.distributed.measure " + " ".join(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__, "backend": "gloo", "python": platform.python_version(),
        "platform": platform.platform(), "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **measure(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1) + "\n")
    exact = all(r["measured"] == r["model"] for run in payload["runs"] for r in run["ranks"])
    print(f"{len(payload['runs'])} runs; measured == model on every rank: {exact}; wrote {out}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
