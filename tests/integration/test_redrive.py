"""`kmg redrive` on the real broker: chosen dead letters go back to their topics, whole."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from streams.worker_processes import KMG, REPO
from tests.integration.stream_harness import Deployment

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

LAB = b'{"kind": "lab_result", "event_id": "e1", "patient_id": "P1"}'
MED = b'{"kind": "medication", "event_id": "e2", "patient_id": "P2"}'


def _letter(reason: str, source: str, offset: int, **extra: str) -> list[tuple[str, bytes]]:
    headers = {"reason": reason, "detail": "d", "source_topic": source, "source_partition": "0",
               "source_offset": str(offset), **extra}  # fmt: skip
    return [(k, v.encode()) for k, v in headers.items()]


async def _send(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes | None, bytes, Any]],
    at_ms: int | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(
                topic, value=value, key=key, headers=headers, timestamp_ms=at_ms
            )
    finally:
        await producer.stop()


def _redrive(deployment: Deployment, *args: str) -> str:
    done = subprocess.run(
        [str(KMG), "redrive", *args],
        env=deployment.env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stderr.strip().splitlines()[-1]


def _read(deployment: Deployment, name: str, want: int) -> list[Any]:
    """Read a topic until `want` records came, then a second more (3 s when none is wanted)."""
    got: list[Any] = []

    def take(records: list[Any]) -> bool:
        got.extend(records)
        return want > 0 and len(got) >= want

    asyncio.run(deployment.read_topic(name, take, 30 if want else 3, settle=1))
    return got


def test_chosen_dead_letters_go_back_whole_to_their_source_topics(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    deployment.create_topics()
    labs, meds = deployment.inputs
    letters = [
        (b"P1", LAB, _letter("patient_overloaded", labs, 7)),
        (b"P2", MED, _letter("ahead_of_clock", meds, 3)),
        (b"P3", b"{not json", _letter("bad_json", labs, 8)),  # not chosen
        (b"P4", LAB[:10], _letter("patient_overloaded", labs, 9, truncated_from_bytes="2000000")),
        (None, b'{"control": "x"}', _letter("bad_control", deployment.topic("ticks"), 1)),
    ]
    try:
        asyncio.run(_send(deployment.bootstrap, deployment.topic("dead-letter"), letters))
        chosen = ("--reason", "patient_overloaded", "--reason", "ahead_of_clock")
        dry = _redrive(deployment, *chosen, "--dry-run")
        assert dry == (
            f"redrive: read 5 dead letters; would send: {labs} 1, {meds} 1; "
            "left: only its head was kept 1, other reason 2"
        )
        assert _read(deployment, "labs", 0) == [] and _read(deployment, "meds", 0) == []

        done = _redrive(deployment, *chosen)
        assert done == dry.replace("would send", "sent")
        [lab] = _read(deployment, "labs", 1)
        [med] = _read(deployment, "meds", 1)
        assert (lab.key, lab.value, med.key, med.value) == (b"P1", LAB, b"P2", MED)
        assert dict(lab.headers)["redriven_from"].startswith(
            deployment.topic("dead-letter").encode()
        )
    finally:
        asyncio.run(deployment.delete_topics())


def test_since_leaves_the_letters_written_before_it(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path)
    deployment.create_topics()
    labs, _ = deployment.inputs
    dead_letter = deployment.topic("dead-letter")
    day = 86_400_000
    now_ms = int(time.time() * 1000)
    old = (b"P1", LAB, _letter("bad_unit:mmol", labs, 1))
    new = (b"P5", LAB.replace(b"P1", b"P5"), _letter("bad_unit:mmol", labs, 2))
    try:
        asyncio.run(_send(deployment.bootstrap, dead_letter, [old], at_ms=now_ms - 3 * day))
        asyncio.run(_send(deployment.bootstrap, dead_letter, [new], at_ms=now_ms - day))
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now_ms - 2 * day) / 1000))
        done = _redrive(deployment, "--reason", "bad_unit", "--since", since)
        assert done == f"redrive: read 1 dead letters; sent: {labs} 1; left: none"
        [lab] = _read(deployment, "labs", 1)
        assert (lab.key, lab.value) == (new[0], new[1])
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now_ms / 1000 + 60))
        assert _redrive(deployment, "--reason", "bad_unit", "--since", later) == (
            "redrive: read 0 dead letters; sent: nothing; left: none"
        )
    finally:
        asyncio.run(deployment.delete_topics())
