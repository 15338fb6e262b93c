"""Load on the production stack: a mixed load from locust, a thousand ranges, an upload flood.

An API process and a worker process of this module's own (so their peak memory is this
load's) join the session's production stack. locust (bench/locustfile.py) uploads files,
reads ranges of them, guesses a protected link's password and asks for unknown tokens,
checking every answer as it comes; afterwards the queue must drain, every link be ready
and download byte-identical, and the processes' peak memory must have grown by a bounded
amount. The CI form is ~35 s of 1–4 MB uploads; `SEALDROP_SOAK=1` (`make soak`) runs
minutes of 1–100 MB uploads.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.hostile.checks import fresh_address
from tests.hostile.conftest import scaled
from tests.support.hostile_load import LoadReport, cpu_seconds, peak_memory, run_locust
from tests.support.production import ApiProcess, ProductionStack
from tests.support.stack import terminate, wait_until

MiB = 1024 * 1024
LOAD_SECONDS = scaled(35, 300)
USERS = scaled(6, 6)
MIN_BYTES, MAX_BYTES = scaled(1_000_000, 1_000_000), scaled(4_000_000, 100_000_000)
# The test S3 server keeps objects in memory (a memstore OSD): the soak's 1-100 MB
# uploads for minutes would fill it, so the run uploads this much in all, then reads on.
UPLOAD_BUDGET = scaled(1_000_000_000, 2_000_000_000)
DRAIN_SECONDS = scaled(120, 900)
SAMPLED_DOWNLOADS = scaled(12, 60)
# "Memory flat": what the peak may grow by under load, after a warm-up that reached the
# load's concurrency once (a leak grows with time; a working set does not).
PEAK_GROWTH_LIMIT = 64 * MiB
# Answers a mixed load may get besides 2xx: 401/429 for wrong passwords (429 once the
# link locks), 404 for unknown tokens, 503 with Retry-After while a file is being sealed.
EXPECTED_ERRORS = {401, 404, 429, 503}
UPLOAD_QUOTA = 10
RANGE_ROUNDS = scaled(20, 100)
# A thousand one-byte ranges are answered with the whole file; what they may cost the
# server, against a plain GET of the same file: generous, for a shared 2-core machine.
RANGES_CPU_RATIO = 3.0
# Each abandoned download must cost well under a whole one: several of them, less than one.
ABANDONED_FILE_BYTES = 48 * MiB
ABANDONED_DOWNLOADS = 4
THOUSAND_RANGES = "bytes=" + ",".join(f"{i}-{i}" for i in range(1000))


@pytest.fixture(scope="module")
def api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """An API process for the load: no upload quota, room for the soak's 100 MB files."""
    process = stack.start_api(
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
        SEALDROP_MAX_UPLOAD_BYTES=str(128 * MiB),
        SEALDROP_BODY_IDLE_TIMEOUT_SECONDS="60",
        SEALDROP_TRUSTED_PROXIES="127.0.0.1",
    )
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def worker(stack: ProductionStack) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process of the load's own (the session's worker seals jobs too)."""
    process = stack.start_worker(concurrency=2)
    try:
        yield process
    finally:
        terminate(process)


@pytest.fixture
def client(api: ApiProcess) -> Iterator[httpx.Client]:
    """A well-behaved client of the load's API process."""
    with httpx.Client(base_url=api.base_url, timeout=120, trust_env=False) as http:
        yield http


def _put(client: httpx.Client, data: bytes, **headers: str) -> dict[str, str]:
    answer = client.put(
        "/file.bin", content=data, headers={"Accept": "application/json", **headers}
    )
    assert answer.status_code == 201, answer.text
    made: dict[str, str] = answer.json()
    return made


def _warm_up(client: httpx.Client, protected: str) -> None:
    """The load's requests once each, its largest uploads as many at once as it has users:
    what a server needs for that concurrency is its working set, not growth."""
    largest = os.urandom(MAX_BYTES)
    with ThreadPoolExecutor(USERS) as pool:
        made = list(pool.map(lambda _: _put(client, largest), range(USERS)))
    ranged = client.get(f"/d/{made[0]['token']}", headers={"Range": "bytes=10-70000"})
    assert ranged.status_code == 206
    assert client.get(f"/d/{protected}", auth=("", "wrong")).status_code in (401, 429)
    assert client.get("/d/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404


def _links_settled(stack: ProductionStack, report: LoadReport) -> bool:
    tokens = [hashlib.sha256(u["token"].encode()).digest() for u in report.uploads]
    rows = stack.sql(
        "SELECT l.state, count(j.id) AS jobs FROM links l LEFT JOIN jobs j ON j.link_id = l.id"
        " WHERE l.token_hash = ANY(:hashes) GROUP BY l.id, l.state",
        hashes=tokens,
    )
    return len(rows) == len(tokens) and all(r.state == "ready" and r.jobs == 0 for r in rows)


def _peaks(api: ApiProcess, worker: subprocess.Popen[bytes]) -> dict[str, int]:
    return {"api": peak_memory(api.pid), "worker": peak_memory(worker.pid)}


def test_a_mixed_load_gets_only_expected_answers_drains_and_keeps_memory_flat(
    stack: ProductionStack,
    api: ApiProcess,
    worker: subprocess.Popen[bytes],
    client: httpx.Client,
    tmp_path: Path,
) -> None:
    protected = _put(client, b"locked away", **{"Link-Password": "the right one"})["token"]
    _warm_up(client, protected)
    before = _peaks(api, worker)

    report = run_locust(
        api.base_url,
        seconds=LOAD_SECONDS,
        users=USERS,
        results=tmp_path / "load.json",
        settings={
            "LOAD_MIN_BYTES": str(MIN_BYTES),
            "LOAD_MAX_BYTES": str(MAX_BYTES),
            "LOAD_BUDGET_BYTES": str(UPLOAD_BUDGET),
            "LOAD_PASSWORD_LINK": protected,
            "LOAD_CLIENT_ADDRESS": fresh_address(),
        },
    )

    assert report.problems == [], report.output
    assert report.failures == 0, report.output
    assert report.statuses() <= {200, 201, 202, 206} | EXPECTED_ERRORS, report.answers
    for kind in ("upload", "range", "wrong-password", "unknown-token"):
        assert report.count(kind) > 0, f"no {kind} request got through: {report.answers}"
    wait_until(
        lambda: _links_settled(stack, report),
        timeout=DRAIN_SECONDS,
        interval=0.5,
        what="every uploaded link ready and its job gone",
    )
    after = _peaks(api, worker)
    growth = {name: after[name] - before[name] for name in before}
    print(  # the figures, for -rP and a failing run's report
        f"load: {report.requests} requests, {len(report.uploads)} uploads, {report.answers}; "
        f"peak before {before}, after {after}"
    )
    assert all(grown < PEAK_GROWTH_LIMIT for grown in growth.values()), (before, after)
    for upload in report.uploads[:SAMPLED_DOWNLOADS]:
        body = client.get(f"/d/{upload['token']}")
        assert body.status_code == 200
        assert hashlib.sha256(body.content).hexdigest() == upload["sha256"]


def _cpu_of_gets(client: httpx.Client, pid: int, path: str, headers: dict[str, str]) -> float:
    started = cpu_seconds(pid)
    for _ in range(RANGE_ROUNDS):
        answer = client.get(path, headers=headers)
        assert answer.status_code in (200, 416), answer.status_code
    return cpu_seconds(pid) - started


def test_a_thousand_ranges_cost_about_what_a_plain_get_costs(
    api: ApiProcess, client: httpx.Client
) -> None:
    data = os.urandom(256 * 1024)
    path = f"/d/{_put(client, data)['token']}"
    ranged = {"Range": THOUSAND_RANGES}
    answer = client.get(path, headers=ranged)
    assert answer.status_code == 200  # several ranges: the whole file (RFC 9110 allows it)
    assert answer.content == data

    # Alternated, so that whatever else the process does falls on both sides alike.
    plain = many = 0.0
    for _ in range(2):
        plain += _cpu_of_gets(client, api.pid, path, {})
        many += _cpu_of_gets(client, api.pid, path, ranged)

    print(f"CPU: {RANGE_ROUNDS * 2} plain GETs {plain:.2f} s, with 1000 ranges {many:.2f} s")
    assert many <= RANGES_CPU_RATIO * plain + 0.05, f"{many:.2f} s against {plain:.2f} s"


def _abandon_download(base_url: str, path: str) -> None:
    """Ask for the file, read its first bytes, and hang up."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(f"GET {path} HTTP/1.1\r\nHost: sealdrop.test\r\n\r\n".encode())
        assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_download_abandoned_early_stops_costing_the_server(
    api: ApiProcess, client: httpx.Client
) -> None:
    data = os.urandom(ABANDONED_FILE_BYTES)
    path = f"/d/{_put(client, data)['token']}"
    started = cpu_seconds(api.pid)
    assert client.get(path).content == data
    whole = cpu_seconds(api.pid) - started

    started = cpu_seconds(api.pid)
    for _ in range(ABANDONED_DOWNLOADS):
        _abandon_download(api.base_url, path)
    time.sleep(2)  # whatever the server still does for them, it does now
    abandoned = cpu_seconds(api.pid) - started

    print(f"CPU: a whole download {whole:.2f} s, {ABANDONED_DOWNLOADS} abandoned {abandoned:.2f} s")
    assert abandoned < whole, "abandoned downloads were read and decrypted to their end"


def test_an_upload_flood_from_one_client_hits_the_quota_while_another_still_uploads(
    stack: ProductionStack,
) -> None:
    quota_api = stack.start_api(
        SEALDROP_UPLOAD_RATE_PER_MINUTE=str(UPLOAD_QUOTA), SEALDROP_TRUSTED_PROXIES="127.0.0.1"
    )
    flooder, other = fresh_address(), fresh_address()
    try:
        with httpx.Client(base_url=quota_api.base_url, timeout=60, trust_env=False) as client:
            answers = [
                client.put(
                    f"/flood-{i}.txt",
                    content=b"small %d" % i,
                    headers={"X-Forwarded-For": flooder, "Prefer": "respond-async"},
                )
                for i in range(UPLOAD_QUOTA * 2)
            ]
            bystander = client.put("/mine.txt", content=b"mine", headers={"X-Forwarded-For": other})
    finally:
        quota_api.stop()

    statuses = [answer.status_code for answer in answers]
    assert all(status in (201, 202) for status in statuses[:UPLOAD_QUOTA]), statuses
    assert statuses[UPLOAD_QUOTA:] == [429] * UPLOAD_QUOTA, statuses
    refused = answers[UPLOAD_QUOTA]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert bystander.status_code == 201
