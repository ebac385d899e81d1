"""Episode rows: time bins, rows closed in t0 order once no alert can name them, attribution."""

from __future__ import annotations

import io
from bisect import bisect_left, bisect_right

import pytest

from alerts.events import MICROS_PER_HOUR, MICROS_PER_MINUTE
from streams.audit.episodes import FOLLOW_UP, EpisodeLedger, EpisodeRow, RowStatus, open_window
from streams.audit.figures import time_bin
from streams.audit.tap import AuditEngine
from streams.replay import NdjsonWriter, Replay
from streams.synthetic_feed import FeedShape, write_ndjson
from tests.streams.audit.support import KCL, MG, MGSO4, K, firing, lab, med, ndjson, run

H = MICROS_PER_HOUR


@pytest.mark.parametrize(
    ("delta", "key"),
    [
        (0, "0-1h"),
        (H - 1, "0-1h"),
        (H, "1-2h"),
        (2 * H, "2-4h"),
        (4 * H - 1, "2-4h"),
        (4 * H, "4-8h"),
        (8 * H, "8-24h"),
        (24 * H, "24-48h"),
        (48 * H, "24-48h"),  # the follow-up includes its last instant
        (48 * H + 1, "none_within_48h"),
        (None, "none_within_48h"),
    ],
)
def test_time_bins(delta, key):
    assert time_bin(delta) == key


class WatchedLedger(EpisodeLedger):
    """A ledger that checks its own memory bound every time a row opens."""

    def __init__(self, sink, open_for):
        super().__init__(sink, open_for)
        self.now = -(2**62)
        self.peak = 0

    def advance(self, now):
        self.now = max(self.now, now)
        super().advance(now)

    def started(self, row):
        super().started(row)
        oldest = self.oldest_open_t0()
        # Everything older than the open window was closed, unless still waiting for its
        # evaluation (t0 + hold, 30 min): the audit holds at most that window of episodes.
        assert oldest is not None and oldest >= self.now - self.open_for - H // 2
        self.peak = max(self.peak, self.open_rows())


def test_rows_close_in_order_once_no_alert_can_name_them_and_memory_stays_bounded(cfg):
    feed = io.BytesIO()
    write_ndjson(FeedShape(patients=300, days=40, seed=7), feed)
    closed: list[tuple[EpisodeRow, int, bool]] = []
    at_end = [False]
    ledger = WatchedLedger(
        lambda row: closed.append((row, ledger.now, at_end[0])), open_window(cfg)
    )
    replay = Replay(cfg, NdjsonWriter(None), NdjsonWriter(None), chunk_size=2000)
    replay.read("feed", io.BytesIO(feed.getvalue()), lambda n: None)
    replay.engine = AuditEngine(cfg, replay.engine.codes, ledger)
    replay.run()
    at_end[0] = True
    ledger.close()
    rows = [r for r, _, _ in closed]
    assert len(rows) > 200
    keys = [(r.t0, r.patient_id, r.trigger_event_id) for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for row, now, final in closed:
        assert row.status is not RowStatus.PENDING
        assert final or now > row.t0 + ledger.open_for  # nothing after this could change it
    # 40 days of episodes, never more open at once than start in one open window (19.5 days
    # with the default windows) and its hold.
    t0s = sorted(r.t0 for r in rows)
    window = ledger.open_for + H // 2
    assert ledger.peak <= max(bisect_right(t0s, t) - bisect_left(t0s, t - window) for t in t0s)
    assert ledger.peak < len(rows) * 0.6


# One patient: K 3.2 before every order; "Mg 2.0" a normal Mg drawn with it (not checked never).
_K_LOW = lab("k", "P", K, 3.2, "2024-03-04T06:00", "2024-03-04T06:30")
_MG_OK = lab("m", "P", MG, 2.0, "2024-03-04T06:00", "2024-03-04T06:30")
_KCL_8 = med("a", "P", KCL, "2024-03-04T08:00", "OA")
_LOW = "MG_LOW_UNCORRECTED:high"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        # Mg 1.4 drawn 12 h after t0 but resulted 49 h after: its 4.2 alert (t0 + 49.5 h)
        # comes after the follow-up and still belongs to the episode it names.
        (
            [
                _K_LOW,
                _MG_OK,
                _KCL_8,
                lab("l", "P", MG, 1.4, "2024-03-04T20:00", "2024-03-06T09:00"),
            ],
            {"a": ("evaluated", _LOW)},
        ),
        # Not checked at 08:30; b (10:00) cancelled before its check. A low Mg superseding the
        # not-checked alert names the newest episode, b, withdrawn: the alert goes to a.
        (
            [
                _K_LOW,
                _KCL_8,
                med("b", "P", KCL, "2024-03-04T10:00", "OB"),
                med("c", "P", KCL, "2024-03-04T10:10", "OB", action="cancelled"),
                lab("l", "P", MG, 1.4, "2024-03-05T12:00", "2024-03-05T12:30"),
            ],
            {"a": ("evaluated", f"MG_NOT_CHECKED:warning;{_LOW}"), "b": ("withdrawn", "")},
        ),
        # The 4.2 alert (09:30) names b (09:20), still pending; b is then cancelled before its
        # check: the alert passes to a, the episode the engine would have named without b.
        (
            [
                _K_LOW,
                _MG_OK,
                _KCL_8,
                lab("l", "P", MG, 1.4, "2024-03-04T08:00", "2024-03-04T09:00"),
                med("b", "P", KCL, "2024-03-04T09:20", "OB"),
                med("c", "P", KCL, "2024-03-04T09:40", "OB", action="cancelled"),
            ],
            {"a": ("evaluated", _LOW), "b": ("withdrawn", "")},
        ),
    ],
    ids=["late-result", "newest-withdrawn", "named-then-withdrawn"],
)
def test_every_low_mg_alert_belongs_to_an_evaluated_episode(cfg, tmp_path, events, expected):
    audit = run(cfg, ndjson(*events), tmp_path)
    rows = {r["trigger_event_id"]: (r["status"], r["alerts"]) for r in audit.rows()}
    assert rows == expected
    assert audit.overall["alerts_fired"]["total"] == len(firing(audit))
    assert audit.overall["alerts_fired_without_episode"] == 0
    (month,) = audit.doc["by_month"].values()
    assert month["alerts_fired"] == audit.overall["alerts_fired"]


@pytest.mark.parametrize(
    ("cancel_at", "hours"),
    [
        (None, "47.00"),  # ordered 47 h after t0 and never cancelled: the first repletion
        ("2024-03-06T07:59", ""),  # cancelled within the follow-up
        ("2024-03-06T09:00", ""),  # cancelled 49 h after t0, after the follow-up ended
        ("2024-03-25T08:00", "47.00"),  # 21 days on, past the 468 h 40 min a row stays open
    ],
)
def test_a_cancelled_mg_order_is_no_repletion_while_the_row_is_open(
    cfg, tmp_path, cancel_at, hours
):
    events = [_K_LOW, _KCL_8, med("g", "P", MGSO4, "2024-03-06T07:00", "OG")]
    if cancel_at is not None:
        events.append(med("x", "P", MGSO4, cancel_at, "OG", action="cancelled"))
    audit = run(cfg, ndjson(*events), tmp_path)
    assert audit.row("a")["hours_to_first_mg_repletion"] == hours


def test_rows_stay_open_for_every_rule_window(cfg):
    # hold 0.5 + lookback 24 + K recent 24 + refractory 24 + diuretic 168 + TTL 48 + gap 12
    # + history 168 hours + lateness 10 min; never shorter than the 48 h follow-up.
    assert open_window(cfg) == 468 * H + 40 * MICROS_PER_MINUTE
    short = cfg.model_copy(update={"history_hours": 1.0, "diuretic_lookback_hours": 1.0})
    assert open_window(short) >= FOLLOW_UP
