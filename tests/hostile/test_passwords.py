"""Password guessing against protected links: malformed credentials, spread and floods.

HTTP Basic in every broken shape gets a short clear 4xx or the right answer; a missing and
a wrong password answer identically. Guesses are limited per link in the link's own row,
whatever the API process or client address, and per client address, where only the
trusted proxy (127.0.0.1) may name the client in `X-Forwarded-For`. A flood of parallel
guesses neither exhausts memory nor stalls the server, and a protected link gives away no
byte, name, length or digest before its password is right.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.hostile.checks import HealthWatch, fresh_address
from tests.hostile.conftest import (
    CLIENT_PASSWORD_FAILURES,
    PASSWORD_MAX_FAILURES,
    MiB,
    Uploaded,
    scaled,
    upload,
)
from tests.support.production import ApiProcess, ProductionStack
from tests.support.stack import read_status

PASSWORD = "b:c"  # a colon inside: Basic splits at the first one only
SECRET_NAME = "quarterly-secret-4471.pdf"
SECRET_SIZE = 123_457
UNTRUSTED_PEER = "127.0.0.2"  # loopback, but not the trusted proxy
ARGON2_MIB = 19
ARGON2_CONCURRENCY = 4
RESPONSIVE_SECONDS = 2.0


def basic(credentials: bytes) -> str:
    """An HTTP Basic header value for raw `user:password` bytes."""
    return "Basic " + base64.b64encode(credentials).decode()


def guest(base_url: str, *, address: str | None = None, source: str | None = None) -> httpx.Client:
    """A client that the trusted proxy names as `address` (a fresh one by default)."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(
        base_url=base_url,
        timeout=60,
        trust_env=False,
        transport=transport,
        headers={"X-Forwarded-For": address or fresh_address()},
    )


def protect(
    client: httpx.Client, *, name: str = "locked.bin", data: bytes = b"x" * 100
) -> Uploaded:
    """A new link with `PASSWORD`."""
    return upload(client, name, data, **{"Link-Password": PASSWORD})


def link_row(stack: ProductionStack, token: str) -> dict[str, object]:
    """The link's password counters."""
    token_hash = hashlib.sha256(token.encode()).digest()
    rows = stack.sql(
        "SELECT failed_attempts, locked_until FROM links WHERE token_hash = :h", h=token_hash
    )
    return rows[0]._asdict()


def unlock(stack: ProductionStack, token: str) -> None:
    """Move the link's lock into the past and clear its count (the window has passed)."""
    stack.sql(
        "UPDATE links SET locked_until = now() - interval '1 second', failed_attempts = 0 "
        "WHERE token_hash = :h",
        h=hashlib.sha256(token.encode()).digest(),
    )


@pytest.fixture(scope="module")
def matrix_link(stack: ProductionStack) -> Uploaded:
    """One protected link for the Basic matrix (its counters are reset by each case)."""
    with guest(stack.base_url) as client:
        return protect(client)


# -- the HTTP Basic matrix -------------------------------------------------------------

MATRIX = {
    "empty-user": (basic(b":" + PASSWORD.encode()), 200),
    "user-ignored": (basic(b"anyone:" + PASSWORD.encode()), 200),
    "colon-in-password": (basic(b"a:" + PASSWORD.encode()), 200),  # a:b:c
    "lowercase-scheme": ("basic " + basic(b":b:c").split(" ")[1], 200),
    "uppercase-scheme": ("BASIC " + basic(b":b:c").split(" ")[1], 200),
    "wrong-password": (basic(b":wrong"), 401),
    "empty-password": (basic(b"user:"), 401),
    "other-scheme-bearer": ("Bearer abc.def.ghi", 401),
    "other-scheme-digest": ('Digest username="a", realm="x", nonce="1", response="2"', 401),
    "bad-base64": ("Basic !!!not-base64***", 400),
    "no-colon": (basic(b"no-colon-here"), 400),
    "non-utf8": (basic(b":\xff\xfe\xfd"), 400),
    "basic-without-value": ("Basic", 400),
    "password-over-1024-bytes": (basic(b":" + b"p" * 1500), 400),
    "header-of-10-kb": (basic(b":" + b"p" * 7700), 400),
}


@pytest.mark.parametrize(("authorization", "status"), MATRIX.values(), ids=MATRIX.keys())
def test_basic_credentials_of_every_shape_get_a_short_clear_answer(
    stack: ProductionStack, matrix_link: Uploaded, authorization: str, status: int
) -> None:
    unlock(stack, matrix_link.token)
    with guest(stack.base_url) as client:
        answer = client.get(matrix_link.path, headers={"Authorization": authorization})
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.content == b"x" * 100
        return
    assert answer.headers["content-type"].startswith("text/plain")
    assert len(answer.content) < 200
    assert answer.text.count("\n") == 1
    assert "content-disposition" not in answer.headers
    if status == 401:
        assert answer.headers["www-authenticate"].startswith('Basic realm="sealdrop ')


@pytest.mark.parametrize(
    ("method", "where"),
    [
        ("GET", "/d/{token}"),
        ("HEAD", "/d/{token}"),
        ("GET", "/d/{token}/name.bin"),
        ("HEAD", "/d/{token}/name.bin"),
        ("GET", "/s/{token}"),  # /s/ answers GET only
    ],
)
def test_missing_and_wrong_password_answer_identically(
    stack: ProductionStack, method: str, where: str
) -> None:
    with guest(stack.base_url) as client:
        link = protect(client)
        path = where.format(token=link.token)
        missing = client.request(method, path, headers={"Accept": "*/*"})
        wrong = client.request(
            method, path, headers={"Accept": "*/*", "Authorization": basic(b":wrong")}
        )
    assert missing.status_code == wrong.status_code == 401
    # Date is the server's clock at the second of answering, nothing of the link's.
    assert _without_date(missing.headers) == _without_date(wrong.headers)
    assert missing.content == wrong.content


def _without_date(headers: httpx.Headers) -> list[tuple[bytes, bytes]]:
    return [(key, value) for key, value in headers.raw if key.lower() != b"date"]


# -- limits across processes and addresses ---------------------------------------------


@pytest.fixture(scope="module")
def apis(stack: ProductionStack) -> Iterator[list[str]]:
    """Base URLs of three API processes of the stack (the stack's own and two more)."""
    extra = [stack.start_api(), stack.start_api()]
    try:
        yield [stack.base_url, *(api.base_url for api in extra)]
    finally:
        for api in extra:
            api.stop()


def test_guesses_over_ten_addresses_and_three_processes_are_limited_per_link(
    stack: ProductionStack, apis: list[str]
) -> None:
    with guest(stack.base_url) as client:
        link = protect(client)
    addresses = [fresh_address() for _ in range(10)]
    statuses = []
    for n in range(30):
        with guest(apis[n % 3], address=addresses[n % 10]) as client:
            answer = client.get(link.path, headers={"Authorization": basic(b":wrong")})
            statuses.append(answer.status_code)
    assert statuses == [401] * PASSWORD_MAX_FAILURES + [429] * (30 - PASSWORD_MAX_FAILURES)
    assert link_row(stack, link.token)["failed_attempts"] == PASSWORD_MAX_FAILURES


async def test_parallel_guesses_over_addresses_and_processes_are_limited_per_link(
    stack: ProductionStack, apis: list[str]
) -> None:
    with guest(stack.base_url) as uploader:
        link = protect(uploader)
    addresses = [fresh_address() for _ in range(10)]
    clients = [httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) for url in apis]
    try:
        answers = await asyncio.gather(
            *(
                clients[n % 3].get(
                    link.path,
                    headers={
                        "Authorization": basic(b":wrong"),
                        "X-Forwarded-For": addresses[n % 10],
                    },
                )
                for n in range(30)
            )
        )
    finally:
        for each in clients:
            await each.aclose()
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {401: PASSWORD_MAX_FAILURES, 429: 30 - PASSWORD_MAX_FAILURES}
    assert link_row(stack, link.token)["failed_attempts"] == PASSWORD_MAX_FAILURES


def test_right_password_gets_429_while_locked_and_works_once_the_lock_has_passed(
    stack: ProductionStack,
) -> None:
    with guest(stack.base_url) as client:
        link = protect(client)
        for _ in range(PASSWORD_MAX_FAILURES):
            client.get(link.path, headers={"Authorization": basic(b":wrong")})
        right = {"Authorization": basic(b":" + PASSWORD.encode())}
        locked = client.get(link.path, headers=right)
        stack.sql(
            "UPDATE links SET locked_until = now() - interval '1 second' WHERE token_hash = :h",
            h=hashlib.sha256(link.token.encode()).digest(),
        )
        opened = client.get(link.path, headers=right)
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert opened.status_code == 200
    assert link_row(stack, link.token) == {"failed_attempts": 0, "locked_until": None}


def _spend_client_budget(stack: ProductionStack, source: str | None) -> list[int]:
    """Wrong guesses on fresh links, two per link (under the link's own limit), one more
    than the per-client budget; each request names a fresh address. Their statuses."""
    statuses: list[int] = []
    links = []
    with guest(stack.base_url) as uploader:
        links = [protect(uploader) for _ in range(CLIENT_PASSWORD_FAILURES // 2 + 1)]
    for n in range(CLIENT_PASSWORD_FAILURES + 1):
        with guest(stack.base_url, source=source) as client:
            answer = client.get(links[n // 2].path, headers={"Authorization": basic(b":wrong")})
            statuses.append(answer.status_code)
    return statuses


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(stack: ProductionStack) -> None:
    statuses = _spend_client_budget(stack, UNTRUSTED_PEER)
    # Every guess counts against 127.0.0.2 whatever address it claims: the last is refused.
    assert statuses == [401] * CLIENT_PASSWORD_FAILURES + [429]


def test_x_forwarded_for_from_the_trusted_proxy_names_the_client(stack: ProductionStack) -> None:
    statuses = _spend_client_budget(stack, None)
    assert statuses == [401] * (CLIENT_PASSWORD_FAILURES + 1)


async def test_parallel_guesses_from_one_address_stop_at_its_budget(
    stack: ProductionStack,
) -> None:
    with guest(stack.base_url) as uploader:
        links = [protect(uploader) for _ in range(8)]
    address = fresh_address()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60, trust_env=False) as client:
        answers = await asyncio.gather(
            *(
                client.get(
                    link.path,
                    headers={"Authorization": basic(b":wrong"), "X-Forwarded-For": address},
                )
                for link in links
                for _ in range(PASSWORD_MAX_FAILURES)
            )
        )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses[401] <= CLIENT_PASSWORD_FAILURES, statuses
    assert statuses[401] + statuses[429] == len(answers)


async def test_a_flood_of_parallel_guesses_keeps_memory_bounded_and_the_server_responsive(
    stack: ProductionStack, fresh_api: ApiProcess
) -> None:
    guesses, spread = scaled(500, 5000), scaled(8, 200)
    links = await _protect_many(stack.base_url, spread)
    async with httpx.AsyncClient(base_url=fresh_api.base_url, timeout=120, trust_env=False) as c:
        # Warm up: the argon2 hasher and the first queries, so the figure is the flood's.
        warm = await c.get(links[0].path, headers={"Authorization": basic(b":b:c")})
        assert warm.status_code == 200
    baseline = read_status(fresh_api.pid, "VmHWM")
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    with HealthWatch(fresh_api.base_url, interval=0.1) as health:
        async with httpx.AsyncClient(
            base_url=fresh_api.base_url, timeout=120, trust_env=False, limits=limits
        ) as client:
            answers = await asyncio.gather(
                *(
                    client.get(
                        links[n % spread].path,
                        headers={
                            "Authorization": basic(b":wrong"),
                            "X-Forwarded-For": fresh_address(),
                        },
                    )
                    for n in range(guesses)
                )
            )
    growth = read_status(fresh_api.pid, "VmHWM") - baseline
    statuses = Counter(answer.status_code for answer in answers)
    print(
        f"\n{guesses} parallel guesses over {spread} links: {dict(statuses)}; peak memory "
        f"+{growth / MiB:.0f} MiB; slowest /healthz {health.worst:.2f} s"
    )
    assert statuses == {
        401: spread * PASSWORD_MAX_FAILURES,
        429: guesses - spread * PASSWORD_MAX_FAILURES,
    }
    assert growth < (ARGON2_CONCURRENCY * ARGON2_MIB + 48) * MiB
    assert health.failures == []
    assert health.worst < RESPONSIVE_SECONDS


async def _protect_many(base_url: str, count: int) -> list[Uploaded]:
    async with httpx.AsyncClient(base_url=base_url, timeout=120, trust_env=False) as client:
        gate = asyncio.Semaphore(8)

        async def one(n: int) -> Uploaded:
            async with gate:
                answer = await client.put(
                    f"/flood-{n}.bin",
                    content=b"x" * 100,
                    headers={"Accept": "application/json", "Link-Password": PASSWORD},
                )
            assert answer.status_code == 201, answer.text
            body = answer.json()
            return Uploaded(body["token"], body["download_url"], body["size"], body["sha256"])

        return list(await asyncio.gather(*(one(n) for n in range(count))))


# -- what a protected link gives away --------------------------------------------------


@pytest.fixture(scope="module")
def secret(stack: ProductionStack) -> tuple[Uploaded, bytes]:
    """A protected link to a file with a name, size and content worth hiding."""
    marker = f"TOPSECRET-{secrets.token_hex(8)}".encode()
    data = (marker * (SECRET_SIZE // len(marker) + 1))[:SECRET_SIZE]
    with guest(stack.base_url) as client:
        return protect(client, name=SECRET_NAME, data=data), marker


LEAK_PROBES = {
    "get": ("GET", "/d/{token}", {}),
    "get-named": ("GET", f"/d/{{token}}/{SECRET_NAME}", {}),
    "head": ("HEAD", "/d/{token}", {}),
    "range": ("GET", "/d/{token}", {"Range": "bytes=0-10"}),
    "range-suffix": ("GET", "/d/{token}", {"Range": "bytes=-100"}),
    "if-none-match": ("GET", "/d/{token}", {"If-None-Match": "*"}),
    "share-any": ("GET", "/s/{token}", {"Accept": "*/*"}),
    "share-html": ("GET", "/s/{token}", {"Accept": "text/html"}),
    "share-json": ("GET", "/s/{token}", {"Accept": "application/json"}),
    "share-no-accept": ("GET", "/s/{token}", {"Accept": ""}),
    "status": ("GET", "/api/v1/links/{token}", {}),
    "status-wrong-header": ("GET", "/api/v1/links/{token}", {"Link-Password": "wrong"}),
}


@pytest.mark.parametrize("wrong_password", [False, True], ids=["no-password", "wrong-password"])
@pytest.mark.parametrize(("method", "where", "headers"), LEAK_PROBES.values(), ids=LEAK_PROBES)
def test_a_protected_link_leaks_no_byte_name_length_or_digest(
    stack: ProductionStack,
    secret: tuple[Uploaded, bytes],
    method: str,
    where: str,
    headers: dict[str, str],
    wrong_password: bool,
) -> None:
    link, marker = secret
    unlock(stack, link.token)
    if wrong_password:
        headers = {**headers, "Authorization": basic(b":wrong")}
    with guest(stack.base_url) as client:
        answer = client.request(method, where.format(token=link.token), headers=headers)
    assert answer.status_code in (200, 401, 429), answer.status_code
    for name in ("content-disposition", "repr-digest", "etag", "content-range", "last-modified"):
        assert name not in answer.headers, name
    assert answer.headers.get("content-length") != str(SECRET_SIZE)
    everything = b"\n".join([answer.content, *(value for _key, value in answer.headers.raw)])
    for needle in _secrets_of(link, marker):
        assert needle not in everything, needle
    if where.startswith("/api/"):
        details = answer.json()
        assert all(details.get(key) is None for key in ("filename", "size", "sha256"))


def _secrets_of(link: Uploaded, marker: bytes) -> list[bytes]:
    return [
        marker[:12],
        SECRET_NAME.encode(),
        b"quarterly",
        str(SECRET_SIZE).encode(),
        b"120.6 KiB",
        b"121 kB",
        link.sha256.encode(),
        link.sha256[:16].encode(),
        base64.b64encode(bytes.fromhex(link.sha256))[:16],
    ]
