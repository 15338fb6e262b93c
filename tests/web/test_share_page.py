"""The share page in a real browser: the file's details, a download of identical bytes,
and the friendly pages for links that expired, never existed, or are still being sealed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os

import httpx
import pytest
from playwright.async_api import Route, expect

from app.db.clock import db_now_plus, seconds
from tests.support.browser import PageWatch, downloaded_sha256
from tests.support.live import LiveServer
from tests.support.pages import put
from tests.support.rows import update_link

pytestmark = pytest.mark.browser


async def test_share_page_shows_the_file_and_downloads_identical_bytes(
    server: LiveServer, watch: PageWatch
) -> None:
    data = os.urandom(300_000)
    created = await put(server.url, data, "quarterly report.pdf")
    page = watch.page
    await page.goto(created.body["url"])
    await expect(page.locator("h1")).to_have_text("quarterly report.pdf")
    await expect(page.locator(".facts")).to_contain_text("293.0 KiB")
    await expect(page.locator(".digest")).to_have_text(hashlib.sha256(data).hexdigest())
    await expect(page.locator("#time-left")).to_contain_text("left")
    await watch.screenshot("share-page")
    async with page.expect_download() as download:
        await page.click("#download")
    finished = await download.value
    assert finished.suggested_filename == "quarterly report.pdf"
    assert await downloaded_sha256(finished) == hashlib.sha256(data).hexdigest()


async def test_time_left_counts_down_live(server: LiveServer, watch: PageWatch) -> None:
    created = await put(server.url, b"tick", "tick.txt", **{"Expires-In": "90"})
    page = watch.page
    await page.goto(created.body["url"])
    first = await page.locator("#time-left").text_content()
    await expect(page.locator("#time-left")).not_to_have_text(first or "")
    await expect(page.locator("#time-left")).to_contain_text("minute")


async def test_expired_link_gets_the_friendly_410_page(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await put(server.url, b"old news", "old.txt")
    await update_link(server.services, created.token, expires_at=db_now_plus(seconds(-60)))
    watch.expected_statuses.add(410)
    answer = await watch.page.goto(created.body["url"])
    assert answer is not None
    assert answer.status == 410
    await expect(watch.page.locator("h1")).to_have_text("This link is no longer available")
    await expect(watch.page.locator("main")).not_to_contain_text("old.txt")
    await watch.screenshot("share-expired-410")


async def test_unknown_link_gets_the_404_page(server: LiveServer, watch: PageWatch) -> None:
    watch.expected_statuses.add(404)
    answer = await watch.page.goto(f"{server.url}/s/AAAAAAAAAAAAAAAAAAAAAA")
    assert answer is not None
    assert answer.status == 404
    await expect(watch.page.locator("h1")).to_have_text("No such link")
    await watch.screenshot("share-unknown-404")


async def test_page_of_a_link_being_sealed_refreshes_by_itself_when_ready(
    idle_server: LiveServer, watch: PageWatch
) -> None:
    created = await put(idle_server.url, b"soon", "soon.txt", Prefer="respond-async")
    assert created.body["state"] == "pending"
    page = watch.page
    loads: list[str] = []
    page.on("load", lambda: loads.append(page.url))
    await page.goto(created.body["url"])
    await expect(page.locator(".sealing")).to_contain_text("being sealed")
    await expect(page.locator("#download")).to_have_count(0)
    await watch.screenshot("share-sealing")
    async with idle_server.worker():
        await expect(page.locator("#download")).to_be_visible()
    assert len(loads) == 2


async def test_used_up_link_gets_the_410_page_saying_so(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await put(server.url, b"once", "once.txt", **{"Max-Downloads": "1"})
    async with httpx.AsyncClient() as http:
        assert (await http.get(created.body["download_url"])).content == b"once"
    watch.expected_statuses.add(410)
    answer = await watch.page.goto(created.body["url"])
    assert answer is not None
    assert answer.status == 410
    await expect(watch.page.locator("main")).to_contain_text("downloaded as many times as allowed")


async def test_share_page_fits_a_phone(server: LiveServer, phone: PageWatch) -> None:
    created = await put(server.url, os.urandom(2048), "boarding-pass-for-the-night-train.pdf")
    await phone.page.goto(created.body["url"])
    await expect(phone.page.locator("#time-left")).to_contain_text("left")
    assert await phone.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await phone.screenshot("phone-share-page")


async def test_the_watch_sees_a_csp_violation(server: LiveServer, watch: PageWatch) -> None:
    async def with_inline_script(route: Route) -> None:
        response = await route.fetch()
        body = (await response.text()).replace("</main>", "<script>1</script></main>")
        await route.fulfill(response=response, body=body)

    await watch.page.route(f"{server.url}/", with_inline_script)
    await watch.page.goto(f"{server.url}/")
    for _ in range(100):
        if watch.csp_violations:
            break
        await asyncio.sleep(0.02)
    assert any("script-src" in violation for violation in watch.csp_violations)
    watch.csp_violations.clear()
    watch.console_errors.clear()  # Chromium also logs the refusal; it was the point here
