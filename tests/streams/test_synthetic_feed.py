"""Tests of the deterministic synthetic canonical feed (streams/synthetic_feed/)."""

from __future__ import annotations

import io
import itertools
import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from streams import synthetic_feed as sf
from streams.synthetic_feed import MAX_JITTER_MICROS, FeedShape, generate, write_ndjson

# The canonical key order of the golden scenarios (RULES.md section 1).
LAB_KEYS = [
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
]
MED_KEYS = [
    "kind",
    "event_id",
    "patient_id",
    "encounter_id",
    "location",
    "action",
    "code",
    "name",
    "route",
    "dose",
    "dose_unit",
    "at",
    "order_id",
]
K_CODES = {"2823-3", "6298-4", "32713-0", "39789-3", "39790-1", "41656-0", "77142-8", "42569-4"}
MG_CODES = {"19123-9", "2601-3"}
ACCEPTED_UNITS = {"mmol/l", "meq/l", "mg/dl"}
STATUSES = {"final", "corrected", "preliminary", "cancelled", "entered-in-error"}
ACTIONS = {"ordered", "administered", "cancelled"}
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def parse_ts(value: object) -> datetime | None:
    """Parse an RFC 3339 timestamp with offset, or return None."""
    if not isinstance(value, str) or not TS_RE.match(value):
        return None
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))


def mg_dl(value: float, unit: str) -> float:
    u = unit.strip().lower()
    if u == "mg/dl":
        return value
    if u == "mmol/l":
        return value * 2.4305
    return value * 0.5 * 2.4305  # meq/l


def defect(line: bytes) -> str | None:
    """Return the first defect of a line by RULES.md sections 1 and 7, or None if it is valid."""
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError:
        return "bad_json"
    if not isinstance(ev, dict):
        return "not_an_object"
    kind = ev.get("kind")
    if kind not in ("lab_result", "medication"):
        return "unknown_kind"
    for f, top in (("event_id", 128), ("patient_id", 64)):
        v = ev.get(f)
        if v is None:
            return f"missing_field:{f}"
        if not isinstance(v, str) or not 1 <= len(v) <= top:
            return f"bad_type:{f}"
    for f in ("encounter_id", "location"):
        if not isinstance(ev.get(f), (str, type(None))):
            return f"bad_type:{f}"
    if kind == "lab_result":
        code = ev.get("code")
        if not isinstance(code, str):
            return "bad_type:code"
        if code not in K_CODES | MG_CODES:
            return None  # ignored: only the envelope is checked
        status = ev.get("status", "final")
        if status not in STATUSES:
            return "bad_status"
        times = {}
        for f in ("collected_at", "resulted_at"):
            raw = ev.get(f)
            if isinstance(raw, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$", raw):
                return f"timestamp_without_offset:{f}"
            times[f] = parse_ts(raw)
            if times[f] is None:
                return f"bad_timestamp:{f}"
        if times["resulted_at"] < times["collected_at"]:
            return "resulted_before_collected"
        if status not in ("cancelled", "entered-in-error"):
            value, unit = ev.get("value"), ev.get("unit")
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                return "bad_type:value"
            if not math.isfinite(value):
                return "non_finite_value"
            if not isinstance(unit, str) or unit.strip().lower() not in ACCEPTED_UNITS:
                return f"bad_unit:{unit}"
            if code in K_CODES:
                if unit.strip().lower() == "mg/dl":
                    return f"bad_unit:{unit}"
                if not 0.5 <= value <= 15:
                    return "implausible_value"
            elif not 0.1 <= mg_dl(value, unit) <= 20:
                return "implausible_value"
        if not isinstance(ev.get("result_id"), (str, type(None))):
            return "bad_type:result_id"
        flags = ev.get("flags")
        if flags is not None and not (
            isinstance(flags, list) and all(isinstance(x, str) for x in flags)
        ):
            return "bad_type:flags"
        return None
    action = ev.get("action")
    if action not in ACTIONS:
        return "bad_action"
    if ev.get("code") is None and ev.get("name") is None and action != "cancelled":
        return "missing_code_and_name"
    raw = ev.get("at")
    if isinstance(raw, str) and re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$", raw):
        return "timestamp_without_offset:at"
    if parse_ts(raw) is None:
        return "bad_timestamp:at"
    return None


def availability(ev: dict) -> int:
    """Return the availability time of a valid event in integer microseconds."""
    t = parse_ts(ev["resulted_at"] if ev["kind"] == "lab_result" else ev["at"])
    assert t is not None
    return int(t.timestamp()) * 1_000_000 + t.microsecond


class NullSink:
    """A binary stream that keeps only the number of bytes written."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


SMALL = FeedShape(patients=150, days=4, seed=7)
MEDIUM = FeedShape(patients=1500, days=10, seed=3, invalid_rate=0.01, duplicate_rate=0.02)


@pytest.fixture(scope="module")
def medium() -> tuple[list[tuple[int, bytes]], dict[str, int]]:
    """The medium feed as yielded by generate, and the counts of write_ndjson."""
    items = list(generate(MEDIUM))
    counts = write_ndjson(MEDIUM, NullSink())
    return items, counts


# ------------------------------------------------------------------------------ determinism
def test_same_seed_same_bytes() -> None:
    first = list(generate(SMALL))
    second = list(generate(SMALL))
    assert first == second
    assert len(first) > 1000
    a, b = io.BytesIO(), io.BytesIO()
    assert write_ndjson(SMALL, a) == write_ndjson(SMALL, b)
    assert a.getvalue() == b.getvalue()
    assert a.getvalue() == b"".join(line + b"\n" for _, line in first)


def test_different_seed_differs() -> None:
    other = FeedShape(patients=SMALL.patients, days=SMALL.days, seed=SMALL.seed + 1)
    assert [x[1] for x in generate(SMALL)] != [x[1] for x in generate(other)]


def test_target_shape_is_deterministic() -> None:
    shape = FeedShape(patients=300, days=5, seed=11, target_events=12_000)
    a, b = io.BytesIO(), io.BytesIO()
    write_ndjson(shape, a)
    write_ndjson(shape, b)
    assert a.getvalue() == b.getvalue()


# ----------------------------------------------------------------------------- validity
def test_valid_lines_follow_the_input_contract(
    medium: tuple[list[tuple[int, bytes]], dict[str, int]],
) -> None:
    items, counts = medium
    invalid = Counter()
    seen: set[bytes] = set()
    ids: set[str] = set()
    for avail, line in items:
        assert isinstance(avail, int) and isinstance(line, bytes)
        assert not line.endswith(b"\n") and b"\n" not in line
        if line in seen:
            continue  # a duplicate: checked elsewhere
        seen.add(line)
        reason = defect(line)
        if reason is not None:
            invalid[reason.split(":")[0]] += 1
            continue
        ev = orjson.loads(line)
        assert orjson.dumps(ev) == line  # compact canonical JSON
        assert list(ev) == (LAB_KEYS if ev["kind"] == "lab_result" else MED_KEYS)
        assert ev["event_id"] not in ids
        ids.add(ev["event_id"])
        assert avail == availability(ev)
        assert re.fullmatch(r"SP\d{6}", ev["patient_id"])
        assert ev["location"] in sf.WARDS
        if ev["kind"] == "lab_result":
            assert ev["result_id"]
            if ev["value"] is not None:
                assert ev["unit"].strip().lower() in ACCEPTED_UNITS
            else:
                assert ev["status"] in ("cancelled", "entered-in-error")
        else:
            assert ev["order_id"]
    assert sum(invalid.values()) == counts["invalid"]
    # every kind of deliberate defect of RULES.md section 7 is represented
    assert set(invalid) == {
        "bad_json",
        "missing_field",
        "bad_unit",
        "implausible_value",
        "timestamp_without_offset",
        "resulted_before_collected",
        "missing_code_and_name",
    }


def test_arrival_jitter_never_exceeds_five_minutes(
    medium: tuple[list[tuple[int, bytes]], dict[str, int]],
) -> None:
    items, _ = medium
    assert 0 < worst_arrival_lag(items) <= MAX_JITTER_MICROS


def worst_arrival_lag(items: list[tuple[int, bytes]]) -> int:
    """Return how far the most belated line's availability lies behind one before it."""
    latest = worst = 0
    for avail, _line in items:
        worst = max(worst, latest - avail)
        latest = max(latest, avail)
    return worst


def test_duplicates_are_resent_within_a_minute() -> None:
    gen = sf.FeedGenerator(MEDIUM)
    first_key: dict[str, float] = {}
    resent = 0
    for batch in gen.batches():
        for key, _avail, tag, line in batch:
            if tag == sf.T_DUPLICATE:
                assert 0 < key - first_key[line] <= 60_000_000
                resent += 1
            elif tag != sf.T_INVALID:
                first_key[line] = key
    assert resent > 100


def test_memory_is_bounded_by_a_day() -> None:
    gen = sf.FeedGenerator(FeedShape(patients=200, days=60, seed=5))
    sizes = []
    for batch in gen.batches():
        sizes.append(len(batch))
        assert len(gen.out) < 400  # the carry-over into the next day stays small
    assert max(sizes) < 3 * (sum(sizes) / len(sizes))


# ------------------------------------------------------------------------- counts, rates
LATE_START = FeedShape(
    patients=400,
    days=3,
    seed=8,
    start=datetime(2024, 3, 1, 14, 30, tzinfo=UTC),
    invalid_rate=0.01,
    duplicate_rate=0.02,
)


@pytest.mark.parametrize("shape", [MEDIUM, LATE_START], ids=["medium", "late-start"])
def test_counts_match_the_file(tmp_path: Path, shape: FeedShape) -> None:
    path = tmp_path / "feed.ndjson"
    counts = write_ndjson(shape, path)
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.split(b"\n")[:-1]
    seen: set[bytes] = set()
    kinds = Counter()
    duplicates = invalid = 0
    for line in lines:
        if line in seen:
            duplicates += 1
            continue
        seen.add(line)
        if defect(line) is not None:
            invalid += 1
        else:
            kinds[orjson.loads(line)["kind"]] += 1
    assert counts == {
        "lines": len(lines),
        "lab_result": kinds["lab_result"],
        "medication": kinds["medication"],
        "invalid": invalid,
        "duplicates": duplicates,
    }


def test_invalid_and_duplicate_rates_are_close(
    medium: tuple[list[tuple[int, bytes]], dict[str, int]],
) -> None:
    _, counts = medium
    lines = counts["lines"]
    assert lines > 30_000
    assert counts["invalid"] / lines == pytest.approx(MEDIUM.invalid_rate, rel=0.15)
    assert counts["duplicates"] / lines == pytest.approx(MEDIUM.duplicate_rate, rel=0.15)


def test_default_rates_are_close() -> None:
    counts = write_ndjson(FeedShape(patients=4000, days=14, seed=2), NullSink())
    lines = counts["lines"]
    assert lines > 100_000
    assert counts["invalid"] / lines == pytest.approx(0.001, rel=0.3)
    assert counts["duplicates"] / lines == pytest.approx(0.002, rel=0.25)


def test_zero_rates_give_no_noise() -> None:
    counts = write_ndjson(
        FeedShape(patients=100, days=3, invalid_rate=0.0, duplicate_rate=0.0), NullSink()
    )
    assert counts["invalid"] == counts["duplicates"] == 0
    assert counts["lines"] == counts["lab_result"] + counts["medication"]


@pytest.mark.parametrize(
    ("patients", "days", "target"),
    [(500, 7, 20_000), (3000, 14, 150_000), (2000, 30, 60_000), (100, 3, 2_500)],
)
def test_target_events_within_five_percent(patients: int, days: int, target: int) -> None:
    shape = FeedShape(patients=patients, days=days, seed=9, target_events=target)
    counts = write_ndjson(shape, NullSink())
    assert counts["lines"] == pytest.approx(target, rel=0.05)
    assert counts["lines"] >= target  # the generator aims just above the target


# ------------------------------------------------------------------------------ realism
def test_event_mix_is_realistic(
    medium: tuple[list[tuple[int, bytes]], dict[str, int]],
) -> None:
    items, _ = medium
    codes, statuses, actions, units = Counter(), Counter(), Counter(), Counter()
    k_values: list[float] = []
    mg_values: list[float] = []
    names: set[str] = set()
    hemolyzed = specimens = 0
    plus_one = null_cancels = 0
    for _, line in items:
        if defect(line) is not None:
            continue
        ev = orjson.loads(line)
        stamp = ev.get("resulted_at") or ev.get("at")
        plus_one += stamp.endswith("+01:00")
        if ev["kind"] == "lab_result":
            codes[ev["code"]] += 1
            statuses[ev["status"]] += 1
            if ev["unit"]:
                units[ev["unit"]] += 1
            if ev["code"] in K_CODES and ev["status"] == "final":
                k_values.append(ev["value"])
                specimens += 1
                hemolyzed += ev["flags"] == ["hemolyzed"]
            if ev["code"] == "19123-9" and ev["status"] == "final":
                mg_values.append(ev["value"])
        else:
            actions[ev["action"]] += 1
            if ev["name"]:
                names.add(ev["name"])
            if ev["action"] == "cancelled" and ev["code"] is None and ev["name"] is None:
                null_cancels += 1
    assert {"2823-3", "6298-4", "19123-9", "2601-3", "2951-2", "2160-0"} <= set(codes)
    assert set(statuses) == STATUSES
    assert {"mmol/L", "mEq/L", "meq/l", "MMOL/L", "mg/dL"} <= set(units)
    assert set(actions) == ACTIONS
    assert null_cancels > 0 and plus_one > 0
    low_k = sum(v < 3.5 for v in k_values) / len(k_values)
    assert 0.05 < low_k < 0.25
    assert sum(3.4 <= v <= 4.8 for v in k_values) / len(k_values) > 0.6
    assert 0.04 < sum(v < 1.7 for v in mg_values) / len(mg_values) < 0.25
    assert 0.004 < hemolyzed / specimens < 0.03
    lowered = {n.lower() for n in names}
    assert any("potassium chloride 20 meq / magnesium sulfate" in n for n in lowered)
    for keyword in ("furosemide", "lasix", "bumetanide", "hydrochlorothiazide", "metolazone"):
        assert any(keyword in n for n in lowered), keyword
    for ignored in ("spironolactone", "magnesium hydroxide", "acetaminophen"):
        assert any(ignored in n for n in lowered), ignored
    assert any(n.startswith("magnesium sulfate") for n in lowered)
    assert any(n.startswith("magnesium oxide") for n in lowered)


def test_morning_panels_are_collected_early() -> None:
    hours = Counter()
    for _, line in generate(SMALL):
        if defect(line) is None:
            ev = orjson.loads(line)
            if ev["kind"] == "lab_result" and ev["code"] == "2823-3":
                hours[parse_ts(ev["collected_at"]).astimezone(UTC).hour] += 1
    assert sum(hours[h] for h in (4, 5, 6)) > 0.4 * sum(hours.values())


def test_potassium_orders_follow_low_potassium() -> None:
    """Every KCl order comes after a K result of that patient below 4.0 within 12 hours."""
    last_low: dict[str, datetime] = {}
    orders = 0
    for _, line in generate(MEDIUM):
        if defect(line) is not None:
            continue
        ev = orjson.loads(line)
        if ev["kind"] == "lab_result" and ev["code"] in K_CODES and ev["status"] == "final":
            if ev["value"] < 4.0:
                last_low[ev["patient_id"]] = parse_ts(ev["resulted_at"])
        elif (
            ev["kind"] == "medication"
            and ev["action"] == "ordered"
            and "chloride" in (ev["name"] or "").lower()
            and "chl 20 meq / 1000" not in ev["name"].lower()
        ):
            orders += 1
            low = last_low.get(ev["patient_id"])
            assert low is not None and 0 <= (parse_ts(ev["at"]) - low).total_seconds() <= 12 * 3600
    assert orders > 200


# ------------------------------------------------------------------------------ endless
ENDLESS = FeedShape(
    patients=60,
    days=7,
    seed=9,
    start=datetime(2025, 1, 10, 9, 30, tzinfo=UTC),
    invalid_rate=0.01,
    duplicate_rate=0.02,
    endless=True,
)
ENDLESS_LINES = 30_000  # far beyond the 2,000 or so of one stay per patient (60 * 5 * 7.4)


@pytest.fixture(scope="module")
def endless() -> list[tuple[int, bytes]]:
    return list(itertools.islice(generate(ENDLESS), ENDLESS_LINES))


def test_an_endless_feed_goes_on_with_readmissions_and_new_ids(
    endless: list[tuple[int, bytes]],
) -> None:
    # Found by a user: `kmg simulate` ran out after one stay per patient (about 37 lines per
    # patient, whatever its number of days); an endless feed readmits its patients instead.
    assert len(endless) == ENDLESS_LINES
    assert endless == list(itertools.islice(generate(ENDLESS), ENDLESS_LINES))  # deterministic
    seen: set[bytes] = set()
    ids: set[str] = set()
    orders: dict[str, str] = {}
    days_in: dict[str, set[int]] = {}
    invalid = 0
    start = int(ENDLESS.start.timestamp()) * 1_000_000
    for avail, line in endless:
        if line in seen:
            continue  # a duplicate re-sent
        seen.add(line)
        if defect(line) is not None:
            invalid += 1
            continue
        ev = orjson.loads(line)
        assert list(ev) == (LAB_KEYS if ev["kind"] == "lab_result" else MED_KEYS)
        assert ev["event_id"] not in ids
        ids.add(ev["event_id"])
        assert avail == availability(ev) >= start
        if ev["kind"] == "medication":  # an order id stays with one patient
            assert orders.setdefault(ev["order_id"], ev["patient_id"]) == ev["patient_id"]
        days_in.setdefault(ev["patient_id"], set()).add((avail - start) // 86_400_000_000)
    assert invalid > 0
    assert max(a for a, _ in endless) - start > 60 * 86_400_000_000  # far past `days`
    # Every patient comes back: days with events on both sides of a day without any.
    assert len(days_in) == ENDLESS.patients
    for days in days_in.values():
        assert max(days) - min(days) + 1 > len(days)


def test_an_endless_feed_keeps_the_arrival_order(endless: list[tuple[int, bytes]]) -> None:
    assert 0 < worst_arrival_lag(endless) <= MAX_JITTER_MICROS


def test_an_endless_feed_outlasts_its_days_and_has_no_target() -> None:
    bounded = FeedShape(patients=40, days=3, seed=2)
    endless = FeedShape(patients=40, days=3, seed=2, endless=True)
    bounded_lines = [line for _, line in generate(bounded)]
    endless_lines = [line for _, line in itertools.islice(generate(endless), 20_000)]
    assert len(endless_lines) == 20_000 > 10 * len(bounded_lines)
    with pytest.raises(ValueError):
        FeedShape(patients=1, days=1, endless=True, target_events=10)


# ---------------------------------------------------------------------------- interface
def test_shape_validation() -> None:
    with pytest.raises(ValueError):
        FeedShape(patients=0, days=1)
    with pytest.raises(ValueError):
        FeedShape(patients=1, days=1, invalid_rate=-0.1)
    with pytest.raises(ValueError):
        FeedShape(patients=1, days=1, start=datetime(2024, 3, 1))


def test_start_and_offsets() -> None:
    shape = FeedShape(patients=50, days=2, start=datetime(2025, 1, 10, tzinfo=UTC))
    first = orjson.loads(next(line for _, line in generate(shape) if defect(line) is None))
    stamp = parse_ts(first.get("resulted_at") or first.get("at"))
    assert datetime(2025, 1, 10, tzinfo=UTC) <= stamp < datetime(2025, 1, 13, tzinfo=UTC)


def test_start_not_at_midnight_keeps_the_clock() -> None:
    """A feed starting mid-day begins at start and keeps morning labs in the morning."""
    start = LATE_START.start
    start_micros = int(start.timestamp()) * 1_000_000
    items = list(generate(LATE_START))
    assert min(a for a, _ in items) >= start_micros
    latest = max(a for a, _ in items)
    assert latest >= start_micros + (LATE_START.days * 24 - 6) * 3_600_000_000
    hours = Counter()
    for _, line in items:
        if defect(line) is None:
            ev = orjson.loads(line)
            if ev["kind"] == "lab_result" and ev["code"] == "2823-3":
                hours[parse_ts(ev["collected_at"]).astimezone(UTC).hour] += 1
    assert sum(hours[h] for h in (4, 5, 6)) > 0.4 * sum(hours.values())
    shape = FeedShape(patients=2000, days=4, seed=3, start=start, target_events=50_000)
    assert write_ndjson(shape, NullSink())["lines"] == pytest.approx(50_000, rel=0.02)


def test_cli_writes_file_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.ndjson"
    args = ["--patients", "80", "--days", "3", "--events", "2000", "--seed", "4", "--out", str(out)]
    assert sf.main(args) == 0
    counts = orjson.loads(capsys.readouterr().err)
    assert counts["lines"] == out.read_bytes().count(b"\n")
    shape = FeedShape(patients=80, days=3, seed=4, target_events=2000)
    assert out.read_bytes() == b"".join(line + b"\n" for _, line in generate(shape))
