"""Worker start-up rules: the processing guarantee, the unclean-stop marker, topic layout."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from alerts.rule_config import ConfigError
from streams.app import ConsumerBacklog, RetryingAgent, TableScope, build_app
from streams.changelog import ChangelogWriter, LocalStoreError, MappingWriter
from streams.consumed import InputMessage
from streams.metrics import StreamMetrics
from streams.settings import LogLevel, ProcessingGuarantee, Settings
from streams.topics import owned_topics, topic_specs
from streams.transport import BatchConsumer, BatchTransport, _seek_to_start
from streams.worker import (
    RUNNING_MARKER,
    UnsupportedGuarantee,
    build_worker,
    check_guarantee,
    check_web_port,
    discard_after_unclean_stop,
    lock_data_dir,
    run_worker,
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


def test_a_data_directory_another_worker_holds_is_refused_before_anything_starts(tmp_path):
    # Found by a new user: a second worker took the first one's marker for an unclean stop and
    # deleted the table files it was using.
    (tmp_path / RUNNING_MARKER).write_text("123\n")
    held = lock_data_dir(tmp_path)
    # Nothing listens at the bootstrap address: reaching the broker would fail otherwise.
    second = Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1")
    with pytest.raises(ConfigError, match=f"in use by another worker \\(pid {os.getpid()}\\)"):
        run_worker(second)
    assert (tmp_path / RUNNING_MARKER).read_text() == "123\n"  # the marker is untouched
    held.close()  # the first worker ends: its lock goes with it
    lock_data_dir(tmp_path).close()


def test_a_web_port_in_use_is_refused_with_its_variable():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"KMG_WEB_PORT {port} is in use"):
            check_web_port(Settings(web_port=port))
    check_web_port(Settings(web_port=port))  # free again


def test_a_port_left_closing_by_a_stopped_worker_is_free_for_its_restart():
    # Found by review: a scraper's connection closing after a stop held the port against the
    # restart, which the web server (binding with SO_REUSEADDR) would have taken.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end waits in TIME-WAIT
            client.recv(1)
    check_web_port(Settings(web_port=port))


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


def _consumer(tmp_path: Any) -> tuple[Any, BatchConsumer]:
    settings = Settings(data_dir=tmp_path, store="memory://", topic_prefix="t.")
    app = build_app(settings, CollectorRegistry())
    return app, app.consumer


def _consumer_at_start(tmp_path: Any) -> tuple[Any, TP]:
    """Return a consumer that has committed nothing yet of partition 0 of the labs topic."""
    _, consumer = _consumer(tmp_path)
    tp = TP("t.labs", 0)
    consumer._committed_offset[tp] = 0
    return consumer, tp


def _record(topic: str, partition: int, offset: int) -> Any:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset, key=b"P1", value=b"{}")


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected", "refused"),
    [
        # a limit under 100 would refuse ordinary patients
        ("KMG_MAX_PATIENT_EVENTS", "1234", "max_patient_events", 1234, 99),
        ("KMG_MAX_EVENT_LEAD_HOURS", "6.5", "max_event_lead_hours", 6.5, -1),
    ],
)
def test_a_guard_of_the_worker_is_read_from_the_environment_and_bounded(
    tmp_path, monkeypatch, variable, value, field, expected, refused
):
    monkeypatch.setenv(variable, value)
    settings = Settings(data_dir=tmp_path, store="memory://", topic_prefix="t.")
    app = build_app(settings, CollectorRegistry())
    assert getattr(app.batch_handler.processor.admission, field) == expected
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: refused})


def test_the_app_consumes_its_inputs_in_batches(tmp_path):
    app, consumer = _consumer(tmp_path)
    assert isinstance(app.transport, BatchTransport)
    assert isinstance(consumer, BatchConsumer)
    assert app.batch_topics == {"t.labs", "t.meds", "t.ticks"}
    assert isinstance(app.batch_handler, RetryingAgent)


def test_a_fetch_splits_into_input_batches_in_partition_order_and_other_records(tmp_path):
    app, consumer = _consumer(tmp_path)
    labs0, labs1, meds0 = TP("t.labs", 0), TP("t.labs", 1), TP("t.meds", 0)
    changelog, paused = TP("t-patients-changelog", 0), TP("t.meds", 1)
    consumer._read_offset[labs1] = 11  # read up to 11 before a seek back
    records = {
        labs0: [_record("t.labs", 0, o) for o in (5, 6, 7)],
        labs1: [_record("t.labs", 1, o) for o in (10, 11, 12)],
        meds0: [_record("t.meds", 0, 3)],
        changelog: [_record("t-patients-changelog", 0, 0)],
        paused: [_record("t.meds", 1, 0)],
    }
    active = {labs0, labs1, meds0, changelog}
    msgs, offsets, others = consumer.split(records, active, app.batch_topics)
    # The client's own records, grouped by topic partition.
    assert msgs == [*records[labs0], *records[labs1][1:], *records[meds0]]
    assert [m.offset for m in msgs if m.topic == "t.labs" and m.partition == 0] == [5, 6, 7]
    assert [m.offset for m in msgs if m.topic == "t.labs" and m.partition == 1] == [11, 12]
    assert offsets == {labs0: [5, 6, 7], labs1: [11, 12], meds0: [3]}
    assert [tp for tp, _ in others] == [changelog]
    assert consumer._read_offset[labs0] == 7 and consumer._read_offset[paused] is None


def test_acknowledged_batches_are_what_faust_commits(tmp_path):
    _, consumer = _consumer(tmp_path)
    tp = TP("t.labs", 0)
    consumer._committed_offset[tp] = 5
    consumer.acknowledge({tp: [3, 4, 5, 6]})  # 3 and 4 were committed before
    consumer.acknowledge({tp: [6, 7]})  # a repeat counts once
    assert consumer._acked[tp] == [5, 6, 7]
    assert consumer._n_acked == 3
    assert consumer._new_offset(tp) == 8


def test_a_stop_during_a_batch_lets_it_finish_and_acknowledges_it(tmp_path):
    consumer, tp = _consumer_at_start(tmp_path)
    release = asyncio.Event()
    handled: list[int] = []

    async def handler(msgs: list[InputMessage]) -> None:
        await release.wait()
        handled.extend(m.offset for m in msgs)

    async def scenario() -> None:
        msgs = [InputMessage("t.labs", 0, o, b"P1", b"{}") for o in (0, 1)]
        task = asyncio.ensure_future(consumer._handle(handler, msgs, {tp: [0, 1]}))
        await asyncio.sleep(0.01)
        assert not consumer.idle.is_set()
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done()  # still finishing the batch
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert consumer.idle.is_set()

    asyncio.run(scenario())
    assert handled == [0, 1]
    assert consumer._new_offset(tp) == 2


def test_a_batch_with_nothing_to_send_is_acknowledged_behind_an_unacknowledged_one(tmp_path):
    # Found by review: it was acknowledged at once, so Faust committed past an earlier dead
    # letter the broker had not acknowledged; had that send failed, no restart took it again.
    consumer, tp = _consumer_at_start(tmp_path)

    async def scenario() -> None:
        dead_letter_ack = asyncio.get_running_loop().create_future()

        async def with_pending_output(msgs: list[InputMessage]) -> Any:
            return dead_letter_ack

        async def with_nothing(msgs: list[InputMessage]) -> None:
            return None

        first = [InputMessage("t.labs", 0, 0, b"P1", b"not json")]
        await consumer._handle(with_pending_output, first, {tp: [0]})
        await consumer._handle(
            with_nothing, [InputMessage("t.labs", 0, 1, b"P1", b"{}")], {tp: [1]}
        )
        await asyncio.sleep(0)
        assert consumer._new_offset(tp) is None  # nothing may be committed yet
        dead_letter_ack.set_result(None)
        for _ in range(3):
            await asyncio.sleep(0)
        assert consumer._new_offset(tp) == 2

    asyncio.run(scenario())


def test_a_rebalance_waits_for_the_batch_being_handled(tmp_path, monkeypatch):
    _, consumer = _consumer(tmp_path)
    committed: list[str] = []

    async def commit_and_end_transactions() -> None:
        committed.append("done")

    monkeypatch.setattr(consumer, "commit_and_end_transactions", commit_and_end_transactions)

    async def scenario() -> None:
        consumer.idle.clear()
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(0.05)
        assert not waiting.done() and committed == []
        consumer.idle.set()
        await asyncio.wait_for(waiting, 5)

    asyncio.run(scenario())
    assert committed == ["done"]


class _FlakyProcessor:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.forgotten = 0

    async def handle_batch(self, msgs: list[InputMessage], scope: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("broker gone")

    def on_rebalance(self) -> None:
        self.forgotten += 1


def _agent(processor: Any, stopping: bool = False) -> tuple[RetryingAgent, list[float], Any]:
    registry = CollectorRegistry()
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    scope = TableScope("t.labs")
    agent = RetryingAgent(processor, scope, StreamMetrics(registry), lambda: stopping, sleep)
    return agent, delays, registry


def test_a_batch_whose_outputs_fail_is_taken_again_from_the_table_with_backoff():
    processor = _FlakyProcessor(failures=3)
    agent, delays, registry = _agent(processor)
    asyncio.run(agent([InputMessage("t.labs", 0, 0, b"P1", b"{}")]))
    assert processor.calls == 4 and processor.forgotten == 3
    assert delays == [0.5, 1.0, 2.0]
    assert registry.get_sample_value("kmg_batch_retries_total") == 3


def test_a_failing_batch_is_left_unacknowledged_when_the_worker_stops():
    processor = _FlakyProcessor(failures=1)
    agent, delays, _ = _agent(processor, stopping=True)
    with pytest.raises(ConnectionError):
        asyncio.run(agent([InputMessage("t.labs", 0, 0, b"P1", b"{}")]))
    assert processor.calls == 1 and delays == []


def test_the_table_scope_makes_faust_read_and_write_the_partition():
    import faust.streams

    scope = TableScope("t.labs")

    async def scenario() -> list[tuple[str, int]]:
        seen = []
        for p in (3, 0, 3):
            scope(p)
            event = faust.streams.current_event()
            assert event is not None
            seen.append((event.message.topic, event.message.partition))
        return seen

    assert asyncio.run(scenario()) == [("t.labs", 3), ("t.labs", 0), ("t.labs", 3)]


def test_the_backlog_reads_each_high_watermark_once_per_batch():
    highs = {TP("t.labs", 0): 10, TP("t.meds", 0): 4}
    reads: list[TP] = []

    def highwater(tp: TP) -> int | None:
        reads.append(tp)
        return highs.get(tp)

    app: Any = SimpleNamespace(consumer=SimpleNamespace(highwater=highwater, _committed_offset={}))
    backlog = ConsumerBacklog(app, ("t.labs", "t.meds"))
    backlog.refresh()
    assert [backlog.behind("t.labs", 0, n) for n in (8, 9, 10)] == [True, True, False]
    assert backlog.behind("t.meds", 0, None)  # committed offset unknown: from 0
    assert backlog.behind("t.labs", 1, 0)  # no high watermark known: behind
    assert reads == [TP("t.labs", 0), TP("t.meds", 0), TP("t.labs", 1)]
    highs[TP("t.labs", 0)] = 12  # a new fetch saw more records
    assert not backlog.behind("t.labs", 0, 10)  # the batch keeps the watermark of its fetch
    backlog.refresh()
    assert backlog.behind("t.labs", 0, 10)
    assert reads.count(TP("t.labs", 0)) == 2


@pytest.mark.parametrize(
    ("last_read", "offsets", "gaps"),
    [
        (None, [0, 1, 2], []),
        (4, [5, 6, 7], []),
        (4, [7, 8], [(5, 7)]),  # compacted away before the fetch
        (4, [5, 8, 9, 12], [(6, 8), (10, 12)]),
        (None, [3, 5], [(4, 5)]),
    ],
)
def test_offsets_the_broker_skipped_are_noted_as_gaps(
    tmp_path, monkeypatch, last_read, offsets, gaps
):
    app, consumer = _consumer(tmp_path)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)  # set on assignment
    tp = TP("t.labs", 0)
    consumer._read_offset[tp] = last_read
    noted: list[tuple[int, int]] = []

    async def add_gap(tp: TP, start: int, end: int) -> None:
        noted.append((start, end))

    monkeypatch.setattr(consumer, "_add_gap", add_gap)
    asyncio.run(consumer._gaps({tp: [_record("t.labs", 0, o) for o in offsets]}))
    assert noted == gaps


@pytest.mark.parametrize(("compression", "expected"), [("zstd", "zstd"), ("none", None)])
def test_the_producer_compresses_as_configured_and_commits_every_second(
    tmp_path, compression, expected
):
    settings = Settings(
        data_dir=tmp_path, store="memory://", topic_prefix="t.", producer_compression=compression
    )
    app = build_app(settings, CollectorRegistry())
    assert app.conf.producer_compression_type == expected
    assert app.conf.broker_commit_interval == 1.0
    assert Settings().producer_compression == "zstd"


def test_offsets_are_acknowledged_in_batch_order_once_their_outputs_are(tmp_path):
    consumer, tp = _consumer_at_start(tmp_path)

    async def scenario() -> list[int | None]:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        consumer._acknowledge_once_sent(first, {tp: [0, 1]})
        consumer._acknowledge_once_sent(second, {tp: [2, 3]})
        seen = []
        second.set_result(None)  # the later batch's alerts are acknowledged first
        await asyncio.sleep(0)
        seen.append(consumer._new_offset(tp))  # nothing may be committed yet
        first.set_result(None)
        await asyncio.sleep(0)
        seen.append(consumer._new_offset(tp))
        return seen

    assert asyncio.run(scenario()) == [None, 4]
    assert not consumer.unacknowledged


def test_outputs_the_broker_refused_stop_the_worker_and_are_never_committed(tmp_path, monkeypatch):
    consumer, tp = _consumer_at_start(tmp_path)
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(consumer, "crash", crash)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        first, second = loop.create_future(), loop.create_future()
        consumer._acknowledge_once_sent(first, {tp: [0, 1]})
        consumer._acknowledge_once_sent(second, {tp: [2, 3]})
        first.set_exception(ConnectionError("broker gone"))
        await asyncio.sleep(0)
        second.set_result(None)
        await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert [str(e) for e in crashed] == ["broker gone"]
    assert consumer._new_offset(tp) is None  # neither batch: the later one follows the first


def test_a_rebalance_waits_for_the_outputs_of_handled_batches(tmp_path, monkeypatch):
    consumer, tp = _consumer_at_start(tmp_path)
    steps: list[str] = []

    async def faust_wait_empty(self: Any) -> None:
        steps.append(f"faust commits up to {self._new_offset(tp)}")

    monkeypatch.setattr(BatchConsumer.__mro__[1], "wait_empty", faust_wait_empty)

    async def scenario() -> None:
        sent = asyncio.get_running_loop().create_future()

        async def handler(msgs: Any) -> Any:
            return sent

        msgs = [InputMessage("t.labs", 0, o, b"P1", b"{}") for o in (0, 1)]
        await consumer._handle(handler, msgs, {tp: [0, 1]})  # returns before the acks
        waiting = asyncio.ensure_future(consumer.wait_empty())
        await asyncio.sleep(0.01)
        steps.append(f"waiting: {not waiting.done()}")
        sent.set_result(None)
        await waiting

    asyncio.run(scenario())
    assert steps == ["waiting: True", "faust commits up to 2"]


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("p.labs", True),
        ("p.alerts", True),
        ("app-patients-changelog", True),
        ("app-__assignor-__leader", True),
        ("pp.labs", False),
        ("app2-patients-changelog", False),
        ("app", False),
        ("kmg.labs", False),
    ],
)
def test_a_deployment_owns_its_prefix_and_its_apps_topics(name: str, owned: bool):
    settings = Settings(topic_prefix="p.", app_id="app")
    assert owned_topics(settings, [name, "other"]) == ([name] if owned else [])


def _scenario_one_agent(outbox: Any, writer: Any) -> tuple[Any, ...]:
    """Return scenario 01 on one partition, its `final` marker read, and the agent to take it.

    `writer` (a class over the table) stands in for the changelog writer when given.
    """
    from streams.processor import StreamProcessor
    from streams.rule_files import load_rule_config
    from streams.state_store import PatientStore
    from tests.conftest import SCENARIOS
    from tests.streams import test_stream_fakes as fakes

    cfg = load_rule_config()
    lines = (SCENARIOS / "01_mg_not_checked_basic.ndjson").read_bytes().splitlines()
    broker = fakes.Broker(1)
    for line in lines:
        broker.append(fakes.MEDS if b'"medication"' in line else fakes.LABS, 0, b"P01", line)
    broker.produce_final()  # W = +infinity once read: the evaluation runs in this batch
    table, registry = fakes.LoggedTable(1), CollectorRegistry()
    metrics = StreamMetrics(registry)
    store = (
        PatientStore(table, 0) if writer is None else PatientStore(table, 0, writer=writer(table))
    )
    processor = StreamProcessor(
        cfg, store, outbox, fakes.Backlog(broker), metrics,
        inputs=fakes.INPUTS, ticks=fakes.TICKS, wall=lambda: 1_900_000_000.0,
    )  # fmt: skip

    async def no_wait(seconds: float) -> None:
        pass

    agent = RetryingAgent(processor, table.scope, metrics, lambda: False, no_wait)
    msgs = [
        InputMessage(topic, p, offset, key, value)
        for (topic, p), records in sorted(broker.logs.items())
        for offset, (key, value) in enumerate(records)
    ]
    return cfg, lines, table, registry, agent, msgs


def test_a_batch_taken_again_after_its_alerts_failed_publishes_them():
    # Found by review: the retry read the failed attempt's unflushed states, so its events were
    # duplicates, its alert already fired, and the alert was never published.
    from tests.integration.stream_harness import replay_alerts
    from tests.streams import test_stream_fakes as fakes

    class FlakyOutbox(fakes.Outbox):
        failures = 1

        async def publish_alerts(self, records: Any) -> Any:
            if self.failures:
                self.failures -= 1
                raise TimeoutError("no metadata for the alerts topic")
            return await super().publish_alerts(records)

    outbox = FlakyOutbox()
    cfg, lines, table, registry, agent, msgs = _scenario_one_agent(outbox, None)

    async def run() -> None:
        sent = await agent(msgs)
        if sent is not None:
            await sent

    asyncio.run(run())
    assert registry.get_sample_value("kmg_batch_retries_total") == 1
    assert fakes.rows(outbox.alerts) == fakes.rows(replay_alerts(cfg, lines))
    assert outbox.alerts
    assert registry.get_sample_value("kmg_duplicates_total") in (None, 0)


def test_a_seek_back_that_meets_a_revoked_partition_does_not_crash_the_fetcher(tmp_path):
    # Found by a review: during a rebalance the fetch loop's seek back to the commits raised
    # "No current assignment for partition" out of the fetcher and the worker crashed.
    from aiokafka.errors import IllegalStateError

    _, consumer = _consumer(tmp_path)
    seeks = []

    async def revoked_meanwhile() -> None:
        seeks.append(1)
        raise IllegalStateError("No current assignment for partition TopicPartition('t.meds', 0)")

    consumer.perform_seek = revoked_meanwhile
    asyncio.run(consumer.read_again_from_commits())
    assert seeks == [1]


def test_a_seek_back_to_the_commits_also_moves_input_partitions_without_one(tmp_path):
    # Found in CI: aiokafka seeks only to a commit above 0, so a new deployment's records
    # fetched and dropped at the recovery were never fetched again (its `final` either).
    _, consumer = _consumer(tmp_path)
    committed = {
        TP("t.labs", 0): None,  # no commit yet
        TP("t.meds", 0): 0,
        TP("t.ticks", 0): 7,  # aiokafka's own seek covers it
        TP("t-patients-changelog", 0): None,  # read by recovery: not the consumer's to move
    }
    calls: list[tuple[Any, ...]] = []

    class Thread:
        async def seek_to_committed(self) -> dict[TP, int | None]:
            return committed

        def _ensure_consumer(self) -> str:
            return "aiokafka consumer"

        async def call_thread(self, fun: Any, *args: Any) -> None:
            calls.append((fun, *args))

    consumer._thread = Thread()
    assert asyncio.run(consumer.seek_to_committed()) == committed
    assert calls == [
        (
            _seek_to_start,
            "aiokafka consumer",
            {TP("t.labs", 0): None, TP("t.meds", 0): 0},
            "earliest",
        )
    ]


@pytest.mark.parametrize("reset, where", [("earliest", "beginning"), ("latest", "end")])
def test_the_seek_to_start_follows_the_reset_policy(reset, where):
    seen: list[tuple[str, Any]] = []

    class Consumer:
        def seek(self, tp: TP, offset: int) -> None:
            seen.append(("seek", (tp, offset)))

        async def seek_to_beginning(self, *tps: TP) -> None:
            seen.append(("beginning", tps))

        async def seek_to_end(self, *tps: TP) -> None:
            seen.append(("end", tps))

    labs, meds, ticks = TP("t.labs", 0), TP("t.meds", 0), TP("t.ticks", 0)
    asyncio.run(_seek_to_start(Consumer(), {labs: None, meds: 0, ticks: -1}, reset))
    assert seen == [("seek", (meds, 0)), (where, (labs, ticks))]


class _Coordinator:
    """aiokafka's group coordinator as the membership question meets it."""

    def __init__(self, answers: list[Any]) -> None:
        self.member_id = "member-1"
        self.answers = answers
        self.heartbeats = 0

    async def ensure_coordinator_known(self) -> None:
        return None

    async def _do_heartbeat(self) -> bool:
        answer = self.answers[self.heartbeats]
        self.heartbeats += 1
        if isinstance(answer, Exception):
            raise answer
        if answer == "refused":  # unknown member id or stale generation: aiokafka resets it
            self.member_id = ""
            return False
        return answer


def _asking(consumer: Any, coordinator: _Coordinator) -> None:
    async def call_thread(fun: Any, *args: Any) -> Any:
        return await fun(*args)

    kafka_consumer = SimpleNamespace(_coordinator=coordinator)
    consumer._thread = SimpleNamespace(
        _ensure_consumer=lambda: kafka_consumer, call_thread=call_thread
    )


def test_membership_is_asked_of_the_group_only_when_not_proven_lately(tmp_path, monkeypatch):
    import time as clock

    _, consumer = _consumer(tmp_path)
    coordinator = _Coordinator([True, "refused"])
    _asking(consumer, coordinator)
    consumer.member_for_seconds = 30.0
    now = [1_000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])

    async def scenario() -> list[bool]:
        said = [await consumer.confirm_membership()]  # never proven: ask (a member)
        now[0] += 29.0
        said.append(await consumer.confirm_membership())  # proven 29 s ago: no question
        now[0] += 2.0
        said.append(await consumer.confirm_membership())  # 31 s: ask (refused)
        said.append(await consumer.confirm_membership())  # refused already: not asked again
        return said

    assert asyncio.run(scenario()) == [True, True, False, False]
    assert coordinator.heartbeats == 2


def test_a_coordinator_that_does_not_answer_is_asked_again_until_it_does(tmp_path, monkeypatch):
    # Found by a broker restart in the middle of a feed: a heartbeat that fails because the
    # coordinator is moving said nothing about membership, and the worker stopped.
    from streams import transport

    monkeypatch.setattr(transport, "_FIRST_ASK_SECONDS", 0.0)
    _, consumer = _consumer(tmp_path)
    coordinator = _Coordinator([False, ConnectionError("coordinator gone"), False, True])
    _asking(consumer, coordinator)
    assert asyncio.run(consumer.confirm_membership()) is True
    assert coordinator.heartbeats == 4


def test_a_commit_the_group_accepts_proves_membership_from_before_it_was_asked(
    tmp_path, monkeypatch
):
    import time as clock

    app, consumer = _consumer(tmp_path)
    now = [500.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])

    async def settled() -> None:
        return None

    async def accepted(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        now[0] += 40.0  # a pause while the commit was in flight proves nothing after it
        return True

    app.changelog_settle = settled
    monkeypatch.setattr(BatchConsumer.__mro__[1], "_commit_offsets", accepted)
    consumer.member_for_seconds = 30.0
    assert asyncio.run(consumer._commit_offsets({}))
    assert consumer._confirmed_at == 500.0


class _FullDisk:
    """A partition's RocksDB that refuses every write, as one does on a full disk."""

    def write(self, batch: Any) -> None:
        raise Exception("IO error: No space left on device: While appending to file: 000012.log")


class _FullDiskProcessor(_FlakyProcessor):
    """A processor whose batch writes its states into a local store on a full disk."""

    def __init__(self, failures: int) -> None:
        super().__init__(failures)
        store = SimpleNamespace(use_rocksdict=True, _db_for_partition=lambda p: _FullDisk())
        table = SimpleNamespace(data=store, changelog_topic=None)
        self.writer = ChangelogWriter(table, lambda: None)

    async def handle_batch(self, msgs: list[InputMessage], scope: Any) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            await self.writer.write(0, [("P1", b"{}")])


def test_a_local_store_that_refuses_writes_is_fatal_not_retried(caplog):
    # Found by review: a full disk was retried every 10 s for ever, as if the broker had
    # failed; RocksDB keeps the error until it is reopened, so the batch never went through.
    processor = _FullDiskProcessor(failures=3)
    agent, delays, registry = _agent(processor)
    with pytest.raises(LocalStoreError, match="No space left on device"):
        asyncio.run(agent([InputMessage("t.labs", 0, 0, b"P1", b"{}")]))
    assert processor.calls == 1 and delays == []
    assert registry.get_sample_value("kmg_batch_retries_total") == 0
    assert "No space left on device" in caplog.text
    assert isinstance(processor.writer.failure, LocalStoreError)  # no commit follows either


def test_a_fatal_batch_crashes_the_worker_unacknowledged(tmp_path, monkeypatch):
    consumer, tp = _consumer_at_start(tmp_path)
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(consumer, "crash", crash)

    async def full_disk(msgs: list[InputMessage]) -> None:
        raise LocalStoreError("the local table store refused a write: IO error")

    async def scenario() -> None:
        msgs = [InputMessage("t.labs", 0, o, b"P1", b"{}") for o in (0, 1)]
        with pytest.raises(LocalStoreError):
            await consumer._handle(full_disk, msgs, {tp: [0, 1]})

    asyncio.run(scenario())
    assert [type(e) for e in crashed] == [LocalStoreError]
    assert consumer._new_offset(tp) is None and consumer.idle.is_set()


def test_a_fatal_batch_finished_during_a_stop_crashes_the_worker_unacknowledged(
    tmp_path, monkeypatch
):
    consumer, tp = _consumer_at_start(tmp_path)
    crashed: list[BaseException] = []
    release = asyncio.Event()

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(consumer, "crash", crash)

    async def full_disk(msgs: list[InputMessage]) -> None:
        await release.wait()
        raise LocalStoreError("the local table store refused a write: IO error")

    async def scenario() -> None:
        msgs = [InputMessage("t.labs", 0, o, b"P1", b"{}") for o in (0, 1)]
        task = asyncio.ensure_future(consumer._handle(full_disk, msgs, {tp: [0, 1]}))
        await asyncio.sleep(0.01)
        task.cancel()  # a stop while the batch is half done: it is finished first
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(LocalStoreError):
            await task

    asyncio.run(scenario())
    assert [type(e) for e in crashed] == [LocalStoreError]  # not a clean stop: the marker stays
    assert consumer._new_offset(tp) is None and consumer.idle.is_set()


def test_the_worker_is_not_ready_while_a_batch_is_being_retried(tmp_path):
    # Found by review: /ready said 200 through 18 retries of a batch that never went through.
    app, _ = _consumer(tmp_path)
    agent = app.batch_handler
    page = app.web.views["/ready"]
    statuses: list[int] = []

    async def sleep(seconds: float) -> None:
        statuses.append((await page.get(None)).status)

    agent.processor = _FlakyProcessor(failures=2)
    agent.sleep = sleep

    async def scenario() -> None:
        await app.on_partitions_assigned.send(set())  # assigned nothing: ready
        statuses.append((await page.get(None)).status)
        await agent([InputMessage("t.labs", 0, 0, b"P1", b"{}")])
        statuses.append((await page.get(None)).status)

    asyncio.run(scenario())
    assert statuses == [200, 503, 503, 200]


def test_a_batch_taken_again_is_counted_once():
    # Found by review: a batch counted its events and alerts before its states were written,
    # so each retry counted them again.
    from tests.integration.stream_harness import replay_alerts
    from tests.streams import test_stream_fakes as fakes

    class FlakyWriter(MappingWriter):
        failures = 1

        async def write(self, partition: int, entries: Any, after: Any = None) -> None:
            if self.failures:
                self.failures -= 1
                raise TimeoutError("the changelog's producer buffer is full")
            await super().write(partition, entries, after)

    outbox = fakes.Outbox()
    cfg, lines, table, registry, agent, msgs = _scenario_one_agent(outbox, FlakyWriter)
    asyncio.run(agent(msgs))

    def total(name: str) -> float:
        return sum(s.value for m in registry.collect() for s in m.samples if s.name == name)

    expected = replay_alerts(cfg, lines)
    assert registry.get_sample_value("kmg_batch_retries_total") == 1
    assert total("kmg_events_total") == len(msgs)
    assert total("kmg_alerts_total") == len(expected) > 0
