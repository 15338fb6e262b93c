"""A direct upload from the upload page in headless Chromium, to the real S3 server.

`sealdrop storage init` with the page's origin as SEALDROP_PUBLIC_URL sets the staging
bucket's CORS rule; the page's CSP allows connect-src to the S3 endpoint. The file (random
bytes with a marker every 64 KiB) is sealed in the browser and PUT part by part to S3.
Before the completion reaches the API, the S3 server's whole data folder and every object
are scanned: the marker is nowhere (a plaintext copy put there as a control is found).
Then the link downloads byte-identical. A page reloaded mid direct upload resumes it
when the same file is picked again, sending only the parts S3 does not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, Route, expect

from tests.support.browser import PageWatch, chromium
from tests.support.pages import card, pick_paths
from tests.support.production import ProductionStack
from tests.support.stack import file_contains
from tests.support.tus_pages import (
    MIB,
    downloaded_sha256,
    forgive_dropped_requests,
    mib,
    random_file,
)

pytestmark = [pytest.mark.production, pytest.mark.browser, pytest.mark.slow]

SIZE = 11 * 1024 * 1024 + 4321  # three parts: 5 MiB, 5 MiB, the rest

_UPLOAD = """
async ([size, marker]) => {
  const { uploadDirect } = await import("/static/direct_upload.js");
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(at + 65536, size)));
  }
  const mark = new TextEncoder().encode(marker);
  for (let at = 0; at + mark.length <= size; at += 65536) data.set(mark, at);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const file = new File([data], "marked.bin", { type: "application/octet-stream" });
  const progress = [];
  const transfer = uploadDirect(file, { expires_in: "1h", password: "", max_downloads: "" },
    (sent, total) => progress.push([sent, total]));
  const link = await transfer.done;
  return {
    link,
    sha256: Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""),
    last: progress[progress.length - 1],
    steps: progress.length,
  };
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionStack]:
    """A stack whose staging bucket lets its own page origin PUT parts (CORS)."""
    running = ProductionStack(
        tmp_path_factory.mktemp("direct-browser"), env={"SEALDROP_SEGMENT_LOG2": "16"}
    )
    running.start()
    try:
        # The API's port is known only now: storage init again, with it as the origin.
        init = running.run_cli("storage", "init", SEALDROP_PUBLIC_URL=running.base_url)
        assert init.returncode == 0, init.stdout + init.stderr
        assert f"PUT from {running.base_url}" in init.stdout
        yield running
    finally:
        running.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium."""
    async with chromium() as launched:
        yield launched


def _s3_folder(stack: ProductionStack) -> Path:
    folder = stack.backends.s3_endpoint._folder
    if folder is None:
        pytest.fail("the marker scan needs the S3 server's data folder (SeaweedFS of this run)")
    return folder


def _folder_holds(folder: Path, needle: bytes) -> list[str]:
    return [
        str(path.relative_to(folder))
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".log") and file_contains(path, needle)
    ]


def _scan(stack: ProductionStack, marker: bytes) -> list[str]:
    return _folder_holds(_s3_folder(stack), marker) + stack.places_holding(marker)


async def test_page_direct_upload_leaves_no_plaintext_in_s3_and_downloads_identical(
    stack: ProductionStack, browser: Browser
) -> None:
    marker = f"SEALDROP-MARKER-{secrets.token_hex(8)}"
    staging_before_completion: list[list[str]] = []
    pending_parts: list[int] = []

    async def before_completion(route: Route) -> None:
        # Every part is in S3 now, sealed; the API has not completed anything yet.
        pending_parts.append(len(stack.pending_writes("staging/")))
        staging_before_completion.append(await asyncio.to_thread(_scan, stack, marker.encode()))
        await route.continue_()

    context = await browser.new_context()
    watch = PageWatch(await context.new_page())
    await watch.attach()
    page = watch.page
    await page.route("**/api/v1/direct-uploads/*/complete", before_completion)
    answer = await page.goto(f"{stack.base_url}/")
    assert answer is not None
    assert stack.backends.endpoint_url in answer.headers["content-security-policy"]
    result = await page.evaluate(_UPLOAD, [SIZE, marker])
    await context.close()
    assert watch.problems() == []

    assert pending_parts == [1]
    assert staging_before_completion == [[]]
    assert result["last"] == [SIZE, SIZE]
    assert result["steps"] > 3
    link = result["link"]
    assert link["size"] == SIZE
    for _ in range(300):
        got = httpx.get(link["download_url"], timeout=120)
        if got.status_code != 503:
            break
        await asyncio.sleep(0.2)
    assert got.status_code == 200
    assert hashlib.sha256(got.content).hexdigest() == result["sha256"]
    assert marker.encode() in got.content
    assert _scan(stack, marker.encode()) == []


def test_the_marker_scan_finds_plaintext_put_into_the_bucket(stack: ProductionStack) -> None:
    """The control: a plaintext object with the marker is found where the scan looks."""
    marker = f"SEALDROP-MARKER-{secrets.token_hex(8)}".encode()
    body = b"".join(secrets.token_bytes(65536 - len(marker)) + marker for _ in range(4))
    key = "staging/control-plaintext"
    stack.s3.put_object(Bucket=stack.staging_bucket, Key=key, Body=body)
    try:
        assert _folder_holds(_s3_folder(stack), marker) != []
    finally:
        stack.s3.delete_object(Bucket=stack.staging_bucket, Key=key)


async def test_the_page_sends_a_large_file_direct_when_discovery_offers_it(
    stack: ProductionStack, browser: Browser, tmp_path: Path
) -> None:
    """Through the form: a 64 MiB file takes the direct path (no tus, no form POST)."""
    source = tmp_path / "large.bin"
    source.write_bytes(secrets.token_bytes(64 * 1024 * 1024))
    context = await browser.new_context()
    watch = PageWatch(await context.new_page())
    await watch.attach()
    page = watch.page
    paths: list[str] = []
    page.on("request", lambda request: paths.append(f"{request.method} {request.url}"))
    await page.goto(f"{stack.base_url}/")
    await pick_paths(page, [source])
    await page.click("#upload-button")
    uploaded = card(page, "large.bin")
    await expect(uploaded).to_have_attribute("data-state", "ready", timeout=180_000)
    link = await uploaded.locator("input.share-url").input_value()
    await context.close()
    assert watch.problems() == []
    assert any(p.startswith("POST") and p.endswith("/api/v1/direct-uploads") for p in paths)
    assert any(p.startswith("PUT " + stack.backends.endpoint_url) for p in paths)
    assert not any("/api/v1/uploads" in p or p.endswith("/api/v1/links") for p in paths)
    token = link.rstrip("/").split("/s/")[1].split("/")[0]
    got = httpx.get(f"{stack.base_url}/d/{token}", timeout=120)
    assert got.status_code == 200
    assert got.content == source.read_bytes()


def _part_number(url: str) -> int | None:
    found = parse_qs(urlparse(url).query).get("partNumber")
    return int(found[0]) if found else None


async def _stored_direct_entries(page: Page) -> list[str]:
    entries: list[str] = await page.evaluate(
        "Object.keys(localStorage).filter((k) => k.startsWith('sealdrop.direct::'))"
        ".map((k) => k + ' ' + localStorage.getItem(k))"
    )
    return entries


async def test_reload_mid_direct_upload_then_the_same_file_sends_only_the_missing_parts(
    stack: ProductionStack, browser: Browser, tmp_path: Path
) -> None:
    """Three parts reach S3, the others are held; the page reloads; the same file picked
    again sends only the parts S3 does not list, and the link downloads byte-identical.
    The browser kept the upload URL, never the staging key nor the password."""
    password = "direct-secret-9"
    path, sha256 = random_file(tmp_path, "reloaded-direct.bin", 64 * MIB)
    endpoint = stack.backends.endpoint_url
    holding = True
    released = asyncio.Event()
    before: list[int] = []
    after: list[int] = []
    stored_parts: list[int] = []
    created: list[dict[str, Any]] = []
    api_calls: list[str] = []

    async def parts(route: Route) -> None:
        number = _part_number(route.request.url)
        if route.request.method != "PUT" or number is None:
            await route.continue_()
            return
        (before if holding else after).append(number)
        if holding and number > 3:
            await released.wait()  # held until the page that sent it is gone
            with contextlib.suppress(Exception):
                await route.abort()
            return
        await route.continue_()

    async def on_response(response: Response) -> None:
        request = response.request
        if request.method == "PUT" and _part_number(request.url) and response.ok:
            stored_parts.append(_part_number(request.url) or 0)
        if request.method == "POST" and request.url.endswith("/api/v1/direct-uploads"):
            created.append(await response.json())

    context = await browser.new_context()
    watch = PageWatch(await context.new_page())
    await watch.attach()
    page = watch.page
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    page.on("response", on_response)
    page.on(
        "request",
        lambda request: (
            api_calls.append(f"{request.method} {request.url}")
            if "/api/v1/direct-uploads" in request.url
            else None
        ),
    )
    await page.route(lambda url: url.startswith(endpoint), parts)
    await page.goto(f"{stack.base_url}/")
    await pick_paths(page, [path])
    await page.fill("#password", password)
    await page.click("#upload-button")
    for _ in range(600):
        if len(stored_parts) >= 3 and len(before) >= 6:
            break
        await asyncio.sleep(0.1)
    assert sorted(stored_parts) == [1, 2, 3]
    assert len(created) == 1
    staging_key = created[0]["staging_key"]
    part_size = created[0]["part_size"]
    stored = await _stored_direct_entries(page)
    assert len(stored) == 1
    assert created[0]["upload_url"] in stored[0]
    for secret in (staging_key, password, "staging_key"):
        assert secret not in stored[0]

    await page.reload()
    holding = False
    released.set()
    mark = len(api_calls)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    resumed = card(page, "reloaded-direct.bin")
    await expect(resumed.locator(".upload-status")).to_contain_text("Resuming: ")
    status = await resumed.locator(".upload-status").text_content() or ""
    await expect(resumed).to_have_attribute("data-state", "ready", timeout=180_000)
    assert status == f"Resuming: {mib(3 * part_size)} MiB already uploaded"
    # Only the parts S3 did not list went again, each once; no new upload was made.
    assert sorted(after) == list(range(4, 14))
    again = api_calls[mark:]
    assert not any(call.startswith("POST") and call.endswith("/direct-uploads") for call in again)
    assert f"GET {stack.base_url}{created[0]['upload_url']}" in again
    manage_token = await resumed.locator(".manage-token").input_value()
    assert len(manage_token) >= 22
    token = (await resumed.locator(".share-url").input_value()).rsplit("/", 1)[1]
    await expect(resumed.locator(".qr img")).to_have_attribute(
        "src", f"/api/v1/links/{token}/qr.svg"
    )
    await expect(resumed.locator(".fact-password")).to_be_visible()
    assert await downloaded_sha256(page, password) == sha256
    assert await _stored_direct_entries(page) == []
    everything: str = await page.evaluate("JSON.stringify(Object.entries(localStorage))")
    assert staging_key not in everything
    await context.close()
    forgive_dropped_requests(watch)
    assert watch.problems() == []


_FILE = """
([name, size]) => {
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(data.subarray(at, Math.min(at + 65536, size)));
  }
  return new File([data], name, { type: "application/octet-stream", lastModified: 1700000000000 });
}
"""

_FORGOTTEN = (
    """
async ([size, stale]) => {
  const { uploadDirect } = await import("/static/direct_upload.js");
  const file = ("""
    + _FILE
    + """)(["stale.bin", size]);
  const fingerprint = `stale.bin:${size}:1700000000000`;
  localStorage.setItem(`sealdrop.direct::${fingerprint}::old`, JSON.stringify({
    uploadUrl: stale, size, creationTime: new Date().toISOString(),
    fields: { expires_in: "", max_downloads: "", password: "" },
  }));
  const resumed = [];
  const transfer = uploadDirect(file, { expires_in: "1h", password: "", max_downloads: "" },
    () => {}, { onResumed: (sent) => resumed.push(sent) });
  const link = await transfer.done;
  const left = Object.keys(localStorage).filter((k) => k.startsWith("sealdrop.direct::"));
  return { link, resumed, left };
}
"""
)

_CANCELLED = (
    """
async ([size]) => {
  const { uploadDirect } = await import("/static/direct_upload.js");
  const file = ("""
    + _FILE
    + """)(["cancelled.bin", size]);
  const fields = { expires_in: "1h", password: "", max_downloads: "" };
  const transfer = uploadDirect(file, fields, () => {});
  const stored = () => Object.keys(localStorage).filter((k) => k.startsWith("sealdrop.direct::"));
  while (stored().length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
  const before = stored().map((k) => JSON.parse(localStorage.getItem(k)).uploadUrl);
  transfer.abort();
  const error = await transfer.done.catch((e) => e.name);
  return { before, error, left: stored() };
}
"""
)


async def test_a_stored_direct_upload_the_server_no_longer_knows_is_forgotten(
    stack: ProductionStack, browser: Browser
) -> None:
    """A stored upload URL answered 404 is dropped and the file starts over (a new POST)."""
    stale = "/api/v1/direct-uploads/" + secrets.token_urlsafe(16)
    context = await browser.new_context()
    watch = PageWatch(await context.new_page())
    await watch.attach()
    page = watch.page
    calls: list[str] = []
    page.on("request", lambda request: calls.append(f"{request.method} {request.url}"))
    await page.goto(f"{stack.base_url}/")
    result = await page.evaluate(_FORGOTTEN, [6 * MIB + 5, stale])
    await context.close()
    assert f"GET {stack.base_url}{stale}" in calls
    assert f"POST {stack.base_url}/api/v1/direct-uploads" in calls
    assert result["resumed"] == []
    assert result["left"] == []
    assert result["link"]["size"] == 6 * MIB + 5
    watch.console_errors[:] = [e for e in watch.console_errors if "404" not in e]
    assert watch.problems() == []


async def test_cancel_deletes_the_direct_upload_and_forgets_it(
    stack: ProductionStack, browser: Browser
) -> None:
    held = asyncio.Event()

    async def hold(route: Route) -> None:
        if route.request.method == "PUT":
            await held.wait()
        with contextlib.suppress(Exception):
            await route.abort()

    context = await browser.new_context()
    page = await context.new_page()
    await page.route(lambda url: url.startswith(stack.backends.endpoint_url), hold)
    await page.goto(f"{stack.base_url}/")
    result = await page.evaluate(_CANCELLED, [6 * MIB])
    held.set()
    await context.close()
    assert result["error"] == "AbortError"
    assert result["left"] == []
    (upload_url,) = result["before"]
    assert httpx.get(stack.base_url + upload_url, timeout=30).status_code == 404
