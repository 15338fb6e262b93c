"""Sealdrop as production runs it: separate API and worker processes on shared services.

`ProductionStack` is the deployment of the design card as real processes on loopback:
PostgreSQL (a database of its own), Redis (a key prefix of its own), an S3 endpoint
(`tests.support.s3`: SeaweedFS, or the server `SEALDROP_TEST_S3_URL` names; two buckets of
its own: blobs and staging), then what `sealdrop storage init` and `sealdrop migrate` do
(run in the test process), one `sealdrop serve` with `SEALDROP_WORKER=off` and `sealdrop worker
--concurrency N` processes. It runs the same code as `EmbeddedStack`; only settings differ.

The services behind it (`Backends`: the S3 endpoint, the PostgreSQL and Redis servers) are
found or started once per test session by `shared_backends()` and ended by
`stop_shared_backends()` (the `production_backends_cleanup` fixture calls it at the end of
the session). S3 credentials reach the processes only as `AWS_*` variables, never in a URL.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from app import migrate
from app.crypto.keys import new_key_entry
from app.db.session import make_engine
from app.settings import Settings
from app.storage.object_keys import STAGING_PREFIX
from app.storage.s3 import init_buckets
from tests.support import s3 as s3_support
from tests.support.services import (
    PgDatabase,
    PgServer,
    RedisServer,
    ServiceUnavailable,
    create_database,
    delete_prefix,
    drop_database,
    postgres_server,
    redis_server,
    remove_postgres_cluster,
    remove_redis,
    unavailable,
    unique_prefix,
)
from tests.support.stack import (
    REPO,
    START_TIMEOUT_SECONDS,
    Stack,
    StackError,
    WorkerMode,
    file_contains,
    free_port,
    terminate,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_WORKERS = 2
DEFAULT_CONCURRENCY = 2
SEALED_LINE = re.compile(r"job (\S+) sealed \(attempt (\d+)\)")
_WORKER_STARTED = re.compile(r"worker (\S+) started \(concurrency \d+\)")
# Variables of the test process that must not reach the stack's processes: they would
# point boto3 at other credentials or another endpoint than the stack's own.
_FOREIGN_PREFIXES = ("SEALDROP_", "AWS_")


@dataclass
class Backends:
    """The S3 endpoint and the PostgreSQL and Redis servers of a test session."""

    s3_endpoint: s3_support.S3Endpoint
    postgres: PgServer
    redis: RedisServer

    @property
    def s3_env(self) -> dict[str, str]:
        """The endpoint's variables for boto3 (`AWS_ENDPOINT_URL`, keys, region)."""
        return self.s3_endpoint.env

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint, `http://127.0.0.1:<port>`."""
        return self.s3_endpoint.url

    def credentials(self) -> dict[str, str]:
        """The S3 credentials and region, as the `AWS_*` variables boto3's chain reads."""
        names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")
        return {name: self.s3_env[name] for name in names if name in self.s3_env}

    def s3(self) -> S3Client:
        """A plain boto3 client of the endpoint, for set-up and inspection."""
        return s3_support.client(self.s3_env)

    def stop(self) -> None:
        """End what the session started (an external endpoint or a shared server stays)."""
        remove_redis(self.redis)
        remove_postgres_cluster(self.postgres)
        self.s3_endpoint.stop()


def start_backends() -> Backends:
    """Find or start the three services; raise ServiceUnavailable if one cannot be had."""
    try:
        endpoint = s3_support.start_endpoint()
    except s3_support.S3Unavailable as exc:
        raise ServiceUnavailable(str(exc)) from exc
    postgres = None
    try:
        postgres = postgres_server()
        redis = redis_server()
    except ServiceUnavailable:
        if postgres is not None:
            remove_postgres_cluster(postgres)
        endpoint.stop()
        raise
    return Backends(s3_endpoint=endpoint, postgres=postgres, redis=redis)


_shared: Backends | None = None


def shared_backends() -> Backends:
    """The session's backends, started on first use (skipped, or failed under CI, if not)."""
    global _shared
    if _shared is None:
        try:
            _shared = start_backends()
        except ServiceUnavailable as exc:
            unavailable(f"the production stack's services are unavailable: {exc}")
        atexit.register(stop_shared_backends)
    return _shared


def stop_shared_backends() -> None:
    """End the session's backends if they were started; safe to call twice."""
    global _shared
    backends, _shared = _shared, None
    if backends is not None:
        backends.stop()


@pytest.fixture(scope="session", autouse=True)
def production_backends_cleanup() -> Iterator[None]:
    """Stop the shared backends at the end of the session (a no-op if never started)."""
    yield
    stop_shared_backends()


def production_env(
    *,
    database_url: str,
    redis_url: str,
    redis_prefix: str,
    blobs_url: str,
    staging_url: str,
    master_keys: str,
    credentials: Mapping[str, str],
) -> dict[str, str]:
    """The variables a production process gets: settings, then S3 credentials."""
    return {
        "SEALDROP_WORKER": "off",
        "SEALDROP_LOG_LEVEL": "info",
        "SEALDROP_DATABASE_URL": database_url,
        "SEALDROP_REDIS_URL": redis_url,
        "SEALDROP_REDIS_PREFIX": redis_prefix,
        "SEALDROP_STORAGE_URL": blobs_url,
        "SEALDROP_STAGING_URL": staging_url,
        "SEALDROP_MASTER_KEYS": master_keys,
        **credentials,
    }


def production_setting_names() -> frozenset[str]:
    """The `SEALDROP_*` settings a production stack sets (test overrides aside)."""
    placeholders = production_env(
        database_url="",
        redis_url="",
        redis_prefix="",
        blobs_url="",
        staging_url="",
        master_keys="",
        credentials={},
    )
    return frozenset(name for name in placeholders if name.startswith("SEALDROP_"))


async def _set_up(settings: Settings) -> None:
    """Create and configure the buckets, then migrate the database (the two commands)."""
    await init_buckets(
        settings.resolved_storage_url,
        settings.resolved_staging_url,
        public_url=settings.public_url,
    )
    engine = make_engine(settings.resolved_database_url, pool_size=1)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


def worker_pid(lease_owner: str) -> int:
    """The pid in a worker's lease owner name (`host:pid:suffix`)."""
    return int(lease_owner.split(":")[-2])


def s3_url(bucket: str, endpoint_url: str) -> str:
    """A storage URL of `bucket` at a custom endpoint (credentials stay out of it)."""
    return f"s3://{bucket}?endpoint_url={endpoint_url}"


@dataclass(frozen=True)
class PendingWrite:
    """One incomplete multipart upload."""

    bucket: str
    key: str
    upload_id: str


@dataclass
class ApiProcess:
    """One more `sealdrop serve` of a stack, on a port of its own, sharing the stack's services."""

    base_url: str
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        """The process id of this API server."""
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM the process (SIGKILL if it lingers) and reap it; safe to call twice."""
        terminate(self.process)


def wait_answers_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS
) -> bool:
    """Wait for `<url>/readyz` to answer 200 (True); False if `process` exits or time runs out."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with opener.open(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


class ProductionStack(Stack):
    """API and worker processes on PostgreSQL, Redis and S3, each of its own for this stack.

    `worker="embedded"` (the e2e suite's default: "the stack seals uploads") starts
    `workers` worker processes; `worker="off"` starts none (a test adds them with
    `start_worker`). The API process always runs with `SEALDROP_WORKER=off`.
    """

    mode = "production"

    def __init__(
        self,
        root: Path,
        *,
        worker: WorkerMode = "embedded",
        env: Mapping[str, str] | None = None,
        workers: int = DEFAULT_WORKERS,
        concurrency: int = DEFAULT_CONCURRENCY,
        backends: Backends | None = None,
    ) -> None:
        self.backends = backends or shared_backends()
        self.initial_workers = workers if worker == "embedded" else 0
        self.concurrency = concurrency
        self.database: PgDatabase | None = None
        self.redis_prefix = unique_prefix()
        label = s3_support.unique_bucket_name("e2e").removeprefix("sealdrop-e2e-")
        self.blobs_bucket = f"sealdrop-blobs-{label}"
        self.staging_bucket = f"sealdrop-staging-{label}"
        self._cleaned = False
        self.extra_apis: list[ApiProcess] = []
        super().__init__(root, worker="off", env=env)
        # The stack's own values come last: overrides tune settings, never the wiring.
        self.env.update(self._wiring())

    def _wiring(self) -> dict[str, str]:
        try:
            self.database = create_database(self.backends.postgres)
        except psycopg.Error as exc:
            unavailable(f"could not create a database: {exc}")
        endpoint = self.backends.endpoint_url
        return production_env(
            database_url=self.database.url,
            redis_url=self.backends.redis.url(),
            redis_prefix=self.redis_prefix,
            blobs_url=s3_url(self.blobs_bucket, endpoint),
            staging_url=s3_url(self.staging_bucket, endpoint),
            master_keys=new_key_entry("k1"),
            credentials=self.backends.credentials(),
        )

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """storage init and migrate, then the API and the workers; return once all are up."""
        self._run_setup()
        workers = [self.start_worker(wait=False) for _ in range(self.initial_workers)]
        self._start_api()
        for process in workers:
            self.wait_worker_started(process)

    def _run_setup(self) -> None:
        # What `sealdrop storage init` and `sealdrop migrate` run, in this process: as two
        # commands they cost seconds of imports for every stack the suite starts.
        # The stack's variables (boto3 finds the S3 credentials there) for the duration.
        with s3_support.environment(self.process_env()), ThreadPoolExecutor(1) as thread:
            # A thread: a loop of its own, whether or not one runs in this one.
            setup = thread.submit(asyncio.run, _set_up(Settings()))
            setup.result(START_TIMEOUT_SECONDS)

    def _start_api(self) -> None:
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

    def start_api(self, **env: str) -> ApiProcess:
        """Start one more `sealdrop serve` (the stack's settings plus `env`) on a port of its
        own, sharing the stack's database, Redis and buckets; return once it is ready.

        It is stopped with the stack; `ApiProcess.stop` ends it earlier.
        """
        for _attempt in range(3):
            port = free_port()
            name = f"api-{len(self.extra_apis) + 2}-{port}"
            process = self.spawn(name, ["serve", "--port", str(port), "--grace", "3"], env)
            api = ApiProcess(f"http://127.0.0.1:{port}", process)
            if wait_answers_ready(api.base_url, process):
                self.extra_apis.append(api)
                return api
            api.stop()
            if "address already in use" not in self.log_tails().lower():
                break
        raise StackError(f"an extra API process did not become ready\n{self.log_tails()}")

    def start_worker(  # type: ignore[override]
        self,
        *,
        concurrency: int | None = None,
        grace: float | None = None,
        wait: bool = True,
        **env: str,
    ) -> subprocess.Popen[bytes]:
        """Start `sealdrop worker --concurrency N [--grace S]`; by default wait until it runs."""
        name = f"worker-{len(self.workers) + 1}"
        args = ["worker", "--concurrency", str(concurrency or self.concurrency)]
        if grace is not None:
            args += ["--grace", str(grace)]
        process = self.spawn(name, args, env)
        self.workers.append(process)
        if wait:
            self.wait_worker_started(process)
        return process

    def wait_worker_started(
        self, process: subprocess.Popen[bytes], timeout: float = START_TIMEOUT_SECONDS
    ) -> None:
        """Wait for the worker's "started" log line; fail early if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(f"a worker exited with {process.returncode}\n{self.log_tails()}")
            if _WORKER_STARTED.search(self.worker_log(process)):
                return
            time.sleep(0.05)
        raise StackError(f"a worker did not start within {timeout:.0f} s\n{self.log_tails()}")

    def stop(self) -> None:
        """End the processes, then drop the database, the Redis keys and the buckets."""
        # SIGTERM to all at once: each then drains in parallel with the others.
        extra = [api.process for api in self.extra_apis]
        for process in [*self.workers, *extra, *([self.api] if self.api else [])]:
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        for api in self.extra_apis:
            api.stop()
        super().stop()
        if self._cleaned:
            return
        self._cleaned = True
        if self.database is not None:
            with suppress(psycopg.Error):
                drop_database(self.database)
        delete_prefix(self.backends.redis, self.redis_prefix)
        for bucket in (self.blobs_bucket, self.staging_bucket):
            with suppress(Exception):  # a bucket storage init never made, a stopped endpoint
                s3_support.empty_and_delete_bucket(self.s3, bucket)

    def process_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The test process's environment minus SEALDROP_* and AWS_*, then the stack's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
        env.update(self.env)
        env.update(extra or {})
        return env

    # -- processes ----------------------------------------------------------------------

    def worker_log(self, process: subprocess.Popen[bytes]) -> str:
        """Everything a worker process has logged so far."""
        index = self.workers.index(process)
        path = self.logs_dir / f"worker-{index + 1}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def sealed_jobs(self) -> dict[int, list[str]]:
        """Per worker pid, the ids of the jobs its log says it sealed, in order."""
        return {
            process.pid: [m.group(1) for m in SEALED_LINE.finditer(self.worker_log(process))]
            for process in self.workers
        }

    def signal_worker(self, pid: int, signum: signal.Signals) -> subprocess.Popen[bytes]:
        """Send `signum` to one of this stack's workers; return its process."""
        for process in self.workers:
            if process.pid == pid:
                process.send_signal(signum)
                return process
        raise StackError(f"pid {pid} is not a worker of this stack")

    # -- what rests behind the API ------------------------------------------------------

    @property
    def s3(self) -> S3Client:
        """A boto3 client of the stack's S3 endpoint."""
        return self.backends.s3()

    def bucket_of(self, key: str) -> str:
        """The bucket that holds `key` (`staging/…` in staging, the rest in blobs)."""
        return self.staging_bucket if key.startswith(STAGING_PREFIX) else self.blobs_bucket

    def read_object(self, key: str) -> bytes:
        """The whole stored object `key`."""
        return self.s3.get_object(Bucket=self.bucket_of(key), Key=key)["Body"].read()

    def write_object(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing what was there."""
        self.s3.put_object(Bucket=self.bucket_of(key), Key=key, Body=data)

    def start_unfinished_write(self, key: str, data: bytes) -> None:
        """Begin a multipart upload of `key` with one part and leave it unfinished, as a
        process killed in the middle of writing it would."""
        bucket = self.bucket_of(key)
        upload_id = self.s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        self.s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=data)

    def list_objects(self, prefix: str = "") -> list[str]:
        """Keys of every object under `prefix`, in both buckets, sorted."""
        s3 = self.s3
        keys: set[str] = set()
        for bucket in (self.blobs_bucket, self.staging_bucket):
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys.update(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)

    def pending_writes(self, prefix: str = "") -> list[PendingWrite]:
        """Every incomplete multipart upload under `prefix`, in both buckets."""
        s3 = self.s3
        found: list[PendingWrite] = []
        for bucket in (self.blobs_bucket, self.staging_bucket):
            pages = s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=bucket, Prefix=prefix
            )
            found.extend(
                PendingWrite(bucket, upload["Key"], upload["UploadId"])
                for page in pages
                for upload in page.get("Uploads", [])
            )
        return found

    def list_pending_writes(self, prefix: str = "") -> list[str]:
        """Keys of incomplete multipart uploads under `prefix`, in both buckets, sorted."""
        return sorted({write.key for write in self.pending_writes(prefix)})

    def places_holding(self, needle: bytes) -> list[str]:
        """Every object of both buckets, and every process's log, whose bytes hold `needle`."""
        holding = [key for key in self.list_objects() if self._object_holds(key, needle)]
        logs = sorted(self.logs_dir.glob("*.log"))
        return [*holding, *(str(path) for path in logs if file_contains(path, needle))]

    def _object_holds(self, key: str, needle: bytes) -> bool:
        s3 = self.s3
        try:
            body = s3.get_object(Bucket=self.bucket_of(key), Key=key)["Body"]
        except s3.exceptions.NoSuchKey:
            # Deleted since it was listed (a sealed upload's staged pieces go right after
            # its link is ready): it holds nothing any more.
            return False
        tail = b""
        for chunk in body.iter_chunks(1 << 20):
            window = tail + chunk
            if needle in window:
                return True
            tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
        return False

    def bucket_lifecycle(self, bucket: str) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules as S3 reports them."""
        rules = self.s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
        return [dict(rule) for rule in rules]
