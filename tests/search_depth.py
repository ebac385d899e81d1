"""How hard the property tests search: fixed examples by default, more and random with KMG_FUZZ."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ = int(os.environ.get("KMG_FUZZ") or 0)
"""0 (the default, CI): every run tries the same examples. N > 0: N times as many, new each run."""


def examples(n: int) -> int:
    """Return the number of examples for a property that tries `n` by default."""
    return n * FUZZ if FUZZ > 0 else n


# A fuzzing run prints the blob that reproduces a failure, since its seed is random.
SEARCH = settings(
    derandomize=FUZZ <= 0,
    database=None,
    deadline=None,
    print_blob=FUZZ > 0,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
