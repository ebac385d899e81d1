"""Episode rows: time bins, and rows closed in t0 order once their follow-up has ended."""

from __future__ import annotations

import io

import pytest

from alerts.events import MICROS_PER_HOUR
from streams.audit.episodes import FOLLOW_UP, EpisodeLedger, EpisodeRow, RowStatus
from streams.audit.figures import time_bin
from streams.audit.tap import AuditEngine
from streams.replay import NdjsonWriter, Replay
from streams.synthetic_feed import FeedShape, write_ndjson

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

    def __init__(self, sink):
        super().__init__(sink)
        self.now = -(2**62)
        self.peak = 0

    def advance(self, now):
        self.now = max(self.now, now)
        super().advance(now)

    def started(self, row):
        super().started(row)
        oldest = self.oldest_open_t0()
        # Everything older than the follow-up was closed, unless still waiting for its
        # evaluation (t0 + hold, 30 min): the audit holds at most 48.5 h of episodes.
        assert oldest is not None and oldest >= self.now - FOLLOW_UP - H // 2
        self.peak = max(self.peak, self.open_rows())


def test_rows_close_in_order_after_their_follow_up_and_memory_stays_bounded(cfg):
    feed = io.BytesIO()
    write_ndjson(FeedShape(patients=300, days=40, seed=7), feed)
    closed: list[tuple[EpisodeRow, int, bool]] = []
    at_end = [False]
    ledger = WatchedLedger(lambda row: closed.append((row, ledger.now, at_end[0])))
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
        assert final or now > row.t0 + FOLLOW_UP  # nothing after this could change it
    # 40 days of episodes, never more than about two and a half days of them open at once.
    assert ledger.peak < len(rows) / 8
