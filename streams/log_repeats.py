"""Let a log line that repeats through an outage through once per interval, with its count."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RepeatedLines(logging.Filter):
    """Pass the first of a run of same-text records of some loggers, then one per interval.

    While the broker is gone the Kafka client logs each failed connection, about a hundred
    ERROR lines a second; once per interval says the same, and how many were held back.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = ("aiokafka",),
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]} more like it in the last {self.interval:.0f} s]"
        if len(self._last) > 1_000:  # texts are the library's few templates; bound it anyway
            self._last.clear()
        self._last[key] = (now, 0)
        return True


@contextmanager
def broker_client_logging() -> Iterator[None]:
    """Log a broker command's warnings on stderr once per run of repeats, not once per try.

    While the broker is not there yet the Kafka client reports each failed connection and the
    topic creation each retry: the same lines every second for up to 30 s.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RepeatedLines(("aiokafka", "kmg.")))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
