"""Worker start-up rules: the processing guarantee, the unclean-stop marker, topic layout."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import Message
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from streams.app import AckHold, build_app
from streams.settings import LogLevel, ProcessingGuarantee, Settings
from streams.topics import topic_specs
from streams.transport import DrainingConsumer, DrainingTransport
from streams.worker import (
    RUNNING_MARKER,
    UnsupportedGuarantee,
    build_worker,
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


@pytest.mark.parametrize("level", list(LogLevel))
def test_the_worker_logs_at_its_level_and_no_lower(tmp_path, level):
    # Below the configured level no record may even be built: per-message debug calls carry
    # message keys (patient ids) and cost time on every message.
    settings = Settings(data_dir=tmp_path, store="memory://", log_level=level)
    loop = asyncio.new_event_loop()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        worker = build_worker(build_app(settings, CollectorRegistry()), settings, loop)
        worker._setup_logging()  # what the worker does first when it executes
        topics = logging.getLogger("faust.topics")
        assert topics.getEffectiveLevel() == level.number
        assert not topics.isEnabledFor(level.number - 1)
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        loop.close()


def test_an_unknown_log_level_is_refused():
    with pytest.raises(ValidationError):
        Settings(log_level="verbose")


def _events(n: int) -> list[Any]:
    messages = [
        Message("t.labs", 0, offset, 0.0, 0, None, b"P1", b"{}", None) for offset in range(n)
    ]
    for m in messages:
        m.incref()  # the stream's reference, as the conductor takes it on delivery
    return [SimpleNamespace(message=m) for m in messages]


def test_a_held_batch_is_not_acknowledged_by_the_streams_own_ack():
    batch = _events(3)
    AckHold(batch)  # handling never finished (cancelled or failed): no release
    assert not any(e.message.ack(None) for e in batch)  # what take_events does in `finally`
    assert not any(e.message.acked for e in batch)


def test_a_released_batch_is_acknowledged_by_the_streams_own_ack():
    batch = _events(3)
    AckHold(batch).release()
    assert all(e.message.ack(None) for e in batch)
    assert all(e.message.acked for e in batch)


def test_the_app_consumes_through_the_draining_consumer(tmp_path):
    settings = Settings(data_dir=tmp_path, store="memory://")
    app = build_app(settings, CollectorRegistry())
    assert isinstance(app.transport, DrainingTransport)
    assert app.transport.Consumer is DrainingConsumer
