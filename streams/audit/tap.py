"""The replay engine, telling the episode ledger what each event and timer did to a patient.

The audit needs more than the episode evaluations the engine's observer reports: when episodes
start and are withdrawn, and the magnesium results and repletions that follow them. Reading the
engine's own decisions (the state after `apply`) rather than re-deriving them keeps the audit
exactly consistent with the alerts: episode gaps, cancels remembered before the order, premixes
and hemolysed results are judged once, by the rules.
"""

from __future__ import annotations

from collections.abc import Callable

from alerts.alert import Alert
from alerts.codes import CodeSets
from alerts.engine import Engine
from alerts.events import Analyte, LabResult, MedAction, MedClass, Medication, Micros
from alerts.rule_config import RuleConfig
from alerts.state import EpisodeStatus, PatientState, Timer
from streams.audit.episodes import EpisodeLedger, EpisodeRow, MgGiven, RowStatus

_MG = Analyte.MAGNESIUM
_CANCEL = MedAction.CANCELLED
_K_REPLETION, _MG_REPLETION = MedClass.POTASSIUM_REPLETION, MedClass.MAGNESIUM_REPLETION
_E_WITHDRAWN = EpisodeStatus.WITHDRAWN
_PENDING, _WITHDRAWN = RowStatus.PENDING, RowStatus.WITHDRAWN


class AuditEngine(Engine):
    """The rules engine unchanged, plus a report of episode facts to an EpisodeLedger."""

    def __init__(
        self,
        cfg: RuleConfig,
        codes: CodeSets,
        ledger: EpisodeLedger,
        tick: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(cfg, codes, ledger.evaluated)
        self.ledger = ledger
        self.tick = tick
        self._mg_low = cfg.mg_low

    def apply(
        self,
        state: PatientState,
        ev: LabResult | Medication,
        at: Micros,
        out: list[Alert],
        timers: list[Timer],
    ) -> None:
        """Apply the event as the engine does, then report what it changed to the ledger."""
        ledger = self.ledger
        ledger.advance(at)
        if self.tick is not None:
            self.tick(1)
        super().apply(state, ev, at, out, timers)
        pid = ev.patient_id
        if type(ev) is LabResult:
            if ev.analyte is _MG and ev.value is not None:
                rec = state.mg.get(ev.result_id)
                # Only a result the rules read counts: a hemolysed normal one does not.
                if (
                    rec is not None
                    and rec.event_id == ev.event_id
                    and not (rec.hemolyzed and rec.value >= self._mg_low)
                ):
                    ledger.mg_result(pid, ev.available)
            return
        med: Medication = ev  # type: ignore[assignment]
        if med.action is _CANCEL:
            if med.order_id is not None:
                ledger.cancelled(pid, med.order_id)
            return
        classes = med.classes
        if _MG_REPLETION in classes:
            reps = state.mg_repletions
            if reps and reps[-1].event_id == med.event_id:  # recorded, not withdrawn by a cancel
                ledger.mg_repletion(pid, MgGiven(med.available, med.order_id, reps[-1].ordered))
        if _K_REPLETION in classes:
            episodes = state.episodes
            if episodes and episodes[-1].trigger_event_id == med.event_id:
                self._started(state, episodes[-1].status is _E_WITHDRAWN, med)

    def fire(
        self,
        state: PatientState,
        timer: Timer,
        at: Micros,
        out: list[Alert],
        timers: list[Timer],
    ) -> None:
        """Run the timer as the engine does, closing episode rows whose follow-up ended."""
        self.ledger.advance(at)
        super().fire(state, timer, at, out, timers)

    def _started(self, state: PatientState, withdrawn: bool, med: Medication) -> None:
        t0 = med.available
        row = EpisodeRow(
            med.patient_id,
            med.event_id,
            med.order_id if med.order_id is not None else med.event_id,
            t0,
            med.encounter_id,
            med.location,
            _WITHDRAWN if withdrawn else _PENDING,
        )
        # Results and repletions released just before at the same instant (ties in the release
        # order, or the Mg part of a K + Mg premix) follow t0 as much as later ones do.
        mg_low = self._mg_low
        row.first_mg_result = min(
            (
                rec.available
                for rec in state.mg.values()
                if rec.available >= t0 and not (rec.hemolyzed and rec.value >= mg_low)
            ),
            default=None,
        )
        for rep in state.mg_repletions:
            if rep.at >= t0:
                row.mg_given.append(MgGiven(rep.at, rep.order_id, rep.ordered))
        self.ledger.started(row)
