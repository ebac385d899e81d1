"""HL7 v2 pharmacy messages -> medication events.

One event per ORC order group (RDE, ORM, OMP, RDS) or per RXA (RAS). Whether the drug is
potassium, magnesium or a diuretic is decided downstream, so every drug is emitted; an ORM
group without RXO/RXE carries no drug (a lab or imaging order) and is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from streams.adapters import AdapterOutput, AdapterSettings, AdapterStats, Rejected
from streams.adapters import canonical as ev
from streams.adapters.hl7_parse import Message
from streams.adapters.hl7_support import Unmappable, patient_visit, timestamp
from streams.adapters.lab_aliases import fold

RX_SEGMENTS = frozenset({"RXO", "RXE", "RXA", "RXR", "RXD", "RXG"})
RXNORM_SYSTEMS = frozenset({"rxnorm", "rxn", "http://www.nlm.nih.gov/research/umls/rxnorm"})
# ORC-1 order control (HL7 table 0119) -> action; other codes are not mapped.
ORDER_CONTROL = {
    **dict.fromkeys(("NW", "OK", "SN", "NA", "XO", "XX", "XR", "RO", "RU", "RF", "RE"), "ordered"),
    **dict.fromkeys(("CA", "OC", "CR", "DC", "OD", "DR"), "cancelled"),
}
NOT_GIVEN = frozenset({"RE", "NA"})  # RXA-20 completion status: refused, not administered
# Unresolved interface-engine templates such as "##ITEM##,DESC,VALUE,524232,1" are no drug.
_PLACEHOLDER = re.compile(r"##")


@dataclass
class _Order:
    index: int
    orc: list[str] | None
    pid: list[str] | None
    pv1: list[str] | None
    rx: list[list[str]] = field(default_factory=list)

    def first(self, name: str) -> list[str] | None:
        return next((seg for seg in self.rx if seg[0] == name), None)

    def route_of(self, source: list[str] | None, fallback: bool = True) -> list[str] | None:
        """The RXR after `source` (before the next RXO/RXE/RXD/RXA), else the group's first."""
        if source is not None:
            for seg in self.rx[next(i for i, s in enumerate(self.rx) if s is source) + 1 :]:
                if seg[0] == "RXR":
                    return seg
                if seg[0] != "RXG":
                    break
        return self.first("RXR") if fallback else None


def _orders(msg: Message) -> list[_Order]:
    pid = pv1 = None
    orders: list[_Order] = []
    for seg in msg.segments[1:]:
        name = seg[0]
        if name == "PID":
            pid, pv1 = seg, None
        elif name == "PV1":
            pv1 = seg
        elif name == "ORC":
            orders.append(_Order(len(orders) + 1, seg, pid, pv1))
        elif name in RX_SEGMENTS:
            if not orders:
                orders.append(_Order(1, None, pid, pv1))
            orders[-1].rx.append(seg)
    return orders


def _usable(value: str) -> str | None:
    return value if value and not _PLACEHOLDER.search(value) else None


def drug(msg: Message, seg: list[str] | None, n: int) -> tuple[str | None, str | None]:
    """(code, name) of a CE/CWE drug field: an RxNorm triplet if there is one, else the first
    usable code and name (identifier, then alternate identifier; text, alternate, original)."""
    if seg is None:
        return None, None
    triplets = [
        (msg.get(seg, n, i), msg.get(seg, n, i + 1), msg.get(seg, n, i + 2)) for i in (1, 4)
    ]
    names = [_usable(t[1]) for t in triplets] + [_usable(msg.get(seg, n, 9))]
    name = next((x for x in names if x), None)
    for code, text, system in triplets:
        if _usable(code) and fold(system) in RXNORM_SYSTEMS:
            return code, _usable(text) or name
    first_code = next((c for c in (_usable(t[0]) for t in triplets) if c), None)
    return first_code, name


def _dose(
    msg: Message, seg: list[str] | None, amount: int, units: int
) -> tuple[int | float | None, str | None]:
    """(dose, dose_unit) from an amount field and a CE units field."""
    text = msg.get(seg, amount)
    try:
        dose = ev.parse_number(text) if text else None
    except ValueError:
        dose = None
    ident, label = msg.get(seg, units, 1), msg.get(seg, units, 2)
    unit = ident if re.search(r"[A-Za-z]", ident) else (label or ident)  # "43^mg/hr" -> mg/hr
    return dose, unit or None


def pharmacy_events(
    msg: Message,
    code: str,
    key: tuple[str, str],
    settings: AdapterSettings,
    stats: AdapterStats,
) -> Iterator[AdapterOutput]:
    for order in _orders(msg):
        try:
            if code == "RAS":
                yield from _administrations(msg, order, key, settings, stats)
            else:
                yield from _order(msg, code, order, key, settings)
        except Unmappable as exc:
            yield Rejected(msg.raw, exc.reason, exc.detail)


def _order(
    msg: Message, code: str, order: _Order, key: tuple[str, str], settings: AdapterSettings
) -> Iterator[AdapterOutput]:
    control = msg.get(order.orc, 1).upper() if order.orc else "NW"
    action = ORDER_CONTROL.get(control)
    rxe, rxo, rxd = order.first("RXE"), order.first("RXO"), order.first("RXD")
    if code == "ORM" and rxe is None and rxo is None:
        return  # a non-pharmacy order (lab, imaging): no drug at all
    if action is None:
        raise Unmappable("hl7_unsupported_order_control", f"ORC-1 {control!r}")
    source, drug_code, name = next(
        (
            (seg, *d)
            for seg, d in (
                (rxe, drug(msg, rxe, 2)),
                (rxo, drug(msg, rxo, 1)),
                (rxd, drug(msg, rxd, 2)),
            )
            if any(d)
        ),
        (None, None, None),
    )
    if drug_code is None and name is None and action != "cancelled":
        raise Unmappable("missing_code_and_name", "no drug in RXE-2, RXO-1 or RXD-2")
    dose, dose_unit = _dose(msg, rxe, 3, 5) if rxe else _dose(msg, rxo, 2, 4)
    yield _event(
        msg,
        order,
        key,
        settings,
        action,
        drug_code,
        name,
        dose,
        dose_unit,
        at_fields=((order.orc, 9), (msg.msh, 7)),
        rxr=order.route_of(source),
        suffix="",
    )


def _administrations(
    msg: Message,
    order: _Order,
    key: tuple[str, str],
    settings: AdapterSettings,
    stats: AdapterStats,
) -> Iterator[AdapterOutput]:
    count = 0
    for seg in order.rx:
        if seg[0] != "RXA":
            continue
        count += 1
        completion = msg.get(seg, 20).upper()
        if completion in NOT_GIVEN:
            stats.skip(f"RAS:RXA-20={completion}")
            continue
        drug_code, name = drug(msg, seg, 5)
        dose, dose_unit = _dose(msg, seg, 6, 7)
        try:  # one bad RXA does not hide the others of the order
            if msg.get(seg, 21).upper() == "D":
                raise Unmappable("hl7_unsupported_action", "RXA-21 D (delete an administration)")
            if drug_code is None and name is None:
                raise Unmappable("missing_code_and_name", "RXA-5 is empty")
            yield _event(
                msg,
                order,
                key,
                settings,
                "administered",
                drug_code,
                name,
                dose,
                dose_unit,
                at_fields=((seg, 3), (order.orc, 9), (msg.msh, 7)),
                rxr=order.route_of(seg, fallback=False),
                suffix=f".{count}",
            )
        except Unmappable as exc:
            yield Rejected(msg.raw, exc.reason, exc.detail)


def _event(
    msg: Message,
    order: _Order,
    key: tuple[str, str],
    settings: AdapterSettings,
    action: str,
    drug_code: str | None,
    name: str | None,
    dose: int | float | None,
    dose_unit: str | None,
    *,
    at_fields: tuple[tuple[list[str] | None, int], ...],
    rxr: list[str] | None,
    suffix: str,
) -> AdapterOutput:
    patient_id, encounter_id, location = patient_visit(msg, order.pid, order.pv1)
    order_id, _ = msg.first((order.orc, 2, 1), (order.orc, 3, 1))
    return ev.medication(
        event_id=ev.event_id("hl7", *key, f"o{order.index}{suffix}"),
        patient_id=patient_id,
        encounter_id=encounter_id,
        location=location,
        action=action,
        code=drug_code,
        name=name,
        route=msg.get(rxr, 1) or None,
        dose=dose,
        dose_unit=dose_unit,
        at=timestamp(msg, settings, "at", *at_fields),
        order_id=order_id or None,
    )
