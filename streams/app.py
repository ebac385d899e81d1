"""The Faust application: topics, the patient table, the one agent, ticks and /metrics.

All topics have the same partition count and are keyed by patient_id as raw UTF-8 bytes, so
partition N of the labs, meds and ticks topics, of the table's changelog and of the alerts
topic belong to the same worker. One agent (concurrency 1: faust-streaming issue 606 loses
messages with more) reads labs, meds and ticks together, so each partition has one watermark.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import faust
import faust.streams as faust_streams
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.broker_contact import BrokerContact
from streams.changelog import ChangelogWriter, LocalStoreError
from streams.consumed import Consumed, PartitionScope
from streams.metrics import StreamMetrics
from streams.outbox import Acknowledged, TopicOutbox
from streams.processor import TICK, StreamProcessor
from streams.settings import Compression, Settings
from streams.state_store import PatientStore
from streams.topics import DEAD_LETTER_MAX_BYTES, TABLE_NAME, changelog_config
from streams.transport import SentinelApp

log = logging.getLogger("kmg.app")

_FIRST_RETRY_SECONDS = 0.5
_LAST_RETRY_SECONDS = 10.0


class ConsumerBacklog:
    """Unread messages per topic partition, from the consumer's high watermarks."""

    def __init__(self, app: faust.App, inputs: tuple[str, ...]) -> None:
        self.app = app
        self.inputs = inputs
        # High watermarks as of the batch's fetch: read per message, they cost more than the
        # rest of the watermark's work, and within a batch they are the fetch's anyway.
        self._highs: dict[tuple[str, int], int] = {}

    def refresh(self) -> None:
        """Forget the high watermarks read for the last batch."""
        self._highs.clear()

    def behind(self, topic: str, partition: int, next_offset: int | None) -> bool:
        """Say whether messages at or after our position exist; unknown counts as behind."""
        high = self._highs.get((topic, partition))
        if high is None:
            try:
                high = self.app.consumer.highwater(TP(topic, partition))
            except Exception:  # noqa: BLE001 - not assigned or not fetched yet: assume a backlog
                return True
            if high is None:
                return True
            self._highs[topic, partition] = high
        return self.position(topic, partition, next_offset) < high

    def position(self, topic: str, partition: int, next_offset: int | None) -> int:
        """Return the next offset to process: ours this session, else the committed one."""
        if next_offset is not None:
            return next_offset
        # Faust keeps the offsets it committed or found on assignment here (no public API).
        committed_offsets = getattr(self.app.consumer, "_committed_offset", {})
        committed = committed_offsets.get(TP(topic, partition))
        return int(committed) if committed else 0

    def assigned(self) -> set[int]:
        """Return the input partitions assigned to this worker."""
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in self.inputs}


class _ScopeMessage(NamedTuple):
    topic: str
    partition: int


class _ScopeEvent:
    """What Faust's tables read from the current event: its message's topic and partition."""

    __slots__ = ("message", "__weakref__")

    def __init__(self, message: _ScopeMessage) -> None:
        self.message = message


class TableScope:
    """Direct the agent's table reads and writes to one partition at a time."""

    def __init__(self, source_topic: str) -> None:
        self.source_topic = source_topic
        self.events: dict[int, _ScopeEvent] = {}

    def __call__(self, partition: int) -> None:
        # Faust tables and stores take a read's or write's partition from the current event
        # (a context variable that its streams set per event). The agent has no Faust events,
        # so it sets one per partition; it touches the agent's own task alone.
        event = self.events.get(partition)
        if event is None:
            event = self.events[partition] = _ScopeEvent(
                _ScopeMessage(self.source_topic, partition)
            )
        faust_streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]


class RetryingAgent:
    """The agent body: handle each batch; retry one whose outputs could not be written."""

    def __init__(
        self,
        processor: StreamProcessor,
        scope: PartitionScope,
        metrics: StreamMetrics,
        stopping: Callable[[], bool],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.processor = processor
        self.scope = scope
        self.metrics = metrics
        self.stopping = stopping
        self.sleep = sleep
        self.retrying = False  # a batch waits to be taken again: the worker is not ready

    async def __call__(self, msgs: Sequence[Consumed]) -> Acknowledged | None:
        """Handle the batch; until it succeeds, forget memory, wait and take it again."""
        delay = _FIRST_RETRY_SECONDS
        try:
            while True:
                try:
                    return await self.processor.handle_batch(msgs, self.scope)
                except LocalStoreError as exc:
                    # Not the broker: the local store refuses writes until it is reopened.
                    log.critical(
                        "%s; stopping the worker: its next start rebuilds the table from the "
                        "changelog and takes this batch again",
                        exc,
                    )
                    raise
                except Exception as exc:  # noqa: BLE001 - outputs failed (the broker): never stop
                    self.processor.on_rebalance()  # the table is the truth again
                    if self.stopping():
                        raise  # unacknowledged: the next owner of its partitions takes it again
                    self.retrying = True
                    self.metrics.batch_retries.inc()
                    log.error(
                        "could not write a batch's outputs (%s); taking it again in %.1f s",
                        type(exc).__name__,
                        delay,
                    )
                    await self.sleep(delay)
                    delay = min(delay * 2, _LAST_RETRY_SECONDS)
        finally:
            self.retrying = False


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


def build_app(settings: Settings, registry: CollectorRegistry) -> faust.App:
    """Return the worker's Faust app, with its agent, tick timer and /metrics page."""
    cfg = settings.rule_config()
    app = SentinelApp(
        settings.app_id,
        broker=_broker_urls(settings.kafka_bootstrap),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee.value,
        broker_commit_interval=settings.commit_interval_seconds,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_seconds,
        # Changelog records (one per changed patient) come in bursts: fewer, larger requests.
        producer_max_batch_size=settings.producer_batch_bytes,
        # A dead letter carries its input whole: anything the broker took in (about 1 MB by
        # default) must fit into one request, headers included.
        producer_max_request_size=DEAD_LETTER_MAX_BYTES,
        producer_compression_type=(
            None
            if settings.producer_compression is Compression.NONE
            else settings.producer_compression.value
        ),
        # The most records one fetch, hence one batch of the agent, may hold.
        broker_max_poll_records=settings.batch_max_messages,
        table_standby_replicas=0,
        web_enabled=True,
        # The web port serves /metrics and Faust's health page only: its table and router
        # pages would hand any caller a patient's whole record.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        autodiscover=False,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(
        settings.topic_labs,
        settings.topic_meds,
        settings.topic_ticks,
        partitions=settings.partitions,
        **raw,
    )
    ticks = app.topic(settings.topic_ticks, partitions=settings.partitions, **raw)
    table = app.Table(
        TABLE_NAME,
        partitions=settings.partitions,
        # bytes types make Faust use the raw codec for the store and the changelog.
        key_type=bytes,
        value_type=bytes,
        # Room for a state as large as a request the producer sends (topics.changelog_config).
        extra_topic_configs=changelog_config(),
        help="Per-patient engine state and per-partition clocks (orjson bytes)",
    )
    metrics = StreamMetrics(registry)
    # Faust's producer wraps the aiokafka producer it starts; batches go to that one directly.
    producer: Any = app.producer
    consumer: Any = app.consumer
    consumer.member_for_seconds = settings.session_timeout_seconds / 2
    changelog = ChangelogWriter(
        table, lambda: producer._ensure_producer(), membership=consumer.confirm_membership
    )
    app.changelog_settle = changelog.settle
    store = PatientStore(
        table,
        settings.state_cache_size,
        all_values=lambda: table.data.values(),
        writer=changelog,
    )
    processor = StreamProcessor(
        cfg,
        store,
        TopicOutbox(app, settings.topic_alerts, settings.topic_dead_letter),
        ConsumerBacklog(app, settings.input_topics),
        metrics,
        inputs=settings.input_topics,
        ticks=settings.topic_ticks,
        idle_advance=settings.idle_advance,
        max_patient_events=settings.max_patient_events,
        max_event_lead_hours=settings.max_event_lead_hours,
    )

    # The one agent over labs, meds and ticks (concurrency 1): the consumer hands it each
    # fetch of the three topics whole (streams/transport.py).
    app.topics.add(source)
    agent = RetryingAgent(
        processor, TableScope(settings.topic_labs), metrics, lambda: app.should_stop
    )
    app.consume_in_batches(source.topics, agent)

    # Ready while the broker acknowledges ticks (three intervals missed, and ten seconds more)
    # and no batch waits to be taken again: ticks may pass while the alerts topic refuses.
    contact = BrokerContact(3 * settings.tick_interval_seconds + 10)
    metrics.broker_ack_age.set_function(contact.age)

    def tick_partitions() -> list[int]:
        try:
            held = app.consumer.assignment()
        except Exception:  # noqa: BLE001 - not started yet: nothing held
            return []
        return sorted(tp.partition for tp in held if tp.topic == settings.topic_ticks)

    @app.timer(settings.tick_interval_seconds)
    async def send_ticks() -> None:
        # One tick per partition this worker owns, to that exact partition of the ticks topic;
        # none while the last ones wait for a broker that may be gone.
        if not contact.may_send():
            return
        try:
            sent = [
                asyncio.ensure_future(await ticks.send(value=TICK, partition=p))
                for p in tick_partitions()
            ]
        except Exception as exc:  # noqa: BLE001 - a missed tick only delays idle advance
            log.warning("could not send ticks (%s); retrying next interval", type(exc).__name__)
            return
        contact.sent(sent)

    @app.page("/ready")
    async def ready_page(web: Any, request: Any) -> Any:
        partitions = len(tick_partitions())
        retrying = agent.retrying
        ready = contact.ready(partitions) and not retrying
        age = contact.age()
        body = {
            "ready": ready,
            "partitions": partitions,
            "broker_ack_age_seconds": None if age == float("inf") else round(age, 3),
            "retrying_batch": retrying,
        }
        return web.json(body, status=200 if ready else 503)

    async def on_revoked(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.on_rebalance()

    async def on_assigned(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        processor.on_rebalance()
        contact.joined()

    # mode's declared receiver type rejects any plain function; send() calls it like this.
    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        body = generate_latest(registry)
        return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return app
