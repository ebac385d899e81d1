"""FHIR R4 adapter: Observation -> lab_result; MedicationRequest / MedicationAdministration ->
medication. Input: a Bundle (nested Bundles too), a single resource, or NDJSON of either.

Event ids: "fhir:<type>/<id>[/_history/<versionId> | @<meta.lastUpdated>][#<component>]:<status>"
so a redelivery maps to the same id and an update (new version or status) to a new one.
An Observation without its own times takes them from the panel Observation (hasMember) or the
DiagnosticReport (result) that lists it in the same Bundle; collection time may also come
from its Specimen. A date without time ("2015-01-15") is the start of that day in the facility
time zone. Rejected.raw is the original bytes of a lone resource or NDJSON line, and the
re-encoded resource (orjson) for a resource inside a Bundle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from streams.adapters import AdapterOutput, AdapterSettings, AdapterStats, Rejected
from streams.adapters import canonical as ev
from streams.adapters.fhir_read import (
    Resource,
    Scope,
    codings,
    concept_label,
    first_obj,
    obj,
    read_documents,
    reference_id,
    text,
)
from streams.adapters.hl7_support import Unmappable
from streams.adapters.timestamps import BadTimestamp, parse_iso

OBS_STATUS = {
    "final": "final",
    "amended": "corrected",
    "corrected": "corrected",
    "preliminary": "preliminary",
    "registered": "preliminary",
    "cancelled": "cancelled",
    "entered-in-error": "entered-in-error",
}
REMOVALS = frozenset({"cancelled", "entered-in-error"})
# "stopped" is an order that was active and then ended: doses may have been given, and a
# snapshot (a bulk export) shows only the last status. Reading it as a cancel would withdraw
# the potassium episode and the diuretic exposure, so it stays an order (the safer reading).
REQUEST_STATUS = {
    **dict.fromkeys(("active", "completed", "on-hold", "stopped"), "ordered"),
    **dict.fromkeys(("cancelled", "entered-in-error"), "cancelled"),
}
ADMIN_STATUS = dict.fromkeys(("completed", "in-progress", "on-hold", "stopped"), "administered")
ORDER_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order"}
)
UNSUPPORTED = frozenset({"MedicationStatement", "MedicationDispense"})


def iter_canonical(
    stream: BinaryIO, settings: AdapterSettings, stats: AdapterStats | None = None
) -> Iterator[AdapterOutput]:
    stats = stats if stats is not None else AdapterStats()
    for raw, doc in read_documents(stream):
        if isinstance(doc, Exception):
            out: list[AdapterOutput] = [Rejected(raw, "fhir_parse_error", str(doc))]
        else:
            try:
                out = list(_resource(doc, raw, Scope(), settings, stats))
            except Exception as exc:  # a defect of this document must not end the feed
                detail = f"cannot be mapped: {type(exc).__name__}"
                out = [Rejected(raw, "fhir_parse_error", detail)]
        for item in out:
            yield stats.count(item)


def _resource(
    res: Any, raw: bytes | None, scope: Scope, settings: AdapterSettings, stats: AdapterStats
) -> Iterator[AdapterOutput]:
    rtype = text(obj(res).get("resourceType"))
    if rtype is None:
        yield Rejected(
            raw or orjson.dumps(res), "fhir_parse_error", "not a resource: no resourceType"
        )
        return
    if rtype == "Bundle":
        inner = Scope.of_bundle(res)
        entries = res.get("entry") or []
        if not entries:
            stats.skip("Bundle without entries")
        for entry in entries:
            if obj(obj(entry).get("resource")):
                yield from _resource(entry["resource"], None, inner, settings, stats)
            else:  # a history Bundle's DELETE, say: nothing to map, but counted
                stats.skip("Bundle.entry without resource")
        return
    outs: list[AdapterOutput | Unmappable]
    try:
        if rtype == "Observation":
            outs = list(_observation(res, scope, settings))
        elif rtype in ("MedicationRequest", "MedicationAdministration"):
            outs = [_medication(res, rtype, scope, settings)]
        elif rtype in UNSUPPORTED:
            raise Unmappable("fhir_unsupported_resource", f"{rtype} is not mapped")
        else:
            outs = []
    except Unmappable as exc:
        outs = [exc]
    if not outs:
        stats.skip(rtype)
    for out in outs:
        if isinstance(out, Unmappable):
            yield Rejected(raw or orjson.dumps(res), out.reason, out.detail)
        else:
            yield out


def _event_id(res: Resource, status: str | None, suffix: str = "") -> str:
    rtype, rid = res["resourceType"], text(res.get("id"))
    if rid is None:
        digest = hashlib.sha256(orjson.dumps(res, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return ev.event_id("fhir", f"{rtype}/sha256-{digest[:32]}{suffix}", status)
    meta = obj(res.get("meta"))
    version, updated = text(meta.get("versionId")), text(meta.get("lastUpdated"))
    base = f"{rtype}/{rid}" + (
        f"/_history/{version}" if version else f"@{updated}" if updated else ""
    )
    return ev.event_id("fhir", base + suffix, status)


def _time(value: Any, name: str, settings: AdapterSettings) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Unmappable("bad_timestamp", f"{name} {value!r}")
    try:
        return parse_iso(value, settings.tz)
    except BadTimestamp:
        raise Unmappable("bad_timestamp", f"{name} {value!r}") from None


def _effective(res: Resource) -> tuple[Any, str]:
    for key in ("effectiveDateTime", "effectiveInstant"):
        if res.get(key) is not None:
            return res[key], key
    if obj(res.get("effectivePeriod")).get("start") is not None:
        return res["effectivePeriod"]["start"], "effectivePeriod.start"
    return None, ""


def _observation(
    res: Resource, scope: Scope, settings: AdapterSettings
) -> Iterator[AdapterOutput | Unmappable]:
    aliases = settings.aliases
    parts = [("", res)] + [(f"#{i}", obj(c)) for i, c in enumerate(res.get("component") or [])]
    hits = []
    for suffix, part in parts:
        quantity = part.get("valueQuantity")
        unit = aliases.unit(text(obj(quantity).get("unit")) or text(obj(quantity).get("code")))
        loinc = aliases.lab_loinc(codings(part.get("code")), unit)
        if loinc is not None:
            hits.append((suffix, part, loinc, unit))
    if not hits:
        return
    raw_status = res.get("status")
    status = OBS_STATUS.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        raise Unmappable("bad_status", f"Observation.status {raw_status!r}")
    lineage = scope.lineage(res)
    patient_id = next((p for p in (reference_id(r.get("subject")) for r in lineage) if p), None)
    if patient_id is None:
        raise Unmappable("missing_field:patient_id", "no subject reference")
    encounter_id = next((e for e in (reference_id(r.get("encounter")) for r in lineage) if e), None)
    resolved = (scope.resolve(r.get("specimen"), r) for r in lineage if r.get("specimen"))
    specimens = [s for s in resolved if s]
    effective, name = next(
        (_effective(r) for r in lineage if _effective(r)[0] is not None), (None, "")
    )
    if effective is None:
        collection = next((obj(s.get("collection")) for s in specimens), {})
        effective, name = collection.get("collectedDateTime"), "Specimen.collection"
    collected = _time(effective, name, settings)
    if collected is None:
        raise Unmappable("missing_field:collected_at", "no effective[x] or specimen collection")
    issued = next((r["issued"] for r in lineage if r.get("issued") is not None), None)
    resulted = _time(issued, "issued", settings) or collected
    notes = [text(obj(n).get("text")) for n in res.get("note") or []]
    notes += [concept_label(c) for s in specimens for c in s.get("condition") or []]
    hemolyzed = ev.says_hemolyzed(notes) or any(
        code == "HEM"
        for s in specimens
        for c in s.get("condition") or []
        for _, code, _ in codings(c)
    )
    for suffix, part, loinc, unit in hits:
        rid = text(res.get("id"))
        try:
            value = _lab_value(part, status)
        except Unmappable as exc:
            yield exc  # one bad component does not hide the others
            continue
        yield ev.lab_result(
            event_id=_event_id(res, raw_status, suffix),
            patient_id=patient_id,
            encounter_id=encounter_id,
            location=None,
            code=loinc,
            value=value,
            unit=unit,
            collected_at=collected,
            resulted_at=resulted,
            status=status,
            result_id=rid + suffix if rid else None,
            hemolyzed=hemolyzed,
        )


def _lab_value(part: Resource, status: str) -> int | float | None:
    quantity = part.get("valueQuantity")
    if quantity is None:
        if status in REMOVALS:
            return None
        absent = concept_label(part.get("dataAbsentReason"))
        raise Unmappable("missing_field:value", f"no valueQuantity (dataAbsentReason {absent})")
    quantity = obj(quantity)
    if quantity.get("comparator"):
        raise Unmappable("bad_value", f"valueQuantity has comparator {quantity['comparator']!r}")
    try:
        return ev.json_number(quantity.get("value"))
    except ValueError:
        raise Unmappable("bad_value", f"valueQuantity.value {quantity.get('value')!r}") from None


def _rxnorm(concept: Any) -> str | None:
    return next((c for s, c, _ in codings(concept) if s and "rxnorm" in s.lower() and c), None)


def _drug(res: Resource, scope: Scope) -> tuple[str | None, str | None]:
    """(RxNorm code, name) from medicationCodeableConcept or a contained/Bundle Medication."""
    if res.get("medicationCodeableConcept") is not None:
        concept = res["medicationCodeableConcept"]
        return _rxnorm(concept), concept_label(concept)
    ref = obj(res.get("medicationReference"))
    med = scope.resolve(ref, res) or {}
    ingredients = [
        concept_label(i.get("itemCodeableConcept"))
        or text(obj(i.get("itemReference")).get("display"))
        for i in map(obj, med.get("ingredient") or [])
    ]
    name = (
        concept_label(med.get("code"))
        or text(ref.get("display"))
        or (" + ".join(i for i in ingredients if i) or None)
    )
    return _rxnorm(med.get("code")), name


def _medication(
    res: Resource, rtype: str, scope: Scope, settings: AdapterSettings
) -> AdapterOutput:
    status = res.get("status")
    if rtype == "MedicationRequest":
        intent = res.get("intent")
        if intent is not None and intent not in ORDER_INTENTS:
            raise Unmappable("fhir_unsupported_intent", f"MedicationRequest.intent {intent!r}")
        action = REQUEST_STATUS.get(status) if isinstance(status, str) else None
        at, at_name = res.get("authoredOn"), "authoredOn"
        order_id, encounter = text(res.get("id")), reference_id(res.get("encounter"))
        dosage = first_obj(res.get("dosageInstruction"))
        quantity = obj(first_obj(dosage.get("doseAndRate")).get("doseQuantity"))
    else:
        action = ADMIN_STATUS.get(status) if isinstance(status, str) else None
        at, at_name = _effective(res)
        order_id, encounter = reference_id(res.get("request")), reference_id(res.get("context"))
        dosage = obj(res.get("dosage"))
        quantity = obj(dosage.get("dose"))
    if action is None:
        raise Unmappable("fhir_unsupported_status", f"{rtype}.status {status!r}")
    patient_id = reference_id(res.get("subject"))
    if patient_id is None:
        raise Unmappable("missing_field:patient_id", "no subject reference")
    when = _time(at, at_name or "effective[x]", settings)
    if when is None:
        raise Unmappable("missing_field:at", f"no {at_name or 'effective[x]'}")
    code, name = _drug(res, scope)
    if code is None and name is None and action != "cancelled":
        raise Unmappable(
            "missing_code_and_name", "no medication code, name or resolvable Medication"
        )
    try:
        dose = ev.json_number(quantity["value"]) if "value" in quantity else None
    except ValueError:
        dose = None
    return ev.medication(
        event_id=_event_id(res, status),
        patient_id=patient_id,
        encounter_id=encounter,
        location=None,
        action=action,
        code=code,
        name=name,
        route=concept_label(dosage.get("route")) if dosage.get("route") else None,
        dose=dose,
        dose_unit=text(quantity.get("unit")) or text(quantity.get("code")),
        at=when,
        order_id=order_id,
    )
