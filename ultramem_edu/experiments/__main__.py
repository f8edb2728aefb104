"""``python -m ultramem_edu.experiments <name|all> [--quick] [--out figures/] [--resume]``."""
from __future__ import annotations

import argparse
import time

import torch

from . import EXPERIMENTS, run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ultramem_edu.experiments", description=__doc__)
    parser.add_argument("name", choices=[*EXPERIMENTS, "all"], help="experiment to run (or all of them)")
    parser.add_argument("--quick", action="store_true", help="tiny models, few steps (< 60 s each)")
    parser.add_argument("--out", default="figures", help="directory for exp_<name>.json/.csv (default figures/)")
    parser.add_argument("--resume", action="store_true",
                        help="skip runs whose results exist and continue interrupted runs from their checkpoints")
    parser.add_argument("--checkpoints", default=None, help="checkpoint directory (default <repo>/checkpoints)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps per run")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    for name in names:
        t0 = time.perf_counter()
        payload = run(name, quick=args.quick, out=args.out, resume=args.resume, seeds=args.seeds,
                      steps=args.steps, checkpoints=args.checkpoints, progress=not args.no_progress)
        print(f"[{name}] mode={payload['mode']} wrote {args.out}/exp_{name}.json in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
