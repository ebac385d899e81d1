"""scripts/render-report: the report as headless Chromium draws it, saved as a PNG."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from tests.conftest import REPO, SCENARIOS
from tests.streams.audit.support import concatenated, run, scenario_inputs

SCRIPT = REPO / "scripts" / "render-report"
CHROMIUM = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.slow
@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)"
)
@pytest.mark.skipif(not SCENARIOS.is_dir(), reason=f"no scenarios at {SCENARIOS}")
def test_render_report_writes_a_full_width_screenshot(cfg, tmp_path):
    run(cfg, concatenated(scenario_inputs()), tmp_path / "audit")
    png = tmp_path / "shot.png"
    done = subprocess.run(
        [str(SCRIPT), str(tmp_path / "audit"), str(png)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(png)
    data = png.read_bytes()
    assert _png_size(data) == (1280, 4000)
    # A blank page compresses to almost nothing; text and charts do not.
    assert len(data) > 100_000


def test_render_report_refuses_a_folder_without_report(tmp_path):
    done = subprocess.run([str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "report.html not found" in done.stderr
