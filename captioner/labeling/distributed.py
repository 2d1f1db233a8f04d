"""Labeling on many processes and machines: `--shard K/N`, `--merge`, and torchrun.

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


def add_scale_out(p: argparse.ArgumentParser) -> None:
    d = p.add_argument_group("many machines (see below)")
    d.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="K/N",
        help="label only shard K of N (K = 0..N-1) into its own journal; the last shard to "
        "finish merges all of them into the outputs (default: everything, one process)",
    )
    d.add_argument(
        "--merge",
        action="store_true",
        help="only merge finished shard journals into the outputs (loads no model; refused "
        "while a shard is unfinished) (default: off)",
    )


def _shard(text: str):
    from captioner.labeling.shards import parse_shard

    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def merge_command(args: argparse.Namespace, scan, formats: tuple[str, ...]) -> int:
    """`captioner label DIR --merge`: exit 0 merged (or nothing to merge), 2 refused, 3 some
    sidecars could not be written."""
    from captioner.labeling import cli
    from captioner.labeling.merge import merge_labels
    from captioner.labeling.writers import JournalError

    try:
        result = merge_labels(
            args.folders, out=args.out, scan=scan, formats=formats, xmp_naming=args.xmp_name
        )
    except JournalError as e:  # unfinished shards, other settings, another run busy
        cli.error(str(e))
        return 2
    if not result.merged:
        cli.say("nothing to merge: no shard journals found (merged already?)")
    for err in result.problems.errors[:5]:
        cli.say(f"  error: {err}")
    for out in result.outputs:
        cli.say(f"  -> {out}")
    return 3 if result.problems.count else 0


def torchrun_main(argv: list[str] | None = None) -> int:
    """`python -m captioner.labeling` under torchrun (alone: one ordinary `captioner label`)."""
    from captioner.cli import options as flags
    from captioner.labeling import cli

    cli.std_streams()
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    flags.configure_logging(args)
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

    from captioner.devices import resolve_device
    from captioner.errors import DeviceError
    from captioner.labeling import cli
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
