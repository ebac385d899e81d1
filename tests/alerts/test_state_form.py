"""The stored form of a patient's state (changelog values) is read back and written unchanged."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from alerts.alert import Rule, Severity
from alerts.rule_config import Windows
from alerts.state import (
    ORDER_MEMORY,
    DiureticExposure,
    EpisodeStatus,
    LabRecord,
    MgRepletion,
    PatientState,
    Timer,
    TimerKind,
)
from tests.alerts.harness import config

# A state as written to the changelog, every collection filled: the form older workers wrote.
STORED: dict[str, Any] = {
    "patient_id": "P1",
    "k": {"R1": [2.8, 100, 200, "e1", False, "EN1", "ICU"]},
    "mg": {
        "R2": [1.0, 100, 210, "e2", False, "EN1", "ICU"],
        "R3": [2.6, 150, 260, "e3", True, None, None],
    },
    "episodes": [
        [300, "e4", "O1", "EN1", "ICU", "evaluated"],
        [400, "e5", "O2", None, None, "pending"],
    ],
    "order_last": {"O1": 350, "O2": 400},
    "cancelled": {"O3": 390},
    "mg_repletions": [[320, "e6", "O4", True], [330, "e7", None, False]],
    "diuretics": [[310, "O5", True]],
    "firing": [
        ["a1", "MG_LOW_UNCORRECTED", "high", "e2", "EN1", "ICU", 500, 300, "R2", 100, None],
        [
            "a2",
            "REFRACTORY_HYPOKALEMIA",
            "critical",
            "e4",
            "EN1",
            "ICU",
            500,
            300,
            None,
            None,
            "a1",
        ],
    ],  # fmt: skip
    "timers": [
        [900, "P1", "e4", "MG_LOW_UNCORRECTED", "expiry"],
        [1000, "P1", "e5", "EPISODE", "episode"],
    ],
    "newest_t0": 400,
    "seen": {"e1": 200, "e2": 210},
    "pruned_at": 200,
    "pending": [["lab", 1100, "P1", "e8"]],
}
EMPTY: dict[str, Any] = {
    "patient_id": "P2",
    "k": {},
    "mg": {},
    "episodes": [],
    "order_last": {},
    "cancelled": {},
    "mg_repletions": [],
    "diuretics": [],
    "firing": [],
    "timers": [],
    "newest_t0": None,
    "seen": {},
    "pruned_at": 0,
    "pending": [],
}


# An order cancelled more than once keeps its cancel times (a single one keeps the old form).
SEVERAL_CANCELS = STORED | {"cancelled": {"O3": [390, 395], "O6": 120}}


@pytest.mark.parametrize(
    "stored", [STORED, EMPTY, SEVERAL_CANCELS], ids=["filled", "empty", "several_cancels"]
)
def test_a_stored_state_is_written_back_byte_for_byte(stored):
    raw = orjson.dumps(stored)
    state = PatientState.from_dict(orjson.loads(raw))
    assert orjson.dumps(state.to_dict()) == raw


def test_an_empty_state_writes_the_empty_form():
    assert orjson.dumps(PatientState("P2").to_dict()) == orjson.dumps(EMPTY)


def test_a_stored_state_is_rebuilt_with_the_types_the_engine_compares():
    state = PatientState.from_dict(orjson.loads(orjson.dumps(STORED)))
    assert state.k["R1"] == LabRecord(2.8, 100, 200, "e1", False, "EN1", "ICU")
    assert type(state.mg["R3"]) is LabRecord and state.mg["R3"].hemolyzed is True
    assert [e.status for e in state.episodes] == [EpisodeStatus.EVALUATED, EpisodeStatus.PENDING]
    assert state.episodes[1].status is EpisodeStatus.PENDING
    assert state.mg_repletions == [
        MgRepletion(320, "e6", "O4", True),
        MgRepletion(330, "e7", None, False),
    ]
    assert state.diuretics == [DiureticExposure(310, "O5", True)]
    assert set(state.firing) == {Rule.MG_LOW_UNCORRECTED, Rule.REFRACTORY_HYPOKALEMIA}
    assert state.firing[Rule.MG_LOW_UNCORRECTED].severity is Severity.HIGH
    assert state.firing[Rule.REFRACTORY_HYPOKALEMIA].linked_alert_id == "a1"
    assert Timer(1000, "P1", "e5", "EPISODE", TimerKind.EPISODE) in state.timers
    assert {t.kind for t in state.timers} == {TimerKind.EPISODE, TimerKind.EXPIRY}


@pytest.mark.parametrize(
    ("field", "row"),
    [("k", {"R1": [2.8, 100, 200]}), ("mg_repletions", [[320, "e6"]]), ("diuretics", [[1]])],
)
def test_a_stored_row_of_the_wrong_length_is_refused(field, row):
    with pytest.raises(TypeError):
        PatientState.from_dict(STORED | {field: row})


def test_an_order_is_pruned_by_its_latest_cancel():
    state = PatientState.from_dict(orjson.loads(orjson.dumps(SEVERAL_CANCELS)))
    state.cancelled |= {f"X{i}": [i, 10_000] for i in range(ORDER_MEMORY)}
    windows = Windows(config())
    state.prune(now=10_000 + windows.history, w=windows, mg_low=1.7)
    assert set(state.cancelled) == {f"X{i}" for i in range(ORDER_MEMORY)}
