"""MIMIC-IV demo extracts (shared/data/mimic-iv-demo: labs.csv, meds.csv) -> canonical events.

Times in the CSVs are local wall-clock times without offset (MIMIC's shifted years 2110-2201):
they are read in settings.facility_timezone (BIDMC: America/New_York). Events come out in
availability order (resulted_at for labs, at for medications; ties by patient_id, event_id),
after any Rejected rows. See README.txt beside the CSVs for the columns and their quirks.

Medications:
- prescriptions rows are orders; their `at` (starttime) is rounded to the hour and usually
  12-47 min after the real entry, so the order time is entered_at (pharmacy.entertime).
- eMAR rows administered / administered_unlabeled (a charted given dose without event text) are
  administrations at `at` (charttime); not_given, confirmed and stopped carry no administration
  and are skipped (counted as "meds:<event>").
- order_id links administrations to their order: "pharmacy:<pharmacy_id>" for prescriptions and
  for eMAR rows (pharmacy_id read from raw/hosp/emar.csv.gz beside the CSVs, when present);
  "icu:<linkorderid>" for ICU inputevents.
- meds.csv names no RxNorm code: code is null and classification downstream is by name.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from streams.adapters import AdapterOutput, AdapterSettings, AdapterStats, Canonical, Rejected
from streams.adapters import canonical as ev
from streams.adapters.hl7_support import Unmappable
from streams.adapters.timestamps import BadTimestamp, parse_iso, sort_key

ACTIONS = {
    "ordered": "ordered",
    "administered": "administered",
    "administered_unlabeled": "administered",
}
NO_EVENT = frozenset({"not_given", "confirmed", "stopped"})
EMAR_RAW = Path("raw") / "hosp" / "emar.csv.gz"

Row = dict[str, str]
Keyed = tuple[datetime, str, str, Canonical]  # (availability instant, patient_id, event_id, event)


def _records(stream: BinaryIO) -> Iterator[tuple[bytes, Row | str]]:
    """(original bytes, row) of each CSV record, or (bytes, why) for one that cannot be read.

    A quoted field may span lines. A quote inside an unquoted field (`drawn from 5" line`) is
    a character like any other, so it neither opens a field nor joins the next line.
    """
    header_line = stream.readline()
    header = next(csv.reader([header_line.decode("utf-8", "replace").lstrip("\ufeff")]), [])
    pending = b""
    for line in stream:
        pending += line
        if _inside_quotes(pending):
            continue
        raw, pending = pending.rstrip(b"\r\n"), b""
        if raw.strip():
            yield raw, _row(raw, header)
    if pending.strip():
        yield pending.rstrip(b"\r\n"), "unterminated quoted field"


def _inside_quotes(record: bytes) -> bool:
    """Say whether a record ends inside a quoted field (a quote opens one only at a field start)."""
    if b'"' not in record:
        return False
    quoted, at_start = False, True
    i, end = 0, len(record)
    while i < end:
        byte = record[i]
        if quoted:
            if byte == 0x22:  # '"': closes the field unless doubled
                if i + 1 < end and record[i + 1] == 0x22:
                    i += 1
                else:
                    quoted = False
        elif byte == 0x22 and at_start:
            quoted = True
        at_start = byte == 0x2C or byte == 0x0A  # after ',' or a line end a field starts
        i += 1
    return quoted


def _row(raw: bytes, header: list[str]) -> Row | str:
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    except UnicodeDecodeError:
        return "not UTF-8"
    except csv.Error as exc:  # a lone CR in an unquoted field, a field past csv's limit
        return f"not a CSV record: {exc}"
    if len(rows) != 1:
        return f"{len(rows)} CSV rows in one record"
    return dict(zip(header, rows[0], strict=False))


def _time(row: Row, column: str, settings: AdapterSettings) -> str:
    value = row.get(column, "")
    if not value.strip():
        raise Unmappable(f"missing_field:{column}", f"{column} is empty")
    try:
        return parse_iso(value, settings.tz, date_only=False)
    except BadTimestamp:
        raise Unmappable("bad_timestamp", f"{column} {value!r}") from None


def _lab(row: Row, settings: AdapterSettings, stats: AdapterStats) -> Keyed | None:
    aliases = settings.aliases
    unit = aliases.unit(row.get("unit"))
    loinc = aliases.lab_loinc([("MIMIC-IV", row.get("itemid"), row.get("analyte"))], unit)
    if loinc is None:
        stats.skip(f"labs:{row.get('analyte') or row.get('itemid')}")
        return None
    if not row.get("patient_id"):
        raise Unmappable("missing_field:patient_id", "patient_id is empty")
    try:
        value = ev.parse_number(row.get("value", ""))
    except ValueError:
        detail = (
            f"value {row.get('value')!r} (raw {row.get('raw_value')!r}, {row.get('comments')!r})"
        )
        reason = "bad_value" if row.get("value", "").strip() else "missing_field:value"
        raise Unmappable(reason, detail) from None
    event_id = f"mimic:labevent:{row.get('source_id')}"
    resulted = _time(row, "resulted_at", settings)
    line = ev.lab_result(
        event_id=event_id,
        patient_id=row["patient_id"],
        encounter_id=row.get("encounter_id") or None,
        location=None,
        code=loinc,
        value=value,
        unit=unit,
        collected_at=_time(row, "collected_at", settings),
        resulted_at=resulted,
        status="final",
        result_id=None,
        hemolyzed=ev.says_hemolyzed([row.get("comments")]),
    )
    return sort_key(resulted), row["patient_id"], event_id, line


def _med(
    row: Row, links: dict[str, str], settings: AdapterSettings, stats: AdapterStats
) -> Keyed | None:
    event = row.get("event", "")
    if event in NO_EVENT:
        stats.skip(f"meds:{event}")
        return None
    action = ACTIONS.get(event)
    if action is None:
        raise Unmappable("mimic_unknown_event", f"event {event!r}")
    if not row.get("patient_id"):
        raise Unmappable("missing_field:patient_id", "patient_id is empty")
    source, source_id = row.get("source", ""), row.get("source_id", "")
    if source == "prescriptions":
        order_id: str | None = f"pharmacy:{source_id}"
    elif source == "inputevents":
        order_id = f"icu:{source_id}"
    else:
        order_id = f"pharmacy:{links[source_id]}" if links.get(source_id) else None
    # An eMAR dose that README.txt marks likely_duplicate_of an ICU inputevents dose is the same
    # dose charted twice: it gets the SAME event_id as the row it duplicates, so the downstream
    # dedup (first valid copy of an event_id wins) drops one of the two.
    duplicate_of = row.get("likely_duplicate_of", "")
    event_id = f"mimic:{duplicate_of}" if duplicate_of else f"mimic:{source}:{source_id}"
    at = _time(
        row, "entered_at" if action == "ordered" and row.get("entered_at") else "at", settings
    )
    try:
        dose = ev.parse_number(row["dose"]) if row.get("dose") else None
    except ValueError:
        dose = None
    line = ev.medication(
        event_id=event_id,
        patient_id=row["patient_id"],
        encounter_id=row.get("encounter_id") or None,
        location=None,
        action=action,
        code=None,
        name=row.get("drug") or None,
        route=row.get("route") or None,
        dose=dose,
        dose_unit=row.get("dose_unit") or None,
        at=at,
        order_id=order_id,
    )
    return sort_key(at), row["patient_id"], event_id, line


def emar_links(path: Path | None) -> dict[str, str]:
    """emar_id -> pharmacy_id from MIMIC's raw emar table ({} when the file is absent)."""
    if path is None or not path.is_file():
        return {}
    with gzip.open(path, "rt", newline="") as fh:
        return {r["emar_id"]: r["pharmacy_id"] for r in csv.DictReader(fh) if r.get("pharmacy_id")}


def _keyed(
    stream: BinaryIO,
    settings: AdapterSettings,
    stats: AdapterStats,
    links: dict[str, str],
    rejected: list[AdapterOutput],
) -> list[Keyed]:
    out: list[Keyed] = []
    records = _records(stream)
    for raw, row in records:
        if isinstance(row, str):
            rejected.append(Rejected(raw, "mimic_parse_error", row))
            continue
        is_lab = "analyte" in row
        if not is_lab and "event" not in row:
            rejected.append(
                Rejected(raw, "mimic_parse_error", "neither a labs.csv nor a meds.csv row")
            )
            continue
        try:
            item = _lab(row, settings, stats) if is_lab else _med(row, links, settings, stats)
        except Unmappable as exc:
            rejected.append(Rejected(raw, exc.reason, exc.detail))
            continue
        if item is not None:
            out.append(item)
    return out


def _emit(
    keyed: list[Keyed], rejected: list[AdapterOutput], stats: AdapterStats
) -> Iterator[AdapterOutput]:
    for item in rejected:
        yield stats.count(item)
    for *_, line in sorted(keyed, key=lambda k: (k[0], k[1], k[2])):
        yield stats.count(line)


def iter_mimic(
    labs_path: str | Path,
    meds_path: str | Path,
    settings: AdapterSettings,
    stats: AdapterStats | None = None,
    emar_path: str | Path | None = None,
) -> Iterator[AdapterOutput]:
    """Labs and medications merged in availability order.

    emar_path defaults to raw/hosp/emar.csv.gz beside meds.csv (used to link doses to orders).
    """
    stats = stats if stats is not None else AdapterStats()
    meds_path = Path(meds_path)
    links = emar_links(Path(emar_path) if emar_path else meds_path.parent / EMAR_RAW)
    rejected: list[AdapterOutput] = []
    keyed: list[Keyed] = []
    for path in (Path(labs_path), meds_path):
        with path.open("rb") as fh:
            keyed += _keyed(fh, settings, stats, links, rejected)
    yield from _emit(keyed, rejected, stats)


def iter_canonical(
    stream: BinaryIO, settings: AdapterSettings, stats: AdapterStats | None = None
) -> Iterator[AdapterOutput]:
    """One CSV (labs.csv or meds.csv, told apart by its header), in availability order.

    When the stream is a file, eMAR doses are linked to orders as in iter_mimic."""
    stats = stats if stats is not None else AdapterStats()
    name = getattr(stream, "name", None)
    links = emar_links(Path(name).parent / EMAR_RAW) if isinstance(name, str) else {}
    rejected: list[AdapterOutput] = []
    keyed = _keyed(stream, settings, stats, links, rejected)
    yield from _emit(keyed, rejected, stats)
