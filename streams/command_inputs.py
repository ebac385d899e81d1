"""What every `kmg` command reads its inputs with, and the error that stops it with status 2."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from typing import IO


class UsageError(Exception):
    """Unusable arguments or files: reported as one line, exit status 2."""


def open_inputs(stack: ExitStack, names: list[str]) -> list[tuple[str, IO[bytes], int | None]]:
    """Open named inputs (- or none: stdin); return (name, stream, size if known) each."""
    if not names:
        names = ["-"]
    opened: list[tuple[str, IO[bytes], int | None]] = []
    for name in names:
        if name == "-":
            opened.append(("<stdin>", sys.stdin.buffer, None))
            continue
        try:
            fh = stack.enter_context(open(name, "rb"))  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot read {name}: {exc.strerror}") from None
        opened.append((name, fh, os.fstat(fh.fileno()).st_size))
    return opened
