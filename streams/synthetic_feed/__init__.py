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

from streams.synthetic_feed.drugs import (
    _K_IV,
    _K_PHOS,
    _K_PO,
    _K_PREMIX,
    _MG_IV,
    _MG_PO,
    _NO_DRUG_FRAG,
    _Drug,
)
from streams.synthetic_feed.lab_codes import (
    _DEC1,
    _DEC2,
    _HEMO,
    _OTHER_LABS,
    _OTHER_MAX,
    _OTHER_MEAN,
    _POOL,
)
from streams.synthetic_feed.lab_codes import K_POC as K_POC
from streams.synthetic_feed.lab_codes import K_SERUM as K_SERUM
from streams.synthetic_feed.lab_codes import MG_MASS as MG_MASS
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MEQ_L as MG_MG_DL_PER_MEQ_L
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MMOL_L as MG_MG_DL_PER_MMOL_L
from streams.synthetic_feed.lab_codes import MG_MOLES as MG_MOLES
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
from streams.synthetic_feed.noise import _JMASK, _Noise
from streams.synthetic_feed.noise import MAX_JITTER_MICROS as MAX_JITTER_MICROS
from streams.synthetic_feed.patients import WARDS as WARDS
from streams.synthetic_feed.patients import _draw_patients, _Patient
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.stays import _Stays
from streams.synthetic_feed.timestamps import _DAY, _HOUR, _Clock

__all__ = ["MAX_JITTER_MICROS", "FeedShape", "generate", "main", "write_ndjson"]


_WRITE_CHUNK: Final = 512
_ZN: Final = 8192


class _Generator(_Clock, _Noise, _Stays):
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
        self.panels: list[tuple[_Patient, int, str, int, str]] = []
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
        self.cum_pd: list[float] = []
        self.target_valid = None
        self.patients = _draw_patients(shape, rng, self.ssz, self.ss1)
        self._place_stays()

    def lab(
        self, p: _Patient, cvu: str, cs: str, res: int, status: str, rid: str, flags: str, tag: int
    ) -> None:
        """Queue a lab result; cvu is the code/value/unit fragment, cs the collected_at text."""
        n = self.n
        self.n = n + 1
        line = (
            f'{self.lab_head}{n}",{p.frag},{cvu},"collected_at":"{cs}",'
            f'"resulted_at":"{self.ts(res, p)}","status":"{status}","result_id":"{rid}",'
            f'"flags":{flags}}}'
        )
        a = self.a0 + res * 1_000_000
        key = a + self.jit[n & _JMASK]
        self.out.append((key, a, tag, line))
        self.gap -= 1
        if not self.gap:
            self.noise(key, a, tag, line)

    def med(self, p: _Patient, action: str, frag: str, t: int, oid: str) -> None:
        """Queue a medication event; frag is the code/name/route/dose fragment."""
        n = self.n
        self.n = n + 1
        line = (
            f'{self.med_head}{n}",{p.frag},"action":"{action}",{frag},'
            f'"at":"{self.ts(t, p)}","order_id":"{oid}"}}'
        )
        tag = _T_MED_CANCEL if action == "cancelled" else _T_MED
        a = self.a0 + t * 1_000_000
        key = a + self.jit[n & _JMASK]
        self.out.append((key, a, tag, line))
        self.gap -= 1
        if not self.gap:
            self.noise(key, a, tag, line)

    def next_oid(self) -> str:
        self.oid += 1
        return f"O{self.oid}"

    def pick_frag(self, drug: _Drug) -> str:
        """Choose how the drug is coded: RxNorm, a local code or no code (name only)."""
        r = self.rng.random()
        if r < 0.72 and drug.frag_rx != drug.frag_null:
            return drug.frag_rx
        if r < 0.86:
            return drug.frag_local
        return drug.frag_null

    # ------------------------------------------------------------------------------ labs
    def kmg_result(
        self,
        p: _Patient,
        code: str,
        value: float,
        vs: str,
        unit: str,
        coll: int,
        cs: str,
        res: int,
        flags: str,
    ) -> None:
        """Queue one K/Mg result with its occasional preliminary, correction or retraction."""
        rng = self.rng
        r = rng.random()
        n = self.n
        if 0.002 <= r <= 0.996:  # the common case: one final result
            self.n = n + 1
            line = (
                f'{self.lab_head}{n}",{p.frag},"code":"{code}","value":{vs},'
                f'"unit":"{unit}","collected_at":"{cs}","resulted_at":"{self.ts(res, p)}",'
                f'"status":"final","result_id":"R{n}","flags":{flags}}}'
            )
            a = self.a0 + res * 1_000_000
            key = a + self.jit[n & _JMASK]
            self.out.append((key, a, _T_KMG_FINAL, line))
            self.gap -= 1
            if not self.gap:
                self.noise(key, a, _T_KMG_FINAL, line)
            return
        cvu = f'"code":"{code}","value":{vs},"unit":"{unit}"'
        rid = f"R{n}"
        if r < 0.002:
            pre = max(coll + 60, res - int(rng.uniform(300, 1200)))
            self.lab(p, cvu, cs, pre, "preliminary", rid, flags, _T_KMG_OTHER)
        self.lab(p, cvu, cs, res, "final", rid, flags, _T_KMG_FINAL)
        if r > 0.9965:  # a correction, a few per thousand
            step = 0.1 if code in (K_SERUM, K_POC) or unit.lower() == "mg/dl" else 0.05
            new = round(max(value * 0.6, value + step * rng.choice((-6, -4, -3, -2, 2, 3, 4))), 2)
            t = res + int(rng.uniform(1800, 6 * _HOUR))
            cvu2 = f'"code":"{code}","value":{new!r},"unit":"{unit}"'
            self.lab(p, cvu2, cs, t, "corrected", rid, flags, _T_KMG_FINAL)
        elif r > 0.9960:  # a retraction, rare
            status = "entered-in-error" if rng.random() < 0.5 else "cancelled"
            t = res + int(rng.uniform(1200, 4 * _HOUR))
            if rng.random() < 0.3:  # a removal needs no value or unit
                cvu = f'"code":"{code}","value":null,"unit":null'
            self.lab(p, cvu, cs, t, status, rid, flags, _T_KMG_OTHER)

    def k_lab(
        self, p: _Patient, coll: int, res: int, poc: bool, hemo: bool, cs: str | None = None
    ) -> float:
        """Queue a potassium result from the latent level; return the reported value."""
        v = p.k_state + 0.08 * self.z[int(self.rng.random() * _ZN)]
        if hemo:
            v += self.rng.uniform(0.4, 1.2)
        v, vs = _DEC1[68 if v > 6.8 else (21 if v < 2.1 else int(v * 10.0 + 0.5))]
        if cs is None:
            cs = self.ts(coll, p)
        flags = _HEMO if hemo else "null"
        self.kmg_result(p, K_POC if poc else K_SERUM, v, vs, p.k_unit, coll, cs, res, flags)
        return v

    def mg_lab(self, p: _Patient, coll: int, res: int, hemo: bool, cs: str | None = None) -> float:
        """Queue a magnesium result from the latent level; return the value in mg/dL."""
        v = p.mg_state + 0.05 * self.z[int(self.rng.random() * _ZN)]
        if hemo:
            v += self.rng.uniform(0.1, 0.35)
        v = 3.4 if v > 3.4 else (0.9 if v < 0.9 else v)
        if p.mg_dec == 1:
            reported, vs = _DEC1[int(v / p.mg_div * 10.0 + 0.5)]
        else:
            reported, vs = _DEC2[int(v / p.mg_div * 100.0 + 0.5)]
        if cs is None:
            cs = self.ts(coll, p)
        flags = _HEMO if hemo else "null"
        self.kmg_result(p, p.mg_code, reported, vs, p.mg_unit, coll, cs, res, flags)
        mg = reported * p.mg_div
        if not hemo or mg < 1.7:
            p.mg_val, p.mg_coll = mg, coll
        return mg

    def panel(self, p: _Patient, coll: int) -> tuple[float | None, int]:
        """Queue a chemistry panel; return the K value (or None) and its result time."""
        rnd = self.rng.random
        hemo = rnd() < 0.01
        res = coll + 1800 + int(rnd() * 5400)
        k = None
        cs = self.ts(coll, p)
        if rnd() < 0.97:
            k = self.k_lab(p, coll, res, False, hemo, cs)
        if rnd() < p.mg_check:
            mres = res + int(rnd() * 1200) - 300
            self.mg_lab(p, coll, mres if mres > coll + 1800 else coll + 1800, hemo, cs)
        other_res = res + int(rnd() * 1200) - 600
        if other_res < coll + 900:
            other_res = coll + 900
        self.panels.append((p, coll, cs, other_res, _HEMO if hemo else "null"))
        if hemo and k is not None and rnd() < 0.6:  # redraw
            coll2 = res + int(self.rng.uniform(1200, 5400))
            res2 = coll2 + 1800 + int(rnd() * 3600)
            return self.k_lab(p, coll2, res2, False, False), res2
        return k, res

    def allocate_other_labs(self, d: int) -> None:
        """Queue the ignored chemistry results of the day's panels (the volume control)."""
        panels = self.panels
        if not panels:
            return
        rnd = self.rng.random
        if self.target_valid is None:
            scale = _OTHER_MEAN
        else:
            want = self.target_valid * self.cum_pd[d + 1] / self.pd_total - (self.n - self.dropped)
            want = max(0.0, min(float(_OTHER_MAX * len(panels)), want))
            wsum = sum(panel[0].other_w for panel in panels)
            scale = want / wsum
        self.scan_top = len(self.out)
        pools = self.other_pools
        head = self.lab_head
        ts = self.ts
        jit = self.jit
        a0 = self.a0
        append = self.out.append
        n = self.n
        gap = self.gap
        for p, _, cs, res, flags in panels:
            c = int(scale * p.other_w + rnd())
            if c > _OTHER_MAX:
                c = _OTHER_MAX
            if c <= 0:
                continue
            a = a0 + res * 1_000_000
            mid = f'",{p.frag},'
            tail = (
                f',"collected_at":"{cs}","resulted_at":"{ts(res, p)}",'
                '"status":"final","result_id":"R'
            )
            end = f'","flags":{flags}}}'
            for j in range(c):
                line = f"{head}{n}{mid}{pools[j][int(rnd() * _POOL)]}{tail}{n}{end}"
                key = a + jit[n & _JMASK]
                append((key, a, _T_OTHER_LAB, line))
                n += 1
                gap -= 1
                if not gap:
                    self.noise(key, a, _T_OTHER_LAB, line)
                    gap = self.gap
        self.n = n
        self.gap = gap
        self.scan_top = 1 << 62
        panels.clear()

    # ------------------------------------------------------------------------ medications
    def order(
        self, p: _Patient, drug: _Drug, t: int, admins: list[int], cancel_p: float
    ) -> tuple[str, str]:
        """Queue an order and its doses (or its cancellation); return id and drug fragment."""
        oid = self.next_oid()
        frag = self.pick_frag(drug)
        self.med(p, "ordered", frag, t, oid)
        if self.rng.random() < cancel_p:
            tc = t + int(self.rng.uniform(300, 2400))
            self.med(p, "cancelled", _NO_DRUG_FRAG if self.rng.random() < 0.5 else frag, tc, oid)
            admins.clear()
            return oid, frag
        for ta in admins:
            self.med(p, "administered", frag, ta, oid)
        return oid, frag

    def k_order(self, p: _Patient, t_res: int, v: float, morning_coll: int | None) -> int:
        """Replete potassium after a low result; return the time of the last dose (or order)."""
        rng = self.rng
        rnd = rng.random
        t = t_res + int(rng.uniform(600, 7200))
        iv = rnd() < (0.65 if p.icu else 0.25) or (v < 3.0 and rnd() < 0.6)
        premix = False
        if iv:
            r = rnd()
            if r < 0.035:
                drug, premix = _K_PREMIX, True
            elif r < 0.07:
                drug = _K_PHOS
            else:
                drug = _K_IV[int(rnd() * len(_K_IV))]
        else:
            drug = _K_PO[int(rnd() * len(_K_PO))]
        p.last_k_order = t
        standing = not iv and p.standing is None and rnd() < p.standing_p
        admins: list[int] = []
        ta = t + int(rng.uniform(300, 2700))
        if standing:
            admins.append(ta)
        elif rnd() > 0.05:
            runs = 1
            if drug.dose == 10 and drug.dose_unit == "mEq":
                runs = 2 + int(rnd() * 2) + (1 if v < 3.0 else 0)
            elif rnd() < 0.25:
                runs = 2
            for _ in range(min(runs, 3)):
                admins.append(ta)
                ta += int(rng.uniform(3600, 7200))
        oid, frag = self.order(p, drug, t, admins, 0.02)
        if standing and admins:
            p.standing = self.running(p, [drug, 2 + int(rnd() * 4)], oid, frag)
        given = drug.dose * len(admins) if drug.dose_unit == "mEq" else 20.0 * len(admins)
        mg_low_uncorrected = p.mg_val is not None and p.mg_val < 1.7 and p.mg_rep < p.mg_coll
        p.k_given += given * (0.004 if mg_low_uncorrected else 0.01)
        if premix:
            if admins:
                p.mg_rep = admins[0]
                p.mg_state += 0.12
        else:
            self.mg_management(p, t, morning_coll)
        return admins[-1] if admins else t

    def mg_management(self, p: _Patient, t: int, morning_coll: int | None) -> None:
        """Decide what the team does about magnesium around a potassium order at t."""
        rng = self.rng
        rnd = rng.random
        mg = p.mg_val
        known = mg is not None and p.mg_coll >= t - _DAY
        if known and p.mg_rep >= p.mg_coll:
            return  # already repleted since the last result
        if mg is not None and known and mg < p.mg_target:
            r = rnd()
            if r < p.co_p:
                self.mg_order(p, t + int(rng.uniform(0, 1500)))
            elif r < p.co_p + p.late_p:
                self.mg_order(p, t + int(rng.uniform(2 * _HOUR, 8 * _HOUR)))
        elif not known:
            r = rnd()
            if r < p.addon_p and morning_coll is not None:  # add-on Mg on the morning specimen
                res = t + int(rng.uniform(1800, 5400))
                mg = self.mg_lab(p, morning_coll, res, False)
                if mg < p.mg_target and rnd() < p.co_p + p.late_p:
                    self.mg_order(p, res + int(rng.uniform(900, 3 * _HOUR)))
            elif r < p.addon_p + 0.12:
                self.mg_order(p, t + int(rng.uniform(0, 1500)))
        elif p.cardiac and rnd() < 0.08:
            self.mg_order(p, t + int(rng.uniform(0, 1500)))

    def mg_order(self, p: _Patient, t: int) -> None:
        """Queue a magnesium order and its doses."""
        rng = self.rng
        rnd = rng.random
        iv = rnd() < (0.8 if p.icu else 0.55) or (p.mg_val is not None and p.mg_val < 1.3)
        drug = _MG_IV[int(rnd() * len(_MG_IV))] if iv else _MG_PO[int(rnd() * len(_MG_PO))]
        admins: list[int] = []
        if rnd() > 0.04:
            ta = t + int(rng.uniform(300, 3600))
            admins.append(ta)
            if rnd() < (0.3 if drug.dose_unit == "g" and drug.dose <= 2 else 0.15):
                admins.append(ta + int(rng.uniform(2 * _HOUR, 10 * _HOUR)))
        self.order(p, drug, t, admins, 0.02)
        if admins:
            p.mg_rep = admins[0]
            p.mg_state += 0.2 * len(admins) if iv else 0.07 * len(admins)

    # ------------------------------------------------------------------------------- days
    def patient_day(self, p: _Patient, d: int, B: int) -> None:
        """Generate one in-house day of one patient (every event at or after B)."""
        rng = self.rng
        rnd = rng.random
        iu = self.iu
        z = self.z
        # latent levels evolve overnight
        kl = (
            p.k_mu
            + 0.55 * (p.k_state - p.k_mu)
            + 0.22 * z[int(rnd() * _ZN)]
            + p.k_given
            - (0.08 if p.diur_given else 0.0)
        )
        p.k_state = 6.4 if kl > 6.4 else (2.15 if kl < 2.15 else kl)
        mg = p.mg_mu + 0.6 * (p.mg_state - p.mg_mu) + 0.09 * z[int(rnd() * _ZN)]
        p.mg_state = 3.2 if mg > 3.2 else (1.0 if mg < 1.0 else mg)
        p.k_given = 0.0
        p.diur_given = False
        admitted = d == p.admit
        if admitted:
            t_adm = B + p.admit_sec
            coll = t_adm + iu(600, 3600)
            t_orders = t_adm + iu(3600, 4 * _HOUR)
            for entry in p.diuretics:
                admins = [t_orders + iu(1200, 3600)] if t_orders < B + 21 * _HOUR else []
                self.running(p, entry, *self.order(p, entry[0], t_orders, admins, 0.02))
                p.diur_given = bool(admins)
            for entry in p.meds:
                t = t_orders + iu(0, 1800)
                admins = [] if entry[1] or t > B + 22 * _HOUR else [t + iu(600, 3600)]
                self.running(p, entry, *self.order(p, entry[0], t, admins, 0.02))
        else:
            coll = B + p.draw_min * 60 - 1200 + int(2400 * rnd())
            if coll < B + 14400:  # 04:00
                coll = B + 14400
            elif coll > B + 25200:  # 07:00
                coll = B + 25200
            if d == p.first:  # a stay begun before the window: orders placed earlier
                for entry in p.diuretics + p.meds:
                    self.running(p, entry, self.next_oid(), self.pick_frag(entry[0]))
            self.scheduled_meds(p, B)
        k, kres = self.panel(p, coll)
        n_orders = 0
        if k is not None and k < p.k_thresh and (p.standing is None or k < 3.0):
            if rnd() < (0.92 if k < 3.3 else 0.7):
                last = self.k_order(p, kres, k, coll)
                n_orders += 1
                if last > kres and (k < 3.1 or last - kres > 3 * _HOUR) and rnd() < 0.7:
                    # recheck a few hours after the last dose
                    coll2 = last + iu(2 * _HOUR, 4 * _HOUR)
                    poc = p.icu and rnd() < 0.5
                    res2 = coll2 + (iu(180, 900) if poc else iu(1800, 4800))
                    k2 = self.k_lab(p, coll2, res2, poc, False)
                    if rnd() < 0.3:
                        self.mg_lab(p, coll2, res2 + iu(0, 900), False)
                    if k2 < p.k_thresh and rnd() < 0.8:
                        self.k_order(p, res2, k2, None)
                        n_orders += 1
        elif p.mg_val is not None and p.mg_coll >= coll and p.mg_val < 1.7 and rnd() < 0.7:
            self.mg_order(p, kres + iu(1800, 4 * _HOUR))
        # STAT labs during the day
        t = B + 8 * _HOUR
        while rnd() < p.stat_q:
            t += iu(1800, 6 * _HOUR)
            if t > B + 23 * _HOUR:
                break
            poc = p.icu and rnd() < 0.6
            res = t + (iu(180, 900) if poc else iu(1800, 4800))
            k2 = self.k_lab(p, t, res, poc, rnd() < 0.005)
            if not poc and rnd() < 0.35:
                self.mg_lab(p, t, res + iu(0, 900), False)
            if (
                k2 < p.k_thresh
                and n_orders < 3
                and res - p.last_k_order > 4 * _HOUR
                and rnd() < 0.75
            ):
                self.k_order(p, res, k2, None)
                n_orders += 1
        # occasional diuretic dose changes: a new order given at once
        if p.diuretics and not admitted and rnd() < 0.06:
            entry = p.diuretics[0]
            tt = B + iu(9 * _HOUR, 20 * _HOUR)
            self.running(p, entry, *self.order(p, entry[0], tt, [tt + iu(900, 3600)], 0.02))
            p.diur_given = True

    def running(self, p: _Patient, entry: list, oid: str, frag: str) -> list:
        """Attach a running order to a medication entry ``[drug, flag, ...]``: its id and
        coding, and the text around the time of its administrations."""
        del entry[2:]
        entry += [
            oid,
            frag,
            f'",{p.frag},"action":"administered",{frag},"at":"',
            f'","order_id":"{oid}"}}',
        ]
        return entry

    def scheduled_meds(self, p: _Patient, B: int) -> None:
        """Queue the day's doses of running orders (diuretics, other drugs, daily KCl)."""
        rnd = self.rng.random
        doses = []
        for entry in p.diuretics:
            if rnd() < 0.93:
                doses.append((B + 30600 + int(4500 * rnd()), entry))  # 08:30-09:45
                p.diur_given = True
            if entry[1] and rnd() < 0.9:
                doses.append((B + 59400 + int(4500 * rnd()), entry))  # 16:30-17:45
        for entry in p.meds:
            if entry[1]:  # as needed
                if rnd() < 0.35:
                    doses.append((B + 25200 + int(57600 * rnd()), entry))  # 07:00-23:00
            elif rnd() < 0.9:
                doses.append((B + 28800 + int(9000 * rnd()), entry))  # 08:00-10:30
        st = p.standing
        if st is not None:
            if rnd() < 0.92:
                doses.append((B + 30600 + int(3600 * rnd()), st))  # 08:30-09:30
                p.k_given += st[0].dose * 0.008
            st[1] -= 1
            if st[1] <= 0:
                p.standing = None
        if not doses:
            return
        # the hot path of med(), inlined: all times lie within the timestamp table
        head = self.med_head
        base = self.ts_base
        table = self.ts_table
        off = p.off
        ss = p.ss
        jit = self.jit
        a0 = self.a0
        append = self.out.append
        n = self.n
        for t, entry in doses:
            m, sec = divmod(t + off - base, 60)
            line = f"{head}{n}{entry[4]}{table[m]}{ss[sec]}{entry[5]}"
            a = a0 + t * 1_000_000
            key = a + jit[n & _JMASK]
            append((key, a, _T_MED, line))
            n += 1
            self.gap -= 1
            if not self.gap:
                self.n = n
                self.noise(key, a, _T_MED, line)
        self.n = n

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
