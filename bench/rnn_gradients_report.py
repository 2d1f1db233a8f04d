"""Tables (Markdown) and the plot of `bench/rnn_gradients.py`'s results: per encoder cell,
"bleu" (one score per length bucket, then all) and "init" / "trained" (per bucket, None or
the gradient measures of `rnn_gradients.gradients_by_bucket`)."""

from __future__ import annotations

from pathlib import Path


def _cell(v: float | None, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _norm_cell(g: dict | None, key: str) -> str:
    if g is None:
        return "–"
    ratio = f" ({g['first_to_last']:.2g})" if key == "first" else ""
    return f"{g[key]:.2e}{ratio}"


def markdown(results: dict, names: list[str], *, clip: float) -> str:
    """The tables of `bench/rnn_gradients.py`'s results (bucket `names` as columns)."""
    head = lambda first: (f"| {first} | " + " | ".join(names) + " |\n"  # noqa: E731
                          + "|---" * (len(names) + 1) + "|\n")  # fmt: skip
    out = ["BLEU (detokenised, greedy) of the validation split by source length in words\n",
           head("encoder").replace(" |\n|", " | all |\n|---|", 1)]  # fmt: skip
    for cell, r in results.items():
        out.append(f"| {cell} | " + " | ".join(_cell(v, ".1f") for v in r["bleu"]) + " |\n")
    tables = (("first", "norm of d(loss)/d(first source subword) (in brackets: its ratio "
               "to the last subword's)"),
              ("recurrence", "norm of d(forward encoder's last state)/d(first subword)"))  # fmt: skip
    for key, title in tables:
        out += [f"\n{title}, by source length\n", head("encoder, when")]
        for cell, r in results.items():
            for when in ("init", "trained"):
                vals = [_norm_cell(g, key) for g in r[when]]
                out.append(f"| {cell}, {when} | " + " | ".join(vals) + " |\n")
    out.append(f"\nclipping the global gradient norm to {clip:g}, on a batch of the "
               f"{names[-1]}-word sentences\n\n| encoder, when | total | first subword | "
               "clip factor | total, clipped | first, clipped | first / total |\n"
               + "|---" * 7 + "|\n")  # fmt: skip
    for cell, r in results.items():
        for when in ("init", "trained"):
            g = next(x for x in reversed(r[when]) if x is not None)
            out.append(f"| {cell}, {when} | {g['total']:.3g} | {g['first']:.3g} | "
                       f"{g['factor']:.3g} | {g['total_clipped']:.3g} | "
                       f"{g['first_clipped']:.3g} | {g['first'] / g['total']:.3g} |\n")  # fmt: skip
    return "".join(out)


def plot(results: dict, names: list[str], path: Path) -> Path:
    """The four panels of the results, as a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = list(range(len(names)))
    fig, grid = plt.subplots(2, 2, figsize=(13, 8.5))
    axes = grid.ravel()
    titles = ("validation BLEU by source length", "|d loss / d first subword|",
              "|d forward last state / d first subword|", "clipping, longest bucket: global and first-subword norm")  # fmt: skip
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
    for i, (cell, r) in enumerate(results.items()):
        color = f"C{i}"
        pts = [(j, v) for j, v in enumerate(r["bleu"][:-1]) if v is not None]
        axes[0].plot(*zip(*pts), "o-", color=color, label=cell)
        for ax, key in ((axes[1], "first"), (axes[2], "recurrence")):
            for when, style in (("init", "o--"), ("trained", "o-")):
                pts = [(j, g[key]) for j, g in enumerate(r[when]) if g is not None]
                ax.plot(*zip(*pts), style, color=color, label=f"{cell}, {when}")
        for k, when in enumerate(("init", "trained")):
            g = next(x for x in reversed(r[when]) if x is not None)
            at = [5 * i + 2 * k, 5 * i + 2 * k + 1]
            axes[3].bar(at, [g["total"], g["first"]], color=color, alpha=0.35)
            axes[3].bar(at, [g["total_clipped"], g["first_clipped"]], color=color,
                        label=None if k else f"{cell} (pale: unclipped)")  # fmt: skip
    for ax in axes[:3]:
        ax.set_xticks(x, names)
        ax.set_xlabel("source words")
    for ax in axes[1:]:
        ax.set_yscale("log")
    axes[3].set_xticks([5 * i + k for i in range(len(results)) for k in range(4)],
                       ["total\ninit", "first\ninit", "total\ntrained", "first\ntrained"]
                       * len(results), fontsize=7)  # fmt: skip
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
