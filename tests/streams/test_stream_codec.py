"""Table bytes: buffered events, patient states and clocks survive the round trip exactly."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from hypothesis import given, settings

from alerts.events import LabResult, MedClass
from alerts.state import PatientState
from streams.state_codec import (
    StoredClock,
    StoredPatient,
    clock_key,
    decode_event,
    decode_value,
    encode_clock,
    encode_event,
    encode_patient,
)
from streams.state_store import PatientStore
from tests.search_depth import SEARCH, examples
from tests.strategies import unique_events


@settings(SEARCH, max_examples=examples(200))
@given(events=unique_events(max_size=20))
def test_a_buffered_event_comes_back_equal_with_its_enum_members(events):
    for ev in events:
        # Released from memory in the worker that buffered it, or from the table after a restart.
        for back in (
            decode_event(encode_event(ev)),
            decode_event(orjson.loads(orjson.dumps(encode_event(ev)))),
        ):
            assert back == ev and type(back) is type(ev)
            # The engine compares enum members by identity.
            if type(ev) is LabResult:
                assert back.analyte is ev.analyte and back.status is ev.status
            else:
                assert back.action is ev.action and back.classes == ev.classes
                assert {type(c) for c in back.classes} <= {MedClass}


def test_a_patient_state_and_a_clock_come_back_with_their_partition():
    state = PatientState("P1")
    state.seen["e1"] = 5
    state.pending.append(["lab", 1, "P1", "e1"])
    stored = decode_value(encode_patient(3, state))
    assert isinstance(stored, StoredPatient) and stored.partition == 3
    assert stored.state.to_dict() == state.to_dict()
    clock = {"watermark": 7, "stream_time": {"labs": 17}}
    assert decode_value(encode_clock(2, clock)) == StoredClock(2, clock)


@pytest.mark.parametrize("partition", [0, 7, 1023])
def test_a_clock_key_can_never_be_a_patient_id(partition):
    assert len(clock_key(partition)) > 64  # patient_id is 1..64 characters
    assert clock_key(partition) != clock_key(partition + 1)


def test_the_store_buffers_writes_until_flush_and_discard_forgets_them():
    table: dict[str, bytes] = {}
    store = PatientStore(table, cache_size=1)
    a, b = PatientState("A"), PatientState("B")
    store.put(0, a)
    assert store.get("A") is a and table == {}
    asyncio.run(store.flush())
    assert decode_value(table["A"]).state.to_dict() == a.to_dict()  # type: ignore[union-attr]
    a.seen["x"] = 1  # a change never flushed
    store.put(0, a)
    store.discard()
    assert store.get("A").seen == {}  # type: ignore[union-attr]
    store.put(1, b)
    store.put_clock(1, {"watermark": 3})
    asyncio.run(store.flush())
    assert store.clock(1) == {"watermark": 3}
    states, clocks = store.scan({1})
    assert [s.patient_id for s in states[1]] == ["B"] and clocks == {1: {"watermark": 3}}
    assert len(store._cache) <= 1


def test_the_schedulers_view_refuses_to_iterate_the_table():
    view = PatientStore({}).view(0)
    with pytest.raises(TypeError):
        list(view)
    with pytest.raises(KeyError):
        view["nobody"]
