"""MIMIC-IV demo adapter: counts checked independently against labs.csv / meds.csv."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from datetime import datetime
from typing import Any

import orjson
import pytest

from streams.adapters import AdapterSettings, AdapterStats, Canonical, Rejected, iter_feed
from streams.adapters.mimic import iter_mimic
from tests.streams.adapters.support import MIMIC, requires_shared

pytestmark = requires_shared

TZ = "America/New_York"  # Beth Israel Deaconess Medical Center, Boston


def rows(name: str) -> list[dict[str, str]]:
    with (MIMIC / name).open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def mimic() -> tuple[list[Canonical | Rejected], AdapterStats]:
    stats = AdapterStats()
    settings = AdapterSettings(facility_timezone=TZ)
    outputs = list(iter_mimic(MIMIC / "labs.csv", MIMIC / "meds.csv", settings, stats))
    return outputs, stats


def events(outputs: list[Canonical | Rejected]) -> list[dict[str, Any]]:
    return [orjson.loads(o.line) for o in outputs if isinstance(o, Canonical)]


def test_lab_counts_match_the_csv(mimic: tuple[list[Canonical | Rejected], AdapterStats]) -> None:
    labs = rows("labs.csv")
    with_value = Counter((r["analyte"], r["itemid"]) for r in labs if r["value"].strip())
    emitted = Counter(e["code"] for e in events(mimic[0]) if e["kind"] == "lab_result")
    assert emitted == {
        "2823-3": with_value[("potassium", "50971")],  # serum
        "6298-4": with_value[("potassium", "50822")],  # whole blood (blood gas)
        "19123-9": with_value[("magnesium", "50960")],
    }
    k_total = sum(n for (analyte, _), n in with_value.items() if analyte == "potassium")
    assert (k_total, with_value[("magnesium", "50960")]) == (3321, 2470)


def test_rows_without_value_are_rejected_with_their_line(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    outputs, stats = mimic
    rejected = [o for o in outputs if isinstance(o, Rejected)]
    lines = (MIMIC / "labs.csv").read_bytes().splitlines()
    expected = [line for line in lines[1:] if line.split(b",")[3] == b""]
    assert [r.raw for r in rejected] == expected
    assert {r.reason for r in rejected} == {"missing_field:value"}
    assert stats.rejected == {"missing_field:value": len(expected)} == {"missing_field:value": 3}


def test_medication_counts_and_skips(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    outputs, stats = mimic
    by_event = Counter(r["event"] for r in rows("meds.csv"))
    actions = Counter(e["action"] for e in events(outputs) if e["kind"] == "medication")
    assert actions == {
        "ordered": by_event["ordered"],
        "administered": by_event["administered"] + by_event["administered_unlabeled"],
    }
    assert stats.skipped == {
        "meds:not_given": by_event["not_given"],
        "meds:confirmed": by_event["confirmed"],
        "meds:stopped": by_event["stopped"],
    }


def test_duplicates_share_the_event_id_of_the_dose_they_repeat(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    meds = rows("meds.csv")
    duplicates = [r for r in meds if r["likely_duplicate_of"]]
    ids = Counter(e["event_id"] for e in events(mimic[0]))
    repeated = {i for i, n in ids.items() if n > 1}
    assert repeated == {f"mimic:{r['likely_duplicate_of']}" for r in duplicates}
    assert len(repeated) == len(duplicates) == 138
    assert all(i.startswith("mimic:inputevents:") for i in repeated)


def test_events_are_in_availability_order_with_offsets(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    evs = events(mimic[0])
    keys = [
        (
            datetime.fromisoformat(e["resulted_at"] if e["kind"] == "lab_result" else e["at"]),
            e["patient_id"],
            e["event_id"],
        )
        for e in evs
    ]
    assert keys == sorted(keys)
    first = evs[0]
    assert first["event_id"] == "mimic:labevent:12639"
    assert (first["collected_at"], first["resulted_at"]) == (
        "2110-04-08T11:11:00-04:00",
        "2110-04-08T17:49:00-04:00",
    )


def test_orders_use_entry_time_and_doses_link_to_them(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    by_id = {e["event_id"]: e for e in events(mimic[0])}
    order = by_id["mimic:prescriptions:48770010"]
    assert (order["action"], order["name"], order["dose"], order["dose_unit"]) == (
        "ordered",
        "Potassium Chloride",
        40,
        "mEq",
    )
    assert order["at"] == "2180-05-07T00:09:24-04:00"  # entered_at, not the rounded starttime
    assert order["order_id"] == "pharmacy:48770010"
    with gzip.open(MIMIC / "raw" / "hosp" / "emar.csv.gz", "rt", newline="") as fh:
        pharmacy_id = next(
            r["pharmacy_id"] for r in csv.DictReader(fh) if r["emar_id"] == "10000032-10"
        )
    dose = by_id["mimic:emar:10000032-10"]
    assert (dose["action"], dose["at"], dose["route"]) == (
        "administered",
        "2180-05-07T00:44:00-04:00",
        "PO",
    )
    assert dose["order_id"] == f"pharmacy:{pharmacy_id}"
    infusion = next(e for e in by_id.values() if e["event_id"].startswith("mimic:inputevents:"))
    assert infusion["order_id"] == "icu:" + infusion["event_id"].rsplit(":", 1)[1]


def test_hemolysis_comments(mimic: tuple[list[Canonical | Rejected], AdapterStats]) -> None:
    by_id = {e["event_id"]: e for e in events(mimic[0])}
    for row in rows("labs.csv"):
        event = by_id.get(f"mimic:labevent:{row['source_id']}")
        if event is None:
            continue
        comment = row["comments"].upper()
        if comment.startswith("HEMOLYSIS FALSELY ELEVATES"):
            assert event["flags"] == ["hemolyzed"], row
        elif "HEMOLY" in comment or not comment:
            assert event["flags"] is None, row  # "NOT HEMOLYZED", "NO HEMOLYSIS", none


def test_single_csv_through_iter_feed_matches_the_merged_run(
    mimic: tuple[list[Canonical | Rejected], AdapterStats],
) -> None:
    settings = AdapterSettings(facility_timezone=TZ)
    with (MIMIC / "meds.csv").open("rb") as fh:
        meds_only = [o for o in iter_feed("mimic", fh, settings) if isinstance(o, Canonical)]
    merged = {o.line for o in mimic[0] if isinstance(o, Canonical)}
    assert len(meds_only) == 4504 - 86 - 84 - 15
    assert all(o.line in merged for o in meds_only)
