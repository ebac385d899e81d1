"""SeenEvents: ids remembered for a horizon; a forgotten one only ever comes from before it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.dedup import SeenEvents
from tests.search_depth import SEARCH, examples

HORIZON = 100


@settings(SEARCH, max_examples=examples(300))
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 600)), max_size=80))
def test_an_id_taken_again_always_comes_from_before_what_is_surely_remembered(arrivals):
    # The replay switches to the total release order once such a copy may exist: this is the
    # test it relies on (streams/replay.py, alerts/release_order.py).
    seen = SeenEvents(HORIZON)
    first_at: dict[int, int] = {}
    registered: set[int] = set()
    for key, available in arrivals:
        available = first_at.setdefault(key, available)  # a copy carries its event's instant
        if seen.first_sighting(key, available):
            if key in registered:
                forgotten = seen.forgotten_before
                assert forgotten is not None and available < forgotten
            registered.add(key)
        else:
            assert key in registered


def test_ids_are_forgotten_two_horizons_on_and_not_before():
    seen = SeenEvents(HORIZON)
    assert seen.first_sighting("a", 0) and seen.forgotten_before == -HORIZON
    assert not seen.first_sighting("a", 0)
    assert seen.first_sighting("b", 150)  # a turn: "a" is in the previous generation
    assert not seen.first_sighting("a", 0)
    assert seen.first_sighting("c", 260)  # a second turn: "a" is dropped
    assert seen.first_sighting("a", 0)
    assert seen.forgotten_before == 260 - HORIZON


def test_an_id_keeps_the_time_of_the_copy_that_holds_it_in_its_generation():
    seen = SeenEvents(HORIZON)
    assert seen.first_sighting("a", 50) and seen.first_sighting("x", None)
    assert seen.held_at("a") == 50 and seen.held_at("x") is None
    seen.move("a", 40)
    assert seen.held_at("a") == 40
    assert seen.first_sighting("b", 160)  # a turn: "a" is in the previous generation
    seen.move("a", 30)
    assert seen.held_at("a") == 30 and not seen.first_sighting("a", 30)
    assert seen.first_sighting("c", 270)  # a second turn drops "a", moved or not
    assert seen.first_sighting("a", 30)
