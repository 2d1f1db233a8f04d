"""One progress bar for every long loop (labeling, corpus loading, evaluation), and
`StepProgress` for training steps and feature caching: a bar on a terminal, lines elsewhere."""

from __future__ import annotations

import logging
import sys
import time
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


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class StepProgress:
    """Progress of a loop of `total` steps that may count tokens (a training epoch, feature
    caching): on a terminal, a tqdm bar (rate, ETA) with the latest values and tokens/s
    after it; elsewhere (a log file, a pipe), one line to `log` at INFO every `every` steps
    and at the end, with the same values, the percentage done, the rate and the ETA.

    Args:
        desc: what runs ("epoch 2/10", "encoding images").
        total: the number of steps (None: unknown, no percentage or ETA).
        unit: what one step is ("step", "img").
        every: without a terminal, a line every this many steps (0: none but the last).
        enabled: show anything at all (False on all but the first DDP process).
        log: the logger the lines go to (default: this module's).
        terminal: draw a bar (default: when stderr is a terminal).
        file: where the bar is drawn (default: stderr).
    """

    def __init__(
        self,
        *,
        desc: str,
        total: int | None,
        unit: str = "step",
        every: int = 50,
        enabled: bool = True,
        log: logging.Logger | None = None,
        terminal: bool | None = None,
        file: Any = None,
    ) -> None:
        self.desc, self.total, self.unit, self.every = desc, total, unit, max(0, every)
        self.enabled = enabled
        self.log = log or logging.getLogger(__name__)
        self.done = self.tokens = 0
        self.values: dict[str, float] = {}
        self.start = self._mark = time.monotonic()
        self._mark_done = self._mark_tokens = 0
        self._token_rate: float | None = None  # smoothed, for the bar
        self.bar = None
        show_bar = sys.stderr.isatty() if terminal is None else terminal
        if enabled and show_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, file=file, dynamic_ncols=True,
                            smoothing=0.1)  # fmt: skip

    def update(self, n: int = 1, *, tokens: int | None = None, **values: float) -> None:
        """`n` more steps done, over `tokens` tokens (None: the loop counts none), with the
        latest `values` (e.g. loss=2.31) to show."""
        self.done += n
        self.tokens += tokens or 0
        self.values.update(values)
        if not self.enabled:
            return
        now = time.monotonic()
        if self.bar is not None:
            if tokens:
                rate = tokens / max(now - self._mark, 1e-9)
                old = self._token_rate
                self._token_rate = rate if old is None else 0.9 * old + 0.1 * rate
                self._mark = now
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.update(n)
        elif self.every and self.done // self.every > (self.done - n) // self.every:
            self.log.info("%s", self.line(now))

    def _postfix(self) -> str:
        parts = [f"{k}={_number(v)}" for k, v in self.values.items()]
        if self._token_rate is not None:
            parts.append(f"{self._token_rate:,.0f} tok/s")
        return ", ".join(parts)

    def line(self, now: float | None = None) -> str:
        """The progress line: desc, steps done (of total, percent), the values, tokens/s and
        steps/s since the previous line, elapsed time and ETA."""
        now = time.monotonic() if now is None else now
        spent = max(now - self._mark, 1e-9)
        parts = [self.desc]
        if self.total:
            parts.append(
                f"{self.unit} {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)"
            )
        else:
            parts.append(f"{self.unit} {self.done}")
        parts += [f"{k} {_number(v)}" for k, v in self.values.items()]
        if self.tokens:
            parts.append(f"{(self.tokens - self._mark_tokens) / spent:,.0f} tok/s")
        parts.append(f"{(self.done - self._mark_done) / spent:.2f} {self.unit}/s")
        elapsed = now - self.start
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and self.done:
            parts.append(f"ETA {_clock(elapsed / self.done * (self.total - self.done))}")
        self._mark, self._mark_done, self._mark_tokens = now, self.done, self.tokens
        return "  ".join(parts)

    def close(self) -> None:
        """End the bar, or write the last line when the loop ended between two lines."""
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(), refresh=False)
            self.bar.close()
        elif self.enabled and self.done and (not self.every or self.done % self.every):
            self.log.info("%s", self.line())


def _number(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
