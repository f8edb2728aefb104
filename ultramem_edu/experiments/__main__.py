"""``python -m ultramem_edu.experiments <name|all> [--quick] [--resume] [--device cuda] [--shard i/k|claim]``."""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import EXPERIMENTS, SUITE, run
from .common import REPO_ROOT, result_stem


def _shard(text: str) -> tuple[int, int] | str:
    if text == "claim":
        return text
    try:
        i, k = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be i/k (e.g. 0/2) or claim, got {text!r}") from None
    if not (k >= 1 and 0 <= i < k):
        raise argparse.ArgumentTypeError(f"--shard i/k needs 0 <= i < k, got {text!r}")
    return i, k


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ultramem_edu.experiments", description=__doc__)
    parser.add_argument("name", help=f"experiment to run: one of {', '.join(EXPERIMENTS)}, or all ({', '.join(SUITE)})")
    parser.add_argument("--quick", action="store_true", help="tiny models, few steps (the whole suite < 2 min)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: cuda runs the gpu scale")
    parser.add_argument("--scale", default=None, choices=("quick", "full", "gpu"), help="override the scale")
    parser.add_argument("--out", default=str(REPO_ROOT / "figures"), help="directory for exp_<name>.json/.csv")
    parser.add_argument("--runs-dir", default=None,
                        help="directory for the per-run results (default <out>/runs, or the checkpoint dir with --quick)")
    parser.add_argument("--resume", action="store_true", help="reuse finished runs, continue interrupted ones")
    parser.add_argument("--overwrite", action="store_true", help="delete existing run files and start again")
    parser.add_argument("--collect", action="store_true", help="train nothing: publish what has finished")
    parser.add_argument("--shard", type=_shard, default=None,
                        help="i/k: train only this process's share of the runs (by the run's name); "
                             "claim: train whatever no other live process has claimed")
    parser.add_argument("--checkpoints", default=None, help="checkpoint directory (default <repo>/checkpoints)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds (mode <scale>-custom)")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps (mode <scale>-custom)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.name != "all" and args.name not in EXPERIMENTS:
        parser.error(f"unknown experiment {args.name!r}; choose from {', '.join(EXPERIMENTS)} or all")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    names = list(SUITE) if args.name == "all" else [args.name]
    runs_dir = args.runs_dir
    if runs_dir is None and not args.quick:
        runs_dir = str(__import__("pathlib").Path(args.out) / "runs")
    for name in names:
        t0 = time.perf_counter()
        kwargs = dict(quick=args.quick, out=args.out, resume=args.resume, seeds=args.seeds, steps=args.steps,
                      checkpoints=args.checkpoints, progress=not args.no_progress, device=args.device,
                      scale=args.scale, overwrite=args.overwrite, shard=args.shard, collect=args.collect,
                      results_dir=runs_dir)
        try:
            payload = run(name, **kwargs)
        except (ValueError, FileExistsError) as e:
            print(f"[{name}] error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        state = "complete" if payload.get("complete", True) else f"partial, {len(payload['runs_missing'])} runs missing"
        stem = result_stem(name, payload["mode"])
        print(f"[{name}] mode={payload['mode']} wrote {args.out}/exp_{stem}.json ({state}) in "
              f"{time.perf_counter() - t0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
