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

The package: the shape of a feed (shape), what a line is (lines), the lab codes (lab_codes)
and drugs (drugs); the patients (patients) and their stays (stays); the clock (timestamps);
arrival jitter, copies and invalid lines (noise); the lab results (labs), medication orders
(medications) and in-house days (patient_days) that queue lines; the day-by-day generation
in arrival order (generator); the NDJSON writer and its command line (writer).
"""

from __future__ import annotations

from streams.synthetic_feed.generator import FeedGenerator as FeedGenerator
from streams.synthetic_feed.generator import generate
from streams.synthetic_feed.lab_codes import K_POC as K_POC
from streams.synthetic_feed.lab_codes import K_SERUM as K_SERUM
from streams.synthetic_feed.lab_codes import MG_MASS as MG_MASS
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MEQ_L as MG_MG_DL_PER_MEQ_L
from streams.synthetic_feed.lab_codes import MG_MG_DL_PER_MMOL_L as MG_MG_DL_PER_MMOL_L
from streams.synthetic_feed.lab_codes import MG_MOLES as MG_MOLES
from streams.synthetic_feed.lines import T_DUPLICATE as T_DUPLICATE
from streams.synthetic_feed.lines import T_INVALID as T_INVALID
from streams.synthetic_feed.lines import Pending as Pending
from streams.synthetic_feed.noise import MAX_JITTER_MICROS
from streams.synthetic_feed.patients import WARDS as WARDS
from streams.synthetic_feed.shape import FeedShape
from streams.synthetic_feed.writer import main, write_ndjson

# The "X as X" names above were attributes of the single module this package replaces: the
# tests (and any caller) still reach them here.
__all__ = ["MAX_JITTER_MICROS", "FeedShape", "generate", "main", "write_ndjson"]
