"""ExternalSorter: sorted runs spilled to disk and merged give exactly the in-memory order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication
from streams import external_sort
from streams.external_sort import ExternalSorter
from tests.alerts.harness import replay
from tests.search_depth import SEARCH, examples
from tests.strategies import feeds, unique_events

PROFILE = settings(SEARCH, max_examples=examples(100))


def release_key(ev: LabResult | Medication) -> tuple[int, str, str]:
    return ev.available, ev.patient_id, ev.event_id


def sort_externally(events, chunk_size: int, spill_dir=None) -> tuple[list, int]:
    sorter = ExternalSorter(chunk_size, spill_dir)
    for ev in events:
        sorter.add(ev)
    runs = sorter.runs
    return list(sorter), runs


@PROFILE
@given(events=unique_events(), chunk_size=st.integers(1, 7))
def test_tiny_chunks_give_the_in_memory_order(events, chunk_size):
    merged, runs = sort_externally(events, chunk_size)
    assert merged == sorted(events, key=release_key)
    assert runs == len(events) // chunk_size  # every full chunk was spilled as a run


@PROFILE
@given(events=unique_events(), chunk_size=st.integers(1, 5))
def test_events_survive_the_disk_round_trip_with_their_types(events, chunk_size):
    merged, _ = sort_externally(events, chunk_size)
    expected = sorted(events, key=release_key)
    for got, want in zip(merged, expected, strict=True):
        assert type(got) is type(want)
        for a, b in zip(got, want, strict=True):
            assert a == b and type(a) is type(b), (got, want)


def _events(n: int) -> list[LabResult | Medication]:
    """Deterministic events in scrambled order, with ties on availability and patient."""
    out: list[LabResult | Medication] = []
    for i in range(n):
        available = 1_709_539_200_000_000 + (i * 7919 % 13) * 60_000_000
        patient, event_id = f"P{i % 3}", f"e{(i * 31) % 97:03d}-{i}"
        if i % 2:
            out.append(
                LabResult(
                    available,
                    patient,
                    event_id,
                    Analyte.MAGNESIUM,
                    1.5 + i / 100,
                    available - 3_600_000_000,
                    LabStatus.FINAL,
                    f"R{i}",
                    bool(i % 3),
                    None,
                    "ICU-A",
                )
            )
        else:
            out.append(
                Medication(
                    available,
                    patient,
                    event_id,
                    MedAction.ORDERED,
                    frozenset({MedClass.POTASSIUM_REPLETION}),
                    f"O{i}",
                    "ENC",
                    None,
                )
            )
    return out


def test_runs_are_spilled_into_the_given_directory_and_cleaned_up(tmp_path):
    events = _events(50)
    merged, runs = sort_externally(events, 3, tmp_path)
    assert runs == 16
    assert merged == sorted(events, key=release_key)
    assert list(tmp_path.iterdir()) == []


def test_no_spill_when_everything_fits():
    events = _events(30)
    merged, runs = sort_externally(events, 1_000)
    assert runs == 0
    assert merged == sorted(events, key=release_key)


def test_take_hands_over_every_event_as_added_and_empties_the_sorter():
    events = _events(30)
    sorter = ExternalSorter(1_000)
    for ev in reversed(events):
        sorter.add(ev)
    assert sorter.take() == events[::-1]
    assert sorter.take() == []
    assert list(sorter) == []


def test_take_refuses_once_a_run_was_spilled():
    sorter = ExternalSorter(2)
    for ev in _events(3):
        sorter.add(ev)
    with pytest.raises(RuntimeError, match="spilled"):
        sorter.take()
    assert len(list(sorter)) == 3  # still read back in order through the runs


def test_an_empty_sorter_yields_nothing():
    assert sort_externally([], 3) == ([], 0)


@settings(PROFILE, max_examples=examples(30))
@given(feed=feeds(max_events=40))
def test_replay_through_spilled_runs_gives_the_in_memory_output(feed):
    lines = [fe.event for fe in feed]
    spilled = replay(lines, chunk_size=2)
    in_memory = replay(lines)
    assert spilled.alerts == in_memory.alerts
    sorted_events = len(feed) - sum(in_memory.summary.ignored.values())
    assert spilled.summary.sorted_runs == sorted_events // 2
    assert in_memory.summary.sorted_runs == 0


@PROFILE
@given(
    events=unique_events(max_size=120),
    chunk_size=st.integers(1, 40),
    batch=st.integers(1, 9),
)
def test_runs_of_many_batches_merge_into_sorted_consecutive_blocks(events, chunk_size, batch):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(external_sort, "_BATCH", batch)
        sorter = ExternalSorter(chunk_size)
        for ev in events:
            sorter.add(ev)
        blocks = list(sorter.blocks())
    assert all(blocks)  # no empty block
    assert [ev for block in blocks for ev in block] == sorted(events, key=release_key)


@PROFILE
@given(events=unique_events(max_size=120), fan_in=st.integers(2, 4), batch=st.integers(1, 5))
def test_runs_are_merged_as_they_spill_and_few_stay_open(events, fan_in, batch):
    # Found by review: every run held a file open until the end (one per 600,000 events).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(external_sort, "_FAN_IN", fan_in)
        patch.setattr(external_sort, "_BATCH", batch)
        sorter = ExternalSorter(1)
        most_open = 0
        for ev in events:
            sorter.add(ev)
            most_open = max(most_open, len(sorter._runs))
        merged = list(sorter)
    assert merged == sorted(events, key=release_key)
    assert sorter.runs == len(events)  # chunks spilled, whatever was merged since
    levels = max(1, len(events)).bit_length()  # at least the levels of fan_in 2
    assert most_open <= (fan_in - 1) * levels + 1
