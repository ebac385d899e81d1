"""One in-house day of a patient: latent levels, admission orders, labs, repletion, doses."""

from __future__ import annotations

from collections.abc import Callable

from streams.synthetic_feed.labs import ZN
from streams.synthetic_feed.lines import T_MED
from streams.synthetic_feed.medications import Medications
from streams.synthetic_feed.noise import JITTER_MASK
from streams.synthetic_feed.patients import Patient
from streams.synthetic_feed.timestamps import HOUR


class PatientDays(Medications):
    """The events of each patient's in-house days."""

    iu: Callable[[float, float], int]

    def patient_day(self, p: Patient, d: int, B: int) -> None:
        """Generate one in-house day of one patient (every event at or after B)."""
        rng = self.rng
        rnd = rng.random
        iu = self.iu
        z = self.z
        # latent levels evolve overnight
        kl = (
            p.k_mu
            + 0.55 * (p.k_state - p.k_mu)
            + 0.22 * z[int(rnd() * ZN)]
            + p.k_given
            - (0.08 if p.diur_given else 0.0)
        )
        p.k_state = 6.4 if kl > 6.4 else (2.15 if kl < 2.15 else kl)
        mg = p.mg_mu + 0.6 * (p.mg_state - p.mg_mu) + 0.09 * z[int(rnd() * ZN)]
        p.mg_state = 3.2 if mg > 3.2 else (1.0 if mg < 1.0 else mg)
        p.k_given = 0.0
        p.diur_given = False
        admitted = d == p.admit
        if admitted:
            t_adm = B + p.admit_sec
            coll = t_adm + iu(600, 3600)
            t_orders = t_adm + iu(3600, 4 * HOUR)
            for entry in p.diuretics:
                admins = [t_orders + iu(1200, 3600)] if t_orders < B + 21 * HOUR else []
                self.running(p, entry, *self.order(p, entry[0], t_orders, admins, 0.02))
                p.diur_given = bool(admins)
            for entry in p.meds:
                t = t_orders + iu(0, 1800)
                admins = [] if entry[1] or t > B + 22 * HOUR else [t + iu(600, 3600)]
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
                if last > kres and (k < 3.1 or last - kres > 3 * HOUR) and rnd() < 0.7:
                    # recheck a few hours after the last dose
                    coll2 = last + iu(2 * HOUR, 4 * HOUR)
                    poc = p.icu and rnd() < 0.5
                    res2 = coll2 + (iu(180, 900) if poc else iu(1800, 4800))
                    k2 = self.k_lab(p, coll2, res2, poc, False)
                    if rnd() < 0.3:
                        self.mg_lab(p, coll2, res2 + iu(0, 900), False)
                    if k2 < p.k_thresh and rnd() < 0.8:
                        self.k_order(p, res2, k2, None)
                        n_orders += 1
        elif p.mg_val is not None and p.mg_coll >= coll and p.mg_val < 1.7 and rnd() < 0.7:
            self.mg_order(p, kres + iu(1800, 4 * HOUR))
        # STAT labs during the day
        t = B + 8 * HOUR
        while rnd() < p.stat_q:
            t += iu(1800, 6 * HOUR)
            if t > B + 23 * HOUR:
                break
            poc = p.icu and rnd() < 0.6
            res = t + (iu(180, 900) if poc else iu(1800, 4800))
            k2 = self.k_lab(p, t, res, poc, rnd() < 0.005)
            if not poc and rnd() < 0.35:
                self.mg_lab(p, t, res + iu(0, 900), False)
            if (
                k2 < p.k_thresh
                and n_orders < 3
                and res - p.last_k_order > 4 * HOUR
                and rnd() < 0.75
            ):
                self.k_order(p, res, k2, None)
                n_orders += 1
        # occasional diuretic dose changes: a new order given at once
        if p.diuretics and not admitted and rnd() < 0.06:
            entry = p.diuretics[0]
            tt = B + iu(9 * HOUR, 20 * HOUR)
            self.running(p, entry, *self.order(p, entry[0], tt, [tt + iu(900, 3600)], 0.02))
            p.diur_given = True

    def scheduled_meds(self, p: Patient, B: int) -> None:
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
            key = a + jit[n & JITTER_MASK]
            append((key, a, T_MED, line))
            n += 1
            self.gap -= 1
            if not self.gap:
                self.n = n
                self.noise(key, a, T_MED, line)
        self.n = n
