"""The one error of a command whose output, or the disk it spills to, cannot be written."""

from __future__ import annotations


class OutputFailed(Exception):
    """An output could not be written (a full disk, a device error); the message names it."""
