"""Labeling on many processes and machines under torchrun (the `--shard K/N` and `--merge`
flags are in `cli.label_flags`, the merge command in `cli.label`).

    torchrun --nnodes M --nproc-per-node G -m captioner.labeling DIR [label options]

Every rank labels shard RANK of WORLD_SIZE (`captioner.labeling.shards`) into its own journal;
then all ranks meet at a barrier, rank 0 merges the shards into the usual outputs
(`captioner.labeling.merge`), and all ranks meet again before exiting (torchrun stops every
rank as soon as one exits with an error, which must not cut the merge short). The process
group is torch.distributed's: gloo on CPU, NCCL when the ranks label on CUDA; rank, world size
and the rendezvous come from the environment torchrun sets. Rerunning the same command resumes
every shard; a rank killed midway relabels only what its journal lacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

# Ranks that finish early wait at the barrier for the slowest shard: hours on big folders.
BARRIER_TIMEOUT = timedelta(days=7)


def torchrun_main(argv: list[str] | None = None) -> int:
    """`python -m captioner.labeling` under torchrun (alone: one ordinary `captioner label`)."""
    from captioner import commandline
    from captioner.cli import label as cli

    cli.std_streams()
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    commandline.configure_logging(args)
    cli.escape_logged_names()
    if "WORLD_SIZE" not in os.environ:
        return cli.run(args)
    if args.shard is not None or args.merge:
        print("captioner label: error: under torchrun the ranks are the shards: leave out "
              "--shard and --merge", file=sys.stderr)  # fmt: skip
        return 2
    return _as_rank(args)


def _as_rank(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from captioner.cli import label as cli
    from captioner.devices import resolve_device
    from captioner.errors import DeviceError
    from captioner.labeling.shards import Shard

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    try:
        device = resolve_device(args.device, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    except DeviceError as e:
        print(f"captioner label: error: {e}", file=sys.stderr)
        return 2
    args.device = str(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=BARRIER_TIMEOUT)
    try:
        args.shard = Shard(rank, world)
        code = cli.run(args, merge_after=False)
        dist.barrier()
        if rank == 0:
            args.shard, args.merge = None, True
            merged = cli.run(args)
            code = merged or code
        dist.barrier()  # the others wait for the merge: see the module docstring
    finally:
        dist.destroy_process_group()
    return code
