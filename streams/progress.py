"""A progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Count bytes against a known total (or just bytes); redraw at most ten times a second."""

    def __init__(self, total: int | None, label: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.total = total
        self.label = label
        self.done = 0
        self._next_draw = 0.0
        self._started = time.monotonic()

    def advance(self, n: int) -> None:
        """Record n more units and redraw when due."""
        self.done += n
        if self.enabled:
            now = time.monotonic()
            if now >= self._next_draw:
                self._next_draw = now + 0.1
                self._draw(now)

    def _draw(self, now: float) -> None:
        mib = self.done / 1_048_576
        rate = mib / max(now - self._started, 1e-9)
        if self.total:
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(share * 30)
            text = f"\r{self.label} [{bar:<30}] {share:6.1%} {mib:8.1f} MiB {rate:6.1f} MiB/s"
        else:
            text = f"\r{self.label} {mib:8.1f} MiB {rate:6.1f} MiB/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self, note: str = "") -> None:
        """Finish the bar line."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write(f" {note}\n" if note else "\n")
            self.stream.flush()
