"""Real PostgreSQL and Redis for tests: found on the usual ports, or started throw-away.

`postgres_server()` uses the server on 127.0.0.1:5432 (trust auth, user `postgres`) when one
answers, else starts a cluster of its own with Debian's `initdb` + `pg_ctl` on a free port;
`own_postgres_cluster()` always starts a private one (a test may restart or stop it).
`create_database(server)` makes a database `sealdrop_<random>` for one run; `drop_database`
removes it. `redis_server()` / `own_redis()` do the same for Redis, and `unique_prefix()`
gives a run its own key prefix.

The context managers (`running_postgres`, `private_postgres`, `database`, `running_redis`,
`private_redis`) wrap these for pytest fixtures, and `unavailable(reason)` fails the test
under CI (`CI` set) and skips it elsewhere: a service that cannot be reached never lets a
test pass silently.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
import redis

LOOPBACK = "127.0.0.1"
DEFAULT_PG_PORT = 5432
DEFAULT_REDIS_PORT = 6379
START_TIMEOUT_SECONDS = 60


class ServiceUnavailable(RuntimeError):
    """A service could neither be reached nor started (the message says why)."""


def unavailable(reason: str) -> NoReturn:
    """Fail under CI, skip elsewhere: a missing service never passes silently in CI."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PgServer:
    """A PostgreSQL server on loopback; `directory` is set when this run started it."""

    host: str
    port: int
    user: str = "postgres"
    maintenance_db: str = "postgres"
    directory: Path | None = None

    def conninfo(self, database: str | None = None) -> str:
        """A libpq connection string (for psycopg directly)."""
        db = database or self.maintenance_db
        return f"host={self.host} port={self.port} user={self.user} dbname={db} connect_timeout=5"

    def url(self, database: str, *, driver: str = "psycopg") -> str:
        """A SQLAlchemy URL: `postgresql+psycopg://` (async-capable) by default."""
        return f"postgresql+{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def restart(self) -> None:
        """Restart a cluster this run owns (`pg_ctl restart -m fast`), waiting until it is up."""
        _pg_ctl(
            self._owned(),
            "restart",
            "-m",
            "fast",
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            "-l",
            "log",
        )

    def stop(self) -> None:
        """Stop a cluster this run owns (fast shutdown: sessions are ended)."""
        _pg_ctl(self._owned(), "stop", "-m", "fast", "-w")

    def start(self) -> None:
        """Start again a cluster this run owns and stopped."""
        _pg_ctl(self._owned(), "start", "-w", "-t", str(START_TIMEOUT_SECONDS), "-l", "log")

    def _owned(self) -> Path:
        if self.directory is None:
            raise RuntimeError("only a cluster started by this run may be restarted or stopped")
        return self.directory


@dataclass(frozen=True)
class PgDatabase:
    """One run's database: its name and the URLs to reach it."""

    server: PgServer
    name: str

    @property
    def url(self) -> str:
        """The async SQLAlchemy URL (`postgresql+psycopg://…`)."""
        return self.server.url(self.name)

    @property
    def sync_url(self) -> str:
        """A sync SQLAlchemy URL (psycopg 3 works both ways; this one names it explicitly)."""
        return self.server.url(self.name, driver="psycopg")

    @property
    def conninfo(self) -> str:
        """A libpq connection string for psycopg."""
        return self.server.conninfo(self.name)


def postgres_server() -> PgServer:
    """The server on 127.0.0.1:5432 if it answers, else a throw-away cluster of our own."""
    for database in ("test", "postgres"):
        server = PgServer(LOOPBACK, DEFAULT_PG_PORT, maintenance_db=database)
        if _pg_answers(server):
            return server
    return own_postgres_cluster()


def own_postgres_cluster() -> PgServer:
    """Start a private cluster (trust auth, loopback, a free port) in a temporary folder."""
    bin_dir = _pg_bin_dir()
    directory = Path(tempfile.mkdtemp(prefix="sealdrop-pg-"))
    server = PgServer(LOOPBACK, free_port(), directory=directory)
    try:
        _chown_for_postgres(directory)
        _as_postgres_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(directory / "data"),
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )
        _write_test_config(directory / "data", server.port, directory)
        server.start()
    except (OSError, subprocess.SubprocessError, ServiceUnavailable) as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ServiceUnavailable(f"could not start a PostgreSQL cluster: {exc}") from exc
    return server


def remove_postgres_cluster(server: PgServer) -> None:
    """Stop a cluster this run started and delete its folder (a no-op for a shared server)."""
    if server.directory is None:
        return
    with contextlib.suppress(subprocess.SubprocessError, ServiceUnavailable):
        _pg_ctl(server.directory, "stop", "-m", "immediate", "-w")
    shutil.rmtree(server.directory, ignore_errors=True)


def create_database(server: PgServer) -> PgDatabase:
    """Create a database no earlier run used."""
    name = f"sealdrop_{secrets.token_hex(6)}"
    with psycopg.connect(server.conninfo(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # name is ours: hex only
    return PgDatabase(server, name)


def drop_database(database: PgDatabase) -> None:
    """Drop the run's database, ending any session still connected to it."""
    with psycopg.connect(database.server.conninfo(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')


def _pg_answers(server: PgServer) -> bool:
    try:
        with psycopg.connect(server.conninfo(), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def _pg_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ServiceUnavailable(
            "no PostgreSQL on 127.0.0.1:5432 and no initdb under /usr/lib/postgresql "
            "(run scripts/install-test-deps)"
        )
    return Path(found[-1]).parent


def _write_test_config(data: Path, port: int, socket_dir: Path) -> None:
    # Durability is worthless for a throw-away cluster; speed is not.
    settings = {
        "listen_addresses": f"'{LOOPBACK}'",
        "port": str(port),
        "unix_socket_directories": f"'{socket_dir}'",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
        "shared_buffers": "32MB",
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())


def _pg_ctl(directory: Path, *args: str) -> None:
    command = [str(_pg_bin_dir() / "pg_ctl"), "-D", str(directory / "data"), *args]
    _as_postgres_user(command, cwd=directory)


def _is_root() -> bool:
    return os.geteuid() == 0


def _chown_for_postgres(directory: Path) -> None:
    # initdb and postgres refuse to run as root: the cluster belongs to `postgres`.
    if _is_root():
        shutil.chown(directory, user="postgres", group=None)


def _as_postgres_user(command: list[str], *, cwd: Path | None = None) -> None:
    if _is_root():
        runner = shutil.which("runuser")
        if runner is None:
            raise ServiceUnavailable("running as root and runuser is missing")
        command = [runner, "-u", "postgres", "--", *command]
    # Output goes to a file, not a pipe: a server started by pg_ctl inherits the descriptor,
    # and a pipe would then never reach end-of-file.
    with tempfile.TemporaryFile() as output:
        result = subprocess.run(
            command,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=START_TIMEOUT_SECONDS + 30,
            check=False,
        )
        output.seek(0)
        text = output.read().decode(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-5:])
        name = " ".join(Path(word).name for word in command[:6])
        raise ServiceUnavailable(f"{name}…: exit {result.returncode}: {tail}")


# --------------------------------------------------------------------------------- Redis


@dataclass
class RedisServer:
    """A Redis server on loopback; `process` is set when this run started it."""

    host: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    _paused: bool = field(default=False, repr=False)

    def url(self, db: int = 0) -> str:
        """A `redis://` URL for redis-py."""
        return f"redis://{self.host}:{self.port}/{db}"

    def client(self) -> redis.Redis:
        """A plain synchronous client, for test set-up and inspection."""
        return redis.Redis(host=self.host, port=self.port, socket_timeout=5)

    def stop(self) -> None:
        """Stop a server this run started (it stays stopped)."""
        process = self._owned()
        if self._paused:
            self.resume()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze a server this run started (SIGSTOP): connections hang, nothing answers."""
        os.kill(self._owned().pid, signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """Thaw a paused server (SIGCONT)."""
        os.kill(self._owned().pid, signal.SIGCONT)
        self._paused = False

    def _owned(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError("only a Redis started by this run may be stopped or paused")
        return self.process


def redis_server() -> RedisServer:
    """The server on 127.0.0.1:6379 if it answers, else a throw-away one of our own."""
    server = RedisServer(LOOPBACK, DEFAULT_REDIS_PORT)
    if _redis_answers(server):
        return server
    return own_redis()


def own_redis() -> RedisServer:
    """Start a private redis-server (no persistence) on a free port."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(
            "no Redis on 127.0.0.1:6379 and no redis-server (run scripts/install-test-deps)"
        )
    directory = Path(tempfile.mkdtemp(prefix="sealdrop-redis-"))
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(LOOPBACK, port, process=process, directory=directory)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not _redis_answers(server):
        if process.poll() is not None or time.monotonic() > deadline:
            remove_redis(server)
            raise ServiceUnavailable(f"redis-server on port {port} did not start")
        time.sleep(0.05)
    return server


def remove_redis(server: RedisServer) -> None:
    """Stop a server this run started and delete its folder (a no-op for a shared one)."""
    if server.process is None:
        return
    server.stop()
    if server.directory is not None:
        shutil.rmtree(server.directory, ignore_errors=True)


def unique_prefix() -> str:
    """A Redis key prefix no earlier run used."""
    return f"sealdrop-test-{secrets.token_hex(4)}:"


def delete_prefix(server: RedisServer, prefix: str) -> None:
    """Delete every key under `prefix` (the end of a run on a shared server)."""
    with contextlib.suppress(redis.RedisError):
        client = server.client()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def _redis_answers(server: RedisServer) -> bool:
    client = redis.Redis(
        host=server.host, port=server.port, socket_timeout=1, socket_connect_timeout=1
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


# ---------------------------------------------------------------------- shared helpers


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def running_postgres() -> Iterator[PgServer]:
    """`postgres_server()` for the block; a cluster it started is removed afterwards."""
    try:
        server = postgres_server()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        remove_postgres_cluster(server)


@contextlib.contextmanager
def private_postgres() -> Iterator[PgServer]:
    """`own_postgres_cluster()` for the block, removed afterwards."""
    try:
        server = own_postgres_cluster()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        remove_postgres_cluster(server)


@contextlib.contextmanager
def database(server: PgServer) -> Iterator[PgDatabase]:
    """A fresh database on `server` for the block, dropped afterwards."""
    try:
        created = create_database(server)
    except psycopg.Error as exc:
        unavailable(f"could not create a database on {server.host}:{server.port}: {exc}")
    try:
        yield created
    finally:
        with contextlib.suppress(psycopg.Error):
            drop_database(created)


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """`redis_server()` for the block; a server it started is removed afterwards."""
    try:
        server = redis_server()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        remove_redis(server)


@contextlib.contextmanager
def private_redis() -> Iterator[RedisServer]:
    """`own_redis()` for the block, removed afterwards."""
    try:
        server = own_redis()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        remove_redis(server)
