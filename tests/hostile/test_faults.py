"""Faults under a production stack: crashes, pauses, restarts, outages and a failing S3.

The module's stack has a PostgreSQL cluster of its own (to restart), reaches S3 through
an `S3FaultProxy` (to answer 500, SlowDown or nothing), and starts no worker: each test
starts the workers it needs (lease 4 s; S3 calls time out after 2 s and are tried three
times) and they end with it. What
every test checks is the promise: no acknowledged link is lost, no half-written object is
visible (every object under blobs/ has its row), nothing hangs (every wait is bounded),
and a client never gets a wrong byte reported as a success.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress

import httpx
import pytest

from tests.support.hostile import (
    Fetched,
    Uploaded,
    assert_never_wrong,
    assert_objects_match_rows,
    fetch,
    link_row,
    objects,
    pending_uploads,
    production_stack,
    purge_now,
    put,
    s3_of,
    scaled,
    wait_ready,
)
from tests.support.production import ProductionStack, shared_backends, worker_pid
from tests.support.s3_faults import (
    S3FaultProxy,
    completions,
    fault_proxy,
    in_bucket,
    object_gets,
    part_uploads,
    writes,
)
from tests.support.services import PgServer, RedisServer, private_postgres, private_redis
from tests.support.stack import wait_until

pytestmark = [pytest.mark.production, pytest.mark.slow]

LEASE_SECONDS = 4
S3_TIMEOUT_SECONDS = 2
S3_ATTEMPTS = 3  # each S3 call: a first try and two retries
MiB = 1024 * 1024
LARGE = 17 * MiB  # parts of 8, 8 and 1 MiB
HANG_GUARD_SECONDS = 60.0
FAULT_ENV = {
    "SEALDROP_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
    "SEALDROP_JOB_RETRY_BASE_SECONDS": "0.2",
    "SEALDROP_S3_READ_TIMEOUT_SECONDS": str(S3_TIMEOUT_SECONDS),
    "SEALDROP_S3_MAX_ATTEMPTS": str(S3_ATTEMPTS),
    "SEALDROP_JANITOR_INTERVAL_SECONDS": "3600",
    "SEALDROP_UPLOAD_RATE_PER_MINUTE": "100000",
    "SEALDROP_CLIENT_PASSWORD_FAILURES": "100000",
}
LOAD_SECONDS = scaled(4, 30)
LOAD_THREADS = scaled(2, 8)
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def own_pg() -> Iterator[PgServer]:
    """The module's own PostgreSQL cluster (the restart test restarts it)."""
    with private_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def proxy() -> Iterator[S3FaultProxy]:
    """The fault proxy in front of the session's S3 endpoint."""
    with fault_proxy(shared_backends().endpoint_url) as running:
        yield running


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, own_pg: PgServer, proxy: S3FaultProxy
) -> Iterator[ProductionStack]:
    """The module's stack: its own PostgreSQL, S3 through the proxy, no worker yet."""
    backends = dataclasses.replace(shared_backends(), postgres=own_pg)
    with production_stack(
        tmp_path_factory.mktemp("faults"),
        workers=0,
        backends=backends,
        s3_endpoint=proxy.url,
        **FAULT_ENV,
    ) as started:
        yield started


@pytest.fixture(autouse=True)
def no_faults_left(proxy: S3FaultProxy) -> Iterator[None]:
    """Every test starts with the proxy passing everything through, having seen nothing,
    and ends with it passing everything through."""
    proxy.reset()
    yield
    proxy.pass_through()


StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def workers(stack: ProductionStack) -> Iterator[StartWorker]:
    """Starts `sealdrop worker` processes (concurrency 1 by default) that end with the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(
        *, concurrency: int = 1, grace: float | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        process = stack.start_worker(concurrency=concurrency, grace=grace, **env)
        started.append(process)
        return process

    yield start
    for process in started:
        with suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a paused one must hear the SIGTERM
            process.terminate()
    for process in started:
        with suppress(subprocess.TimeoutExpired):
            process.wait(30)
        if process.poll() is None:
            process.kill()
            process.wait(10)


def digest(data: bytes) -> bytes:
    """SHA-256 of `data`."""
    return hashlib.sha256(data).digest()


def running_attempt(stack: ProductionStack) -> tuple[str, str, str] | None:
    """The running attempt once its multipart upload has a part: owner, blob id, upload id."""
    rows = stack.sql(
        "SELECT lease_owner, attempt_blob_id, attempt_upload_id FROM jobs"
        " WHERE state = 'running' AND attempt_upload_id IS NOT NULL"
    )
    if not rows:
        return None
    owner, blob_id, upload_id = rows[0]
    parts = (
        s3_of(stack)
        .list_parts(Bucket=stack.blobs_bucket, Key=f"blobs/{blob_id}", UploadId=upload_id)
        .get("Parts", [])
    )
    return (owner, blob_id, upload_id) if parts else None


def second_part_of_a_blob(stack: ProductionStack) -> Callable[..., bool]:
    """Matches the upload of part 2 of any blob: a seal that has written exactly one part."""
    return in_bucket(
        stack.blobs_bucket, lambda r: part_uploads(r) and r.query["partNumber"] == ["2"]
    )


def log_of(stack: ProductionStack, process: subprocess.Popen[bytes]) -> str:
    """Everything a worker logged."""
    return stack.worker_log(process)


# -- crashes, pauses and SIGTERM: each test with workers of its own ---------------------


def _slow_body(data: bytes, chunk: int, pause: float) -> Iterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
        time.sleep(pause)


def test_an_api_killed_mid_upload_acknowledges_nothing_and_its_staging_is_swept(
    stack: ProductionStack,
) -> None:
    api = stack.start_api()
    links_before = stack.sql("SELECT count(*) FROM links")[0][0]
    data = os.urandom(4 * MiB)
    outcome: dict[str, object] = {}

    def upload() -> None:
        try:
            answer = httpx.put(
                f"{api.base_url}/doomed.bin",
                content=_slow_body(data, 64 * 1024, 0.05),
                headers={"Content-Length": str(len(data))},
                timeout=HANG_GUARD_SECONDS,
                trust_env=False,
            )
            outcome["status"] = answer.status_code
        except httpx.HTTPError as exc:
            outcome["error"] = type(exc).__name__

    client = threading.Thread(target=upload)
    client.start()
    wait_until(lambda: pending_uploads(stack, "staging/"), timeout=30, what="a staging upload")
    time.sleep(0.3)  # some of the body is in
    api.process.kill()
    api.process.wait(10)
    client.join(HANG_GUARD_SECONDS)

    assert not client.is_alive()
    assert "status" not in outcome or not 200 <= int(str(outcome["status"])) < 300, outcome
    # 4 MiB with a Content-Length is sealed while it arrives: its link (pending, no
    # digest: nothing acknowledged) and job were written first, and wait for the janitor.
    arriving = stack.sql(
        "SELECT j.state, l.state, l.sha256 FROM jobs j JOIN links l ON l.id = j.link_id"
    )
    assert len(arriving) == 1
    assert arriving[0][0] in ("receiving", "following")
    assert tuple(arriving[0][1:]) == ("pending", None)
    assert pending_uploads(stack, "staging/")  # the crash left its unfinished upload
    purge_now(stack)
    assert stack.sql("SELECT count(*) FROM links")[0][0] == links_before
    assert stack.sql("SELECT count(*) FROM jobs")[0][0] == 0
    assert pending_uploads(stack, "staging/") == []
    assert objects(stack, "staging/") == []


def test_a_worker_killed_after_some_parts_is_replaced_and_its_upload_aborted(
    stack: ProductionStack, proxy: S3FaultProxy, workers: StartWorker
) -> None:
    first = workers()
    # Part 2 stalls (each try times out and is retried): the seal holds part 1 only.
    proxy.stall(50, 30, when=second_part_of_a_blob(stack))
    data = os.urandom(LARGE)
    link = put(stack.base_url, data, headers=ASYNC)
    owner, stale_blob, stale_upload = wait_until(
        lambda: running_attempt(stack), timeout=60, interval=0.05, what="a seal with one part"
    )
    assert worker_pid(owner) == first.pid
    first.kill()
    first.wait(10)
    proxy.pass_through()
    second = workers()
    wait_ready(stack, link.token, timeout=60)

    sealed = [stack.sealed_jobs()[p.pid] for p in (first, second)]
    assert sealed[0] == []
    assert len(sealed[1]) == 1
    assert stack.sql("SELECT count(*) FROM blobs")[0][0] == len(objects(stack, "blobs/"))
    assert link_row(stack, link.token).blob_id != stale_blob
    assert stale_upload not in pending_uploads(stack, "blobs/")
    assert f"blobs/{stale_blob}" not in objects(stack, "blobs/")
    assert digest(fetch(link.download_url).body) == digest(data)
    assert_objects_match_rows(stack)


def test_a_worker_paused_past_its_lease_is_fenced_off_when_it_resumes(
    stack: ProductionStack, proxy: S3FaultProxy, workers: StartWorker
) -> None:
    first = workers()
    proxy.stall(50, 30, when=second_part_of_a_blob(stack))
    data = os.urandom(LARGE)
    link = put(stack.base_url, data, headers=ASYNC)
    wait_until(lambda: running_attempt(stack), timeout=60, interval=0.05, what="a seal")
    first.send_signal(signal.SIGSTOP)
    proxy.pass_through()
    second = workers()
    wait_ready(stack, link.token, timeout=60)
    first.send_signal(signal.SIGCONT)

    refused = wait_until(
        lambda: any(
            words in log_of(stack, first)
            for words in ("lease lost", "commit refused", "retry refused")
        ),
        timeout=30,
        what="the resumed worker to be refused",
    )
    wait_until(
        lambda: pending_uploads(stack, "blobs/") == [], timeout=30, what="no unfinished upload"
    )
    assert refused
    assert stack.sealed_jobs()[first.pid] == []
    assert len(stack.sealed_jobs()[second.pid]) == 1
    assert digest(fetch(link.download_url).body) == digest(data)
    assert_objects_match_rows(stack)


def test_sigterm_stops_a_worker_mid_seal_and_it_hands_its_job_back(
    stack: ProductionStack, proxy: S3FaultProxy, workers: StartWorker
) -> None:
    first = workers(grace=0)
    # Part 2's first try stalls until the client's timeout: the seal is mid-way when told.
    proxy.stall(1, 30, when=second_part_of_a_blob(stack))
    data = os.urandom(LARGE)
    link = put(stack.base_url, data, headers=ASYNC)
    wait_until(lambda: running_attempt(stack), timeout=60, interval=0.05, what="a seal")
    first.terminate()
    assert first.wait(HANG_GUARD_SECONDS) == 0
    released = stack.sql("SELECT state, lease_owner, lease_expires_at FROM jobs")
    uploads_left = pending_uploads(stack, "blobs/")
    second = workers()
    wait_ready(stack, link.token, timeout=60)
    assert [tuple(row) for row in released] == [("queued", None, None)]
    assert uploads_left == []  # the attempt aborted its own multipart upload
    assert "stopped" in log_of(stack, first)
    assert stack.sealed_jobs()[first.pid] == []
    assert len(stack.sealed_jobs()[second.pid]) == 1
    assert digest(fetch(link.download_url).body) == digest(data)
    assert_objects_match_rows(stack)


# -- S3 failing for good ------------------------------------------------------------------


def test_persistent_s3_errors_fail_the_seal_cleanly_and_leave_nothing_half_written(
    stack: ProductionStack, proxy: S3FaultProxy, workers: StartWorker
) -> None:
    workers(SEALDROP_JOB_MAX_ATTEMPTS="2")
    proxy.fail(10_000, when=in_bucket(stack.blobs_bucket, writes))
    link = put(stack.base_url, os.urandom(300_000), headers=ASYNC)
    wait_until(
        lambda: link_row(stack, link.token).state == "failed",
        timeout=HANG_GUARD_SECONDS,
        interval=0.2,
        what="the job to fail",
    )
    proxy.pass_through()
    gone = fetch(link.download_url)
    purge_now(stack)
    assert gone.status == 410
    assert proxy.count("error") >= 2
    assert pending_uploads(stack, "blobs/") == pending_uploads(stack, "staging/") == []
    assert objects(stack, "staging/") == []
    assert_objects_match_rows(stack)


def test_persistent_s3_errors_on_an_upload_answer_503_and_keep_nothing(
    stack: ProductionStack, proxy: S3FaultProxy
) -> None:
    links_before = stack.sql("SELECT count(*) FROM links")[0][0]
    proxy.slow_down(10_000, when=in_bucket(stack.staging_bucket, writes))
    answer = httpx.put(
        f"{stack.base_url}/refused.bin",
        content=os.urandom(100_000),
        timeout=HANG_GUARD_SECONDS,
        trust_env=False,
    )
    proxy.pass_through()
    purge_now(stack)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["retry-after"]) >= 1
    assert stack.sql("SELECT count(*) FROM links")[0][0] == links_before
    assert pending_uploads(stack, "staging/") == []
    assert objects(stack, "staging/") == []


# -- from here on, one worker for the rest of the module --------------------------------


@pytest.fixture(scope="module")
def worker(stack: ProductionStack) -> Iterator[subprocess.Popen[bytes]]:
    """One worker (concurrency 2) for the tests that only need files sealed. The tests that
    start and kill workers of their own come first in this file, before it exists."""
    process = stack.start_worker(concurrency=2)
    yield process
    process.terminate()
    process.wait(30)


def test_sigterm_drains_the_api_readiness_first_and_lets_transfers_finish(
    stack: ProductionStack, worker: subprocess.Popen[bytes]
) -> None:
    api = stack.start_api(SEALDROP_DRAIN_SECONDS="2")
    download_data, upload_data = os.urandom(8 * MiB), os.urandom(2 * MiB)
    link = put(api.base_url, download_data)
    outcome: dict[str, object] = {}

    def slow_download() -> None:
        outcome["download"] = fetch(f"{api.base_url}/d/{link.token}", bytes_per_second=4 * MiB)

    def slow_upload() -> None:
        answer = httpx.put(
            f"{api.base_url}/late.bin",
            content=_slow_body(upload_data, 256 * 1024, 0.15),
            headers={
                "Content-Length": str(len(upload_data)),
                **ASYNC,
                "Accept": "application/json",
            },
            timeout=HANG_GUARD_SECONDS,
            trust_env=False,
        )
        outcome["upload"] = answer

    transfers = [threading.Thread(target=slow_download), threading.Thread(target=slow_upload)]
    for thread in transfers:
        thread.start()
    time.sleep(0.3)
    api.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    readiness = wait_until(
        lambda: (
            (answer := httpx.get(f"{api.base_url}/readyz", trust_env=False)).status_code == 503
            and answer
        ),
        timeout=5,
        interval=0.05,
        what="readiness to drop",
    )
    for thread in transfers:
        thread.join(HANG_GUARD_SECONDS)
    api.process.wait(HANG_GUARD_SECONDS)
    exited = time.monotonic() - signalled

    downloaded = outcome["download"]
    uploaded = outcome["upload"]
    assert isinstance(downloaded, Fetched)
    assert isinstance(uploaded, httpx.Response)
    assert readiness.json()["checks"]["draining"] == "yes"
    assert downloaded.complete
    assert downloaded.body == download_data
    assert uploaded.status_code in (201, 202), uploaded.text
    late = uploaded.json()["token"]
    wait_ready(stack, late)
    assert fetch(f"{stack.base_url}/d/{late}").body == upload_data
    assert exited < 2 + 3 + 5  # drain, grace, and room for a loaded machine


@dataclasses.dataclass(frozen=True)
class Answer:
    """One request of the load: what it was, what came back, and how long it took."""

    kind: str
    status: int
    retry_after: str | None
    started: float
    seconds: float
    token: str | None = None
    data: bytes = b""


def _load(stack: ProductionStack, link: Uploaded, until: threading.Event) -> list[Answer]:
    answers: list[Answer] = []
    with httpx.Client(timeout=HANG_GUARD_SECONDS, trust_env=False) as client:
        while not until.is_set():
            try:
                _one_round(stack, link, client, answers)
            except httpx.HTTPError as exc:
                answers.append(Answer(f"error: {type(exc).__name__}", 0, None, 0.0, 0.0))
            time.sleep(0.1)
    return answers


def _one_round(
    stack: ProductionStack, link: Uploaded, client: httpx.Client, answers: list[Answer]
) -> None:
    """One upload and one download, each recorded with its status and duration."""
    data = os.urandom(20_000)
    started = time.monotonic()
    put_answer = client.put(
        f"{stack.base_url}/load.bin",
        content=data,
        headers={**ASYNC, "Accept": "application/json"},
    )
    token = put_answer.json()["token"] if put_answer.status_code in (201, 202) else None
    answers.append(
        Answer(
            "upload",
            put_answer.status_code,
            put_answer.headers.get("retry-after"),
            started,
            time.monotonic() - started,
            token,
            data,
        )
    )
    started = time.monotonic()
    get_answer = client.get(link.download_url)
    answers.append(
        Answer(
            "download",
            get_answer.status_code,
            get_answer.headers.get("retry-after"),
            started,
            time.monotonic() - started,
        )
    )


def test_a_postgres_restart_under_load_costs_quick_503s_and_loses_no_acknowledged_link(
    stack: ProductionStack, own_pg: PgServer, worker: subprocess.Popen[bytes]
) -> None:
    api_pid = stack.api_pid
    data = os.urandom(100_000)
    link = put(stack.base_url, data)
    wait_ready(stack, link.token)
    stop = threading.Event()
    results: list[list[Answer]] = [[] for _ in range(LOAD_THREADS)]

    def run(index: int) -> None:
        results[index] = _load(stack, link, stop)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(LOAD_THREADS)]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_SECONDS / 3)
    restart_began = time.monotonic()
    own_pg.restart()
    restart_ended = time.monotonic()
    time.sleep(LOAD_SECONDS * 2 / 3)
    stop.set()
    for thread in threads:
        thread.join(HANG_GUARD_SECONDS)
    answers = [answer for batch in results for answer in batch]

    assert all(not thread.is_alive() for thread in threads)
    assert any(restart_began <= a.started <= restart_ended for a in answers)  # load met it
    assert {a.status for a in answers} <= {200, 201, 202, 503}, {a.status for a in answers}
    assert all(a.retry_after for a in answers if a.status == 503)
    assert max(a.seconds for a in answers) < 20
    acknowledged = [a for a in answers if a.token is not None]
    for answer in acknowledged:
        wait_ready(stack, answer.token or "", timeout=60)
        assert fetch(f"{stack.base_url}/d/{answer.token}").body == answer.data
    assert (stack.api_pid, worker.poll()) == (api_pid, None)  # nothing was restarted
    assert put(stack.base_url, b"after\n").status == 201
    assert fetch(link.download_url).body == data


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the module's own, to freeze and then to stop."""
    with private_redis() as server:
        yield server


def basic(password: str) -> dict[str, str]:
    """HTTP Basic credentials carrying `password`."""
    return {"Authorization": "Basic " + base64.b64encode(f":{password}".encode()).decode()}


REDIS_LIMIT = 3


@pytest.fixture(scope="module")
def redis_api(stack: ProductionStack, own_redis: RedisServer) -> Iterator[str]:
    """One more API process on `own_redis`, three wrong passwords per client; its URL."""
    api = stack.start_api(
        SEALDROP_REDIS_URL=own_redis.url(),
        SEALDROP_CLIENT_PASSWORD_FAILURES=str(REDIS_LIMIT),
        SEALDROP_TRUSTED_PROXIES="127.0.0.1",  # each test names its client address
    )
    try:
        yield api.base_url
    finally:
        api.stop()


def _guess_across_links(base_url: str, links: list[Uploaded], client: str) -> list[int]:
    """One wrong password per link, then the right one on the last, all from `client`:
    the statuses."""
    statuses = []
    for link, password in [*((link, "wrong") for link in links[:-1]), (links[-1], "right")]:
        answer = httpx.get(
            f"{base_url}/d/{link.token}",
            headers={**basic(password), "X-Forwarded-For": client},
            trust_env=False,
        )
        statuses.append(answer.status_code)
    return statuses


@pytest.mark.parametrize("outage", ["frozen", "stopped"])  # in this order: a stop is for good
def test_without_redis_downloads_go_on_and_the_password_limit_still_holds(
    stack: ProductionStack,
    worker: subprocess.Popen[bytes],
    own_redis: RedisServer,
    redis_api: str,
    outage: str,
) -> None:
    base_url = redis_api
    data = os.urandom(100_000)
    open_link = put(base_url, data)
    locked = [
        put(base_url, b"secret\n", headers={"Link-Password": "right"})
        for _ in range(REDIS_LIMIT + 1)
    ]
    for link in [open_link, *locked]:
        wait_ready(stack, link.token)
    if outage == "stopped":
        own_redis.stop()
    else:
        own_redis.pause()
    try:
        started = time.monotonic()
        download = fetch(f"{base_url}/d/{open_link.token}")
        statuses = _guess_across_links(base_url, locked, f"10.66.0.{len(outage)}")
        took = time.monotonic() - started
    finally:
        if outage == "frozen":
            own_redis.resume()
    assert download.complete
    assert download.body == data
    assert statuses == [401] * REDIS_LIMIT + [429]
    assert took < HANG_GUARD_SECONDS / 2


# -- S3 failing for a while ---------------------------------------------------------------


def test_a_few_s3_errors_and_slowdowns_are_retried_and_the_upload_is_sealed(
    stack: ProductionStack, proxy: S3FaultProxy, worker: subprocess.Popen[bytes]
) -> None:
    # As many faults as one call has retries, on the first write and the first read.
    proxy.fail(1, when=writes)
    proxy.slow_down(1, when=writes)
    proxy.fail(1, when=object_gets)
    proxy.slow_down(1, when=object_gets)
    data = os.urandom(300_000)
    link = put(stack.base_url, data)
    downloaded = fetch(link.download_url)
    assert link.status == 201
    assert downloaded.complete
    assert downloaded.body == data
    assert proxy.faults_left() == 0
    assert_objects_match_rows(stack)


def test_an_s3_stall_on_a_download_ends_in_a_retry_not_a_hang(
    stack: ProductionStack, proxy: S3FaultProxy, worker: subprocess.Popen[bytes]
) -> None:
    data = os.urandom(300_000)
    link = put(stack.base_url, data)
    proxy.stall(1, 30, when=in_bucket(stack.blobs_bucket, object_gets))
    downloaded = fetch(link.download_url, timeout=HANG_GUARD_SECONDS)
    assert downloaded.complete
    assert downloaded.body == data
    assert proxy.count("stall") == 1
    assert downloaded.seconds < HANG_GUARD_SECONDS / 2


def test_a_persistent_s3_stall_on_a_download_fails_it_cleanly(
    stack: ProductionStack, proxy: S3FaultProxy, worker: subprocess.Popen[bytes]
) -> None:
    data = os.urandom(300_000)
    link = put(stack.base_url, data)
    proxy.stall(10_000, 30, when=in_bucket(stack.blobs_bucket, object_gets))
    downloaded = fetch(link.download_url, timeout=HANG_GUARD_SECONDS)
    assert_never_wrong(downloaded, data)
    assert downloaded.status == 503
    assert downloaded.seconds < HANG_GUARD_SECONDS


def test_an_s3_stall_on_a_seal_is_retried_and_nothing_half_written_is_left(
    stack: ProductionStack, proxy: S3FaultProxy, worker: subprocess.Popen[bytes]
) -> None:
    proxy.stall(2, 30, when=in_bucket(stack.blobs_bucket, completions))
    data = os.urandom(300_000)
    link = put(stack.base_url, data, headers=ASYNC)
    wait_ready(stack, link.token, timeout=HANG_GUARD_SECONDS)
    assert proxy.count("stall") == 2
    assert fetch(link.download_url).body == data
    wait_until(lambda: pending_uploads(stack, "blobs/") == [], timeout=30, what="no upload left")
    assert_objects_match_rows(stack)
