"""Running the `sealdrop send` / `sealdrop get` client as a real process, as a user would.

The process gets a clean environment: none of our SEALDROP_* settings, no HTTP proxy, its
own state folder (XDG_STATE_HOME), and stdin/stdout/stderr that are pipes (not a
terminal, so no progress bar unless a test asks for one).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.stack import REPO, SEALDROP

TIMEOUT_SECONDS = 120.0
_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True)
class Run:
    """What one client run did."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """stdout's lines."""
        return self.stdout.splitlines()

    def json_lines(self) -> list[dict[str, Any]]:
        """stdout's lines, each parsed as JSON."""
        return [json.loads(line) for line in self.lines]


def client_env(state: Path, **extra: str) -> dict[str, str]:
    """The client's environment: ours without SEALDROP_* or proxies, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SEALDROP_") and k.lower() not in _PROXY_VARS
    }
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", XDG_STATE_HOME=str(state))
    env.update(extra)
    return env


def sealdrop(
    *args: str,
    state: Path,
    cwd: Path,
    stdin: str = "",
    expect_exit: int | None = 0,
    timeout: float = TIMEOUT_SECONDS,
    **env: str,
) -> Run:
    """Run `sealdrop <args>`; fail the test unless it exits with `expect_exit` (None: any)."""
    process = subprocess.run(
        [*SEALDROP, *args],
        cwd=cwd,
        env=client_env(state, **env),
        input=stdin,
        capture_output=True,
        text=True,
        errors="replace",  # `-o -` writes the file's bytes
        timeout=timeout,
        check=False,
    )
    run = Run(process.returncode, process.stdout, process.stderr)
    if expect_exit is not None:
        assert run.exit_code == expect_exit, (
            f"sealdrop {args[0]} exited {run.exit_code}, expected {expect_exit}: {run.stderr}"
        )
    return run


def start_sealdrop(*args: str, state: Path, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """Start `sealdrop <args>` in the background (a test kills it mid-transfer)."""
    return subprocess.Popen(
        [*SEALDROP, *args],
        cwd=cwd,
        env=client_env(state, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
