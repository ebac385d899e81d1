"""The patient store: reads through the cache, writes once per batch, no reads for new patients."""

from __future__ import annotations

import asyncio

from alerts.state import PatientState
from streams.state_codec import encode_patient
from streams.state_store import PatientStore


def _store(*stored: tuple[int, str]) -> tuple[PatientStore, dict[str, bytes]]:
    table = {pid: encode_patient(p, PatientState(pid)) for p, pid in stored}
    return PatientStore(table, cache_size=0), table


def test_after_a_scan_a_new_patient_costs_no_table_read():
    store, _ = _store((0, "P1"), (1, "P2"))
    store.scan({0, 1})
    assert store.get("P9", 0) is None
    assert store.reads == 0
    state = store.get("P1", 0)
    assert state is not None and state.patient_id == "P1"
    assert store.reads == 1


def test_a_partition_never_scanned_is_read_from_the_table():
    store, _ = _store((0, "P1"), (1, "P2"))
    store.scan({0})
    assert store.get("P2", 1) is not None
    assert store.get("P9", 1) is None
    assert store.reads == 2


def test_a_patient_written_after_the_scan_is_read_again_once_the_cache_forgets_it():
    store, table = _store((0, "P1"))
    store.scan({0})
    store.put(0, PatientState("P5"))
    asyncio.run(store.flush())
    assert "P5" in table
    assert store.get("P5", 0) is not None  # cache_size 0: from the table, known since the put
    assert store.reads == 1


def test_forgetting_the_cache_forgets_which_patients_exist():
    store, table = _store((0, "P1"))
    store.scan({0})
    table["P7"] = encode_patient(0, PatientState("P7"))  # e.g. restored by a new assignment
    store.forget_cache()
    assert store.get("P7", 0) is not None
