"""The upload page's tus traffic, seen from a test: what it sent, what the server holds.

`watch_tus` rewrites the discovery document's chunk size to 1 MiB on its way to the page
(so a reload or a dropped connection lands between acknowledged chunks of a small file)
and records every tus request the page makes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urljoin

import httpx
from playwright.async_api import Page, Request, Response, Route

from tests.support.browser import PageWatch

MIB = 1024 * 1024
CHUNK = MIB
TUS = {"Tus-Resumable": "1.0.0"}
# Chromium logs a request the network took away; the tests that cut one mean it.
DROPPED = ("net::ERR_INTERNET_DISCONNECTED", "net::ERR_CONNECTION_RESET", "net::ERR_FAILED")


@dataclass
class TusTraffic:
    """The tus requests a page made: (method, Upload-Offset) in order, and the upload URL."""

    requests: list[tuple[str, int | None]] = field(default_factory=list)
    upload_url: str = ""
    head_offsets: list[int] = field(default_factory=list)
    creation_headers: dict[str, str] = field(default_factory=dict)

    def since(self, mark: int) -> list[tuple[str, int | None]]:
        """The requests made after the first `mark`."""
        return self.requests[mark:]

    def patch_offsets(self, mark: int = 0) -> list[int]:
        """The Upload-Offset of each PATCH after the first `mark` requests."""
        return [
            offset
            for method, offset in self.since(mark)
            if method == "PATCH" and offset is not None
        ]


async def watch_tus(page: Page, base_url: str) -> TusTraffic:
    """Give the page 1 MiB chunks and keep every tus request it makes."""
    traffic = TusTraffic()

    async def small_chunks(route: Route) -> None:
        response = await route.fetch()
        document = await response.json()
        document["uploads"]["tus"]["chunk_size"] = CHUNK
        await route.fulfill(response=response, json=document)

    def on_request(request: Request) -> None:
        if "/api/v1/uploads/" not in request.url and not request.url.endswith("/api/v1/links"):
            return
        offset = request.headers.get("upload-offset")
        traffic.requests.append((request.method, int(offset) if offset is not None else None))
        if request.method == "POST" and request.url.endswith("/api/v1/uploads/"):
            traffic.creation_headers = request.headers

    async def on_response(response: Response) -> None:
        request = response.request
        if request.method == "POST" and request.url.endswith("/api/v1/uploads/"):
            traffic.upload_url = urljoin(request.url, await response.header_value("location") or "")
        if request.method == "HEAD" and "/api/v1/uploads/" in request.url and response.ok:
            traffic.head_offsets.append(int(await response.header_value("upload-offset") or "-1"))

    await page.route(f"{base_url}/api/v1/", small_chunks)
    page.on("request", on_request)
    page.on("response", on_response)
    return traffic


def random_file(folder: Path, name: str, size: int) -> tuple[Path, str]:
    """A file of random bytes on disk (the browser reads it itself), and its SHA-256."""
    path = folder / name
    digest = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            digest.update(block)
            file.write(block)
    return path, digest.hexdigest()


async def server_offset(upload_url: str) -> int | None:
    """The server's acknowledged offset (HEAD), or None when it no longer knows the upload."""
    async with httpx.AsyncClient() as http:
        answer = await http.head(upload_url, headers=TUS)
    if answer.status_code in (404, 410):
        return None
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["upload-offset"])


async def until_offset(traffic: TusTraffic, at_least: int, timeout: float = 60) -> int:
    """Wait until the server acknowledged at least `at_least` bytes; the offset it holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        offset = await server_offset(traffic.upload_url) if traffic.upload_url else None
        if offset is not None and offset >= at_least:
            return offset
        assert asyncio.get_running_loop().time() < deadline, f"offset stayed at {offset}"
        await asyncio.sleep(0.1)


async def downloaded_sha256(page: Page, password: str | None = None) -> str:
    """SHA-256 of the newest remembered link's download, streamed."""
    saved = json.loads(await page.evaluate("localStorage.getItem('sealdrop.links')"))
    auth = ("", password) if password else None
    digest = hashlib.sha256()
    async with (
        httpx.AsyncClient(auth=auth) as http,
        http.stream("GET", saved[0]["download_url"]) as answer,
    ):
        assert answer.status_code == 200
        async for block in answer.aiter_bytes():
            digest.update(block)
    return digest.hexdigest()


async def stored_tus_entries(page: Page) -> list[str]:
    """The page's stored tus uploads (`sealdrop.tus::…`), each as "key value"."""
    entries: list[str] = await page.evaluate(
        "Object.keys(localStorage).filter((k) => k.startsWith('sealdrop.tus::'))"
        ".map((k) => k + ' ' + localStorage.getItem(k))"
    )
    return entries


def mib(size: int) -> str:
    """`size` in MiB with one decimal, rounded as JavaScript's toFixed (half up: 4.25 → 4.3)."""
    exact = Decimal(size) / MIB  # exact: MIB is a power of two
    return str(exact.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def forgive_dropped_requests(watch: PageWatch) -> None:
    """Forget the console errors of requests a test cut on purpose."""
    watch.console_errors[:] = [e for e in watch.console_errors if not e.endswith(DROPPED)]
