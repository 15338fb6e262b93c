"""Helpers of the load tests (tests/hostile/test_load.py): locust as a subprocess, CPU and
memory of a process from /proc.

locust runs `bench/locustfile.py` headless in a process of its own (its gevent must never
patch the test process), against loopback only, for a bounded time, and leaves a JSON
report (`LoadReport`): what it uploaded, how each kind of request was answered, and every
answer it did not expect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.stack import REPO, read_status

LOCUST = Path(sys.executable).with_name("locust")
LOCUSTFILE = REPO / "bench" / "locustfile.py"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
STOP_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class LoadReport:
    """What one locust run did and saw."""

    uploads: list[dict[str, Any]]
    answers: dict[str, int]
    problems: list[str]
    requests: int
    failures: int
    output: str

    def count(self, kind: str) -> int:
        """Answers to requests of `kind` (`upload`, `range`, …), whatever their status."""
        return sum(n for key, n in self.answers.items() if key.split()[0] == kind)

    def statuses(self) -> set[int]:
        """Every status the run saw."""
        return {int(key.split()[1]) for key in self.answers}


def run_locust(
    base_url: str,
    *,
    seconds: int,
    users: int,
    results: Path,
    settings: dict[str, str],
) -> LoadReport:
    """Run the locustfile headless against `base_url` (loopback only) for `seconds`."""
    assert urlsplit(base_url).hostname in LOOPBACK, "load goes to this machine only"
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(settings, LOAD_RESULTS=str(results), PYTHONPATH=str(REPO))
    command = [
        str(LOCUST),
        "--locustfile",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_SECONDS),
        "--host",
        base_url,
        "--only-summary",
        "--loglevel",
        "WARNING",
    ]
    try:
        run = subprocess.run(
            command,
            cwd=results.parent,
            env=env,
            capture_output=True,
            text=True,
            # The run, the users' grace to finish a request, and room for a loaded machine.
            timeout=seconds + STOP_TIMEOUT_SECONDS + 300,
            check=False,
        )
    except subprocess.TimeoutExpired as timeout:
        raise AssertionError(f"locust did not stop: {_text(timeout.stdout)[-8000:]}") from None
    output = run.stdout[-8000:] + run.stderr[-8000:]
    assert results.exists(), f"locust left no report (exit {run.returncode}):\n{output}"
    data = json.loads(results.read_text())
    return LoadReport(**data, output=output)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def peak_memory(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in bytes."""
    return read_status(pid, "VmHWM")
