"""Lab results: panels, K and Mg results with their corrections, the other chemistry."""

from __future__ import annotations

import random
from typing import Final

from streams.synthetic_feed.lab_codes import (
    _DEC1,
    _DEC2,
    _HEMO,
    _OTHER_MAX,
    _OTHER_MEAN,
    K_POC,
    K_SERUM,
    POOL,
)
from streams.synthetic_feed.lines import T_KMG_FINAL, T_KMG_OTHER, T_OTHER_LAB
from streams.synthetic_feed.noise import JITTER_MASK, Noise
from streams.synthetic_feed.patients import Patient
from streams.synthetic_feed.timestamps import HOUR, Clock

ZN: Final = 8192


class Labs(Clock, Noise):
    """The queueing of lab results, from the patients' latent K and Mg levels."""

    rng: random.Random
    n: int
    lab_head: str
    z: list[float]  # standard normal draws, cheaper than a draw each
    panels: list[tuple[Patient, int, str, int, str]]  # the day's, for the other chemistry
    other_pools: list[list[str]]  # code/value/unit fragments by other chemistry code
    target_valid: float | None
    cum_pd: list[float]
    pd_total: float
    dropped: int

    def lab(
        self, p: Patient, cvu: str, cs: str, res: int, status: str, rid: str, flags: str, tag: int
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
        key = a + self.jit[n & JITTER_MASK]
        self.out.append((key, a, tag, line))
        self.gap -= 1
        if not self.gap:
            self.noise(key, a, tag, line)

    def kmg_result(
        self,
        p: Patient,
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
            key = a + self.jit[n & JITTER_MASK]
            self.out.append((key, a, T_KMG_FINAL, line))
            self.gap -= 1
            if not self.gap:
                self.noise(key, a, T_KMG_FINAL, line)
            return
        cvu = f'"code":"{code}","value":{vs},"unit":"{unit}"'
        rid = f"R{n}"
        if r < 0.002:
            pre = max(coll + 60, res - int(rng.uniform(300, 1200)))
            self.lab(p, cvu, cs, pre, "preliminary", rid, flags, T_KMG_OTHER)
        self.lab(p, cvu, cs, res, "final", rid, flags, T_KMG_FINAL)
        if r > 0.9965:  # a correction, a few per thousand
            step = 0.1 if code in (K_SERUM, K_POC) or unit.lower() == "mg/dl" else 0.05
            new = round(max(value * 0.6, value + step * rng.choice((-6, -4, -3, -2, 2, 3, 4))), 2)
            t = res + int(rng.uniform(1800, 6 * HOUR))
            cvu2 = f'"code":"{code}","value":{new!r},"unit":"{unit}"'
            self.lab(p, cvu2, cs, t, "corrected", rid, flags, T_KMG_FINAL)
        elif r > 0.9960:  # a retraction, rare
            status = "entered-in-error" if rng.random() < 0.5 else "cancelled"
            t = res + int(rng.uniform(1200, 4 * HOUR))
            if rng.random() < 0.3:  # a removal needs no value or unit
                cvu = f'"code":"{code}","value":null,"unit":null'
            self.lab(p, cvu, cs, t, status, rid, flags, T_KMG_OTHER)

    def k_lab(
        self, p: Patient, coll: int, res: int, poc: bool, hemo: bool, cs: str | None = None
    ) -> float:
        """Queue a potassium result from the latent level; return the reported value."""
        v = p.k_state + 0.08 * self.z[int(self.rng.random() * ZN)]
        if hemo:
            v += self.rng.uniform(0.4, 1.2)
        v, vs = _DEC1[68 if v > 6.8 else (21 if v < 2.1 else int(v * 10.0 + 0.5))]
        if cs is None:
            cs = self.ts(coll, p)
        flags = _HEMO if hemo else "null"
        self.kmg_result(p, K_POC if poc else K_SERUM, v, vs, p.k_unit, coll, cs, res, flags)
        return v

    def mg_lab(self, p: Patient, coll: int, res: int, hemo: bool, cs: str | None = None) -> float:
        """Queue a magnesium result from the latent level; return the value in mg/dL."""
        v = p.mg_state + 0.05 * self.z[int(self.rng.random() * ZN)]
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

    def panel(self, p: Patient, coll: int) -> tuple[float | None, int]:
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
                line = f"{head}{n}{mid}{pools[j][int(rnd() * POOL)]}{tail}{n}{end}"
                key = a + jit[n & JITTER_MASK]
                append((key, a, T_OTHER_LAB, line))
                n += 1
                gap -= 1
                if not gap:
                    self.noise(key, a, T_OTHER_LAB, line)
                    gap = self.gap
        self.n = n
        self.gap = gap
        self.scan_top = 1 << 62
        panels.clear()
