"""Training curves from a run's `metrics.jsonl`: loss, gradient norm, LR, validation scores.

    python -m captioner.pipelines.plot OUT/run/metrics.jsonl [curves.png]

matplotlib is imported lazily with the Agg backend (no display needed).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from captioner.atomic import atomic_write
from captioner.pipelines.runstate import read_metrics

log = logging.getLogger(__name__)

NOT_SCORES = {
    "type",
    "epoch",
    "step",
    "time_s",
    "train_s",
    "best_score",
    "best_epoch",
    "train_loss",
}


def plot_metrics(metrics_path: str | Path, png_path: str | Path) -> Path:
    """Draw the curves of `metrics_path` into `png_path` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(Path(metrics_path))
    steps = [r for r in records if r.get("type") == "step"]
    epochs = [r for r in records if r.get("type") == "epoch"]
    scores = sorted({k for r in epochs for k in r if k not in NOT_SCORES})
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    ax_loss, ax_norm, ax_lr, ax_val = axes
    if steps:
        x = [r["step"] for r in steps]
        ax_loss.plot(x, [r["loss"] for r in steps], lw=0.6, alpha=0.6, label="step loss")
        ax_norm.plot(x, [r["grad_norm"] for r in steps], lw=0.6)
        ax_lr.plot(x, [r["lr"] for r in steps], lw=1.0)
        if all(r["grad_norm"] > 0 for r in steps):
            ax_norm.set_yscale("log")
    if epochs:
        ax_loss.plot(
            [r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="epoch mean"
        )
    ax_wide = None  # scores beyond 0-1 (CIDEr-D is 0-10) get their own right-hand axis
    for i, name in enumerate(scores):
        pts = [(r["epoch"], r[name]) for r in epochs if isinstance(r.get(name), (int, float))]
        if not pts:
            continue
        ax = ax_val
        if max(abs(v) for _, v in pts) > 1.0:
            ax = ax_wide = ax_wide or ax_val.twinx()
        ax.plot(*zip(*pts), "o--" if ax is ax_wide else "o-", color=f"C{i % 10}", label=name)
    if ax_wide is not None:
        ax_wide.legend(fontsize=7, loc="upper left")
    ax_loss.set(title="training loss", xlabel="step")
    ax_norm.set(title="gradient norm (before clipping)", xlabel="step")
    ax_lr.set(title="learning rate", xlabel="step")
    ax_val.set(title="validation", xlabel="epoch")
    for ax in (ax_loss, ax_val):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = Path(png_path)
    try:
        with atomic_write(png_path, "wb") as f:
            fig.savefig(f, format="png", dpi=90)
    finally:
        plt.close(fig)
    return png_path


def plot_curves(run_dir: Path) -> Path | None:
    """Redraw `curves.png` from `metrics.jsonl`; a plotting failure never stops training."""
    try:
        return plot_metrics(Path(run_dir) / "metrics.jsonl", Path(run_dir) / "curves.png")
    except Exception as e:  # matplotlib missing or broken: training goes on
        log.warning("could not draw training curves: %s", e)
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    src = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else src.with_name("curves.png")
    print(plot_metrics(src, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
