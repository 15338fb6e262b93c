"""Fixtures of the hostile-input suite: one production stack for the whole directory.

`stack` is a `ProductionStack` (API and worker as real processes, PostgreSQL, Redis, the
S3 endpoint) started once per session with settings that make the attacks cheap: an 8 MiB
upload limit, 64 KiB segments, a one-second body idle timeout, three wrong passwords per
link, and 127.0.0.1 as the trusted proxy (so a test names its client address in
`X-Forwarded-For`; a connection from 127.0.0.2 is an untrusted peer). Tests on it must not
depend on each other's leftovers. `fresh_api` is one more API process of the test's own,
for measuring a peak memory that no earlier test raised.

`SEALDROP_SOAK=1` (`make soak`) scales rounds and sizes up; the default is the CI form.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support.production import (
    ApiProcess,
    ProductionStack,
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
)

MiB = 1024 * 1024
UPLOAD_LIMIT = 8 * MiB
IDLE_TIMEOUT_SECONDS = 1.0
PASSWORD_MAX_FAILURES = 3
CLIENT_PASSWORD_FAILURES = 6
SOAK = os.environ.get("SEALDROP_SOAK", "") not in ("", "0")
HOSTILE_ENV = {
    "SEALDROP_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT),
    "SEALDROP_SEGMENT_LOG2": "16",
    "SEALDROP_BODY_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_SECONDS),
    "SEALDROP_TRUSTED_PROXIES": "127.0.0.1",
    "SEALDROP_PASSWORD_MAX_FAILURES": str(PASSWORD_MAX_FAILURES),
    "SEALDROP_CLIENT_PASSWORD_FAILURES": str(CLIENT_PASSWORD_FAILURES),
    # Uploads are the tool here, not the attack: their per-address limit stays out of the way.
    "SEALDROP_UPLOAD_RATE_PER_MINUTE": "100000",
}


def scaled(ci: int, soak: int) -> int:
    """`ci` in the default run, `soak` under `make soak`."""
    return soak if SOAK else ci


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionStack]:
    """The production stack every hostile test attacks."""
    running = ProductionStack(
        tmp_path_factory.mktemp("hostile"), workers=1, concurrency=2, env=HOSTILE_ENV
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(stack: ProductionStack) -> Iterator[httpx.Client]:
    """A well-behaved client of the stack's API (no proxy from the environment)."""
    with httpx.Client(base_url=stack.base_url, timeout=60, trust_env=False) as http:
        yield http


@pytest.fixture
def fresh_api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """One more API process of the stack, of this test's own; stopped when the test ends."""
    api = stack.start_api()
    try:
        yield api
    finally:
        api.stop()


@dataclass(frozen=True)
class Uploaded:
    """A link made by a test, as the upload's JSON answer described it."""

    token: str
    download_url: str
    size: int
    sha256: str

    @property
    def path(self) -> str:
        """`/d/<token>`: the file, with no name in the URL."""
        return f"/d/{self.token}"


def upload(client: httpx.Client, name: str, data: bytes, **headers: str) -> Uploaded:
    """PUT `data` as `name` (percent-encoded into the path) and wait until it is sealed."""
    answer = client.put(
        f"/{quote(name, safe='')}", content=data, headers={"Accept": "application/json", **headers}
    )
    assert answer.status_code == 201, answer.text
    return _uploaded(answer.json())


def upload_form(
    client: httpx.Client, filename: bytes, data: bytes, content_type: str = "text/plain"
) -> Uploaded:
    """POST `data` as the form's `file` part (see `post_form`); it must be accepted."""
    answer = post_form(client, filename, data, content_type)
    assert answer.status_code == 201, answer.text
    return _uploaded(answer.json())


def post_form(
    client: httpx.Client, filename: bytes, data: bytes, content_type: str = "text/plain"
) -> httpx.Response:
    """POST `data` as the form's `file` part, its `filename` parameter given as raw bytes."""
    boundary = b"hostile-boundary-7d1f"
    body = b"".join(
        [
            b"--" + boundary + b"\r\n",
            b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n',
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n",
            data,
            b"\r\n--" + boundary + b"--\r\n",
        ]
    )
    return client.post(
        "/api/v1/links",
        content=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
            "Accept": "application/json",
        },
    )


def _uploaded(answer: dict[str, Any]) -> Uploaded:
    return Uploaded(answer["token"], answer["download_url"], answer["size"], answer["sha256"])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Append the stack's log tails to a failing test's report."""
    report = yield
    running = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(running, ProductionStack):
        report.sections.append(("sealdrop production logs", running.log_tails()))
    return report


def repo_root() -> Path:
    """The project's folder (where a path-traversing name would try to land)."""
    return Path(__file__).resolve().parents[2]
