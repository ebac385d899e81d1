"""Worker start-up rules: the processing guarantee, the unclean-stop marker, topic layout."""

from __future__ import annotations

import pytest

from streams.settings import ProcessingGuarantee, Settings
from streams.topics import topic_specs
from streams.worker import (
    RUNNING_MARKER,
    UnsupportedGuarantee,
    check_guarantee,
    discard_after_unclean_stop,
)


def test_exactly_once_is_refused_with_the_reason():
    with pytest.raises(UnsupportedGuarantee, match="at_least_once"):
        check_guarantee(Settings(processing_guarantee=ProcessingGuarantee.EXACTLY_ONCE))
    check_guarantee(Settings())


@pytest.mark.parametrize("crashed", [True, False])
def test_local_tables_are_discarded_only_after_an_unclean_stop(tmp_path, crashed):
    tables = tmp_path / "app-data" / "v1" / "tables"
    (tables / "patients-0.db").mkdir(parents=True)
    if crashed:
        (tmp_path / RUNNING_MARKER).write_text("123\n")
    assert discard_after_unclean_stop(tmp_path, tables) is crashed
    assert tables.exists() is not crashed


def test_every_topic_has_the_same_partition_count():
    specs = topic_specs(Settings(partitions=5, topic_prefix="p."))
    assert {s.name for s in specs} == {
        "p.labs",
        "p.meds",
        "p.alerts",
        "p.dead-letter",
        "p.ticks",
    }
    assert {s.partitions for s in specs} == {5}
    ticks = next(s for s in specs if s.name == "p.ticks")
    assert ticks.config["cleanup.policy"] == "delete"
