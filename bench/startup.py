"""Start-up time of the commands a new user types first: cold (first run) and warm.

    python bench/startup.py [--repeats 5] [--image demo/examples/photo-chelsea.jpg]
    python bench/startup.py --before /tmp/old     # also an older checkout, runs alternating

The table gives each command's cold and warm wall time, its warm CPU time, the goal of issue
25 for its warm wall time on a quiet 2-core machine (sentiment <= 2.5 s, caption <= 3.5 s,
translate <= 3 s) and whether this tree meets it, and how much the warm run costs beyond
`import torch` in CPU seconds (the floor; on a busy machine `import torch` alone can exceed
the goals, and CPU seconds move less with the load than wall times).

Each command runs as a fresh process, as from a shell. "cold" is its first run with empty
captioner caches (a new `CAPTIONER_CACHE` / `XDG_CACHE_HOME`: the first image command exports
the encoder to ONNX there); "warm" is the median of `--repeats` runs after it, with those
caches present, every command run in turn in each round. Python writes bytecode as in a
user's shell (`PYTHONDONTWRITEBYTECODE` is dropped), so warm runs read compiled modules. `import torch` is timed alongside, as the floor
every model command pays. The OS file cache is not dropped.

The machine's load moves the wall times; the CPU seconds (user + system, of the process and
its children) move much less, so they are printed beside them: on an idle machine the warm
wall time of these mostly single-threaded start-ups is close to them. `--before DIR` runs
the same commands from another checkout of the repository (its `captioner` package first on
`PYTHONPATH`, with the same virtual environment), alternating with this one run by run, so
both see the same load.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def captioner_command() -> list[str]:
    """The `captioner` console script beside this Python (what a user runs), else -m."""
    script = Path(sys.executable).with_name("captioner")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "captioner"]


# issue 25's goals for the warm wall time, seconds (a quiet machine, `import torch` ~2 s)
TARGETS = {
    "captioner sentiment TEXT": 2.5,
    "captioner caption ONE.jpg": 3.5,
    "captioner translate TEXT --to de": 3.0,
}
FLOOR = "python -c 'import torch'"


def commands(image: str) -> list[tuple[str, list[str]]]:
    cli = captioner_command()
    return [
        (FLOOR, [sys.executable, "-c", "import torch"]),
        ("captioner --help", [*cli, "--help"]),
        ("captioner sentiment TEXT", [*cli, "sentiment", "what a lovely day"]),
        ("captioner caption ONE.jpg", [*cli, "caption", image]),
        ("captioner translate TEXT --to de", [*cli, "translate", "a dog runs on the grass",
                                              "--to", "de"]),
    ]  # fmt: skip


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of `argv`."""
    start, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, _cpu() - cpu


def environment(tree: Path, tmp: Path) -> dict[str, str]:
    env = {**os.environ, "CAPTIONER_CACHE": str(tmp / "cache"), "XDG_CACHE_HOME": str(tmp / "xdg")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's shell keeps compiled bytecode
    if tree != ROOT:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="warm runs per command (median)")
    p.add_argument("--image", default="demo/examples/photo-chelsea.jpg", help="for caption")
    p.add_argument("--before", type=Path, default=None, help="another checkout to compare")
    args = p.parse_args()
    trees = [ROOT] + ([args.before.resolve()] if args.before else [])
    tmp = Path(tempfile.mkdtemp(prefix="captioner-startup-"))
    envs = [environment(tree, tmp / str(i)) for i, tree in enumerate(trees)]
    rows = []
    load_start = os.getloadavg()[0]
    todo = commands(args.image)
    try:
        # cold: each command once, in order, on empty caches; then warm rounds that run every
        # command (and tree) in turn, so that a change of load hits the floor and each
        # command alike
        colds = [[timed(argv, env, tree)[0] for tree, env in zip(trees, envs)]
                 for _, argv in todo]  # fmt: skip
        runs: list[list[list[tuple[float, float]]]] = [[[] for _ in trees] for _ in todo]
        for r in range(args.repeats):
            for i, (_, argv) in enumerate(todo):
                for k, (tree, env) in enumerate(zip(trees, envs)):
                    runs[i][k].append(timed(argv, env, tree))
            print(f"  warm round {r + 1}/{args.repeats} done", file=sys.stderr)
        for (name, _), cold_i, runs_i in zip(todo, colds, runs):
            row: list = [name]
            for cold, done in zip(cold_i, runs_i):
                row += [cold, statistics.median(w for w, _ in done),
                        statistics.median(c for _, c in done)]  # fmt: skip
            rows.append(row)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, args.before)
    load = os.getloadavg()
    print(f"\n{os.cpu_count()} CPUs; warm: median of {args.repeats} runs; load average "
          f"{load_start:.1f} at the start, {load[0]:.1f} at the end"
          + ("" if max(load_start, load[0]) < 0.5 else
             " (not a quiet machine: the wall times are longer than on an idle one)"))  # fmt: skip


def print_table(rows: list[list], before: Path | None) -> None:
    """The table: command, then per tree cold / warm / warm CPU; for this tree the target,
    met?, and the warm CPU seconds beyond `import torch`'s."""
    floor = next((row[3] for row in rows if row[0] == FLOOR), None)
    width = max(len(r[0]) for r in rows)
    heads = ["cold s", "warm s", "warm CPU s"]
    trees = 1 + (before is not None)
    mine = ["target s", "met?", "CPU-torch s"]
    print()
    if before is not None:
        print(f"{'':<{width}}  {'this tree':<{12 * (3 + len(mine))}}  before ({before})")
    print(f"{'command':<{width}}  " + "  ".join(f"{h:>10}" for h in [*heads, *mine])
          + "".join(f"  {h:>10}" for _ in range(trees - 1) for h in heads))  # fmt: skip
    for row in rows:
        name, own, others = row[0], row[1:4], row[4:]
        target = TARGETS.get(name)
        cells = [f"{x:10.2f}" for x in own]
        cells.append(f"{target:10.2f}" if target else f"{'-':>10}")
        cells.append(f"{('yes' if own[1] <= target else 'NO') if target else '-':>10}")
        over = own[2] - floor if floor is not None and target else None
        cells.append(f"{over:10.2f}" if over is not None else f"{'-':>10}")
        cells += [f"{x:10.2f}" for x in others]
        print(f"{name:<{width}}  " + "  ".join(cells))
    met = [row[2] <= TARGETS[row[0]] for row in rows if row[0] in TARGETS]
    print(f"\ntargets met: {sum(met)} of {len(met)} (warm wall time, this tree)")


if __name__ == "__main__":
    main()
