"""Release order: copies of one event that share (a, patient_id, event_id) still sort."""

from __future__ import annotations

import itertools

import pytest

from alerts.events import MedAction, MedClass, Medication
from alerts.release_order import release_key, sort_for_release
from tests.alerts.feed import kcl, mg, t
from tests.alerts.harness import replay

K = frozenset({MedClass.POTASSIUM_REPLETION})


def _order(event_id: str, encounter_id: str | None, at: int = 0) -> Medication:
    return Medication(at, "P1", event_id, MedAction.ORDERED, K, "O1", encounter_id, "W1")


def test_copies_sharing_the_release_key_sort_the_same_from_any_arrival_order():
    events = [_order("m1", None), _order("m1", "E1"), _order("m0", "E1", at=1), _order("m2", None)]
    orders = set()
    for arrival in itertools.permutations(events):
        arranged = list(arrival)
        sort_for_release(arranged)
        orders.add(tuple(arranged))
    assert orders == {(_order("m1", None), _order("m1", "E1"), _order("m2", None), events[2])}


def test_the_key_agrees_with_tuple_order_where_that_is_defined():
    events = [_order("m2", "E2"), _order("m1", "E1", at=5), _order("m1", "E0")]
    assert sorted(events) == sorted(events, key=release_key)


def _kcl(
    event_id: str,
    at: str,
    order_id: str,
    encounter_id: str | None,
    name: str = "potassium chloride",
) -> dict[str, object]:
    return {
        "kind": "medication", "event_id": event_id, "patient_id": "P1",
        "encounter_id": encounter_id, "location": "W1", "action": "ordered", "code": None,
        "name": name, "at": at, "order_id": order_id,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("chunk_size", "time_order"), [(250_000, False), (250_000, True), (1, False), (2, False)]
)
def test_a_copy_after_the_duplicate_horizon_is_replayed_not_a_crash(chunk_size, time_order):
    # Found by review: the copy (same a, patient and id; encounter null against "E1") made the
    # sort compare None with a string, and the whole replay failed.
    feed = [
        _kcl("m1", "2024-03-01T00:00:00Z", "O1", None),
        _kcl("m2", "2024-03-08T01:00:00Z", "O2", None),
        _kcl("m3", "2024-03-15T02:00:00Z", "O3", None),
        _kcl("m1", "2024-03-01T00:00:00Z", "O1", "E1"),  # its id forgotten by now (README)
    ]
    outcome = replay(feed, chunk_size=chunk_size, time_order=time_order)
    assert outcome.summary.duplicates == 0
    fired = [a["trigger_event_id"] for a in outcome.alerts if a["status"] == "firing"]
    assert fired == ["m1", "m2", "m3"]  # one episode of O1: the copy adds nothing to it


def test_copies_whose_classes_differ_give_one_output_whatever_the_arrival_and_the_spill():
    # Found by review: tuple order compares sets of classes by inclusion, which is not total, so
    # the copy that won depended on arrival order, on spilling, and on unrelated copies.
    first = _kcl("m1", "2024-03-01T00:00:00Z", "O1", "E1")
    copy = _kcl("m1", "2024-03-01T00:00:00Z", "O1", "E2", "potassium chloride furosemide")
    later = [
        _kcl("m2", "2024-03-08T01:00:00Z", "O2", None),
        _kcl("m3", "2024-03-15T02:00:00Z", "O3", None),
        _kcl("m4", "2024-03-22T03:00:00Z", "O4", None),
    ]
    unrelated_pair = _kcl("m2", "2024-03-08T01:00:00Z", "O2", "E9")
    outputs = set()
    for with_pair in (False, True):
        for copies in ((first, copy), (copy, first)):
            feed = [copies[0], *later[:2], copies[1], later[2]]
            feed += [unrelated_pair] if with_pair else []
            for chunk_size, time_order in [(250_000, False), (250_000, True), (1, False),
                                           (2, False), (3, False)]:  # fmt: skip
                alerts = replay(feed, chunk_size=chunk_size, time_order=time_order).alerts
                m1 = [(a["status"], a["severity"], a["encounter_id"]) for a in alerts
                      if a["trigger_event_id"] == "m1"]  # fmt: skip
                outputs.add(tuple(m1))
    assert len(outputs) == 1, outputs


@pytest.mark.parametrize(
    ("fillers", "before"),
    [(12, False), (4095, True)],
    ids=["copy_completes_16th_run", "copies_astride_a_batch_of_the_run"],
)
def test_a_copy_that_fills_the_chunk_is_sorted_in_the_total_order(fillers, before):
    # Found by review: the replay noted a possible copy after adding it, and that add could
    # spill (and merge sixteen runs) in tuple order first.
    first = kcl("X", t("08:00"), name="Potassium chloride", encounter="ENC-A")
    copy = kcl("X", t("08:00"), name="Potassium chloride with furosemide", encounter="ENC-B")
    turns = [mg("F", 2.0, t("08:00", day=9)), mg("G", 2.0, t("08:00", day=17))]  # X forgotten
    # Results of other patients, sorting before the copies (07:00) or after them (09:00).
    at = t("07:00") if before else t("09:00")
    others = [mg(f"Q{i}", 2.0, at, patient=f"Q{i:05d}") for i in range(fillers)]
    feed = [*others, first, *turns, copy] if before else [first, *turns, *others, copy]
    expected = replay(feed, chunk_size=10**6).alerts
    assert expected
    for chunk_size in (1, 2, 3, len(feed)):
        for time_order in (False, True):
            assert replay(feed, chunk_size=chunk_size, time_order=time_order).alerts == expected
