"""The upload page over tus on each deployment, in headless Chromium: reloaded mid-upload,
it resumes from the server's offset; meanwhile no plaintext byte rests in staging (on the
production stack: S3 pieces written by an API process apart from its workers); the
download is byte-identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from playwright.async_api import Browser, expect

from app.storage.base import ObjectMissing
from tests.e2e.payloads import new_marker, write_payload
from tests.support.browser import CHROMIUM, PageWatch, chromium
from tests.support.pages import card, pick_paths, throttle_uploads
from tests.support.shared_stacks import SMALL_UPLOAD_LIMIT
from tests.support.stack import Stack
from tests.support.tus_pages import (
    MIB,
    downloaded_sha256,
    forgive_dropped_requests,
    stored_tus_entries,
    until_offset,
    watch_tus,
)

pytestmark = pytest.mark.browser

SIZE = 7 * MIB  # above the page's 4 MiB, within the shared stacks' limit
assert SIZE <= SMALL_UPLOAD_LIMIT


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps")
    async with chromium() as launched:
        yield launched


async def test_page_reloaded_mid_upload_resumes_and_staging_holds_no_plaintext(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    marker = new_marker()
    path = tmp_path / "ledger.bin"
    sha256 = write_payload(path, SIZE, marker=marker).hex()
    context = await browser.new_context()
    watch = PageWatch(await context.new_page())
    await watch.attach()
    page = watch.page
    await page.goto(f"{stack.base_url}/")
    traffic = await watch_tus(page, stack.base_url)
    await throttle_uploads(page, 1_500_000)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    acknowledged = await until_offset(traffic, 3 * MIB)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.reload()
    # Half-way (and still, the page gone): the acknowledged bytes are sealed pieces in
    # staging, and none of them shows the marker.
    assert await _places_holding(stack, marker) == []
    mark, head_mark = len(traffic.requests), len(traffic.head_offsets)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    resumed = card(page, "ledger.bin")
    await expect(resumed.locator(".upload-status")).to_contain_text("Resuming: ", timeout=30_000)
    await expect(resumed).to_have_attribute("data-state", "ready", timeout=90_000)
    assert "POST" not in [method for method, _ in traffic.since(mark)]
    assert traffic.head_offsets[head_mark] >= acknowledged
    assert min(traffic.patch_offsets(mark)) == traffic.head_offsets[head_mark]
    assert await downloaded_sha256(page) == sha256
    assert await stored_tus_entries(page) == []
    assert await _places_holding(stack, marker) == []
    forgive_dropped_requests(watch)
    await context.close()
    assert watch.problems() == []


async def _places_holding(stack: Stack, marker: bytes) -> list[str]:
    """`stack.places_holding`, asked again when an object went between its listing and its
    reading (the server removes a sealed upload's staged pieces, and a broken PATCH's)."""
    for attempt in range(5):
        try:
            return await asyncio.to_thread(stack.places_holding, marker)
        except (ObjectMissing, FileNotFoundError, ClientError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.5)
    raise AssertionError("unreachable")
