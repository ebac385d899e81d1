"""scripts/demo without a broker: what it refuses before it touches anything."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_web_port_in_use_stops_the_demo_before_it_deletes_or_starts_anything(tmp_path):
    # Found by a new user: the demo took another worker on its port for its own (that one
    # answered the health check) while its own worker had died, and reported success.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = dict(
            os.environ,
            DEMO_WEB_PORT=str(port),
            DEMO_LOG_DIR=str(tmp_path),
            DEMO_DATA_DIR=str(tmp_path / "worker"),
            KMG_KAFKA_BOOTSTRAP="127.0.0.1:1",  # nothing listens: never reached
        )
        (tmp_path / "worker").mkdir()
        done = subprocess.run(
            ["scripts/demo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert f"port {port} is in use by another process: set DEMO_WEB_PORT" in done.stderr
    assert done.stdout == ""  # nothing was removed, created or started
    assert (tmp_path / "worker").is_dir()
