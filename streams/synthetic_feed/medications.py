"""Medication orders: potassium repletion, the magnesium that goes with it, running orders."""

from __future__ import annotations

from streams.synthetic_feed.drugs import (
    _K_IV,
    _K_PHOS,
    _K_PO,
    _K_PREMIX,
    _MG_IV,
    _MG_PO,
    _NO_DRUG_FRAG,
    Drug,
)
from streams.synthetic_feed.labs import Labs
from streams.synthetic_feed.lines import T_MED, T_MED_CANCEL
from streams.synthetic_feed.noise import JITTER_MASK
from streams.synthetic_feed.patients import Patient
from streams.synthetic_feed.timestamps import DAY, HOUR


class Medications(Labs):
    """The queueing of medication orders, administrations and cancellations."""

    med_head: str
    oid: int

    def med(self, p: Patient, action: str, frag: str, t: int, oid: str) -> None:
        """Queue a medication event; frag is the code/name/route/dose fragment."""
        n = self.n
        self.n = n + 1
        line = (
            f'{self.med_head}{n}",{p.frag},"action":"{action}",{frag},'
            f'"at":"{self.ts(t, p)}","order_id":"{oid}"}}'
        )
        tag = T_MED_CANCEL if action == "cancelled" else T_MED
        a = self.a0 + t * 1_000_000
        key = a + self.jit[n & JITTER_MASK]
        self.out.append((key, a, tag, line))
        self.gap -= 1
        if not self.gap:
            self.noise(key, a, tag, line)

    def next_oid(self) -> str:
        self.oid += 1
        return f"O{self.oid}"

    def pick_frag(self, drug: Drug) -> str:
        """Choose how the drug is coded: RxNorm, a local code or no code (name only)."""
        r = self.rng.random()
        if r < 0.72 and drug.frag_rx != drug.frag_null:
            return drug.frag_rx
        if r < 0.86:
            return drug.frag_local
        return drug.frag_null

    def order(
        self, p: Patient, drug: Drug, t: int, admins: list[int], cancel_p: float
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

    def k_order(self, p: Patient, t_res: int, v: float, morning_coll: int | None) -> int:
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

    def mg_management(self, p: Patient, t: int, morning_coll: int | None) -> None:
        """Decide what the team does about magnesium around a potassium order at t."""
        rng = self.rng
        rnd = rng.random
        mg = p.mg_val
        known = mg is not None and p.mg_coll >= t - DAY
        if known and p.mg_rep >= p.mg_coll:
            return  # already repleted since the last result
        if mg is not None and known and mg < p.mg_target:
            r = rnd()
            if r < p.co_p:
                self.mg_order(p, t + int(rng.uniform(0, 1500)))
            elif r < p.co_p + p.late_p:
                self.mg_order(p, t + int(rng.uniform(2 * HOUR, 8 * HOUR)))
        elif not known:
            r = rnd()
            if r < p.addon_p and morning_coll is not None:  # add-on Mg on the morning specimen
                res = t + int(rng.uniform(1800, 5400))
                mg = self.mg_lab(p, morning_coll, res, False)
                if mg < p.mg_target and rnd() < p.co_p + p.late_p:
                    self.mg_order(p, res + int(rng.uniform(900, 3 * HOUR)))
            elif r < p.addon_p + 0.12:
                self.mg_order(p, t + int(rng.uniform(0, 1500)))
        elif p.cardiac and rnd() < 0.08:
            self.mg_order(p, t + int(rng.uniform(0, 1500)))

    def mg_order(self, p: Patient, t: int) -> None:
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
                admins.append(ta + int(rng.uniform(2 * HOUR, 10 * HOUR)))
        self.order(p, drug, t, admins, 0.02)
        if admins:
            p.mg_rep = admins[0]
            p.mg_state += 0.2 * len(admins) if iv else 0.07 * len(admins)

    def running(self, p: Patient, entry: list, oid: str, frag: str) -> list:
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
