"""Train the tiny LM data-parallel with sharded memory tables; started by ``torchrun``.

    torchrun --nproc_per_node 2 -m ultramem_edu.distributed --steps 30 --scheme column
    torchrun --nproc_per_node 2 -m ultramem_edu.distributed --steps 30 --fsdp    # the rest under FSDP2

CPU processes talk over gloo; with CUDA each process takes GPU ``LOCAL_RANK`` and NCCL. Rank 0
then trains the same model alone on the same global batches and writes both loss curves, with
the command and versions, to ``--out`` (JSON).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from .ddp import train_compare
from .shard import SCHEMES
from ..provenance import git_commit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ultramem_edu.distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--scheme", choices=SCHEMES, default="column")
    parser.add_argument("--batch", type=int, default=8, help="global batch (sequences), split over the ranks")
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a collective may wait for a peer")
    parser.add_argument("--fsdp", action="store_true",
                        help="shard everything but the value tables with FSDP2 (fully_shard) instead of DDP")
    parser.add_argument("--out", default=None,
                        help="JSON file (default figures/sharding/ddp_curve.json, or fsdp_curve.json with --fsdp)")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = f"figures/sharding/{'fsdp' if args.fsdp else 'ddp'}_curve.json"
    if "RANK" not in os.environ:
        parser.error("start this module with torchrun, e.g. torchrun --nproc_per_node 2 -m ultramem_edu.distributed")

    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(1)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=args.timeout))
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        result = train_compare(rank, world, args.steps, args.scheme, args.batch, args.seq_len, args.lr, args.seed,
                               device=device, parallel="fsdp" if args.fsdp else "ddp")
    finally:
        dist.destroy_process_group()
    if rank == 0:
        payload = {
            "command": "torchrun --nproc_per_node {} -m ultramem_edu.distributed {}".format(world, " ".join(
                sys.argv[1:] if argv is None else argv)),
            "world_size": world, "backend": backend, "parallel": "fsdp" if args.fsdp else "ddp", "scheme": args.scheme, "steps": args.steps,
            "global_batch": args.batch, "seq_len": args.seq_len, "lr": args.lr, "seed": args.seed,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "git_commit": git_commit(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **result,
        }
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"rank 0: {args.steps} steps, largest loss difference to one process "
              f"{result['max_loss_diff']:.2e}; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
