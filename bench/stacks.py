"""Sealdrop as the benchmark runs it: real `sealdrop` processes on loopback.

`Embedded` is one `sealdrop serve` (SQLite, a local folder, the worker in process).
`Production` is `sealdrop serve` with `SEALDROP_WORKER=off` plus one `sealdrop worker`, on
PostgreSQL, Redis and the S3 endpoint (`Backends`). Each process has a `Probe`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.system import Probe, free_port, wait_for_http

REPO = Path(__file__).resolve().parents[1]
SEALDROP = (sys.executable, "-c", "from app.cli import main; main()")
# Settings every benchmarked process gets: no upload rate limit (the bench uploads fast
# from one address), room for the 5 GiB case and the time to seal it before answering
# (an upload is measured until its link is ready), and purges that need not wait.
BENCH_SETTINGS = {
    "SEALDROP_LOG_LEVEL": "warning",
    "SEALDROP_UPLOAD_RATE_PER_MINUTE": "0",
    "SEALDROP_MAX_UPLOAD_BYTES": "6GiB",
    "SEALDROP_UPLOAD_WAIT_SECONDS": "900",
    "SEALDROP_PURGE_GRACE_SECONDS": "0",
}


class Stack:
    """Sealdrop processes sharing one configuration."""

    name = "sealdrop"

    def __init__(self, root: Path, env: Mapping[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {**_clean_environment(), **BENCH_SETTINGS, **env}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.probes: list[Probe] = []

    def start(self) -> None:
        """Start the API and wait until it answers."""
        api = self._spawn("api", "serve", "--port", str(self.port))
        wait_for_http(f"{self.base_url}/readyz", process=api)

    def stop(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL)."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def purge(self) -> None:
        """One janitor pass now (deleted links lose their blobs)."""
        self.run("purge")

    def run(self, *args: str) -> None:
        """Run one `sealdrop` command with this stack's settings."""
        subprocess.run(
            [*SEALDROP, *args], env=self.env, cwd=REPO, check=True, stdout=subprocess.DEVNULL
        )

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [*SEALDROP, *args], env=self.env, cwd=REPO, stdout=log, stderr=log
        )
        self.processes[name] = process
        self.probes.append(Probe(name, process.pid))
        return process


class Embedded(Stack):
    """The embedded default: one process, SQLite and a folder under `root`."""

    name = "embedded"

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        super().__init__(root, {"SEALDROP_DATA_DIR": str(root / "data"), **(env or {})})


@dataclass(frozen=True)
class Backends:
    """Where the production stack's services are (see bench.production)."""

    database_url: str
    redis_url: str | None
    blobs_url: str
    staging_url: str
    s3_env: Mapping[str, str]
    master_keys: str


class Production(Stack):
    """An API process and a worker process on PostgreSQL, Redis and S3."""

    name = "production"

    def __init__(
        self,
        root: Path,
        backends: Backends,
        env: Mapping[str, str] | None = None,
        *,
        worker: bool = True,
    ) -> None:
        settings = {
            "SEALDROP_WORKER": "off",
            "SEALDROP_DATABASE_URL": backends.database_url,
            "SEALDROP_STORAGE_URL": backends.blobs_url,
            "SEALDROP_STAGING_URL": backends.staging_url,
            "SEALDROP_MASTER_KEYS": backends.master_keys,
            "SEALDROP_REDIS_PREFIX": f"bench-{os.getpid()}:",
            **backends.s3_env,
        }
        if backends.redis_url:
            settings["SEALDROP_REDIS_URL"] = backends.redis_url
        super().__init__(root, {**settings, **(env or {})})
        self.with_worker = worker
        self.worker_metrics_port = free_port()

    def start(self) -> None:
        """Migrate, then start the API and (unless asked not to) one worker."""
        self.run("migrate")
        super().start()
        if not self.with_worker:
            return
        worker = self._spawn(
            "worker",
            "worker",
            "--concurrency",
            "2",
            "--metrics-port",
            str(self.worker_metrics_port),
        )
        wait_for_http(f"http://127.0.0.1:{self.worker_metrics_port}/metrics", process=worker)


def _clean_environment() -> dict[str, str]:
    # Settings or credentials of the shell must not leak into the benchmarked processes.
    return {k: v for k, v in os.environ.items() if not k.startswith(("SEALDROP_", "AWS_"))}
