"""The benchmark's input feeds, generated once into bench-data/ (git-ignored) and reused."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from bench_deployment import REPO

PY = sys.executable


def cached_feed(folder: Path, patients: int, days: int, events: int, seed: int) -> Path:
    """Generate the synthetic feed once (bench-data/ is git-ignored); later runs reuse it."""
    path = folder / f"feed-p{patients}-d{days}-e{events}-s{seed}.ndjson"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        args = ["--patients", str(patients), "--days", str(days), "--events", str(events)]
        args += ["--seed", str(seed), "--out", str(tmp)]
        subprocess.run([PY, "-m", "streams.synthetic_feed", *args], check=True, cwd=REPO)
        tmp.rename(path)
    return path


def _state_events(pid: str, c: float) -> list[tuple[float, dict[str, Any]]]:
    """Return a patient's morning K and Mg results, a KCl order, a sodium: (availability, event)."""

    def ts(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    def lab(n: int, code: str, value: float, unit: str, resulted: float) -> dict[str, Any]:
        return {
            "kind": "lab_result",
            "event_id": f"{pid}-{n}",
            "patient_id": pid,
            "encounter_id": f"E{pid}",
            "location": "WARD-4E",
            "code": code,
            "value": value,
            "unit": unit,
            "collected_at": ts(c),
            "resulted_at": ts(resulted),
            "status": "final",
            "result_id": None,
            "flags": None,
        }

    order = {
        "kind": "medication",
        "event_id": f"{pid}-3",
        "patient_id": pid,
        "encounter_id": f"E{pid}",
        "location": "WARD-4E",
        "action": "ordered",
        "code": "8591",
        "name": "Potassium chloride ER 20 mEq tablet",
        "route": "PO",
        "dose": 20,
        "dose_unit": "mEq",
        "at": ts(c + 3600),
        "order_id": f"O{pid}",
    }
    return [
        (c + 1800, lab(1, "2823-3", 4.1, "mmol/L", c + 1800)),
        (c + 2100, lab(2, "19123-9", 2.0, "mg/dL", c + 2100)),
        (c + 3600, order),
        (c + 1800, lab(4, "2951-2", 139, "mmol/L", c + 1800)),
    ]


def cached_state_feed(folder: Path, patients: int, per_patient: int) -> Path:
    """Write (once) a feed of `per_patient` events for each of `patients` over one day."""
    path = folder / f"state-p{patients}-e{per_patient}.ndjson"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        base = 1_709_251_200.0  # 2024-03-01T00:00:00Z
        spacing = 86_400 / patients
        rows = [
            row
            for i in range(patients)
            for row in _state_events(f"ST{i:07d}", base + i * spacing)[:per_patient]
        ]
        rows.sort(key=lambda row: row[0])
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.writelines(orjson.dumps(event) + b"\n" for _, event in rows)
        tmp.rename(path)
    return path
