"""docker/healthcheck.py says unhealthy when it should (test_native_stack.py sees it healthy).

Run as the container runs it: a separate Python process, judged by its exit status.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.deploy.files import REPO
from tests.support.services import free_port

SCRIPT = REPO / "docker" / "healthcheck.py"


def healthcheck(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the health check script with `args`."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30
    )


def test_a_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    beat = tmp_path / "alive"
    beat.touch()
    assert healthcheck("heartbeat", str(beat)).returncode == 0


def test_a_stale_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    beat = tmp_path / "alive"
    beat.touch()
    long_ago = time.time() - 120
    os.utime(beat, (long_ago, long_ago))
    result = healthcheck("heartbeat", str(beat), "--max-age", "60")
    assert result.returncode == 1
    assert "last beat" in result.stderr


def test_a_missing_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    assert healthcheck("heartbeat", str(tmp_path / "never-written")).returncode == 1


def test_an_api_that_does_not_answer_is_unhealthy() -> None:
    assert healthcheck("http", "--port", str(free_port())).returncode == 1
