"""Hospital stays: one per patient over the window, scaled to a target, readmissions."""

from __future__ import annotations

import math
import random
from typing import Final

from streams.synthetic_feed.patients import LOGNORM_MEAN, Patient, admission_second
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.timestamps import DAY

_MEAN_LOS_DAYS: Final = 5.0
"""Scale of the lengths of stay without a target (relative lengths log-normal, mean 1)."""
_READMIT_GAP_DAYS: Final = 3.0
"""Mean days at home between two stays beyond the first day (endless feeds only)."""

_EVENTS_PER_PATIENT_DAY: Final = 7.4
"""Measured mean lines per in-house patient-day without a target (4.1 K/Mg and medication
events plus 3.3 other chemistry results); the first guess of the length-of-stay scaling."""


class Stays:
    """The placement of the patients' stays on the calendar days of the feed."""

    shape: FeedShape
    srng: random.Random
    patients: list[Patient]
    nd: int
    start_rel: int
    target_valid: float | None
    pd_total: float

    def _place_stays(self) -> None:
        """Place one stay per patient; with a target, scale the lengths of stay to reach it."""
        shape = self.shape
        days = self.nd
        endless = shape.endless  # stays run on past the window (readmissions follow)
        cut0 = self.start_rel / DAY  # the part of day 0 before start

        def place(pats: list[Patient], m: float) -> float:
            """Place the stays for a length-of-stay scale; return the patient-days kept."""
            total = 0.0
            for p in pats:
                los = max(1, round(m * p.u_los))
                admit = int(p.r_admit * (days + los - 1)) - (los - 1)
                first = admit if admit > 0 else 0
                end = admit + los if admit + los < days or endless else days
                p.admit, p.first, p.end = admit, first, end
                total += end - first - (cut0 if first == 0 else 0.0)
            return total

        if shape.target_events is None:
            self.pd_total = place(self.patients, _MEAN_LOS_DAYS)
            return
        # Valid lines to aim at: the target less the expected noise lines, plus a small margin
        # (about two standard deviations of the noise count and of the last day's rounding)
        # so that the total is normally at or just above the target.
        target = shape.target_events
        noise = shape.invalid_rate + shape.duplicate_rate
        valid = target * (1.0 - noise) + 2.0 * math.sqrt(target * noise) + 0.0005 * target + 20
        self.target_valid = valid
        # Solve on a sample of the patients (the daily volume control absorbs the rest).
        step = max(1, len(self.patients) // 2000)
        sample = self.patients[::step]
        need = valid / _EVENTS_PER_PATIENT_DAY * len(sample) / len(self.patients)
        lo, hi = 0.05, 40.0 * days
        while hi / lo > 1.002:
            mid = math.sqrt(lo * hi)
            if place(sample, mid) < need:
                lo = mid
            else:
                hi = mid
        self.pd_total = place(self.patients, hi)

    def readmit(
        self, active: list[Patient], d: int, starts: dict[int, list[Patient]]
    ) -> list[Patient]:
        """Return the patients still in house on day d; book each one discharged (on day d) a
        next stay: back after some days at home, for a newly drawn length of stay."""
        kept = []
        srng = self.srng
        for p in active:
            if p.end > d:
                kept.append(p)
                continue
            admit = d + 1 + int(srng.expovariate(1.0 / _READMIT_GAP_DAYS))
            u_los = srng.lognormvariate(0.0, 0.75) / LOGNORM_MEAN * (1.25 if p.icu else 1.0)
            p.admit = p.first = admit
            p.end = admit + max(1, round(_MEAN_LOS_DAYS * u_los))
            p.admit_sec = admission_second(srng.random())
            p.standing = None  # the orders of the last stay are over
            starts.setdefault(admit, []).append(p)
        return kept
