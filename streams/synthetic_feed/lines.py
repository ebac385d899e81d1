"""What a generated line of the feed is: its tag, its pending tuple and its JSON text."""

from __future__ import annotations

from operator import itemgetter
from typing import Final

import orjson

# Line tags (internal): what a yielded line is.
T_OTHER_LAB: Final = 0  # lab with a code outside the K/Mg sets
T_KMG_FINAL: Final = 1  # K/Mg lab, final or corrected, with value and unit
T_KMG_OTHER: Final = 2  # K/Mg lab, preliminary or removal
T_MED: Final = 3  # medication ordered or administered
T_MED_CANCEL: Final = 4  # medication cancelled
T_INVALID: Final = 5
T_DUPLICATE: Final = 6

Pending = list[tuple[float, int, int, str]]
"""Lines not yet emitted: (arrival key in micros, available_micros, tag, line). The key is a
float (exact below 2**53 micros, i.e. before the year 2255) so that sorting is fast; the sort
is stable, so lines with equal keys keep their (deterministic) generation order."""

ARRIVAL_KEY: Final = itemgetter(0)
_TAG: Final = itemgetter(2)
_LINE: Final = itemgetter(3)


def json_text(value: object) -> str:
    return orjson.dumps(value).decode()
