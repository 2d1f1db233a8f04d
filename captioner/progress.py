"""One progress bar for every long loop (labeling, corpus loading, evaluation, training)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    enabled: bool | None = None,
) -> Any:
    """A tqdm bar (ETA, rate) over `iterable`, or a manual one when it is None (`update(n)`).

    Args:
        iterable: what to loop over; None for a bar advanced with `update(n)`.
        desc: the label in front of the bar.
        total: the number of steps (default: `len(iterable)` when it has one).
        unit: what one step is ("img", "item", "batch").
        enabled: show it (default: only when stderr is a terminal). A disabled bar still
            iterates and accepts `update` / `close`.
    """
    from tqdm.auto import tqdm

    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        disable=not show,
        dynamic_ncols=True,
        smoothing=0.1,
    )
