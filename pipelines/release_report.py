"""The release's results as Markdown: one row per scored data / split (`KEYS` as columns)
and, with `--compare`, the decoder variants trained on `COMPARE_DATASET`."""

from __future__ import annotations

COMPARE_DATASET = "scenes:1500"  # the smaller scene world the decoder variants train on


KEYS = ["BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D", "scene_f1", "dangling_end",
        "distinct", "accuracy", "neutral_share", "BLEU tok", "BLEU detok"]  # fmt: skip


def markdown(results: dict, comparison: dict | None, *, keys: list[str] = KEYS) -> str:
    lines = [
        "| data / split | items | decoding | " + " | ".join(keys) + " |",
        "|---|---|---|" + "---|" * len(keys),
    ]
    for name, r in results.items():
        dec = r.get("decoding", {})
        how = f"{dec.get('method', '')} {dec.get('beam_size', '')}".strip() or "-"
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in keys]
        lines.append(f"| {name} | {r['n']} | {how} | " + " | ".join(cells) + " |")
    if comparison:
        lines += [
            "",
            f"Decoder variants on `{COMPARE_DATASET}` (beam 3):",
            "",
            "| cell / attention | BLEU-4 test | CIDEr-D test | scene F1 test | scene F1 test_novel |",
            "|---|---|---|---|---|",
        ]
        for name, r in comparison.items():
            t, n = r["test"], r["test_novel"]
            lines.append(
                f"| {name} | {t['BLEU-4']:.3f} | {t['CIDEr-D']:.3f} | "
                f"{t.get('scene_f1', 0):.3f} | {n.get('scene_f1', 0):.3f} |"
            )
    return "\n".join(lines)
