"""`kmg replay` and `kmg check-config` as subprocesses: outputs, summary, config, exit codes."""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from alerts.decoder import MAX_MESSAGE_BYTES, Decoder
from alerts.wire import AlertEvent
from streams.cli import main
from streams.replay import NdjsonWriter, Replay
from streams.synthetic_feed import FeedShape, write_ndjson
from tests.alerts.feed import NOT_CHECKED, encode, fired, kcl, mg, resolved, t
from tests.alerts.harness import config, project
from tests.conftest import REPO
from tests.scenario_support import grouped_by_instant, load_scenarios

_ENTRY = REPO / ".venv" / "bin" / "kmg"
KMG = [str(_ENTRY)] if _ENTRY.exists() else [sys.executable, "-m", "streams.cli"]

BASIC = [
    kcl("e-kcl", t("08:00")),
    mg("m-bad", 2.0, t("07:00"), unit="mg/L"),
    mg("m-pre", 2.0, t("07:00"), status="preliminary"),
]
EXPECTED_BASIC = [
    fired(NOT_CHECKED, "warning", t("08:30"), "e-kcl"),
    resolved(NOT_CHECKED, "warning", t("08:00", day=3), "e-kcl", "expired"),
]


def kmg(*args: str | Path, stdin: bytes | None = None, cwd: Path | None = None):
    """Run the kmg command and return the completed process (bytes in, bytes out)."""
    return subprocess.run(
        [*KMG, *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd or REPO,
        timeout=120,
        check=False,
    )


def ndjson(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def basic_file(tmp_path: Path) -> Path:
    path = tmp_path / "basic.ndjson"
    path.write_bytes(b"\n".join(encode(e) for e in BASIC) + b"\n")
    return path


@pytest.fixture
def scenario_17(shared_dir) -> Path:
    return shared_dir / "scenarios" / "17_invalid_events_dead_lettered.ndjson"


def test_replay_writes_alerts_as_ndjson_on_stdout(basic_file, tmp_path):
    done = kmg("replay", basic_file, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    alerts = ndjson(done.stdout)
    assert [project(a) for a in alerts] == EXPECTED_BASIC
    for alert in alerts:
        AlertEvent.model_validate(alert)


def test_replay_of_all_golden_scenarios_at_once(shared_dir, tmp_path):
    # The scenarios use disjoint patients, so one run over every file must give each
    # scenario's expected alerts for its own patients, and dead-letter exactly its lines.
    scenarios = load_scenarios(shared_dir / "scenarios")
    dlq = tmp_path / "dlq.ndjson"
    done = kmg("replay", *(s.input for s in scenarios), "--dead-letter", dlq)
    assert done.returncode == 0, done.stderr
    alerts = ndjson(done.stdout)
    for alert in alerts:
        AlertEvent.model_validate(alert)
    dead = ndjson(dlq.read_bytes())
    for scenario in scenarios:
        patients = {json.loads(line).get("patient_id") for line in _valid_json_lines(scenario)}
        own = [a for a in alerts if a["patient_id"] in patients]
        assert grouped_by_instant(own) == grouped_by_instant(scenario.expected), scenario.name
        lines = sorted(d["line"] for d in dead if d["source"] == str(scenario.input))
        assert lines == sorted(scenario.dead_lines or []), scenario.name


def _valid_json_lines(scenario) -> list[str]:
    out = []
    for line in scenario.input.read_text().splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        out.append(line)
    return out


def test_out_file_takes_the_alerts_instead_of_stdout(basic_file, tmp_path):
    out = tmp_path / "alerts.ndjson"
    done = kmg("replay", basic_file, "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert out.read_bytes() == kmg("replay", basic_file).stdout
    assert [project(a) for a in ndjson(out.read_bytes())] == EXPECTED_BASIC


def test_dead_letter_file(scenario_17, shared_dir, tmp_path):
    dlq = tmp_path / "dlq.ndjson"
    done = kmg("replay", scenario_17, "--dead-letter", dlq)
    assert done.returncode == 0  # invalid lines never stop a replay
    records = ndjson(dlq.read_bytes())
    expected_lines = json.loads(
        (shared_dir / "scenarios" / "17_invalid_events_dead_lettered.dlq.json").read_text()
    )
    assert sorted(r["line"] for r in records) == sorted(e["line"] for e in expected_lines)
    source_lines = scenario_17.read_text().splitlines()
    for record in records:
        assert {"reason", "detail", "raw"} <= record.keys()
        assert record["raw"] == source_lines[record["line"] - 1]
        assert record["source"] == str(scenario_17)
    assert sorted(r["reason"] for r in records) == sorted(
        [
            "bad_unit:mg/L",
            "missing_field:patient_id",
            "implausible_value",
            "timestamp_without_offset:collected_at",
            "resulted_before_collected",
            "bad_json",
            "missing_code_and_name",
            "timestamp_without_offset:at",
        ]
    )


def test_dead_letter_of_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "binary.ndjson"
    raw = b"\xff\xfe not json \x80"
    path.write_bytes(encode(BASIC[0]) + b"\n" + raw + b"\n")
    dlq = tmp_path / "dlq.ndjson"
    done = kmg("replay", path, "--dead-letter", dlq)
    assert done.returncode == 0, done.stderr
    (record,) = ndjson(dlq.read_bytes())
    assert record["reason"] == "bad_json"
    assert record["raw"] is None
    assert base64.b64decode(record["raw_base64"]) == raw
    assert record["line"] == 2


@pytest.mark.parametrize("args", [["-"], []], ids=["dash", "no_file"])
def test_input_from_stdin(args, basic_file):
    done = kmg("replay", *args, stdin=basic_file.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout == kmg("replay", basic_file).stdout
    assert [project(a) for a in ndjson(done.stdout)] == EXPECTED_BASIC


def test_several_inputs_are_read_in_order(tmp_path):
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    first.write_bytes(encode(kcl("e-kcl", t("08:00"))) + b"\n")
    second.write_bytes(encode(mg("m1", 1.9, t("09:00"), t("10:00"))) + b"\n")
    done = kmg("replay", first, second)
    assert done.returncode == 0, done.stderr
    assert [a["resolution"] for a in ndjson(done.stdout)] == [None, "mg_checked_normal"]


def test_summary_on_stderr(scenario_17):
    done = kmg("replay", scenario_17)
    lines = done.stderr.decode().splitlines()
    assert "events read: invalid 8, lab_result 1, medication 2" in lines
    assert "duplicates: 1" in lines
    assert "ignored: none" in lines
    assert (
        "invalid: bad_json 1, bad_unit:mg/L 1, implausible_value 1, missing_code_and_name 1, "
        "missing_field:patient_id 1, resulted_before_collected 1, timestamp_without_offset:at 1, "
        "timestamp_without_offset:collected_at 1"
    ) in lines
    assert "alerts: MG_NOT_CHECKED firing 1, MG_NOT_CHECKED resolved 1" in lines


def test_summary_counts_ignored_events(basic_file):
    lines = kmg("replay", basic_file).stderr.decode().splitlines()
    assert "ignored: preliminary 1" in lines
    assert "invalid: bad_unit:mg/L 1" in lines


def test_summary_json(basic_file, tmp_path):
    target = tmp_path / "summary.json"
    done = kmg("replay", basic_file, "--summary-json", target)
    assert done.returncode == 0, done.stderr
    summary = json.loads(target.read_text())
    assert summary["invalid"] == {"bad_unit:mg/L": 1}
    assert summary["ignored"] == {"preliminary": 1}
    assert summary["alerts"] == {"MG_NOT_CHECKED firing": 1, "MG_NOT_CHECKED resolved": 1}
    assert summary["duplicates"] == 0


def test_config_override_changes_the_hold(basic_file, tmp_path):
    config = tmp_path / "hold.toml"
    config.write_text("hold_minutes = 60\n")
    done = kmg("replay", basic_file, "--config", config)
    assert done.returncode == 0, done.stderr
    alerts = ndjson(done.stdout)
    assert alerts[0]["at"] == t("09:00")
    default = ndjson(kmg("replay", basic_file).stdout)
    assert default[0]["at"] == t("08:30")
    assert alerts[0]["rule_version"] != default[0]["rule_version"]


def test_a_configured_list_replaces_the_default(tmp_path):
    # With only a made-up Mg code configured, 19123-9 is no longer magnesium: it is ignored.
    path = tmp_path / "in.ndjson"
    path.write_bytes(
        encode(mg("m1", 2.0, t("07:00"), t("07:30"))) + b"\n" + encode(kcl("e1", t("08:00")))
    )
    config = tmp_path / "codes.toml"
    config.write_text('mg_codes = ["99999-9"]\n')
    done = kmg("replay", path, "--config", config)
    assert done.returncode == 0, done.stderr
    assert "ignored: other_lab_code 1" in done.stderr.decode().splitlines()
    assert [a["rule"] for a in ndjson(done.stdout)] == [NOT_CHECKED, NOT_CHECKED]
    assert ndjson(kmg("replay", path).stdout) == []


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2
    assert done.stdout == b""
    text = done.stderr.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert text.startswith("kmg: ")
    return text


def test_missing_input_file_exits_2(tmp_path):
    text = _one_line_error(kmg("replay", tmp_path / "nope.ndjson"))
    assert "nope.ndjson" in text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ("hold_minutes = -5\n", ("hold_minutes", "-5")),
        ("hold_minutes = 'soon'\n", ("hold_minutes", "soon")),
        ("k_low = 2.0\n", ("k_low", "2.0")),  # below k_moderate: the thresholds must be ordered
        ("mg_plausible = [5, 1]\n", ("mg_plausible",)),
        ("no_such_key = 1\n", ("no_such_key",)),
        ("hold_minutes = \n", ("not valid TOML",)),
        # Found by review: these passed, then crashed a replay or changed every alert.
        ("history_hours = inf\n", ("history_hours", "Infinity")),
        ("k_low = nan\n", ("k_low", "NaN")),
        ("hold_minutes = 6e11\n", ("hold_minutes", "600000000000")),
        ("k_plausible = [0.5, inf]\n", ("k_plausible", "Infinity")),
        ("[med_keywords]\npotassium_repletion = ['kcl', ' ']\n", ("potassium_repletion", '" "')),
        ("k_codes = ['2823-3', '']\n", ("k_codes", '""')),
        ("mg_codes = []\n", ("mg_codes", "[]")),
        # Found by a new user: a number or flag written as text was taken for one.
        ("hold_minutes = '30'\n", ("hold_minutes", "30", "valid number")),
        ("idle_advance = 'yes'\n", ("idle_advance", "yes", "valid boolean")),
        ("refractory_min_episodes = 3.0\n", ("refractory_min_episodes", "3.0")),
        ("k_plausible = ['0.5', 15]\n", ("k_plausible", "0.5")),
    ],
    ids=[
        "negative_hold",
        "string_hold",
        "k_low_below_moderate",
        "range_reversed",
        "unknown_key",
        "bad_toml",
        "infinite_window",
        "nan_threshold",
        "window_beyond_ten_years",
        "infinite_range",
        "blank_keyword",
        "blank_code",
        "no_mg_code",
        "number_as_text",
        "flag_as_text",
        "count_as_float",
        "range_as_text",
    ],
)
def test_bad_config_exits_2_naming_key_and_value(body, names, basic_file, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(body)
    for args in (("replay", basic_file, "--config", config), ("check-config", config)):
        text = _one_line_error(kmg(*args))
        for name in names:
            assert name in text, text


def test_a_config_file_that_is_not_utf8_exits_2(basic_file, tmp_path):
    config = tmp_path / "latin1.toml"
    config.write_bytes("# Réanimation\nhold_minutes = 30\n".encode("latin-1"))
    for args in (("replay", basic_file, "--config", config), ("check-config", config)):
        assert "not UTF-8" in _one_line_error(kmg(*args))


def test_missing_config_file_exits_2(basic_file, tmp_path):
    text = _one_line_error(kmg("replay", basic_file, "--config", tmp_path / "absent.toml"))
    assert "absent.toml" in text


def test_check_config_accepts_a_good_file(tmp_path):
    config = tmp_path / "good.toml"
    config.write_text("hold_minutes = 45\nk_codes = ['2823-3']\n")
    done = kmg("check-config", config)
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert str(config) in out and "valid" in out


def test_check_config_of_the_defaults():
    done = kmg("check-config")
    assert done.returncode == 0, done.stderr
    assert "rules.toml: valid" in done.stdout.decode()


def test_the_console_command_ends_with_every_output_complete(shared_dir, tmp_path):
    # The console command ends its process without tearing the heap down: what it wrote to a
    # pipe, to files and to stderr must all be there, exactly as an in-process run writes it.
    scenarios = load_scenarios(shared_dir / "scenarios")
    inputs = [str(s.input) for s in scenarios]
    out, summary = tmp_path / "in-process.ndjson", tmp_path / "summary.json"
    assert main(["replay", *inputs, "--out", str(out), "--summary-json", str(summary)]) == 0
    done = kmg("replay", *inputs, "--summary-json", tmp_path / "console.json")
    assert done.returncode == 0
    assert done.stdout == out.read_bytes() != b""
    assert (tmp_path / "console.json").read_bytes() == summary.read_bytes()
    assert done.stderr.decode().startswith("events read: ")


def test_an_in_process_replay_returns_with_the_collector_as_it_was(basic_file, tmp_path):
    assert gc.isenabled()
    assert main(["replay", str(basic_file), "--out", str(tmp_path / "a.ndjson")]) == 0
    assert gc.isenabled()
    gc.disable()
    try:
        assert main(["replay", str(basic_file), "--out", str(tmp_path / "b.ndjson")]) == 0
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_reader_that_stops_early_ends_the_replay_quietly(tmp_path):
    # `kmg replay | head -1`: the pipe closes after one alert; no traceback, SIGPIPE's status.
    feed = tmp_path / "feed.ndjson"
    # Over 1 MiB of alerts: the replay writes them in more than one piece.
    write_ndjson(FeedShape(patients=2_000, days=14, target_events=150_000), feed)
    read_end, write_end = os.pipe()
    child = subprocess.Popen(
        [*KMG, "replay", str(feed)], stdout=write_end, stderr=subprocess.PIPE, cwd=REPO
    )
    os.close(write_end)
    first = os.read(read_end, 1)  # one byte, then the reader is gone
    os.close(read_end)
    assert child.stderr is not None
    errors = child.stderr.read()
    assert child.wait(timeout=120) == 141
    assert first == b"{"
    assert errors == b""


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_line_ends_count_neither_towards_the_size_limit_nor_in_dead_letters(line_end):
    # Replay decodes a line with its end, and again without it only when it is dead-lettered.
    def k_line(event_id: str, note: str) -> bytes:
        event = kcl(event_id, t("08:00")) | {"note": note}
        return orjson.dumps(event)

    pad = MAX_MESSAGE_BYTES - len(k_line("e-at", ""))
    at_limit, over = k_line("e-at", "x" * pad), k_line("e-over", "x" * (pad + 1))
    broken = b'{"kind": "lab_result", "event_id": "e-broken"'
    assert len(at_limit) == MAX_MESSAGE_BYTES
    dead = io.BytesIO()
    run = Replay(config(), NdjsonWriter(io.BytesIO()), NdjsonWriter(dead))
    run.read("feed", [line + line_end for line in (at_limit, over, broken)], lambda n: None)
    run.run()
    records = [orjson.loads(line) for line in dead.getvalue().splitlines()]
    decode = Decoder(config()).decode
    assert [(r["reason"], r["line"], r["raw"]) for r in records] == [
        ("too_large", 2, over.decode()),
        ("bad_json", 3, broken.decode()),
    ]
    assert [r["detail"] for r in records] == [decode(over).detail, decode(broken).detail]
    assert run.summary.events_by_kind["medication"] == 1  # the line at the limit was read


# Found by review: each of these emptied a file, lost the alerts or ended in a traceback.


def test_an_output_that_is_an_input_is_refused_before_it_is_emptied(basic_file):
    before = basic_file.read_bytes()
    assert "is also an input" in _one_line_error(kmg("replay", basic_file, "--out", basic_file))
    assert basic_file.read_bytes() == before


def test_two_outputs_in_one_file_are_refused(basic_file, tmp_path):
    same = tmp_path / "both.ndjson"
    text = _one_line_error(kmg("replay", basic_file, "--out", same, "--dead-letter", same))
    assert "--dead-letter" in text and "--out" in text
    assert not same.exists()


def test_outputs_may_share_a_device(basic_file):
    done = kmg("replay", basic_file, "--out", os.devnull, "--dead-letter", os.devnull)
    assert done.returncode == 0, done.stderr


def test_an_unwritable_summary_is_refused_before_the_replay(basic_file, tmp_path):
    text = _one_line_error(kmg("replay", basic_file, "--summary-json", tmp_path))
    assert "--summary-json" not in text and str(tmp_path) in text  # names the path itself


def test_a_closed_stdout_is_no_matter_when_out_is_given(basic_file, tmp_path):
    out = tmp_path / "alerts.ndjson"
    done = subprocess.run(
        [*KMG, "replay", str(basic_file), "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, timeout=120,
        close_fds=True, pass_fds=(), preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [project(a) for a in ndjson(out.read_bytes())] == EXPECTED_BASIC


def test_alerts_to_a_closed_stdout_are_a_usage_error(basic_file):
    done = subprocess.run(
        [*KMG, "replay", str(basic_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO, timeout=120,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode().startswith("kmg: stdout is closed")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("option", ["--out", "--dead-letter", "--summary-json"])
def test_a_full_output_is_one_line_and_status_1(option, scenario_17):
    done = kmg("replay", scenario_17, option, "/dev/full")
    assert done.returncode == 1
    assert (
        done.stderr.decode().splitlines()[-1]
        == "kmg: cannot write /dev/full: No space left on device"
    )
    assert b"Traceback" not in done.stderr


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs /proc/self/mem")
def test_a_file_that_opens_but_cannot_be_read_exits_2():
    assert "cannot read /proc/self/mem" in _one_line_error(kmg("replay", "/proc/self/mem"))


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs /proc/self/mem")
def test_a_run_that_stops_leaves_each_output_as_it_was(basic_file, tmp_path):
    # Found by a new user: an interrupted replay left --out emptied or half written, and a
    # partial alerts file looks like a complete one.
    folder = tmp_path / "outputs"
    folder.mkdir()
    outputs = {
        "--out": folder / "alerts.ndjson",
        "--dead-letter": folder / "dlq.ndjson",
        "--summary-json": folder / "summary.json",
    }
    for path in outputs.values():
        path.write_bytes(b"the previous run\n")
    options = [str(part) for pair in outputs.items() for part in pair]
    done = kmg("replay", basic_file, "/proc/self/mem", *options)  # the second cannot be read
    assert done.returncode == 2
    assert {p.read_bytes() for p in outputs.values()} == {b"the previous run\n"}
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in outputs.values())


def test_a_finished_run_replaces_each_output_keeping_its_mode(basic_file, tmp_path):
    out, new = tmp_path / "old" / "alerts.ndjson", tmp_path / "new" / "alerts.ndjson"
    out.parent.mkdir()
    out.write_bytes(b"the previous run\n")
    out.chmod(0o640)
    new.parent.mkdir()
    assert kmg("replay", basic_file, "--out", out).returncode == 0
    assert [project(a) for a in ndjson(out.read_bytes())] == EXPECTED_BASIC
    assert out.stat().st_mode & 0o777 == 0o640
    assert kmg("replay", basic_file, "--out", new).returncode == 0
    assert new.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert (
        [p.name for p in out.parent.iterdir()]
        == [p.name for p in new.parent.iterdir()]
        == ["alerts.ndjson"]
    )


def test_a_symbolic_link_is_written_through_and_kept(basic_file, tmp_path):
    # Found by review: the link was replaced by a file and its target kept the old content.
    target, link = tmp_path / "target.ndjson", tmp_path / "link.ndjson"
    target.write_bytes(b"the previous run\n")
    link.symlink_to(target.name)
    assert kmg("replay", basic_file, "--out", link).returncode == 0
    assert link.is_symlink()
    assert [project(a) for a in ndjson(target.read_bytes())] == EXPECTED_BASIC


def test_a_name_through_proc_writes_the_open_file_and_appends_as_a_shell_asked(
    basic_file, tmp_path
):
    # Found by review: --out to a link to /proc/self/fd/1 replaced the link and wrote nothing
    # to the file the shell had opened (as root, --out /dev/stdout replaced /dev/stdout).
    (tmp_path / "stdout").symlink_to("/proc/self/fd/1")
    captured = tmp_path / "captured.ndjson"
    captured.write_bytes(b"kept\n")
    script = f'"$@" --out {tmp_path / "stdout"} >> {captured}'
    done = subprocess.run(["bash", "-c", script, "kmg", *KMG, "replay", str(basic_file)],
                          capture_output=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "stdout").is_symlink()
    head, *alerts = captured.read_bytes().splitlines(keepends=True)
    assert head == b"kept\n"
    assert [project(a) for a in ndjson(b"".join(alerts))] == EXPECTED_BASIC


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_file_name_that_is_not_utf8_is_shown_in_dead_letters(basic_file, tmp_path):
    name = os.fsdecode(bytes(tmp_path) + b"/feed\xff.ndjson")
    Path(name).write_bytes(b"garbage\n" + basic_file.read_bytes())
    dlq = tmp_path / "dlq.ndjson"
    done = kmg("replay", name, "--dead-letter", dlq)
    assert done.returncode == 0, done.stderr
    assert [project(a) for a in ndjson(done.stdout)] == EXPECTED_BASIC
    [letter] = [d for d in ndjson(dlq.read_bytes()) if d["raw"] == "garbage"]
    assert letter["source"].endswith("/feed\ufffd.ndjson")


def test_a_line_in_utf16_is_dead_lettered_with_or_without_its_line_end(basic_file, tmp_path):
    line = basic_file.read_bytes().splitlines()[0].decode()
    feed = tmp_path / "utf16.ndjson"
    feed.write_bytes(line.encode("utf-16-le") + b"\n" + line.encode("utf-16-le"))
    dlq = tmp_path / "dlq.ndjson"
    done = kmg("replay", feed, "--dead-letter", dlq)
    assert done.returncode == 0, done.stderr
    assert [d["reason"] for d in ndjson(dlq.read_bytes())] == ["bad_json", "bad_json"]
    assert done.stdout == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_disk_too_full_for_the_sorted_runs_is_a_write_failure(basic_file, monkeypatch, capsys):
    # Found by review: a spill that could not be written was reported as an unreadable input.
    from streams import external_sort, replay

    def full_disk(**kwargs):
        return open("/dev/full", "w+b")  # noqa: SIM115 - the sorter keeps its runs open

    monkeypatch.setattr(external_sort.tempfile, "TemporaryFile", full_disk)
    monkeypatch.setattr(
        replay, "ExternalSorter", lambda chunk_size: external_sort.ExternalSorter(1)
    )
    assert main(["replay", str(basic_file), "--out", os.devnull]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kmg: cannot spill a sorted run in ") and "No space left" in err
