"""The changelog writer: whole producer batches per partition, persisted offsets, failures kept."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.app import TableScope, build_app
from streams.changelog import ChangelogWriter, LocalStoreError
from streams.settings import Settings
from streams.state_codec import clock_key
from streams.transport import BatchConsumer


class Store(dict[str, bytes]):
    """The table's local store: values by key, and the persisted changelog offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


class Producer:
    """aiokafka's batch interface over real batch builders; acknowledges on request."""

    def __init__(self, batch_bytes: int, fail: bool = False) -> None:
        self.batch_bytes = batch_bytes
        self.fail = fail
        self.sent: list[tuple[str, int, list[bytes], asyncio.Future[Any]]] = []
        self.end: dict[tuple[str, int], int] = {}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        keys = [r.key for r in _records(batch)]
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, keys, fut))
        return fut

    def acknowledge(self) -> None:
        for topic, partition, keys, fut in self.sent:
            if fut.done():
                continue
            if self.fail:
                fut.set_exception(ConnectionError("broker gone"))
                continue
            base = self.end.get((topic, partition), 0)
            self.end[topic, partition] = base + len(keys)
            fut.set_result(SimpleNamespace(offset=base))


def _records(batch: BatchBuilder) -> list[Any]:
    return list(DefaultRecordBatch(bytearray(batch._build())))


def _writer(producer: Producer) -> tuple[ChangelogWriter, Store]:
    store = Store()
    changelog_topic = SimpleNamespace(get_topic_name=lambda: "t-patients-changelog")
    table = SimpleNamespace(data=store, changelog_topic=changelog_topic)
    return ChangelogWriter(table, lambda: producer), store


async def _until_sent(producer: Producer, count: int) -> None:
    while len(producer.sent) < count:
        await asyncio.sleep(0)


def test_a_partitions_entries_go_out_in_order_in_as_few_batches_as_fit():
    producer = Producer(batch_bytes=1_024)
    writer, store = _writer(producer)
    entries = [(f"P{i}", b"x" * 200) for i in range(12)]

    async def scenario() -> BaseException | None:
        await writer.write(3, entries)
        await writer.write(5, entries[:2])
        assert store == dict(entries)  # stored at once; the changelog follows
        settled = asyncio.ensure_future(writer.settle())
        await _until_sent(producer, 4)
        assert not settled.done()  # a commit waits for the changelog's acknowledgements
        producer.acknowledge()
        return await settled

    assert asyncio.run(scenario()) is None
    to_three = [keys for _, p, keys, _ in producer.sent if p == 3]
    assert 1 < len(to_three) < len(entries)  # split only when a batch is full
    assert [k for keys in to_three for k in keys] == [k.encode() for k, _ in entries]
    assert {t for t, *_ in producer.sent} == {"t-patients-changelog"}
    # Recovery after a restart with this store reads the changelog after its last record.
    assert store.persisted == {TP("t-patients-changelog", 3): 11, TP("t-patients-changelog", 5): 1}


def test_the_agent_goes_on_while_the_changelog_is_sent_until_too_much_is_queued():
    producer = Producer(batch_bytes=16_384)
    gate = asyncio.Event()
    send_batch = producer.send_batch

    async def slow_send(batch: Any, topic: str, *, partition: int) -> asyncio.Future[Any]:
        await gate.wait()  # the producer's queue for the partition is full
        return await send_batch(batch, topic, partition=partition)

    producer.send_batch = slow_send  # type: ignore[method-assign]
    writer, _ = _writer(producer)
    writer.max_queued = 2

    async def scenario() -> list[str]:
        steps = []
        for i in range(3):
            write = asyncio.ensure_future(writer.write(i, [(f"P{i}", b"{}")]))
            await asyncio.sleep(0.01)
            steps.append(f"write {i} {'returned' if write.done() else 'waits'}")
        gate.set()
        await write
        producer.acknowledge()
        steps.append(f"settled {await writer.settle()}")
        return steps

    assert asyncio.run(scenario()) == [
        "write 0 returned",
        "write 1 returned",
        "write 2 waits",
        "settled None",
    ]
    assert [p for _, p, _, _ in producer.sent] == [0, 1, 2]


def test_a_failed_changelog_batch_is_what_settling_returns_and_no_offset_is_persisted():
    producer = Producer(batch_bytes=16_384, fail=True)
    writer, store = _writer(producer)

    async def scenario() -> BaseException | None:
        await writer.write(0, [("P1", b"{}")])
        await _until_sent(producer, 1)
        producer.acknowledge()
        return await writer.settle()

    assert isinstance(asyncio.run(scenario()), ConnectionError)
    assert isinstance(writer.failure, ConnectionError)
    assert store.persisted == {}


def test_after_a_failure_nothing_more_is_sent():
    class Closed(Producer):
        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
            self.sent.append((topic, partition, [], asyncio.Future()))
            raise RuntimeError("producer closed")

    producer = Closed(batch_bytes=16_384)
    writer, _ = _writer(producer)

    async def scenario() -> BaseException | None:
        await writer.write(0, [("P1", b"{}")])
        await writer.write(1, [("P2", b"{}")])
        return await writer.settle()

    assert isinstance(asyncio.run(scenario()), RuntimeError)
    assert len(producer.sent) == 1


@pytest.mark.parametrize("failed", [False, True])
def test_the_consumer_commits_only_while_every_changelog_write_succeeded(
    tmp_path, monkeypatch, failed
):
    settings = Settings(data_dir=tmp_path, store="memory://", topic_prefix="t.")
    app: Any = build_app(settings, CollectorRegistry())
    consumer = app.consumer
    events: list[str] = []

    async def commit(self: Any, offsets: Any, start_new_transaction: bool = True) -> bool:
        events.append("commit")
        return True

    async def crash(exc: BaseException) -> None:
        events.append(f"crash {exc}")

    monkeypatch.setattr(BatchConsumer.__mro__[1], "_commit_offsets", commit)
    monkeypatch.setattr(consumer, "crash", crash)

    async def settle() -> BaseException | None:
        events.append("settle")
        return ConnectionError("broker gone") if failed else None

    app.changelog_settle = settle
    done = asyncio.run(consumer._commit_offsets({TP("t.labs", 0): 5}))
    assert events == (["settle", "crash broker gone"] if failed else ["settle", "commit"])
    assert done is not failed


def test_entries_land_in_the_partitions_rocksdb_where_faust_reads_them(tmp_path):
    settings = Settings(data_dir=tmp_path, topic_prefix="t.")  # the worker's RocksDB store
    app: Any = build_app(settings, CollectorRegistry())
    table = app.tables["patients"]
    producer = Producer(batch_bytes=16_384)
    writer = ChangelogWriter(table, lambda: producer)
    scope = TableScope("t.labs")

    async def scenario() -> dict[int, Any]:
        await writer.write(2, [("P1", b"one"), ("P2", b"two")])
        await writer.write(5, [("P3", b"three")])
        await _until_sent(producer, 2)
        producer.acknowledge()
        assert await writer.settle() is None
        seen = {}
        for partition in (2, 5):
            scope(partition)
            seen[partition] = {k: table.data.get(k) for k in ("P1", "P2", "P3")}
            # A restart with this data dir reads the changelog after the last record written.
            seen[partition]["persisted"] = table.data.persisted_offset(TP(writer.topic, partition))
        return seen

    try:
        seen = asyncio.run(scenario())
    finally:
        table.data.reset_state()
    assert seen == {
        2: {"P1": b"one", "P2": b"two", "P3": None, "persisted": 1},
        5: {"P1": None, "P2": None, "P3": b"three", "persisted": 0},
    }
    assert writer.failure is None


def test_states_reach_the_changelog_only_after_their_alerts_are_acknowledged():
    producer = Producer(batch_bytes=16_384)
    writer, store = _writer(producer)

    async def scenario() -> list[str]:
        alerts_acked = asyncio.get_running_loop().create_future()
        await writer.write(0, [("P1", b"{}")], after=alerts_acked)
        await asyncio.sleep(0.01)
        steps = [f"stored {sorted(store)}, sent {len(producer.sent)}"]
        alerts_acked.set_result(None)
        await _until_sent(producer, 1)
        producer.acknowledge()
        steps.append(f"sent {len(producer.sent)}, settled {await writer.settle()}")
        return steps

    assert asyncio.run(scenario()) == ["stored ['P1'], sent 0", "sent 1, settled None"]


def test_alerts_the_broker_refused_keep_their_states_out_of_the_changelog():
    producer = Producer(batch_bytes=16_384)
    writer, _ = _writer(producer)

    async def scenario() -> BaseException | None:
        alerts_acked = asyncio.get_running_loop().create_future()
        await writer.write(0, [("P1", b"{}")], after=alerts_acked)
        alerts_acked.set_exception(ConnectionError("broker gone"))
        return await writer.settle()

    assert isinstance(asyncio.run(scenario()), ConnectionError)
    assert producer.sent == []


def test_a_worker_the_group_no_longer_counts_a_member_writes_no_changelog():
    # Found by a review: a worker frozen past its session timeout came back and wrote its
    # older states after the new owner's; a rebuild from the changelog then took them.
    producer = Producer(batch_bytes=16_384)
    asked: list[bool] = []
    answers = [True, False]

    async def membership() -> bool:
        asked.append(answers[len(asked)])
        return asked[-1]

    writer, store = _writer(producer)
    writer.membership = membership

    async def scenario() -> BaseException | None:
        await writer.write(0, [("P1", b"new")])
        await _until_sent(producer, 1)
        producer.acknowledge()
        await writer.write(0, [("P1", b"older than the new owner's")])
        for _ in range(10):
            await asyncio.sleep(0)
        producer.acknowledge()
        return await writer.settle()

    failure = asyncio.run(scenario())
    assert asked == [True, False]
    assert [keys for _, _, keys, _ in producer.sent] == [[b"P1"]]  # the second never sent
    assert type(failure).__name__ == "NotAGroupMember"


def _clocked_write(partition: int, states: int) -> list[tuple[str, bytes]]:
    """Return a partition write as PatientStore.flush makes it: states, then the clock."""
    entries = [(f"P{i}", b"x" * 200) for i in range(states)]
    return [*entries, (clock_key(partition), b'{"partition":0,"clock":{}}')]


def test_a_clock_is_held_back_until_its_states_are_acknowledged_and_dropped_if_refused():
    # Found by review: a state batch refused (too large) while the clock batch after it was
    # taken; the restart then read a watermark past states it lacked, and took their inputs
    # as late.
    producer = Producer(batch_bytes=1_024)
    writer, _ = _writer(producer)
    clock = clock_key(0).encode()

    async def scenario() -> tuple[list[bool], BaseException | None]:
        await writer.write(0, _clocked_write(0, 12))
        await _until_sent(producer, 2)
        for _ in range(20):
            await asyncio.sleep(0)
        held = [clock in keys for _, _, keys, _ in producer.sent]
        producer.fail = True  # the broker refuses the state batches
        producer.acknowledge()
        return held, await writer.settle()

    held, failure = asyncio.run(scenario())
    assert not any(held)  # the clock waited for every state batch before it
    assert isinstance(failure, ConnectionError)
    assert all(clock not in keys for _, _, keys, _ in producer.sent)  # and never went out


def test_a_clock_follows_its_acknowledged_states_to_the_changelog():
    producer = Producer(batch_bytes=1_024)
    writer, store = _writer(producer)
    entries = _clocked_write(0, 12)

    async def scenario() -> BaseException | None:
        await writer.write(0, entries)
        await _until_sent(producer, 2)
        while producer.sent[-1][2][-1] != clock_key(0).encode():
            producer.acknowledge()
            await asyncio.sleep(0)
        producer.acknowledge()
        return await writer.settle()

    assert asyncio.run(scenario()) is None
    sent = [k for _, _, keys, _ in producer.sent for k in keys]
    assert sent == [k.encode() for k, _ in entries]
    assert store.persisted == {TP("t-patients-changelog", 0): len(entries) - 1}


def test_a_clock_that_fits_with_its_states_goes_in_their_batch_without_waiting():
    producer = Producer(batch_bytes=16_384)
    writer, _ = _writer(producer)
    entries = _clocked_write(4, 3)

    async def scenario() -> int:
        await writer.write(4, entries)
        await _until_sent(producer, 1)  # before any acknowledgement: no round trip added
        producer.acknowledge()
        assert await writer.settle() is None
        return len(producer.sent)

    assert asyncio.run(scenario()) == 1
    assert producer.sent[0][2] == [k.encode() for k, _ in entries]


def test_a_clock_waits_behind_an_earlier_write_of_its_partition_and_is_dropped_if_refused():
    # Found by review: write N's states refused (too large) while write N+1, states and clock
    # in one batch, was taken; the restart then read a watermark past states it lacked.
    producer = Producer(batch_bytes=16_384)
    writer, _ = _writer(producer)
    clock = clock_key(0).encode()

    async def scenario() -> BaseException | None:
        await writer.write(0, [("P1", b"x" * 200)])  # write N, not acknowledged yet
        await writer.write(0, _clocked_write(0, 2))  # write N+1 would fit in one batch
        await writer.write(1, _clocked_write(1, 2))  # another partition: not held back
        await _until_sent(producer, 3)
        for _ in range(20):
            await asyncio.sleep(0)
        assert [keys for _, _, keys, _ in producer.sent] == [
            [b"P1"],
            [b"P0", b"P1"],  # its states go on; its clock waits
            [b"P0", b"P1", clock_key(1).encode()],
        ]
        producer.fail = True  # the broker refuses them
        producer.acknowledge()
        return await writer.settle()

    assert isinstance(asyncio.run(scenario()), ConnectionError)
    assert all(clock not in keys for _, _, keys, _ in producer.sent)  # never went out


def test_a_clock_held_behind_earlier_writes_follows_them_once_acknowledged():
    producer = Producer(batch_bytes=16_384)
    writer, store = _writer(producer)

    async def scenario() -> BaseException | None:
        await writer.write(0, _clocked_write(0, 1))  # nothing before it: states and clock
        await writer.write(0, _clocked_write(0, 2))
        await writer.write(0, _clocked_write(0, 3))
        await _until_sent(producer, 3)
        settled = asyncio.ensure_future(writer.settle())
        for _ in range(50):  # acknowledge each batch as it comes, the clocks' included
            producer.acknowledge()
            await asyncio.sleep(0)
        assert await settled is None
        return None

    asyncio.run(scenario())
    clock = clock_key(0).encode()
    batches = [keys for _, _, keys, _ in producer.sent]
    assert batches[:3] == [[b"P0", clock], [b"P0", b"P1"], [b"P0", b"P1", b"P2"]]
    assert batches[3:] == [[clock], [clock]]  # in their order, each behind its states
    assert store.persisted == {TP("t-patients-changelog", 0): 8}  # 9 records


class _FullDisk:
    """A partition's RocksDB that refuses every write, as one does on a full disk."""

    def write(self, batch: Any) -> None:
        raise Exception("IO error: No space left on device: While appending to file: 000012.log")


def test_a_local_store_write_that_fails_is_fatal_and_stops_every_commit():
    producer = Producer(batch_bytes=16_384)
    store = SimpleNamespace(use_rocksdict=True, _db_for_partition=lambda partition: _FullDisk())
    changelog_topic = SimpleNamespace(get_topic_name=lambda: "t-patients-changelog")
    table = SimpleNamespace(data=store, changelog_topic=changelog_topic)
    writer = ChangelogWriter(table, lambda: producer)

    async def scenario() -> BaseException | None:
        with pytest.raises(LocalStoreError, match="No space left on device"):
            await writer.write(0, [("P1", b"{}")])
        return await writer.settle()

    assert isinstance(asyncio.run(scenario()), LocalStoreError)  # the consumer never commits
    assert producer.sent == []  # the changelog never runs ahead of the local store
