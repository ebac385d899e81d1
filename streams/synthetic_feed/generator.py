"""Day-by-day generation of the feed, emitted in arrival order."""

from __future__ import annotations

import gc
import itertools
import random
from collections.abc import Iterator
from datetime import UTC, timedelta

from streams.synthetic_feed.lab_codes import OTHER_LABS, POOL
from streams.synthetic_feed.labs import ZN
from streams.synthetic_feed.lines import ARRIVAL_KEY, T_INVALID, Pending, json_text
from streams.synthetic_feed.patient_days import PatientDays
from streams.synthetic_feed.patients import Patient, draw_patients
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.stays import Stays
from streams.synthetic_feed.timestamps import DAY


class FeedGenerator(PatientDays, Stays):
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
        self.z = [rng.gauss(0.0, 1.0) for _ in range(ZN)]
        self.other_pools = [
            [
                f'"code":"{code}","value":{json_text(make(rng.gauss))},"unit":"{unit}"'
                for _ in range(POOL)
            ]
            for code, unit, make in OTHER_LABS
        ]
        self.cum_pd = []
        self.target_valid = None
        self.patients = draw_patients(shape, rng, self.ssz, self.ss1)
        self._place_stays()

    def batches(self) -> Iterator[Pending]:
        """Yield the feed as lists of pending tuples, each sorted, together in arrival order
        (without end for an endless shape)."""
        days = self.nd
        endless = self.shape.endless
        starts: dict[int, list[Patient]] = {}
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
            kept = 1.0 - self.start_rel / DAY if d == 0 else 1.0
            cum_pd[d + 1] = cum_pd[d] + in_house * kept
        self.cum_pd = cum_pd
        active: list[Patient] = []
        patient_day = self.patient_day
        gc_was_enabled = gc.isenabled()
        for d in itertools.count() if endless else range(days):
            # The day's many small tuples never form cycles: keep the collector out of the
            # generation (not out of the consumer's code, which runs between the yields).
            gc.disable()
            B = d * DAY
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
            pending.sort(key=ARRIVAL_KEY)
            boundary = self.a0 + (B + DAY) * 1_000_000
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
        pending.sort(key=ARRIVAL_KEY)
        self.out = []
        if self.start_a > self.a0 + (days * DAY - 300) * 1_000_000:
            pending = self.after_start(pending)
        yield pending

    def after_start(self, batch: Pending) -> Pending:
        """Leave out the lines available before start (with their copies), counting them."""
        start_a = self.start_a
        kept = [item for item in batch if item[1] >= start_a]
        self.dropped += sum(1 for item in batch if item[1] < start_a and item[2] < T_INVALID)
        return kept


def generate(shape: FeedShape) -> Iterator[tuple[int, bytes]]:
    """Yield ``(available_micros, line)`` for every line of the feed, in arrival order."""
    for batch in FeedGenerator(shape).batches():
        for item in batch:
            yield item[1], item[3].encode()
