"""Sealdrop as real processes on loopback, for end-to-end tests that talk through sockets.

A `Stack` is one running deployment: an API process (`sealdrop serve`), maybe worker
processes, a database and an object store. Tests drive it with real clients (curl, wget)
at `base_url` and look behind it with `sql`, `read_object`, `list_objects`, … so that
they can check what rests where. `EmbeddedStack` is the embedded default (SQLite, a local
folder, the worker in the API process unless `worker="off"`); other modes subclass `Stack`
and give it their own `start` and URLs.

Every process's output goes to its own log file under the stack's folder (`log_tails`
shows the end of each, for failure reports). `stop` ends what the stack started (SIGTERM,
then SIGKILL) and is safe to call twice; an `atexit` hook calls it if a test run dies.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from sqlalchemy import Engine, Row, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from app.settings import Settings
from app.storage import ObjectStore, open_store
from app.storage.object_keys import STAGING_PREFIX

REPO = Path(__file__).resolve().parents[2]
# `python -c` rather than the console script: the venv may not have the package installed.
SEALDROP = (sys.executable, "-c", "from app.cli import main; main()")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 80
# Settings of a `sealdrop purge` that takes every object and unfinished write as old: the
# sweep age must exceed the longest upload, which a process that only purges never gets.
SWEEP_NOW = {"SEALDROP_MAX_UPLOAD_SECONDS": "0.001", "SEALDROP_STAGING_MAX_AGE_SECONDS": "0.002"}
PR_SET_PDEATHSIG = 1  # linux/prctl.h

T = TypeVar("T")
WorkerMode = Literal["embedded", "off"]


class StackError(RuntimeError):
    """The stack could not start, or a process of it misbehaved (message has the log tail)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll `condition` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what or condition}")
        time.sleep(interval)


def _in_own_thread(coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a fresh event loop in a thread of its own.

    A thread keeps `asyncio.run` away from the main thread's event loop, which
    pytest-asyncio owns for the whole session.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="stack-storage")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


class _OnlyGivenSettings(Settings):
    """Settings from the values given only: the stack's processes never see our SEALDROP_*."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class Stack(ABC):
    """One running Sealdrop deployment, seen from outside its processes.

    `worker="embedded"` runs the mode's usual workers (in the API process for the
    embedded mode); `worker="off"` runs none, and the test starts `sealdrop worker`
    processes itself with `start_worker`. `env` holds `SEALDROP_*` settings given to every
    process of the stack. Objects are read and written with the app's own store code in
    this process (so an S3 store finds its credentials the way boto3 does, here).
    """

    mode: ClassVar[str]

    def __init__(
        self,
        root: Path,
        *,
        worker: WorkerMode = "embedded",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.logs_dir = root / "logs"
        self.worker_mode: WorkerMode = worker
        self.env: dict[str, str] = {"SEALDROP_WORKER": worker, "SEALDROP_LOG_LEVEL": "info"}
        self.env.update(env or {})
        self.base_url = ""
        self.api: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: dict[str, Path] = {}
        self._engine: Engine | None = None
        atexit.register(self.stop)

    # -- life cycle ---------------------------------------------------------------------

    @abstractmethod
    def start(self) -> None:
        """Bring the stack up; return once `/readyz` answers 200."""

    def stop(self) -> None:
        """End every process this stack started (workers first), and release connections."""
        for process in [*self.workers, *([self.api] if self.api else [])]:
            terminate(process)
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def api_pid(self) -> int:
        """The process id of the API server (in embedded mode it runs the worker too)."""
        if self.api is None:
            raise StackError("the API is not running")
        return self.api.pid

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes this stack started."""
        return [process.pid for process in self.workers if process.poll() is None]

    def kill_api(self) -> None:
        """SIGKILL the API process (a crash: no drain, no cleanup) and reap it."""
        if self.api is not None and self.api.poll() is None:
            self.api.kill()
            self.api.wait(STOP_TIMEOUT_SECONDS)

    def start_worker(self, **env: str) -> subprocess.Popen[bytes]:
        """Start a `sealdrop worker` process with the stack's settings plus `env`."""
        name = f"worker-{len(self.workers) + 1}"
        process = self.spawn(name, ["worker"], env)
        self.workers.append(process)
        return process

    def run_cli(
        self, *args: str, timeout: float = 120.0, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run one `sealdrop …` command against the stack and return what it did."""
        return subprocess.run(
            [*SEALDROP, *args],
            cwd=REPO,
            env=self.process_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- processes ----------------------------------------------------------------------

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment of the stack's processes: ours without SEALDROP_*, then the stack's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEALDROP_")}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
        env.update(self.env)
        env.update(extra or {})
        return env

    def spawn(
        self, name: str, args: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `sealdrop <args>` in its own session, its output in `logs/<name>.log`."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        self._logs[name] = log_path
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [*SEALDROP, *args],
                cwd=REPO,
                env=self.process_env(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of pytest must not reach it twice
                preexec_fn=_die_with_parent,
            )

    def wait_ready(
        self, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS
    ) -> None:
        """Wait for `/readyz` to answer 200; fail early if `process` exits."""
        # No proxy from the environment may stand between us and loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"the API exited with {process.returncode}\n{self.log_tails()}")
            try:
                with opener.open(f"{self.base_url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise StackError(f"/readyz did not answer 200 within {timeout:.0f} s\n{self.log_tails()}")

    def log_tails(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of every process's log, each under its name."""
        parts = []
        for name, path in self._logs.items():
            try:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                tail = ["(no log)"]
            parts.append(f"----- {self.mode} {name} ({path}) -----\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- what rests behind the API ------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings the stack's processes read, resolved as the app resolves them."""
        values = {k.removeprefix("SEALDROP_").lower(): v for k, v in self.env.items()}
        return _OnlyGivenSettings.model_validate(values)

    @property
    def database_url(self) -> str:
        """A synchronous SQLAlchemy URL of the stack's database."""
        url = make_url(self.settings.resolved_database_url)
        if url.drivername == "sqlite+aiosqlite":
            url = url.set(drivername="sqlite")
        return url.render_as_string(hide_password=False)

    def sql(self, statement: str, **params: Any) -> list[Row[Any]]:
        """Run one SQL statement in its own committed transaction; the rows it returned."""
        if self._engine is None:
            self._engine = create_engine(self.database_url, poolclass=NullPool)
        with self._engine.begin() as connection:
            result = connection.execute(text(statement), params)
            return list(result.all()) if result.returns_rows else []

    def read_object(self, key: str) -> bytes:
        """The whole stored object `key` (`blobs/<id>`, `staging/<job id>`)."""

        async def read(store: ObjectStore) -> bytes:
            return b"".join([chunk async for chunk in store.read(key)])

        return self._with_store(key, read)

    def write_object(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there (to tamper with a blob)."""

        async def write(store: ObjectStore) -> None:
            async with await store.open_writer(key, size_hint=len(data)) as writer:
                await writer.write(data)
                await writer.commit()

        self._with_store(key, write)

    def start_unfinished_write(self, key: str, data: bytes) -> None:
        """Begin writing `key` and leave the write unfinished, as a process killed in the
        middle of it would (a temporary file, or an S3 multipart upload)."""

        async def begin(store: ObjectStore) -> None:
            writer = await store.open_writer(key, size_hint=None)
            await writer.write(data)

        self._with_store(key, begin)

    def list_objects(self, prefix: str = "") -> list[str]:
        """Keys of every committed object under `prefix`, in both stores, sorted."""

        async def keys(store: ObjectStore) -> list[str]:
            return [info.key async for info in store.list(prefix)]

        return self._keys_in_every_store(keys)

    def list_pending_writes(self, prefix: str = "") -> list[str]:
        """Keys of unfinished writes (temporary files, multipart uploads), in both stores."""

        async def keys(store: ObjectStore) -> list[str]:
            return [pending.key async for pending in store.list_pending_uploads(prefix)]

        return self._keys_in_every_store(keys)

    def places_holding(self, needle: bytes) -> list[str]:
        """Every stored object whose bytes contain `needle` (to look for plaintext at rest).

        Subclasses add the other places their processes write to (files, logs).
        """

        def holds_needle(key: str) -> bool:
            async def search(store: ObjectStore) -> bool:
                return await chunks_contain(store.read(key), needle)

            return self._with_store(key, search)

        return [key for key in self.list_objects() if holds_needle(key)]

    def _keys_in_every_store(
        self, keys: Callable[[ObjectStore], Awaitable[list[str]]]
    ) -> list[str]:
        settings = self.settings
        urls = {settings.resolved_storage_url, settings.resolved_staging_url}
        return sorted({key for url in urls for key in self._on(url, keys)})

    def _with_store(self, key: str, action: Callable[[ObjectStore], Awaitable[T]]) -> T:
        settings = self.settings
        is_staging = key.startswith(STAGING_PREFIX)
        url = settings.resolved_staging_url if is_staging else settings.resolved_storage_url
        return self._on(url, action)

    def _on(self, url: str, action: Callable[[ObjectStore], Awaitable[T]]) -> T:
        async def run() -> T:
            store = open_store(url)
            try:
                return await action(store)
            finally:
                await store.close()

        return _in_own_thread(run)


class EmbeddedStack(Stack):
    """`sealdrop serve` alone: SQLite and objects in a fresh data dir, worker in-process."""

    mode = "embedded"

    def __init__(
        self,
        root: Path,
        *,
        worker: WorkerMode = "embedded",
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(root, worker=worker, env=env)
        self.data_dir = root / "data"
        self.env.setdefault("SEALDROP_DATA_DIR", str(self.data_dir))

    def start(self) -> None:
        """Start the API on a free port (another on a clash) and wait until it is ready."""
        for _attempt in range(3):
            port = free_port()
            self.base_url = f"http://127.0.0.1:{port}"
            self.api = self.spawn("api", ["serve", "--port", str(port), "--grace", "3"])
            try:
                self.wait_ready(self.api)
                return
            except StackError:
                terminate(self.api)
                if "address already in use" not in self.log_tails().lower():
                    raise
        raise StackError(f"no free port found\n{self.log_tails()}")

    def files(self) -> list[Path]:
        """Every file under the data dir (database, key file, objects, temporaries)."""
        return sorted(path for path in self.data_dir.rglob("*") if path.is_file())

    def places_holding(self, needle: bytes) -> list[str]:
        """Every file of the data dir, and every log, whose bytes contain `needle`."""
        candidates = [*self.files(), *sorted(self.logs_dir.glob("*.log"))]
        return [str(path) for path in candidates if file_contains(path, needle)]


def file_contains(path: Path, needle: bytes, chunk_size: int = 1 << 20) -> bool:
    """Whether `needle` occurs in the file, read in chunks."""
    search = _Search(needle)
    try:
        with path.open("rb") as file:
            while chunk := file.read(chunk_size):
                if search.feed(chunk):
                    return True
    except FileNotFoundError:
        pass  # a temporary that went away meanwhile
    return False


async def chunks_contain(chunks: AsyncIterator[bytes], needle: bytes) -> bool:
    """Whether `needle` occurs in a stream of chunks."""
    search = _Search(needle)
    async for chunk in chunks:
        if search.feed(chunk):
            return True
    return False


class _Search:
    """Looks for a needle in chunks fed one by one; a match may span a boundary."""

    def __init__(self, needle: bytes) -> None:
        self.needle = needle
        self.tail = b""

    def feed(self, chunk: bytes) -> bool:
        window = self.tail + chunk
        self.tail = window[max(0, len(window) - len(self.needle) + 1) :]
        return self.needle in window


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, however it dies.

    Fixtures and `atexit` stop the stack when pytest ends normally; this covers a pytest
    that is killed, so that no server is left running on a shared machine.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM `process`, SIGKILL it if it is still there after `timeout`; reap it."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout)


def read_status(pid: int, field: str) -> int:
    """A `kB` field of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, …), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) * 1024
    raise KeyError(field)
