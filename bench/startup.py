"""Start-up time of the commands a new user types first: cold (first run) and warm.

    python bench/startup.py [--repeats 5] [--image demo/examples/photo-chelsea.jpg]

Each command runs as a fresh process, as from a shell. "cold" is its first run with empty
captioner caches (a new `CAPTIONER_CACHE` / `XDG_CACHE_HOME`: the first image command exports
the encoder to ONNX there); "warm" is the median of `--repeats` runs after it, with those
caches present. Python writes bytecode as in a user's shell (`PYTHONDONTWRITEBYTECODE` is
dropped), so warm runs read compiled modules. `import torch` is timed alongside, as the floor
every model command pays. The OS file cache is not dropped. The machine's load moves every
number: compare rows measured in the same run.
"""

from __future__ import annotations

import argparse
import os
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


def commands(image: str) -> list[tuple[str, list[str]]]:
    cli = captioner_command()
    return [
        ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
        ("captioner --help", [*cli, "--help"]),
        ("captioner sentiment TEXT", [*cli, "sentiment", "what a lovely day"]),
        ("captioner caption ONE.jpg", [*cli, "caption", image]),
        ("captioner translate TEXT --to de", [*cli, "translate", "a dog runs on the grass",
                                              "--to", "de"]),
    ]  # fmt: skip


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=5, help="warm runs per command (median)")
    p.add_argument("--image", default="demo/examples/photo-chelsea.jpg", help="for caption")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="captioner-startup-"))
    env = {**os.environ, "CAPTIONER_CACHE": str(tmp / "cache"), "XDG_CACHE_HOME": str(tmp / "xdg")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's shell keeps compiled bytecode
    rows = []
    try:
        for name, argv in commands(args.image):
            cold = timed(argv, env)
            warm = [timed(argv, env) for _ in range(args.repeats)]
            rows.append((name, cold, statistics.median(warm), min(warm), max(warm)))
            print(f"  {name}: cold {cold:.2f} s, warm {statistics.median(warm):.2f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(
        f"\n{'command':<{width}}  {'cold s':>6}  {'warm s':>6}  (warm min-max, {args.repeats} runs)"
    )
    for name, cold, median, low, high in rows:
        print(f"{name:<{width}}  {cold:6.2f}  {median:6.2f}  ({low:.2f}-{high:.2f})")
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
