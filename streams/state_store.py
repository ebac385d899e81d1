"""Patient states and partition clocks over the changelog-backed table, with a write-behind cache.

Writes are collected while a batch of messages is processed and written to the table together
at the end (`flush`, once per changed patient), after the alerts they depend on were
acknowledged: a state in the changelog never runs ahead of the alerts it already emitted.
`discard` forgets everything not flushed, which is how a failed batch leaves no trace.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from alerts.state import PatientState
from streams.changelog import MappingWriter, TableWriter
from streams.state_codec import (
    StoredClock,
    StoredPatient,
    clock_key,
    decode_value,
    encode_clock,
    encode_patient,
)


class PatientStore:
    """Read patients through a bounded cache; buffer writes until `flush`."""

    def __init__(
        self,
        table: MutableMapping[Any, Any],
        cache_size: int = 50_000,
        all_values: Callable[[], Iterable[bytes]] | None = None,
        writer: TableWriter | None = None,
    ) -> None:
        self.table = table
        self.writer = writer if writer is not None else MappingWriter(table)
        # A Faust table reads only the current event's partition through its mapping
        # interface; a scan needs the values of every assigned partition (its store's view).
        self.all_values = all_values if all_values is not None else table.values
        self.cache_size = cache_size
        self._cache: OrderedDict[str, PatientState] = OrderedDict()
        self._dirty: dict[str, tuple[int, PatientState]] = {}
        self._dirty_clocks: dict[int, dict[str, Any]] = {}
        # Patient ids in the table per scanned partition: only this worker writes its
        # partitions, so an id missing here is a new patient, with no table read needed.
        self._known: dict[int, set[str]] = {}
        self.reads = 0  # table reads (cache misses)

    def get(self, patient_id: str, partition: int | None = None) -> PatientState | None:
        """Return the patient's state: written this message, cached, or from the table."""
        entry = self._dirty.get(patient_id)
        if entry is not None:
            return entry[1]
        cache = self._cache
        state = cache.get(patient_id)
        if state is not None:
            cache.move_to_end(patient_id)
            return state
        if partition is not None:
            known = self._known.get(partition)
            if known is not None and patient_id not in known:
                return None
        raw = self.table.get(patient_id)
        self.reads += 1
        if raw is None:
            return None
        stored = decode_value(raw)
        if type(stored) is not StoredPatient:
            return None
        state = stored.state
        if self.cache_size:
            cache[patient_id] = state
        return state

    def put(self, partition: int, state: PatientState) -> None:
        """Record a write of the patient's state, made while processing `partition`."""
        self._dirty[state.patient_id] = (partition, state)
        known = self._known.get(partition)
        if known is not None:
            known.add(state.patient_id)

    def put_clock(self, partition: int, clock: dict[str, Any]) -> None:
        """Record a write of a partition's clock."""
        self._dirty_clocks[partition] = clock

    def clock(self, partition: int) -> dict[str, Any] | None:
        """Return the partition's clock as last written."""
        pending = self._dirty_clocks.get(partition)
        if pending is not None:
            return pending
        raw = self.table.get(clock_key(partition))
        if raw is None:
            return None
        stored = decode_value(raw)
        return stored.clock if type(stored) is StoredClock else None

    async def flush(
        self, scope: Callable[[int], None] | None = None, after: Awaitable[Any] | None = None
    ) -> int:
        """Write every recorded state, then the clocks, partition by partition; count writes.

        `scope(partition)`, when given, is called before each partition's writes: a Faust table
        store takes the partition of a write from the event being processed, which in a batch
        has to be set to one of that partition's events. `after` is the acknowledgement of the
        alerts these states follow: the changelog gets them only once it completes.
        """
        cache, cache_size = self._cache, self.cache_size
        by_partition: dict[int, list[tuple[str, bytes]]] = {}
        for pid, (partition, state) in self._dirty.items():
            writes = by_partition.get(partition)
            if writes is None:
                writes = by_partition[partition] = []
            writes.append((pid, encode_patient(partition, state)))
            if cache_size:
                cache[pid] = state
                cache.move_to_end(pid)
        for partition, clock in self._dirty_clocks.items():
            by_partition.setdefault(partition, []).append(
                (clock_key(partition), encode_clock(partition, clock))
            )
        written = len(self._dirty) + len(self._dirty_clocks)
        self._dirty.clear()
        self._dirty_clocks.clear()
        while len(cache) > cache_size:
            cache.popitem(last=False)
        for partition, entries in by_partition.items():
            if scope is not None:
                scope(partition)
            await self.writer.write(partition, entries, after)
        return written

    def discard(self) -> None:
        """Forget unflushed writes and the cache (both may hold half-applied changes)."""
        self._dirty.clear()
        self._dirty_clocks.clear()
        self.forget_cache()

    def forget_cache(self) -> None:
        """Drop cached states and known ids (after a rebalance the table is the only truth)."""
        self._cache.clear()
        self._known.clear()

    def scan(
        self, partitions: set[int]
    ) -> tuple[dict[int, list[PatientState]], dict[int, dict[str, Any]]]:
        """Read the states and clocks of the given partitions from the table."""
        states: dict[int, list[PatientState]] = {p: [] for p in partitions}
        clocks: dict[int, dict[str, Any]] = {}
        for raw in self.all_values():
            stored = decode_value(raw)
            if stored.partition not in partitions:
                continue
            if type(stored) is StoredPatient:
                states[stored.partition].append(stored.state)
            else:
                clocks[stored.partition] = stored.clock  # type: ignore[union-attr]
        for p, found in states.items():
            self._known[p] = {s.patient_id for s in found}
        return states, clocks

    def view(self, partition: int) -> PartitionStates:
        """Return the patients of one partition as the mapping the scheduler reads and writes."""
        return PartitionStates(self, partition)


class PartitionStates(MutableMapping[str, PatientState]):
    """The scheduler's mapping: reads through the store, writes recorded for `partition`."""

    def __init__(self, store: PatientStore, partition: int) -> None:
        self.store = store
        self.partition = partition

    def get(self, key: str, default: Any = None) -> Any:
        state = self.store.get(key, self.partition)
        return default if state is None else state

    def __getitem__(self, key: str) -> PatientState:
        state = self.store.get(key, self.partition)
        if state is None:
            raise KeyError(key)
        return state

    def __setitem__(self, key: str, value: PatientState) -> None:
        self.store.put(self.partition, value)

    def __delitem__(self, key: str) -> None:
        raise TypeError("patient states are never deleted from the stream's table")

    def __iter__(self) -> Iterator[str]:
        raise TypeError("the stream's table is not iterated per message; use PatientStore.scan")

    def __len__(self) -> int:
        raise TypeError("the stream's table is not counted per message")
