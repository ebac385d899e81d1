"""Sort a feed of any length into release order with bounded memory: sorted runs on disk, merged."""

from __future__ import annotations

import heapq
import marshal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from alerts.events import Analyte, LabResult, LabStatus, MedAction, MedClass, Medication

_BATCH = 4096
# Enum members travel as their plain values (marshal takes only built-in types).
_ANALYTES = {a.value: a for a in Analyte}
_STATUSES = {s.value: s for s in LabStatus}
_ACTIONS = {a.value: a for a in MedAction}
_CLASSES: dict[frozenset[str], frozenset[MedClass]] = {}


def _plain(ev: LabResult | Medication) -> tuple[Any, ...]:
    if type(ev) is LabResult:
        analyte = ev.analyte.value if ev.analyte is not None else None
        return (*ev[:3], analyte, ev.value, ev.collected, ev.status.value, *ev[7:])
    med: Medication = ev  # type: ignore[assignment]
    classes = frozenset(c.value for c in med.classes)
    return (*med[:3], med.action.value, classes, *med[5:])


def _event(row: tuple[Any, ...]) -> LabResult | Medication:
    if len(row) == len(LabResult._fields):
        analyte = _ANALYTES[row[3]] if row[3] is not None else None
        return LabResult(*row[:3], analyte, row[4], row[5], _STATUSES[row[6]], *row[7:])  # type: ignore[call-arg]
    classes = _CLASSES.get(row[4])
    if classes is None:
        classes = _CLASSES[row[4]] = frozenset(MedClass(c) for c in row[4])
    return Medication(*row[:3], _ACTIONS[row[3]], classes, *row[5:])  # type: ignore[call-arg]


def _read_run(fh: IO[bytes]) -> Iterator[LabResult | Medication]:
    fh.seek(0)
    while True:
        try:
            batch = marshal.load(fh)
        except EOFError:
            return
        for row in batch:
            yield _event(row)


class ExternalSorter:
    """Collect events, spilling each full chunk as a sorted run; iterate them merged in order."""

    def __init__(self, chunk_size: int = 400_000, spill_dir: Path | None = None) -> None:
        self.chunk_size = chunk_size
        self.spill_dir = spill_dir
        self._chunk: list[LabResult | Medication] = []
        self._runs: list[IO[bytes]] = []

    @property
    def runs(self) -> int:
        """Return the number of runs spilled to disk so far."""
        return len(self._runs)

    def add(self, ev: LabResult | Medication) -> None:
        """Add one event; spill a sorted run when the chunk is full."""
        self._chunk.append(ev)
        if len(self._chunk) >= self.chunk_size:
            self._spill()

    def _spill(self) -> None:
        self._chunk.sort()
        fh = tempfile.TemporaryFile(prefix="kmg-run-", dir=self.spill_dir)  # noqa: SIM115 (kept open until merged)
        chunk = self._chunk
        for i in range(0, len(chunk), _BATCH):
            marshal.dump([_plain(ev) for ev in chunk[i : i + _BATCH]], fh)
        self._runs.append(fh)
        self._chunk = []

    def __iter__(self) -> Iterator[LabResult | Medication]:
        """Yield every event in (available, patient_id, event_id) order, once."""
        self._chunk.sort()
        if not self._runs:
            chunk, self._chunk = self._chunk, []
            yield from chunk
            return
        sources = [_read_run(fh) for fh in self._runs]
        sources.append(iter(self._chunk))
        try:
            yield from heapq.merge(*sources)
        finally:
            for fh in self._runs:
                fh.close()
            self._runs = []
            self._chunk = []
