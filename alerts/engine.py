"""The rules of RULES.md section 4 as a per-patient state machine: apply an event, fire a timer."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from alerts.alert import Alert, AlertStatus, Resolution, Rule, Severity, alert_id_for
from alerts.codes import CodeSets
from alerts.events import (
    DIURETIC_CLASSES,
    Analyte,
    LabResult,
    LabStatus,
    MedAction,
    MedClass,
    Medication,
    Micros,
)
from alerts.rule_config import RuleConfig, Windows
from alerts.state import (
    CANCELS_KEPT,
    EPISODE_RULE_KEY,
    DiureticExposure,
    Episode,
    EpisodeStatus,
    Firing,
    LabRecord,
    MgRepletion,
    PatientState,
    Timer,
    TimerKind,
    cancel_times,
    latest_record,
)
from alerts.timestamps import format_timestamp

# Enum members bound once: class attribute lookups on enums are slow in the per-event path.
_K, _MG = Analyte.POTASSIUM, Analyte.MAGNESIUM
_CANCELLED, _ENTERED_IN_ERROR = LabStatus.CANCELLED, LabStatus.ENTERED_IN_ERROR
_ORDERED, _ADMINISTERED, _CANCEL = MedAction.ORDERED, MedAction.ADMINISTERED, MedAction.CANCELLED
_K_REPLETION, _MG_REPLETION = MedClass.POTASSIUM_REPLETION, MedClass.MAGNESIUM_REPLETION
_NOT_CHECKED, _LOW = Rule.MG_NOT_CHECKED, Rule.MG_LOW_UNCORRECTED
_REFRACTORY = Rule.REFRACTORY_HYPOKALEMIA
_FIRING, _RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED
_PENDING, _EVALUATED, _WITHDRAWN = (
    EpisodeStatus.PENDING,
    EpisodeStatus.EVALUATED,
    EpisodeStatus.WITHDRAWN,
)
_T_EPISODE, _T_LOW_MG, _T_EXPIRY = TimerKind.EPISODE, TimerKind.LOW_MG, TimerKind.EXPIRY
_new = tuple.__new__


class MgContext(StrEnum):
    """What an episode evaluation found about magnesium (RULES.md 4.1)."""

    NOT_CHECKED = "not_checked"  # no qualifying result, no repletion
    LOW_UNCORRECTED = "low_uncorrected"
    LOW_CORRECTED = "low_corrected"  # low, but repleted since it was collected
    NORMAL = "normal"
    REPLETED_UNCHECKED = "repleted_unchecked"  # no result, but magnesium given in the window


class EpisodeOutcome(NamedTuple):
    """The facts of one potassium repletion episode's evaluation, for audits."""

    patient_id: str
    trigger_event_id: str
    order_key: str
    t0: Micros
    tau: Micros
    encounter_id: str | None
    location: str | None
    mg_context: MgContext
    latest_mg: float | None
    latest_k: float | None
    episodes_in_window: int
    diuretic: bool
    refractory: bool


class EpisodeObserver(Protocol):
    """Told of every episode evaluation (audits); the live stream passes none."""

    def __call__(self, outcome: EpisodeOutcome) -> None: ...


class Engine:
    """Pure rules: no clock, no I/O; every instant comes in as a parameter.

    `apply` and `fire` append the alerts they emit to `out` and the timers they schedule to
    `timers` (the caller's index of due times); the patient's own `state.timers` is the truth.
    """

    def __init__(
        self,
        cfg: RuleConfig,
        codes: CodeSets | None = None,
        observer: EpisodeObserver | None = None,
    ) -> None:
        self.cfg = cfg
        self.observer = observer
        self.codes = codes or CodeSets(cfg)
        self.w = Windows(cfg)
        self.rule_version = cfg.rule_version
        # Pruning rebuilds every collection of the state: half the history window between
        # prunes keeps a state at most 1.5 windows long at a fraction of the cost.
        self.prune_every = self.w.history // 2
        self.unknown_removals = 0  # removals of a result_id never seen: counted no-ops

    # -- events ---------------------------------------------------------------------------

    def apply(
        self,
        state: PatientState,
        ev: LabResult | Medication,
        at: Micros,
        out: list[Alert],
        timers: list[Timer],
    ) -> None:
        """Apply one released event; its own effects carry `at` (its availability, or later)."""
        if type(ev) is LabResult:
            self._lab(state, ev, at, out, timers)
        else:
            self._medication(state, ev, at, out, timers)  # type: ignore[arg-type]
        if at - state.pruned_at >= self.prune_every:
            state.prune(at, self.w, self.cfg.mg_low)

    def _lab(
        self, s: PatientState, ev: LabResult, at: Micros, out: list[Alert], timers: list[Timer]
    ) -> None:
        available, pid, event_id, analyte, value, collected, status, rid, hemolyzed, enc, loc = ev
        table = s.k if analyte is _K else s.mg
        if status is _CANCELLED or status is _ENTERED_IN_ERROR:
            if table.pop(rid, None) is None:
                self.unknown_removals += 1
                return
            low = s.firing.get(_LOW)
            if table is s.mg and low is not None and low.rests_on == rid:
                self._resolve(s, low, Resolution.RESULT_RETRACTED, at, out)
            return
        assert value is not None and collected is not None
        table[rid] = _new(LabRecord, (value, collected, available, event_id, hemolyzed, enc, loc))
        cfg = self.cfg
        if table is s.k:
            refr = s.firing.get(_REFRACTORY)
            if (
                refr is not None
                and value >= cfg.k_low
                and refr.episode_t0 is not None
                and collected > refr.episode_t0
            ):
                self._resolve(s, refr, Resolution.K_NORMALIZED, at, out)
            return
        mg_low = cfg.mg_low
        low = s.firing.get(_LOW)
        if hemolyzed and value >= mg_low:
            # Hemolysis raises measured Mg: a hemolysed normal result is not evidence. As a
            # correction it still replaces the result the alert rests on (RULES.md 4.4): only
            # a normal result collected after the replacement normalises it.
            if low is not None and low.rests_on == rid:
                low.rests_collected = collected
            return

        if low is not None:
            if low.rests_on == rid:
                if value >= mg_low:
                    self._resolve(s, low, Resolution.RESULT_CORRECTED, at, out)
                else:
                    low.rests_collected = collected
            elif value >= mg_low and collected > (low.rests_collected or 0):
                self._resolve(s, low, Resolution.MG_NORMALIZED, at, out)
        unchecked = s.firing.get(_NOT_CHECKED)
        superseded = False
        if (
            unchecked is not None
            and unchecked.episode_t0 is not None
            and collected >= unchecked.episode_t0 - self.w.mg_lookback
        ):
            superseded = value < mg_low
            reason = Resolution.SUPERSEDED if superseded else Resolution.MG_CHECKED_NORMAL
            self._resolve(s, unchecked, reason, at, out)
        if value < mg_low:
            lo = collected - self.w.mg_lookback
            # A low result that supersedes MG_NOT_CHECKED is evaluated even when collected more
            # than mg_lookback after the episode (4.4: "4.2 then schedules its evaluation"):
            # otherwise the alert it replaces would end in silence.
            if superseded or any(
                e.status is not _WITHDRAWN and lo <= e.t0 <= available for e in s.episodes
            ):
                tau = available + self.w.hold
                self._schedule(s, Timer(tau, pid, event_id, _LOW, _T_LOW_MG), timers)

    def _medication(
        self, s: PatientState, ev: Medication, at: Micros, out: list[Alert], timers: list[Timer]
    ) -> None:
        if ev.action is _CANCEL:
            self._cancel(s, ev)
            return
        classes = ev.classes
        ordered = ev.action is _ORDERED
        # A cancel withdraws a magnesium or diuretic order's `ordered` events, even one that
        # comes after it, and never an administration that was given (RULES.md 2 and 7).
        withdrawn = ordered and ev.order_id is not None and ev.order_id in s.cancelled
        if _MG_REPLETION in classes and not withdrawn:
            s.mg_repletions.append(MgRepletion(ev.available, ev.event_id, ev.order_id, ordered))
            unchecked = s.firing.get(_NOT_CHECKED)
            if unchecked is not None:
                self._resolve(s, unchecked, Resolution.MG_REPLETED, at, out)
            low = s.firing.get(_LOW)
            if low is not None and ev.available >= (low.rests_collected or 0):
                self._resolve(s, low, Resolution.MG_REPLETED, at, out)
        if not classes.isdisjoint(DIURETIC_CLASSES) and not withdrawn:
            s.diuretics.append(DiureticExposure(ev.available, ev.order_id, ordered))
        if _K_REPLETION in classes:
            self._episode(s, ev, ordered, timers)

    def _episode(self, s: PatientState, ev: Medication, ordered: bool, timers: list[Timer]) -> None:
        key = ev.order_id if ev.order_id is not None else ev.event_id
        previous = s.order_last.get(key)
        t = ev.available
        s.order_last[key] = t if previous is None else max(previous, t)
        if previous is not None and (ordered or t - previous <= self.w.episode_gap):
            return  # a later event of the same order adds nothing
        withdrawn = self._withdrawn(s, ev.order_id, ordered, t)
        episode = Episode(
            t,
            ev.event_id,
            key,
            ev.encounter_id,
            ev.location,
            _WITHDRAWN if withdrawn else _PENDING,
        )
        s.episodes.append(episode)
        if s.newest_t0 is None or t > s.newest_t0:
            s.newest_t0 = t
            for firing in s.firing.values():
                self._schedule_expiry(s, ev.patient_id, firing, timers)
        if not withdrawn:
            tau = t + self.w.hold
            timer = Timer(tau, ev.patient_id, ev.event_id, EPISODE_RULE_KEY, _T_EPISODE)
            self._schedule(s, timer, timers)

    def _withdrawn(self, s: PatientState, order_id: str | None, ordered: bool, at: Micros) -> bool:
        """Say whether a cancel already seen withdraws this potassium order event.

        A cancel withdraws orders; an administration given after the cancel was still given,
        so it counts (the clinically safer reading). An administration is withdrawn as its
        episode would have been had it come first: by a cancel from its own instant to its
        evaluation. Released in order, that is a cancel at its very instant; late (the stream),
        one up to its hold later.
        """
        if order_id is None:
            return False
        stored = s.cancelled.get(order_id)
        if stored is None:
            return False
        latest = at + self.w.hold
        return ordered or any(at <= c <= latest for c in cancel_times(stored))

    def _cancel(self, s: PatientState, ev: Medication) -> None:
        order_id = ev.order_id
        if order_id is None:
            return
        at = ev.available
        stored = s.cancelled.get(order_id)
        if stored is None:
            s.cancelled[order_id] = at
        elif stored != at:
            # Every cancel counts for an administration arriving late (_withdrawn).
            kept = sorted({*cancel_times(stored), at})[-CANCELS_KEPT:]
            s.cancelled[order_id] = kept
        for e in s.episodes:
            if e.order_key == order_id and e.status is _PENDING:
                e.status = _WITHDRAWN
                tau = e.t0 + self.w.hold
                s.timers.discard(
                    Timer(tau, ev.patient_id, e.trigger_event_id, EPISODE_RULE_KEY, _T_EPISODE)
                )
        s.mg_repletions = [r for r in s.mg_repletions if not (r.ordered and r.order_id == order_id)]
        s.diuretics = [d for d in s.diuretics if not (d.ordered and d.order_id == order_id)]

    # -- timers ---------------------------------------------------------------------------

    def fire(
        self,
        state: PatientState,
        timer: Timer,
        at: Micros,
        out: list[Alert],
        timers: list[Timer],
    ) -> None:
        """Run a due timer; a timer no longer in the state (withdrawn, moved) does nothing."""
        if timer not in state.timers:
            return
        state.timers.discard(timer)
        kind = timer.kind
        if kind is _T_EPISODE:
            self._evaluate_episode(state, timer, at, out, timers)
        elif kind is _T_LOW_MG:
            self._evaluate_low_mg(state, timer, at, out, timers)
        else:
            firing = state.firing.get(Rule(timer.rule_key))
            if firing is not None and firing.trigger_event_id == timer.trigger_event_id:
                self._resolve(state, firing, Resolution.EXPIRED, at, out)

    def _evaluate_episode(
        self, s: PatientState, timer: Timer, at: Micros, out: list[Alert], timers: list[Timer]
    ) -> None:
        trigger = timer.trigger_event_id
        episode = next((e for e in s.episodes if e.trigger_event_id == trigger), None)
        if episode is None or episode.status is not _PENDING:
            return
        episode.status = _EVALUATED
        cfg, w, tau, t0 = self.cfg, self.w, timer.tau, episode.t0
        lo = t0 - w.mg_lookback
        latest_mg = latest_record(s.mg.values(), tau, lo, cfg.mg_low)
        if latest_mg is not None and latest_mg.collected > tau:
            latest_mg = None  # collected after tau cannot be, but a late feed is not trusted
        repleted_in_window = any(lo <= r.at <= tau for r in s.mg_repletions)
        latest_k = self._latest_k(s, tau)
        k_value = latest_k.value if latest_k is not None else None
        condition: Rule | None = None
        if latest_mg is None and not repleted_in_window:
            condition = _NOT_CHECKED
            high = (k_value is not None and k_value < cfg.k_moderate) or self._diuretic(s, tau)
            severity = Severity.HIGH if high else Severity.WARNING
            self._fire(
                s,
                _NOT_CHECKED,
                severity,
                episode.trigger_event_id,
                episode.encounter_id,
                episode.location,
                t0,
                None,
                None,
                tau,
                at,
                out,
                timers,
            )
        elif (
            latest_mg is not None
            and latest_mg.value < cfg.mg_low
            and not self._repleted_since(s, latest_mg.collected, tau)
        ):
            condition = _LOW
            severity = self._low_severity(latest_mg.value, k_value)
            self._fire(
                s,
                _LOW,
                severity,
                episode.trigger_event_id,
                episode.encounter_id,
                episode.location,
                t0,
                latest_mg,
                None,
                tau,
                at,
                out,
                timers,
            )
        refractory = (
            condition is not None
            and k_value is not None
            and k_value < cfg.k_low
            and self._episodes_in_window(s, t0) >= cfg.refractory_min_episodes
        )
        if refractory:
            linked = s.firing.get(condition)  # type: ignore[arg-type]
            self._fire(
                s,
                _REFRACTORY,
                Severity.CRITICAL,
                episode.trigger_event_id,
                episode.encounter_id,
                episode.location,
                t0,
                None,
                linked.alert_id if linked is not None else None,
                tau,
                at,
                out,
                timers,
            )
        if self.observer is not None:
            self.observer(
                EpisodeOutcome(
                    s.patient_id,
                    episode.trigger_event_id,
                    episode.order_key,
                    t0,
                    tau,
                    episode.encounter_id,
                    episode.location,
                    _mg_context(condition, latest_mg, repleted_in_window, cfg.mg_low),
                    latest_mg.value if latest_mg is not None else None,
                    k_value,
                    self._episodes_in_window(s, t0),
                    self._diuretic(s, tau),
                    refractory,
                )
            )

    def _evaluate_low_mg(
        self, s: PatientState, timer: Timer, at: Micros, out: list[Alert], timers: list[Timer]
    ) -> None:
        tau = timer.tau
        latest_mg = latest_record(s.mg.values(), tau, None, self.cfg.mg_low)
        if latest_mg is None or latest_mg.event_id != timer.trigger_event_id:
            return  # corrected, removed or overtaken by a newer result
        if latest_mg.value >= self.cfg.mg_low or self._repleted_since(s, latest_mg.collected, tau):
            return
        latest_k = self._latest_k(s, tau)
        severity = self._low_severity(latest_mg.value, latest_k.value if latest_k else None)
        lo = latest_mg.collected - self.w.mg_lookback
        t0s = [e.t0 for e in s.episodes if e.status is not _WITHDRAWN and lo <= e.t0 <= tau]
        if not t0s and s.newest_t0 is not None:
            t0s = [s.newest_t0]  # scheduled by superseding MG_NOT_CHECKED: its newest episode
        self._fire(
            s,
            _LOW,
            severity,
            latest_mg.event_id,
            latest_mg.encounter_id,
            latest_mg.location,
            max(t0s) if t0s else None,
            latest_mg,
            None,
            tau,
            at,
            out,
            timers,
        )

    def _low_severity(self, mg_value: float, k_value: float | None) -> Severity:
        cfg = self.cfg
        if mg_value < cfg.mg_severe or (k_value is not None and k_value < cfg.k_severe):
            return Severity.CRITICAL
        return Severity.HIGH

    # -- reading the state ----------------------------------------------------------------

    def _latest_k(self, s: PatientState, tau: Micros) -> LabRecord | None:
        return latest_record(s.k.values(), tau, tau - self.w.k_recent, None)

    def _diuretic(self, s: PatientState, tau: Micros) -> bool:
        lo = tau - self.w.diuretic_lookback
        return any(lo <= d.at <= tau for d in s.diuretics)

    @staticmethod
    def _repleted_since(s: PatientState, collected: Micros, tau: Micros) -> bool:
        return any(collected <= r.at <= tau for r in s.mg_repletions)

    def _episodes_in_window(self, s: PatientState, t0: Micros) -> int:
        lo = t0 - self.w.refractory_window
        return len([e for e in s.episodes if e.status is not _WITHDRAWN and lo <= e.t0 <= t0])

    def evidence(self, s: PatientState, at: Micros, episode_t0: Micros | None) -> dict[str, Any]:
        """Return the evidence object of RULES.md sections 6 and 7 as seen at `at`."""
        k = self._latest_k(s, at)
        mg = latest_record(s.mg.values(), at, None, self.cfg.mg_low)
        ref = episode_t0 if episode_t0 is not None else at
        return {
            "latest_k": None
            if k is None
            else {
                "value": k.value,
                "collected_at": format_timestamp(k.collected),
                "event_id": k.event_id,
            },
            "latest_mg": None
            if mg is None
            else {
                "value_mg_dl": mg.value,
                "collected_at": format_timestamp(mg.collected),
                "event_id": mg.event_id,
                "hemolyzed": mg.hemolyzed,
            },
            "k_episodes_in_refractory_window": self._episodes_in_window(s, ref),
            "diuretic_in_lookback": self._diuretic(s, at),
            "episode_t0": None if episode_t0 is None else format_timestamp(episode_t0),
        }

    # -- emitting -------------------------------------------------------------------------

    def _fire(
        self,
        s: PatientState,
        rule: Rule,
        severity: Severity,
        trigger: str,
        encounter_id: str | None,
        location: str | None,
        episode_t0: Micros | None,
        rests_on: LabRecord | None,
        linked_alert_id: str | None,
        tau: Micros,
        at: Micros,
        out: list[Alert],
        timers: list[Timer],
    ) -> None:
        firing = s.firing.get(rule)
        if firing is not None:  # deduplicated: at most one firing alert per (patient, rule)
            if rests_on is not None and rests_on.collected > (firing.rests_collected or 0):
                # Its condition now holds on a newer low result: the alert rests on that one,
                # so correcting or retracting the older result no longer ends it.
                firing.rests_on = _result_id(s, rests_on)
                firing.rests_collected = rests_on.collected
            return
        pid = s.patient_id
        firing = Firing(
            alert_id_for(pid, rule, trigger),
            rule,
            severity,
            trigger,
            encounter_id,
            location,
            at,
            episode_t0,
            None,
            None,
            linked_alert_id,
        )
        if rests_on is not None:
            firing.rests_on = _result_id(s, rests_on)
            firing.rests_collected = rests_on.collected
        s.firing[rule] = firing
        out.append(self._alert(s, firing, _FIRING, None, at))
        self._schedule_expiry(s, pid, firing, timers)

    def _resolve(
        self, s: PatientState, firing: Firing, reason: Resolution, at: Micros, out: list[Alert]
    ) -> None:
        del s.firing[firing.rule]
        out.append(self._alert(s, firing, _RESOLVED, reason, at))
        refractory = s.firing.get(_REFRACTORY)
        # REFRACTORY_HYPOKALEMIA rests on the Mg alert whose condition held: same reason, same at.
        if refractory is not None and refractory.linked_alert_id == firing.alert_id:
            self._resolve(s, refractory, reason, at, out)

    def _alert(
        self,
        s: PatientState,
        firing: Firing,
        status: AlertStatus,
        reason: Resolution | None,
        at: Micros,
    ) -> Alert:
        return Alert(
            firing.alert_id,
            firing.rule,
            status,
            firing.severity,
            s.patient_id,
            firing.encounter_id,
            firing.location,
            at,
            firing.trigger_event_id,
            reason,
            self.evidence(s, at, firing.episode_t0),
            self.rule_version,
        )

    @staticmethod
    def _schedule(s: PatientState, timer: Timer, timers: list[Timer]) -> None:
        if timer not in s.timers:
            s.timers.add(timer)
            timers.append(timer)

    def _schedule_expiry(
        self, s: PatientState, pid: str, firing: Firing, timers: list[Timer]
    ) -> None:
        """(Re)arm a firing alert's expiry at the newest episode's t0 + alert_ttl.

        An alert that would already be past that instant when it fires expires at its own
        firing time rather than never.
        """
        for old in [t for t in s.timers if t.kind is _T_EXPIRY and t.rule_key == firing.rule]:
            s.timers.discard(old)
        newest = s.newest_t0 if s.newest_t0 is not None else firing.fired_at
        due = max(newest + self.w.alert_ttl, firing.fired_at)
        self._schedule(s, Timer(due, pid, firing.trigger_event_id, firing.rule, _T_EXPIRY), timers)


def _mg_context(
    condition: Rule | None, latest_mg: LabRecord | None, repleted: bool, mg_low: float
) -> MgContext:
    if condition is _NOT_CHECKED:
        return MgContext.NOT_CHECKED
    if condition is _LOW:
        return MgContext.LOW_UNCORRECTED
    if latest_mg is None:
        return MgContext.REPLETED_UNCHECKED if repleted else MgContext.NOT_CHECKED
    return MgContext.LOW_CORRECTED if latest_mg.value < mg_low else MgContext.NORMAL


def _result_id(s: PatientState, record: LabRecord) -> str:
    for rid, r in s.mg.items():
        if r is record:
            return rid
    raise KeyError(record.event_id)
