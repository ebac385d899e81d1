"""The feed's noise: arrival jitter, re-sent copies and deliberately invalid lines."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta
from typing import Final

import orjson

from streams.synthetic_feed.lab_codes import K_POC, K_SERUM, MG_MASS, MG_MOLES
from streams.synthetic_feed.lines import T_DUPLICATE, T_INVALID, T_KMG_FINAL, T_MED, Pending

MAX_JITTER_MICROS: Final = 300_000_000
"""The most a line arrives after a line whose availability is later (5 minutes)."""

_DUP_DELAY_MICROS: Final = 60_000_000
_JN: Final = 1 << 16
JITTER_MASK: Final = _JN - 1

_DEFECTS: Final = (
    "bad_json",
    "missing_patient_id",
    "bad_unit",
    "implausible_value",
    "timestamp_without_offset",
    "resulted_before_collected",
    "missing_code_and_name",
)


class Noise:
    """Arrival delays, and the invalid lines and copies queued behind valid lines."""

    nrng: random.Random
    p_inv: float  # chances per valid line: of an invalid line, of any noise line
    p_any: float
    jit: list[float]  # arrival delay by event number (cyclic)
    gap: int  # valid lines still to queue before the next noise line
    out: Pending
    inv_prefix: str
    inv_seq: int
    scan_top: int  # how far back an invalid line looks for its template

    def _jitter_table(self) -> list[float]:
        """Draw the cyclic table of arrival delays in micros (whole numbers as floats, so that
        adding one to an int availability gives the float sort key): 85% none, 12% up to
        60 s, 3% from 60 s to 5 min."""
        nrnd = self.nrng.random
        table = []
        for _ in range(_JN):
            r = nrnd()
            if r < 0.85:
                table.append(0.0)
            elif r < 0.97:
                table.append(float(int((r - 0.85) * 500_000_000)))
            else:
                table.append(float(60_000_000 + int((r - 0.97) * 8_000_000_000)))
        return table

    def _next_gap(self) -> int:
        """Draw the number of valid lines up to the next invalid or duplicate line."""
        if self.p_any <= 0.0:
            return 1 << 62
        u = 1.0 - self.nrng.random()
        return 1 + int(math.log(u) / math.log1p(-self.p_any))

    def noise(self, key: float, a: int, tag: int, line: str) -> None:
        """Queue an invalid line or a duplicate right behind the line just queued."""
        self.gap = self._next_gap()
        nrnd = self.nrng.random
        if nrnd() * self.p_any < self.p_inv:  # invalid: same arrival key, right behind it
            self.out.append((key, a, T_INVALID, self.invalid_line(line, tag)))
        else:  # the same bytes re-sent 1-60 s later, never more than 5 min behind
            delay = 1_000_000 + int(nrnd() * (_DUP_DELAY_MICROS - 1_000_000))
            dkey = a + min(int(key) - a + delay, MAX_JITTER_MICROS)
            self.out.append((float(dkey), a, T_DUPLICATE, line))

    def recent(self, tags: tuple[int, ...]) -> str | None:
        """Return the most recently generated valid line with one of the tags, if any."""
        out = self.out
        top = min(len(out), self.scan_top)  # skip the day's block of other chemistry
        for i in range(top - 1, max(-1, top - 5000), -1):
            if out[i][2] in tags:
                return out[i][3]
        return None

    def invalid_line(self, line: str, tag: int) -> str:
        """Make one deliberately invalid line from the current or a recent valid line."""
        nrng = self.nrng
        defect = _DEFECTS[int(nrng.random() * len(_DEFECTS))]
        template = line
        if defect in ("bad_unit", "implausible_value", "resulted_before_collected"):
            template = self.recent((T_KMG_FINAL,)) or line
        elif defect == "missing_code_and_name":
            template = self.recent((T_MED,)) or line
        elif defect == "timestamp_without_offset" and tag not in (T_KMG_FINAL, T_MED):
            template = self.recent((T_KMG_FINAL, T_MED)) or line
        ev = orjson.loads(template)
        self.inv_seq += 1
        ev["event_id"] = f"{self.inv_prefix}{self.inv_seq}"
        kind = ev["kind"]
        lab_kmg = kind == "lab_result" and ev["code"] in (K_SERUM, K_POC, MG_MASS, MG_MOLES)
        if defect == "bad_unit" and lab_kmg:
            ev["code"] = MG_MASS
            ev["value"] = round(nrng.uniform(14.0, 26.0), 1)
            ev["unit"] = "mg/L"
        elif defect == "implausible_value" and lab_kmg:
            if ev["code"] in (K_SERUM, K_POC):
                ev["value"] = round(nrng.uniform(16.0, 40.0), 1)
            else:
                ev["code"], ev["unit"] = MG_MASS, "mg/dL"
                ev["value"] = round(nrng.uniform(25.0, 60.0), 1)
        elif defect == "resulted_before_collected" and lab_kmg:
            coll = datetime.fromisoformat(ev["collected_at"])
            res = coll - timedelta(seconds=int(nrng.uniform(120, 3600)))
            ev["resulted_at"] = res.isoformat().replace("+00:00", "Z")
        elif defect == "missing_code_and_name" and kind == "medication":
            ev["code"] = ev["name"] = None
            if ev["action"] == "cancelled":
                ev["action"] = "ordered"
        elif defect == "timestamp_without_offset" and (lab_kmg or kind == "medication"):
            field_name = "collected_at" if kind == "lab_result" else "at"
            value = ev[field_name]
            ev[field_name] = value[:-1] if value.endswith("Z") else value[:-6]
        elif defect == "bad_json":
            raw = orjson.dumps(ev).decode()
            return raw[: max(20, int(len(raw) * (0.3 + 0.65 * nrng.random())))]
        else:  # missing_patient_id, and the fallback for a template of the wrong kind
            ev.pop("patient_id", None)
        return orjson.dumps(ev).decode()
