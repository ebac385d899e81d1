"""The synthetic patients: each one's profile, drawn once, and running state."""

from __future__ import annotations

import math
import random
from typing import Final

from streams.synthetic_feed.drugs import IGNORED_DRUGS, LOOP_DIURETICS, MIVF, PRN, THIAZIDE
from streams.synthetic_feed.lab_codes import K_UNITS, MG_STYLES
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.timestamps import DAY, HOUR

WARDS: Final = ("ICU-A", "ICU-B", "CCU", "WARD-4E", "WARD-5W")
_WARD_CUM: Final = (0.11, 0.22, 0.32, 0.66, 1.0)
_ICU_WARDS: Final = frozenset({"ICU-A", "ICU-B", "CCU"})

LOGNORM_MEAN: Final = math.exp(0.75**2 / 2)


class Patient:
    """Profile and running state of one synthetic patient."""

    __slots__ = (
        "admit",
        "admit_sec",
        "addon_p",
        "cardiac",
        "co_p",
        "diur_given",
        "diuretics",
        "draw_min",
        "end",
        "first",
        "frag",
        "icu",
        "k_given",
        "k_mu",
        "k_state",
        "k_thresh",
        "k_unit",
        "last_k_order",
        "late_p",
        "meds",
        "mg_check",
        "mg_code",
        "mg_coll",
        "mg_dec",
        "mg_div",
        "mg_mu",
        "mg_rep",
        "mg_state",
        "mg_target",
        "mg_unit",
        "mg_val",
        "off",
        "other_w",
        "r_admit",
        "ss",
        "standing",
        "standing_p",
        "stat_q",
        "u_los",
    )
    frag: str  # '"patient_id":...,"encounter_id":...,"location":...'
    off: int  # 0, or 3600 for a patient whose times are written with +01:00
    ss: list[str]  # the seconds-and-offset suffixes of the patient's timestamps
    icu: bool
    cardiac: bool
    u_los: float  # relative length of stay (mean 1)
    r_admit: float  # where the stay falls in the window
    admit: int  # admission day (may be < 0: admitted before the window)
    first: int  # first and one-past-last in-house day within the window
    end: int
    admit_sec: int  # admission second of the day
    k_mu: float  # latent potassium (mmol/L): mean and today's level
    k_state: float
    k_unit: str
    mg_mu: float  # latent magnesium (mg/dL): mean and today's level
    mg_state: float
    mg_code: str
    mg_unit: str
    mg_div: float  # mg/dL per reported unit
    mg_dec: int  # decimals reported
    mg_check: float  # probability that a panel includes magnesium
    draw_min: int  # habitual morning draw (minutes after midnight)
    stat_q: float  # STAT lab continuation probability
    k_thresh: float  # the team's potassium repletion threshold
    mg_target: float  # the team's magnesium target (mg/dL)
    co_p: float  # magnesium habit: co-order within 30 min, hours later (else never)
    late_p: float
    addon_p: float  # probability of an add-on Mg test when Mg is unknown
    standing_p: float  # probability that an oral KCl order is a standing daily order
    diuretics: list[list]  # running orders: [drug, bid, order_id, coding, head, tail]
    meds: list[list]  # running orders of ignored drugs: [drug, prn, order_id, ...]
    standing: list | None  # standing KCl order: [drug, days left, order_id, ...]
    mg_val: float | None  # latest Mg (mg/dL) that counts, and its collection time
    mg_coll: int
    mg_rep: int  # time of the latest magnesium dose
    k_given: float  # K rise from today's doses, applied overnight
    diur_given: bool
    other_w: float  # weight of the patient in the allocation of other chemistry
    last_k_order: int


def _cum_pick(table: tuple, r: float) -> tuple:
    for row in table:
        if r < row[0]:
            return row
    return table[-1]


def admission_second(r: float) -> int:
    """Map a uniform draw to an admission time of day (mostly daytime and evening)."""
    if r < 0.12:
        return int(r / 0.12 * 8 * HOUR)
    if r < 0.72:
        return int(8 * HOUR + (r - 0.12) / 0.6 * 10 * HOUR)
    return min(DAY - 1, int(18 * HOUR + (r - 0.72) / 0.28 * 6 * HOUR))


def draw_patients(
    shape: FeedShape, rng: random.Random, ssz: list[str], ss1: list[str]
) -> list[Patient]:
    """Draw the profiles of the shape's patients, in id order."""
    rnd = rng.random
    wards = tuple(zip(_WARD_CUM, WARDS, strict=True))
    pats: list[Patient] = []
    width = max(6, len(str(shape.patients)))
    for i in range(shape.patients):
        p = Patient()
        num = f"{i + 1:0{width}d}"
        loc = _cum_pick(wards, rnd())[1]
        p.frag = f'"patient_id":"SP{num}","encounter_id":"EN{num}","location":"{loc}"'
        plus1 = rnd() < 0.08
        p.off, p.ss = (HOUR, ss1) if plus1 else (0, ssz)
        p.icu = loc in _ICU_WARDS
        p.cardiac = loc == "CCU" or rnd() < 0.12
        p.u_los = rng.lognormvariate(0.0, 0.75) / LOGNORM_MEAN * (1.25 if p.icu else 1.0)
        p.r_admit = rnd()
        p.admit_sec = admission_second(rnd())
        diuretic = rnd() < (0.45 if p.cardiac else 0.2)
        hypok = rnd() < (0.2 if diuretic else 0.1)
        renal = not hypok and rnd() < 0.05  # renal failure: high-normal to high K and Mg
        if hypok:
            p.k_mu = 2.9 + 0.55 * rnd()
        elif renal:
            p.k_mu = 4.5 + 0.9 * rnd()
        else:
            p.k_mu = rng.gauss(4.1, 0.22) - (0.12 if diuretic else 0.0)
        p.k_state = p.k_mu + rng.gauss(0.0, 0.25)
        p.k_unit = _cum_pick(K_UNITS, rnd())[1]
        lowmg = rnd() < (0.2 if diuretic or hypok else 0.08)
        if lowmg:
            p.mg_mu = 1.25 + 0.45 * rnd()
        elif renal:
            p.mg_mu = 2.2 + 0.7 * rnd()
        else:
            p.mg_mu = rng.gauss(2.02, 0.14) - (0.1 if diuretic else 0.0)
        p.mg_state = p.mg_mu + rng.gauss(0.0, 0.1)
        _, p.mg_code, p.mg_unit, p.mg_div, p.mg_dec = _cum_pick(MG_STYLES, rnd())
        r = rnd()
        if r < 0.07:
            p.mg_check = 0.1 * rnd()  # a team that almost never orders Mg
        elif p.icu:
            p.mg_check = 0.75 + 0.25 * rnd()
        else:
            p.mg_check = 0.35 + 0.55 * rnd()
        p.draw_min = int(250 + 160.0 * rnd())
        rate = (0.4 + 0.8 * rnd()) if p.icu else (0.05 + 0.25 * rnd())
        p.stat_q = rate / (1 + rate)
        p.k_thresh = 4.0 if p.cardiac and rnd() < 0.7 else (3.6 if rnd() < 0.2 else 3.5)
        p.mg_target = 2.0 if p.cardiac else 1.7
        r = rnd()
        if r < 0.55:
            p.co_p, p.late_p = 0.55 + 0.35 * rnd(), 0.05 + 0.25 * rnd()
        elif r < 0.85:
            p.co_p, p.late_p = 0.2 + 0.3 * rnd(), 0.2 + 0.3 * rnd()
        else:
            p.co_p, p.late_p = 0.15 * rnd(), 0.2 * rnd()
        p.addon_p = 0.1 + 0.4 * rnd()
        p.standing_p = 0.35 if diuretic and hypok else (0.06 if hypok else 0.01)
        # medication entries: [drug, bid-or-prn, order_id, code/name fragment]
        diur: list[list] = []
        if diuretic:
            drug = LOOP_DIURETICS[int(rnd() * len(LOOP_DIURETICS))] if rnd() < 0.8 else None
            if drug is not None:
                diur.append([drug, rnd() < 0.35, None, None])
            if drug is None or rnd() < 0.1:
                diur.append([THIAZIDE[int(rnd() * len(THIAZIDE))], False, None, None])
        p.diuretics = diur
        meds: list[list] = []
        for _ in range(int(rnd() * 3.2)):
            drug = IGNORED_DRUGS[int(rnd() * len(IGNORED_DRUGS))]
            if drug.name.startswith("Spironolactone") and not (diuretic or rnd() < 0.3):
                continue
            meds.append([drug, drug.name.split(" ", 1)[0] in PRN, None, None])
        if rnd() < 0.1:
            meds.append([MIVF, False, None, None])
        p.meds = meds
        p.standing = None
        p.mg_val = None
        p.mg_coll = -(10**9)
        p.mg_rep = -(10**9)
        p.k_given = 0.0
        p.diur_given = False
        p.other_w = (0.4 + 1.2 * rnd()) * (1.3 if p.icu else 1.0)
        p.last_k_order = -(10**9)
        pats.append(p)
    return pats
