"""The feed as NDJSON: to a file, a stream or stdout, and the command line that writes it."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Final

import orjson

from streams.synthetic_feed.generator import FeedGenerator
from streams.synthetic_feed.lines import (
    _LINE,
    _TAG,
    T_DUPLICATE,
    T_INVALID,
    T_KMG_FINAL,
    T_KMG_OTHER,
    T_MED,
    T_MED_CANCEL,
    T_OTHER_LAB,
)
from streams.synthetic_feed.shape import FeedShape

_WRITE_CHUNK: Final = 512


def write_ndjson(shape: FeedShape, path_or_stream: str | Path | IO[bytes]) -> dict[str, int]:
    """Write the feed as NDJSON and return its counts by kind, invalid and duplicates."""
    if isinstance(path_or_stream, (str, Path)):
        if str(path_or_stream) == "-":
            return _write(shape, sys.stdout.buffer)
        with open(path_or_stream, "wb") as fh:
            return _write(shape, fh)
    return _write(shape, getattr(path_or_stream, "buffer", path_or_stream))


def _write(shape: FeedShape, stream: IO[bytes]) -> dict[str, int]:
    c: Counter[int] = Counter()
    for batch in FeedGenerator(shape).batches():
        c.update(map(_TAG, batch))
        for i in range(0, len(batch), _WRITE_CHUNK):
            lines = list(map(_LINE, batch[i : i + _WRITE_CHUNK]))
            lines.append("")
            stream.write("\n".join(lines).encode())
    stream.flush()
    return {
        "lines": c.total(),
        "lab_result": c[T_OTHER_LAB] + c[T_KMG_FINAL] + c[T_KMG_OTHER],
        "medication": c[T_MED] + c[T_MED_CANCEL],
        "invalid": c[T_INVALID],
        "duplicates": c[T_DUPLICATE],
    }


def main(argv: list[str] | None = None) -> int:
    """Write a synthetic feed to a file or stdout and print its counts to stderr."""
    ap = argparse.ArgumentParser(
        prog="python -m streams.synthetic_feed",
        description="Write a deterministic synthetic canonical K/Mg feed as NDJSON.",
    )
    ap.add_argument("--patients", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--events", type=int, default=None, help="target number of lines")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", default="2024-03-01T00:00:00Z", help="RFC 3339 start instant")
    ap.add_argument("--invalid-rate", type=float, default=0.001)
    ap.add_argument("--duplicate-rate", type=float, default=0.002)
    ap.add_argument("--out", default="-", help="output NDJSON file, '-' for stdout")
    args = ap.parse_args(argv)
    shape = FeedShape(
        patients=args.patients,
        days=args.days,
        seed=args.seed,
        start=datetime.fromisoformat(args.start).astimezone(UTC),
        invalid_rate=args.invalid_rate,
        duplicate_rate=args.duplicate_rate,
        target_events=args.events,
    )
    counts = write_ndjson(shape, args.out)
    sys.stderr.write(orjson.dumps(counts).decode() + "\n")
    return 0
