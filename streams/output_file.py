"""An output file that takes its name only once complete: a stopped run leaves the old one."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO


class OutputFile:
    """Write a regular file beside its name and rename it there when the run succeeds.

    An interrupted or failed run (Ctrl-C, a full disk, an unreadable input) removes what it
    wrote and leaves whatever the name held before, so a partial output never passes for a
    complete one. A device, a pipe or a name through /dev or /proc (/dev/null, /dev/stdout) is
    written directly; a symbolic link is followed to the file it names.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._target = name
        self._partial: str | None = None
        self._fh: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        # A symbolic link is written through: the file it names is the one replaced.
        self._target = os.path.realpath(self.name)
        try:
            mode = os.stat(self._target).st_mode
        except FileNotFoundError:
            mode = None
        if (mode is not None and not stat.S_ISREG(mode)) or _through_a_device(self.name):
            # Appending keeps what a shell's `>>` meant; `>` has emptied the file already.
            self._fh = open(self.name, "ab")  # noqa: SIM115 - closed in __exit__
            return self._fh
        path = Path(self._target)
        fd, self._partial = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".partial", dir=path.parent
        )
        # mkstemp's 0600 would hide the output from the group the old file or umask allows.
        os.fchmod(fd, stat.S_IMODE(mode) if mode is not None else 0o666 & ~_umask())
        self._fh = os.fdopen(fd, "wb")
        return self._fh

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._fh is not None
        try:
            self._fh.close()
        except OSError:
            if self._partial is not None:
                os.unlink(self._partial)
            raise
        if self._partial is None:
            return
        if exc_type is None:
            os.replace(self._partial, self._target)
        else:
            os.unlink(self._partial)


def _through_a_device(name: str) -> bool:
    """Say whether a name leads through /dev or /proc (/dev/stdout to a file the shell opened).

    Such a name stands for an open file, perhaps opened to append: it is written, never
    replaced.
    """
    path = os.path.abspath(name)
    for _ in range(40):  # the kernel's own limit on links followed
        if path.startswith(("/dev/", "/proc/")):
            return True
        if not os.path.islink(path):
            return os.path.realpath(path).startswith(("/dev/", "/proc/"))
        path = os.path.normpath(os.path.join(os.path.dirname(path), os.readlink(path)))
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
