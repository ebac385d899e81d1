"""Deterministic generator of a realistic synthetic canonical K/Mg event feed.

The feed follows the input contract of ``spec/RULES.md`` section 1: one canonical JSON event per
line (``lab_result`` or ``medication``, the keys in the order of the golden scenarios), in
*arrival* order. It is used by the replay benchmark, by the stream simulator and by tests.

Model (per patient, with a per-patient random profile drawn once):

* one hospital stay per patient overlapping the window (length of stay log-normal); patients
  in-house at the start continue a stay begun earlier;
* a morning panel collected 04:00-07:00 and resulted 30-120 min later: potassium (serum 2823-3)
  on almost every day, magnesium (19123-9 mg/dL, some 2601-3 mmol/L or mEq/L) on most days,
  and other chemistry codes (sodium, creatinine, ...) that the rules ignore; an admission panel
  at the admission time; occasional STAT labs (point-of-care 6298-4 in ICUs) and K rechecks;
* latent K and Mg levels per patient (a hypokalaemic and a low-magnesium subgroup, diuretic
  users lower), which repletion raises (K less so while Mg is low and uncorrected);
* potassium chloride orders after a low K (tablet, powder, IV runs, a K/Mg premix now and then;
  RxNorm 8591, a local code or no code), usually followed by 1-3 administrations under the
  same order_id, some standing daily orders; magnesium sulfate/oxide co-ordered within 30 min,
  hours later or never, by a per-patient habit, or an add-on Mg test on the morning specimen;
  loop/thiazide diuretics for a subgroup; ignored drugs (spironolactone, milk of magnesia,
  losartan potassium, maintenance fluids with "Potassium Chl", acetaminophen, ...);
* lab corrections, removals and preliminary results, hemolysed specimens, order cancellations
  (some with code and name null), ``+01:00`` offsets for some patients.

On top of the valid events, ``invalid_rate`` of the lines are deliberately invalid in the ways of
RULES.md section 7 and ``duplicate_rate`` of the lines are byte copies of an earlier line re-sent
within a minute. Arrival order is availability order with a jitter: a line arrives at most
``MAX_JITTER_MICROS`` (5 min) after lines whose availability is later.

With ``target_events`` the lengths of stay are scaled so that the in-house patient-days times
the measured lines per patient-day reach the target, and each day the number of other chemistry
results on the day's panels is set so that the running total follows the target (so the total
lands within a fraction of a percent of it when the target is reachable: roughly 4 to 12 lines
per patient-day, i.e. from ``4 * patients`` up to ``12 * patients * days``; beyond, best effort).

Memory is bounded by one day of events: the feed is generated day by day for all patients (each
event of day d is available at or after d's start); the day's lines, with the few carried over,
are sorted by arrival key and every line keyed before the next day's start is emitted. Arrival
jitter, duplicates and invalid lines are decided when a line is generated, so the emission is a
stable sort. Everything derives from ``random.Random`` instances seeded from ``FeedShape.seed``:
one shape gives the same bytes. Day slices start at ``start`` (normally a UTC midnight; the
daily schedule is relative to it).

An ``endless`` shape (the stream simulator's, run until stopped) places the first stays over
``days`` as above but never ends: stays run past the window, and a patient discharged is
readmitted one day or more later (a few on average) for a newly drawn length of stay, so the
feed goes on day after day, event and order ids still counting up. Those draws come from their
own ``random.Random``: a bounded shape's bytes do not depend on them.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Final

import orjson

from streams.synthetic_feed.lab_codes import _OTHER_LABS, _POOL
from streams.synthetic_feed.lab_codes import K_POC as K_POC
from streams.synthetic_feed.lab_codes import K_SERUM as K_SERUM
from streams.synthetic_feed.lab_codes import MG_MASS as MG_MASS
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MEQ_L as MG_MG_DL_PER_MEQ_L
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MMOL_L as MG_MG_DL_PER_MMOL_L
from streams.synthetic_feed.lab_codes import MG_MOLES as MG_MOLES
from streams.synthetic_feed.labs import _ZN
from streams.synthetic_feed.lines import (
    _KEY,
    _LINE,
    _T_KMG_FINAL,
    _T_KMG_OTHER,
    _T_MED,
    _T_MED_CANCEL,
    _T_OTHER_LAB,
    _TAG,
    _json,
)
from streams.synthetic_feed.lines import _T_DUPLICATE as _T_DUPLICATE
from streams.synthetic_feed.lines import _T_INVALID as _T_INVALID
from streams.synthetic_feed.lines import Pending as Pending
from streams.synthetic_feed.noise import MAX_JITTER_MICROS as MAX_JITTER_MICROS
from streams.synthetic_feed.patient_days import _PatientDays
from streams.synthetic_feed.patients import WARDS as WARDS
from streams.synthetic_feed.patients import _draw_patients, _Patient
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.stays import _Stays
from streams.synthetic_feed.timestamps import _DAY

__all__ = ["MAX_JITTER_MICROS", "FeedShape", "generate", "main", "write_ndjson"]


_WRITE_CHUNK: Final = 512


class _Generator(_PatientDays, _Stays):
    """Day-by-day generation of one feed, with sorting and emission in arrival order."""

    def __init__(self, shape: FeedShape) -> None:
        self.shape = shape
        seed = shape.seed
        self.rng = random.Random(f"kmg-synthetic-feed:{seed}:content")
        self.nrng = random.Random(f"kmg-synthetic-feed:{seed}:noise")
        self.lab_head = '{"kind":"lab_result","event_id":"' + f"g{seed}-"
        self.med_head = '{"kind":"medication","event_id":"' + f"g{seed}-"
        self.inv_prefix = f"g{seed}-x"
        self.srng = random.Random(f"kmg-synthetic-feed:{seed}:stays")  # readmissions
        self.n = 0  # valid events generated (the event_id number)
        self.inv_seq = 0
        self.dropped = 0  # valid lines left out because available before start
        self.scan_top = 1 << 62
        self.oid = 0
        self.out = []
        # Times are held as integer seconds since the UTC midnight of the start day (small
        # ints keep the arithmetic cheap) and turned into epoch micros only for the sort key.
        start = shape.start.astimezone(UTC)
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        self.midnight = midnight
        mid0 = int(midnight.timestamp())
        self.a0 = mid0 * 1_000_000
        self.start_rel = int(start.timestamp()) - mid0
        self.start_a = self.a0 + self.start_rel * 1_000_000
        # Calendar days generated: one more when start is not a midnight (the lines available
        # before start are then left out), so that [start, start + days) is covered.
        self.nd = shape.days + (1 if self.start_rel else 0)
        self.dayp = [
            (midnight + timedelta(days=d)).strftime("%Y-%m-%dT") for d in range(self.nd + 12)
        ]
        self.hm = [f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440)]
        self.ssz = [f"{s:02d}Z" for s in range(60)]
        self.ss1 = [f"{s:02d}+01:00" for s in range(60)]
        self.panels = []
        keep = 1.0 - shape.invalid_rate - shape.duplicate_rate
        self.p_inv = shape.invalid_rate / keep
        self.p_any = (shape.invalid_rate + shape.duplicate_rate) / keep
        self.jit = self._jitter_table()
        self.gap = self._next_gap()
        self._set_day(0)
        rnd = self.rng.random

        def iu(lo: float, hi: float) -> int:
            """Draw a uniform integer offset in [lo, hi)."""
            return int(lo + (hi - lo) * rnd())

        self.iu = iu
        rng = self.rng
        self.z = [rng.gauss(0.0, 1.0) for _ in range(_ZN)]
        self.other_pools = [
            [
                f'"code":"{code}","value":{_json(make(rng.gauss))},"unit":"{unit}"'
                for _ in range(_POOL)
            ]
            for code, unit, make in _OTHER_LABS
        ]
        self.cum_pd = []
        self.target_valid = None
        self.patients = _draw_patients(shape, rng, self.ssz, self.ss1)
        self._place_stays()

    # ---------------------------------------------------------------------------- emission
    def batches(self) -> Iterator[Pending]:
        """Yield the feed as lists of pending tuples, each sorted, together in arrival order
        (without end for an endless shape)."""
        days = self.nd
        endless = self.shape.endless
        starts: dict[int, list[_Patient]] = {}
        delta = [0] * (days + 1)
        for p in self.patients:
            starts.setdefault(p.first, []).append(p)
            if not endless:  # (cum_pd serves only a target, which an endless feed has not)
                delta[p.first] += 1
                delta[p.end] -= 1
        cum_pd = [0.0] * (days + 1)
        in_house = 0
        for d in range(days):
            in_house += delta[d]
            kept = 1.0 - self.start_rel / _DAY if d == 0 else 1.0
            cum_pd[d + 1] = cum_pd[d] + in_house * kept
        self.cum_pd = cum_pd
        active: list[_Patient] = []
        patient_day = self.patient_day
        gc_was_enabled = gc.isenabled()
        for d in itertools.count() if endless else range(days):
            # The day's many small tuples never form cycles: keep the collector out of the
            # generation (not out of the consumer's code, which runs between the yields).
            gc.disable()
            B = d * _DAY
            self._set_day(B)
            if endless:
                active = self.readmit(active, d, starts)
            else:
                active = [p for p in active if p.end > d]
            active.extend(starts.pop(d, ()))
            for p in active:
                patient_day(p, d, B)
            self.allocate_other_labs(d)
            # Everything generated later has availability >= the next day's start, and an
            # arrival key >= its availability: the lines keyed before it can go now.
            pending = self.out
            pending.sort(key=_KEY)
            boundary = self.a0 + (B + _DAY) * 1_000_000
            lo, hi = 0, len(pending)
            while lo < hi:
                mid = (lo + hi) // 2
                if pending[mid][0] < boundary:
                    lo = mid + 1
                else:
                    hi = mid
            self.out = pending[lo:]
            del pending[lo:]
            # A line emitted now is available at or after B - 5 min (its key is >= B, or it
            # was generated today): only the first day or two can hold lines before start.
            if self.start_a > self.a0 + (B - 300) * 1_000_000:
                pending = self.after_start(pending)
            if gc_was_enabled:
                gc.enable()
            yield pending
        pending = self.out
        pending.sort(key=_KEY)
        self.out = []
        if self.start_a > self.a0 + (days * _DAY - 300) * 1_000_000:
            pending = self.after_start(pending)
        yield pending

    def after_start(self, batch: Pending) -> Pending:
        """Leave out the lines available before start (with their copies), counting them."""
        start_a = self.start_a
        kept = [item for item in batch if item[1] >= start_a]
        self.dropped += sum(1 for item in batch if item[1] < start_a and item[2] < _T_INVALID)
        return kept


def generate(shape: FeedShape) -> Iterator[tuple[int, bytes]]:
    """Yield ``(available_micros, line)`` for every line of the feed, in arrival order."""
    for batch in _Generator(shape).batches():
        for item in batch:
            yield item[1], item[3].encode()


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
    for batch in _Generator(shape).batches():
        c.update(map(_TAG, batch))
        for i in range(0, len(batch), _WRITE_CHUNK):
            lines = list(map(_LINE, batch[i : i + _WRITE_CHUNK]))
            lines.append("")
            stream.write("\n".join(lines).encode())
    stream.flush()
    return {
        "lines": c.total(),
        "lab_result": c[_T_OTHER_LAB] + c[_T_KMG_FINAL] + c[_T_KMG_OTHER],
        "medication": c[_T_MED] + c[_T_MED_CANCEL],
        "invalid": c[_T_INVALID],
        "duplicates": c[_T_DUPLICATE],
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
