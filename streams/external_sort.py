"""Sort a feed of any length into release order with bounded memory: sorted runs on disk, merged."""

from __future__ import annotations

import bisect
import marshal
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication
from alerts.release_order import release_key, sort_for_release
from streams.output_failure import OutputFailed

_BATCH = 4096
# Runs merged at once: a spilled run holds a file open until merged, and a process may have
# only so many (often 1,024). Every _FAN_IN runs of one level become one run of the next.
_FAN_IN = 16
_HEADER = 8  # bytes of a batch's length prefix
# Enum members travel as their plain values (marshal takes only built-in types); a dict lookup
# is much cheaper than the `.value` property in the per-event path.
_ANALYTE_VALUES: dict[Any, str | None] = {a: a.value for a in Analyte}
_ANALYTE_VALUES[None] = None
_STATUS_VALUES = {s: s.value for s in LabStatus}
_ACTION_VALUES = {a: a.value for a in MedAction}
_ANALYTES: dict[Any, Analyte | None] = {a.value: a for a in Analyte}
_ANALYTES[None] = None
_STATUSES = {s.value: s for s in LabStatus}
_ACTIONS = {a.value: a for a in MedAction}
_CLASSES: dict[frozenset[str], frozenset[MedClass]] = {}
_CLASS_VALUES: dict[frozenset[MedClass], frozenset[str]] = {}
_LAB_FIELDS = len(LabResult._fields)
_new = tuple.__new__


def _plain(ev: LabResult | Medication) -> tuple[Any, ...]:
    if type(ev) is LabResult:
        a, p, e, analyte, value, collected, status, rid, hemolyzed, enc, loc = ev
        return (
            a,
            p,
            e,
            _ANALYTE_VALUES[analyte],
            value,
            collected,
            _STATUS_VALUES[status],
            rid,
            hemolyzed,
            enc,
            loc,
        )
    a, p, e, action, classes, order_id, enc, loc = cast(Medication, ev)
    plain = _CLASS_VALUES.get(classes)
    if plain is None:
        plain = _CLASS_VALUES[classes] = frozenset(c.value for c in classes)
    return (a, p, e, _ACTION_VALUES[action], plain, order_id, enc, loc)


def _events(rows: list[tuple[Any, ...]]) -> list[LabResult | Medication]:
    """Rebuild a batch of events from their plain rows (their enum members looked up again)."""
    analytes, statuses, actions, classes = _ANALYTES, _STATUSES, _ACTIONS, _CLASSES
    out: list[LabResult | Medication] = []
    append = out.append
    for row in rows:
        if len(row) == _LAB_FIELDS:
            a, p, e, analyte, value, collected, status, rid, hemolyzed, enc, loc = row
            append(
                _new(
                    LabResult,
                    (a, p, e, analytes[analyte], value, collected, statuses[status], rid,
                     hemolyzed, enc, loc),
                )
            )  # fmt: skip
            continue
        a, p, e, action, plain, order_id, enc, loc = row
        known = classes.get(plain)
        if known is None:
            known = classes[plain] = frozenset(MedClass(c) for c in plain)
        append(_new(Medication, (a, p, e, actions[action], known, order_id, enc, loc)))
    return out


def _run_batches(fh: IO[bytes]) -> Iterator[list[LabResult | Medication]]:
    """Yield a spilled run back, one sorted batch at a time."""
    # Each batch is one length-prefixed marshal blob: marshal.load on a file object reads it
    # in many tiny calls, loads on a whole blob in one.
    fh.seek(0)
    read = fh.read
    while True:
        header = read(_HEADER)
        if not header:
            return
        yield _events(marshal.loads(read(int.from_bytes(header, "little"))))


def _merged_blocks(
    sources: list[Iterator[list[LabResult | Medication]]], copies: bool
) -> Iterator[list[LabResult | Medication]]:
    """Merge sorted sources of sorted batches into consecutive sorted blocks.

    Everything buffered up to the smallest buffered maximum can go out at once: no source holds
    anything smaller behind its buffer. Sorting a block of a few sorted runs is a C-speed merge,
    where heapq.merge would pay a Python step per event. Release keys are unique, so the order
    is exactly the one heapq.merge gives.
    """
    heads: list[tuple[list[LabResult | Medication], int, Iterator[Any]]] = []
    for source in sources:
        batch = next(source, None)
        if batch:
            heads.append((batch, 0, source))
    while heads:
        key = release_key if copies else None  # runs sorted before copies came agree with it
        bound = min((batch[-1] for batch, _, _ in heads), key=key)
        block: list[LabResult | Medication] = []
        kept: list[tuple[list[LabResult | Medication], int, Iterator[Any]]] = []
        for batch, start, source in heads:
            if copies:
                cut = bisect.bisect_right(batch, release_key(bound), start, key=release_key)
            else:
                cut = bisect.bisect_right(batch, bound, start)
            block += batch[start:cut]
            if cut < len(batch):
                kept.append((batch, cut, source))
                continue
            batch = next(source, None)
            if batch:
                kept.append((batch, 0, source))
        heads = kept
        sort_for_release(block, copies)
        yield block


class ExternalSorter:
    """Collect events, spilling each full chunk as a sorted run; iterate them merged in order."""

    def __init__(self, chunk_size: int = 600_000, spill_dir: Path | None = None) -> None:
        self.chunk_size = chunk_size
        self.spill_dir = spill_dir
        self._chunk: list[LabResult | Medication] = []
        self._runs: list[IO[bytes]] = []
        self._levels: list[int] = []  # of each run: merged from _FAN_IN ** level chunks
        self._spilled = 0
        # Set by the reader when events may share (a, patient_id, event_id): from then on every
        # sort and merge uses the total order (alerts/release_order.py).
        self.copies = False

    @property
    def runs(self) -> int:
        """Return the number of runs spilled to disk so far."""
        return self._spilled

    def add(self, ev: LabResult | Medication) -> None:
        """Add one event; spill a sorted run when the chunk is full."""
        self._chunk.append(ev)
        if len(self._chunk) >= self.chunk_size:
            self._spill()

    def _spill(self) -> None:
        sort_for_release(self._chunk, self.copies)
        self._runs.append(self._written([self._chunk]))
        self._levels.append(0)
        self._spilled += 1
        self._chunk = []
        # Levels only fall along the list, so the runs of the newest level are the last ones.
        while len(self._levels) >= _FAN_IN and self._levels[-_FAN_IN] == self._levels[-1]:
            merged = self._runs[-_FAN_IN:]
            try:
                run = self._written(
                    _merged_blocks([_run_batches(fh) for fh in merged], self.copies)
                )
            finally:
                for fh in merged:
                    fh.close()
            del self._runs[-_FAN_IN:]
            self._runs.append(run)
            self._levels[-_FAN_IN:] = [self._levels[-1] + 1]

    def _written(self, blocks: Iterable[list[LabResult | Medication]]) -> IO[bytes]:
        """Write sorted blocks to a new run file, in batches; return it, open."""
        try:
            fh = tempfile.TemporaryFile(prefix="kmg-run-", dir=self.spill_dir)  # noqa: SIM115 (kept open until merged)
            for block in blocks:
                for i in range(0, len(block), _BATCH):
                    blob = marshal.dumps([_plain(ev) for ev in block[i : i + _BATCH]])
                    fh.write(len(blob).to_bytes(_HEADER, "little"))
                    fh.write(blob)
            fh.flush()  # a full disk is found here, not when the run is read back
        except OSError as exc:  # not the input's fault: named as the disk it is
            where = self.spill_dir or tempfile.gettempdir()
            raise OutputFailed(
                f"cannot spill a sorted run in {where}: {exc.strerror or exc}"
            ) from None
        return fh

    def take(self) -> list[LabResult | Medication]:
        """Hand over every event, unsorted, when none was spilled; the sorter is empty after."""
        if self._runs:
            raise RuntimeError("events were spilled to sorted runs: read them with blocks()")
        chunk, self._chunk = self._chunk, []
        return chunk

    def __iter__(self) -> Iterator[LabResult | Medication]:
        """Yield every event in (available, patient_id, event_id) order, once."""
        for block in self.blocks():
            yield from block

    def blocks(self) -> Iterator[list[LabResult | Medication]]:
        """Yield every event once, in release order, as consecutive sorted lists."""
        sort_for_release(self._chunk, self.copies)
        chunk, self._chunk = self._chunk, []
        if not self._runs:
            # Handed out in batches from the end of the reversed chunk, so each batch's events
            # are freed once processed while the states they feed grow.
            chunk.reverse()
            while chunk:
                block = chunk[-_BATCH:]
                del chunk[-_BATCH:]
                block.reverse()
                yield block
            return
        sources = [_run_batches(fh) for fh in self._runs]
        sources.append(iter([chunk]))
        try:
            yield from _merged_blocks(sources, self.copies)
        finally:
            for fh in self._runs:
                fh.close()
            self._runs, self._levels = [], []
