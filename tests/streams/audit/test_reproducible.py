"""Same input and configuration, same bytes: reruns, spilled sorts, arrival order, kmg replay."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.cli import main
from tests.conftest import REPO, SCENARIOS
from tests.search_depth import SEARCH, examples
from tests.streams.audit.support import concatenated, run, scenario_inputs

pytestmark = pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no scenarios at {SCENARIOS}")

FIXED = ("episodes.csv", "summary.json", "alerts.ndjson", "dead_letters.ndjson")


def _bytes(folder, names=FIXED):
    return {n: (folder / n).read_bytes() for n in names}


def test_rerun_gives_byte_identical_outputs(cfg, tmp_path):
    data = concatenated(scenario_inputs())
    first = run(cfg, data, tmp_path / "a", produced_at="run one")
    second = run(cfg, data, tmp_path / "b", produced_at="run two")
    assert _bytes(first.out) == _bytes(second.out)
    # The report differs only in its production time.
    html_a = (first.out / "report.html").read_text()
    html_b = (second.out / "report.html").read_text()
    assert html_a != html_b and html_a.replace("run one", "run two") == html_b


def test_sorting_in_small_spilled_runs_changes_nothing(cfg, tmp_path):
    data = concatenated(scenario_inputs())
    whole = run(cfg, data, tmp_path / "whole")
    spilled = run(cfg, data, tmp_path / "spilled", chunk_size=5)
    assert _bytes(whole.out) == _bytes(spilled.out)


def test_alerts_are_exactly_what_kmg_replay_writes(cfg, tmp_path):
    path = tmp_path / "scenarios.ndjson"
    path.write_bytes(concatenated(scenario_inputs()))
    assert main(["replay", str(path), "--out", str(tmp_path / "replay.ndjson")]) == 0
    assert main(["audit", str(path), "--out", str(tmp_path / "audit")]) == 0
    replayed = (tmp_path / "replay.ndjson").read_bytes()
    assert replayed.count(b"\n") == 44
    assert (tmp_path / "audit" / "alerts.ndjson").read_bytes() == replayed


@settings(
    SEARCH,
    max_examples=examples(12),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_arrival_order_does_not_matter(cfg, tmp_path_factory, seed):
    # Replay releases events in (availability, patient, event id) order whatever the order
    # they were read in, so the audit of any shuffle of the lines is the audit of the folder.
    lines = concatenated(scenario_inputs()).splitlines(keepends=True)
    shuffled = lines[:]
    random.Random(seed).shuffle(shuffled)
    base = tmp_path_factory.mktemp("audit")
    ordered = run(cfg, b"".join(lines), base / "ordered")
    mixed = run(cfg, b"".join(shuffled), base / "mixed")
    names = ("episodes.csv", "summary.json")
    assert _bytes(ordered.out, names) == _bytes(mixed.out, names)


def test_no_dependence_on_the_string_hash_seed(tmp_path):
    # Sets and dicts keyed by strings iterate in an order that changes with PYTHONHASHSEED:
    # two processes with different seeds must still write the same bytes.
    path = tmp_path / "scenarios.ndjson"
    path.write_bytes(concatenated(scenario_inputs()))
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        cmd = [sys.executable, "-m", "streams.cli", "audit", str(path), "--out", str(out)]
        subprocess.run(cmd, check=True, env=env, cwd=REPO, capture_output=True)
        outs.append(_bytes(out))
    assert outs[0] == outs[1]
