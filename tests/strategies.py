"""Hypothesis strategies: realistic multi-patient K/Mg feeds, arrival orders, and hostile input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from hypothesis import strategies as st

from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication

MINUTE = 60_000_000
HOUR = 60 * MINUTE
START = datetime(2024, 3, 4, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
START_MICROS = (START - _EPOCH) // timedelta(microseconds=1)

OFFSETS = (0, 60, -300, 330, -600)  # minutes east of UTC, rendered as Z or +hh:mm / -hh:mm

K_UNITS = ("mmol/L", "mEq/L", "MMOL/L", "meq/l")
MG_VALUES = {
    # Values chosen around the thresholds (1.2 and 1.7 mg/dL) in each accepted unit.
    "mg/dL": (1.1, 1.19, 1.2, 1.5, 1.69, 1.7, 1.9, 2.2),
    "mmol/L": (0.45, 0.49, 0.6, 0.69, 0.7, 0.85),
    "mEq/L": (0.98, 1.2, 1.38, 1.4, 1.8),
}
K_VALUES = (2.2, 2.49, 2.5, 2.8, 2.99, 3.0, 3.2, 3.49, 3.5, 3.8, 4.4)
K_NAMES = ("Potassium chloride ER 20 mEq tablet", "KCl 10 mEq/100 mL IV", "Klor-Con M20")
MG_NAMES = ("Magnesium sulfate 2 g/50 mL IV", "Mag-Ox 400 mg", "MgSO4 4 g")
DIURETICS = (("4603", "Furosemide 40 mg IV"), (None, "Lasix 20 mg"), ("5487", "HCTZ 25 mg"))
FLAGS: tuple[list[str] | None, ...] = (
    None,
    None,
    None,
    [],
    ["hemolyzed"],
    ["HEMOLYZED"],
    ["lipemic"],
)


class FeedEvent(NamedTuple):
    """One canonical event with its availability in microseconds (labs: resulted, meds: at)."""

    available: int
    patient_id: str
    event: dict[str, Any]


def render(micros: int, offset_minutes: int = 0) -> str:
    """Render an instant as RFC 3339 with the given offset (Z for zero)."""
    dt = _EPOCH + timedelta(microseconds=micros)
    local = dt + timedelta(minutes=offset_minutes)
    head = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        head += f".{local.microsecond:06d}"
    if offset_minutes == 0:
        return head + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{head}{sign}{hours:02d}:{minutes:02d}"


def _instants(days: int) -> st.SearchStrategy[int]:
    """Minutes over `days`, often on a 30-minute grid so events and timers share instants."""
    span = days * 24 * 60
    grid = st.integers(0, span // 30).map(lambda n: n * 30)
    return st.one_of(grid, st.integers(0, span)).map(lambda m: START_MICROS + m * MINUTE)


@st.composite
def feeds(
    draw: st.DrawFn,
    max_patients: int = 3,
    min_events: int = 1,
    max_events: int = 40,
    days: int = 3,
) -> list[FeedEvent]:
    """A realistic multi-patient feed: labs, corrections, removals, orders, cancels, diuretics."""
    patients = [f"P{i}" for i in range(1, draw(st.integers(1, max_patients)) + 1)]
    count = draw(st.integers(min_events, max_events))
    instants = _instants(days)
    offset = st.sampled_from(OFFSETS)
    out: list[FeedEvent] = []
    labs: list[tuple[str, str, int, str]] = []  # (patient, result_id, collected, code)
    orders: dict[str, set[str]] = {p: set() for p in patients}
    for i in range(count):
        patient = draw(st.sampled_from(patients))
        event_id = f"ev{i:03d}"
        kind = draw(
            st.sampled_from(
                (
                    "k",
                    "k",
                    "mg",
                    "mg",
                    "mg",
                    "kcl",
                    "kcl",
                    "kcl",
                    "mg_rep",
                    "diuretic",
                    "cancel",
                    "correction",
                    "removal",
                    "preliminary",
                    "premix",
                    "other",
                )
            )
        )
        base: dict[str, Any] = {"event_id": event_id, "patient_id": patient}
        base["encounter_id"] = draw(st.sampled_from((f"ENC-{patient}", None)))
        base["location"] = draw(st.sampled_from(("ICU-A", "WARD-3", None)))
        own_labs = [x for x in labs if x[0] == patient]
        if kind == "correction" and not own_labs:
            kind = "mg"
        if kind == "removal" and not own_labs:
            kind = "k"
        if kind in ("k", "mg", "preliminary", "correction"):
            if kind == "correction":
                _, result_id, collected, code = draw(st.sampled_from(own_labs))
                status = draw(st.sampled_from(("corrected", "final")))
            else:
                code = "2823-3" if kind == "k" else draw(st.sampled_from(("19123-9", "2601-3")))
                collected = draw(instants)
                result_id = f"R{i:03d}"
                status = "preliminary" if kind == "preliminary" else "final"
            if code == "2823-3":
                unit = draw(st.sampled_from(K_UNITS))
                value = draw(st.sampled_from(K_VALUES))
            else:
                unit = draw(st.sampled_from(tuple(MG_VALUES)))
                value = draw(st.sampled_from(MG_VALUES[unit]))
            delay = draw(st.sampled_from((0, 20, 40, 90, 360, 26 * 60))) * MINUTE
            resulted = collected + delay
            if kind == "correction":
                resulted += draw(st.integers(1, 600)) * MINUTE
            sent_id: str | None = result_id
            if kind != "correction" and draw(st.booleans()):
                sent_id, result_id = None, event_id  # the event_id stands in as the result id
            labs.append((patient, result_id, collected, code))
            event = {
                **base,
                "kind": "lab_result",
                "code": code,
                "value": value,
                "unit": unit,
                "collected_at": render(collected, draw(offset)),
                "resulted_at": render(resulted, draw(offset)),
                "status": status,
                "result_id": sent_id,
                "flags": draw(st.sampled_from(FLAGS)) if code != "2823-3" else None,
            }
            out.append(FeedEvent(resulted, patient, event))
            continue
        if kind == "removal":
            _, result_id, collected, code = draw(st.sampled_from(own_labs))
            at = collected + draw(st.integers(30, 48 * 60)) * MINUTE
            if draw(st.integers(0, 9)) == 0:
                result_id = "R-unknown"
            event = {
                **base,
                "kind": "lab_result",
                "code": code,
                "collected_at": render(collected, draw(offset)),
                "resulted_at": render(at, draw(offset)),
                "status": draw(st.sampled_from(("cancelled", "entered-in-error"))),
                "result_id": result_id,
            }
            out.append(FeedEvent(at, patient, event))
            continue
        at = draw(instants)
        if kind == "other":
            if draw(st.booleans()):
                event = {
                    **base,
                    "kind": "lab_result",
                    "code": "2951-2",
                    "value": 139,
                    "unit": "mmol/L",
                    "collected_at": render(at),
                    "resulted_at": render(at),
                }
            else:
                event = {
                    **base,
                    "kind": "medication",
                    "action": "ordered",
                    "name": "Acetaminophen 1 g",
                    "at": render(at),
                }
            out.append(FeedEvent(at, patient, event))
            continue
        action = draw(st.sampled_from(("ordered", "ordered", "administered")))
        order_pool = {"kcl": "OK", "premix": "OK", "mg_rep": "OM", "diuretic": "OD"}
        if kind == "cancel":
            known = sorted(orders[patient]) or ["OK1"]
            event = {
                **base,
                "kind": "medication",
                "action": "cancelled",
                "code": None,
                "name": None,
                "at": render(at, draw(offset)),
                "order_id": draw(st.sampled_from(known)),
            }
            out.append(FeedEvent(at, patient, event))
            continue
        number = draw(st.one_of(st.none(), st.integers(1, 3)))
        order_id = None if number is None else f"{order_pool[kind]}{number}"
        if order_id is not None:
            orders[patient].add(order_id)
        med_code: str | None
        med_name: str | None
        if kind == "kcl":
            med_code, med_name = draw(
                st.sampled_from(
                    (("8591", None), (None, K_NAMES[0]), ("8591", K_NAMES[1]), (None, K_NAMES[2]))
                )
            )
        elif kind == "mg_rep":
            med_code, med_name = draw(
                st.sampled_from((("6585", MG_NAMES[0]), (None, MG_NAMES[1]), (None, MG_NAMES[2])))
            )
        elif kind == "premix":
            med_code, med_name = None, "Potassium chloride 20 mEq + magnesium sulfate 1 g"
        else:
            med_code, med_name = draw(st.sampled_from(DIURETICS))
        event = {
            **base,
            "kind": "medication",
            "action": action,
            "code": med_code,
            "name": med_name,
            "route": "IV",
            "dose": 20,
            "dose_unit": "mEq",
            "at": render(at, draw(offset)),
            "order_id": order_id,
        }
        out.append(FeedEvent(at, patient, event))
    return out


@st.composite
def non_late_arrivals(draw: st.DrawFn, feed: list[FeedEvent], lateness: int) -> list[FeedEvent]:
    """Permute a feed so that no event is late for W = max seen - lateness.

    Each event is delayed by d in [0, lateness] and arrivals are sorted by a + d: every earlier
    arrival then has a' <= a + d, so W <= a when the event arrives (it is never late; at
    d = lateness it may arrive at exactly W = a, after other events of its instant).
    """
    delays = draw(
        st.lists(
            st.one_of(
                st.sampled_from((0, lateness, lateness - 1, lateness // 2)),
                st.integers(0, lateness),
            ),
            min_size=len(feed),
            max_size=len(feed),
        )
    )
    tiebreak = draw(st.permutations(range(len(feed))))
    order = sorted(range(len(feed)), key=lambda i: (feed[i].available + delays[i], tiebreak[i]))
    return [feed[i] for i in order]


# -- hostile input -------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

FIELDS = (
    "kind",
    "event_id",
    "patient_id",
    "encounter_id",
    "location",
    "code",
    "value",
    "unit",
    "collected_at",
    "resulted_at",
    "status",
    "result_id",
    "flags",
    "action",
    "name",
    "route",
    "dose",
    "dose_unit",
    "at",
    "order_id",
)

field_values = st.one_of(
    json_values,
    st.sampled_from(
        (
            "2024-03-04T08:00:00",
            "2024-03-04T08:00:60Z",
            "2024-03-04 08:00:00Z",
            "",
            "lab_result",
            "medication",
            "preliminary",
            "cancelled",
            "mg/dL",
            "mg/L",
            "hemolyzed",
            "8591",
            "2823-3",
            "19123-9",
            "x" * 200,
            0,
            -1,
            1e308,
            True,
        )
    ),
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields replaced by arbitrary JSON or removed."""
    event = dict(draw(feeds(max_patients=1, min_events=1, max_events=1))[0].event)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FIELDS))
        if draw(st.booleans()):
            event.pop(field, None)
        else:
            event[field] = draw(field_values)
    return event


# -- decoded events for the external sort ----------------------------------------------------

_ids = st.text(alphabet="abcdefgP0123456789-", min_size=1, max_size=6)
_times = st.integers(START_MICROS, START_MICROS + 3 * 24 * HOUR)
_opt_text = st.none() | st.text(max_size=5)

lab_results = st.builds(
    LabResult,
    _times,
    _ids,
    _ids,
    st.sampled_from((Analyte.POTASSIUM, Analyte.MAGNESIUM, None)),
    st.none() | st.floats(0.1, 20, allow_nan=False),
    st.none() | _times,
    st.sampled_from(tuple(LabStatus)),
    _ids,
    st.booleans(),
    _opt_text,
    _opt_text,
)

medications = st.builds(
    Medication,
    _times,
    _ids,
    _ids,
    st.sampled_from(tuple(MedAction)),
    st.frozensets(st.sampled_from(tuple(MedClass))),
    _opt_text,
    _opt_text,
    _opt_text,
)


def unique_events(max_size: int = 60) -> st.SearchStrategy[list[LabResult | Medication]]:
    """Decoded events with unique (patient_id, event_id), as replay hands them to the sorter."""
    return st.lists(
        st.one_of(lab_results, medications),
        max_size=max_size,
        unique_by=lambda ev: (ev.patient_id, ev.event_id),
    )
