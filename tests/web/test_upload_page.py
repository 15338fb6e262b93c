"""The upload page in a real browser: pick or drop files, watch them go, get their links.

Uploads are slowed down with DevTools network emulation where a test needs to see the
progress bar move (or to cancel in the middle); loopback would finish in an instant.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import FileChooser, Page, Route, expect
from playwright.async_api import TimeoutError as PlaywrightTimeout
from sqlalchemy import func, select

from app.db.models import Link
from app.http.qr import qr_svg
from tests.support.browser import PageWatch
from tests.support.live import LiveServer, live_server
from tests.support.pages import (
    card,
    drop_files,
    pick_files,
    pick_paths,
    progress_values,
    record_progress,
    throttle_uploads,
)
from tests.support.rows import link_row
from tests.web.conftest import MAX_UPLOAD_BYTES, VIEWER_TIME_ZONE, web_settings

pytestmark = pytest.mark.browser


async def test_picked_file_uploads_with_live_progress_and_its_link_appears(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await record_progress(page)
    await throttle_uploads(page, 1_000_000)
    await pick_files(page, {"report.bin": os.urandom(1_500_000)})
    await page.click("#upload-button")
    uploading = card(page, "report.bin")
    await expect(uploading.locator(".stat-speed")).to_contain_text("/s")
    await expect(uploading.locator(".stat-eta")).to_contain_text("left")
    await watch.screenshot("upload-in-progress")
    await expect(uploading).to_have_attribute("data-state", "ready")
    values = await progress_values(page)
    assert values[-1] == 100
    assert any(0 < value < 100 for value in values)
    assert values == sorted(values)
    share_url = await uploading.locator(".share-url").input_value()
    assert share_url.startswith(f"{server.url}/s/")
    await watch.screenshot("upload-link-ready")


async def test_copy_button_puts_the_share_link_on_the_clipboard(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await pick_files(page, {"copied.txt": b"copy me"})
    await page.click("#upload-button")
    ready = card(page, "copied.txt")
    await expect(ready).to_have_attribute("data-state", "ready")
    await ready.locator(".copy-link").click()
    await expect(ready.locator(".copy-link")).to_have_text("Copied")
    clipboard = await page.evaluate("navigator.clipboard.readText()")
    assert clipboard == await ready.locator(".share-url").input_value()


async def test_result_shows_the_qr_code_local_expiry_and_manage_token(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await pick_files(page, {"qr.txt": b"scan me"})
    await page.click("#upload-button")
    ready = card(page, "qr.txt")
    await expect(ready).to_have_attribute("data-state", "ready")
    share_url = await ready.locator(".share-url").input_value()
    token = share_url.rsplit("/", 1)[1]
    qr = ready.locator(".qr img")
    await expect(qr).to_have_attribute("src", f"/api/v1/links/{token}/qr.svg")
    # decode() waits for the picture to arrive (the src is set before it loads) and
    # rejects when it cannot be shown, so a broken image still fails here.
    assert await qr.evaluate("img => img.decode().then(() => img.naturalWidth)") > 0
    async with httpx.AsyncClient() as http:
        svg = await http.get(f"{server.url}/api/v1/links/{token}/qr.svg")
    assert svg.content == qr_svg(share_url)
    expires = ready.locator("time.expires")
    instant = datetime.fromisoformat(await expires.get_attribute("datetime") or "")
    local = instant.astimezone(ZoneInfo(VIEWER_TIME_ZONE))
    await expect(expires).to_contain_text(local.strftime("%H:%M"))
    manage_token = await ready.locator(".manage-token").input_value()
    assert len(manage_token) >= 22
    row = await link_row(server.services, token)
    assert row is not None
    assert row.manage_token_hash == hashlib.sha256(manage_token.encode()).digest()


async def test_several_files_go_one_after_another_without_a_reload(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await drop_files(page, {"first.txt": b"one"})
    await expect(page.locator("#selection")).to_contain_text("first.txt")
    await page.click("#upload-button")
    await expect(card(page, "first.txt")).to_have_attribute("data-state", "ready")
    await drop_files(page, {"second.txt": b"two", "third.txt": b"three"})
    await expect(page.locator("#selection")).to_contain_text("2 files")
    await page.click("#upload-button")
    for name in ("second.txt", "third.txt"):
        await expect(card(page, name)).to_have_attribute("data-state", "ready")
    urls = {await url.input_value() for url in await page.locator(".share-url").all()}
    assert len(urls) == 3
    await watch.screenshot("upload-several-files")


async def test_delete_button_ends_the_link_and_its_page_says_so(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await pick_files(page, {"regret.txt": b"oops"})
    await page.click("#upload-button")
    ready = card(page, "regret.txt")
    await expect(ready).to_have_attribute("data-state", "ready")
    share_url = await ready.locator(".share-url").input_value()
    await ready.locator(".delete").click()
    await expect(ready.locator(".confirm-delete")).to_be_focused()
    await expect(ready.locator(".delete")).to_be_hidden()
    await ready.locator(".confirm-delete").click()
    await expect(ready).to_have_attribute("data-state", "deleted")
    await expect(ready.locator(".upload-status")).to_have_text("Deleted. The link no longer works.")
    watch.expected_statuses.add(410)
    answer = await page.goto(share_url)
    assert answer is not None
    assert answer.status == 410
    await expect(page.locator("h1")).to_have_text("This link is no longer available")


async def test_cancel_stops_the_upload_and_keeps_nothing(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await throttle_uploads(page, 400_000)
    await pick_files(page, {"cancelled.bin": os.urandom(4_000_000)})
    await page.click("#upload-button")
    uploading = card(page, "cancelled.bin")
    await expect(uploading.locator(".stat-percent")).not_to_have_text("0 %")
    await uploading.locator(".cancel").click()
    await expect(uploading).to_have_attribute("data-state", "cancelled")
    await expect(uploading.locator(".upload-status")).to_contain_text("Nothing was kept")
    await watch.screenshot("upload-cancelled")
    staging = server.services.settings.data_dir / "objects" / "staging"
    await _until(lambda: not any(staging.glob("*")))
    async with server.services.sessions() as session:
        kept = await session.scalar(
            select(func.count()).select_from(Link).where(Link.filename == "cancelled.bin")
        )
    assert kept == 0


def _file_over_the_limit(folder: Path) -> Path:
    path = folder / "huge.bin"
    with path.open("wb") as file:
        file.truncate(MAX_UPLOAD_BYTES + 1)
    return path


async def test_file_over_the_limit_is_refused_before_it_is_sent(
    server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await pick_paths(page, [_file_over_the_limit(tmp_path)])
    await expect(page.locator("#form-error")).to_contain_text("larger than the server accepts")
    await page.click("#upload-button")
    await expect(page.locator("li.upload")).to_have_count(0)
    await watch.screenshot("upload-too-large")


async def test_servers_413_is_explained(
    server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    watch.expected_statuses.add(413)

    async def page_with_a_higher_limit(route: Route) -> None:
        # A page rendered before the server's limit was lowered: only the server refuses.
        response = await route.fetch()
        body = (await response.text()).replace(
            f'data-max-bytes="{MAX_UPLOAD_BYTES}"', 'data-max-bytes="1000000000000"'
        )
        await route.fulfill(response=response, body=body)

    await page.route(f"{server.url}/", page_with_a_higher_limit)
    await page.goto(f"{server.url}/")
    await pick_paths(page, [_file_over_the_limit(tmp_path)])
    await page.click("#upload-button")
    refused = card(page, "huge.bin")
    await expect(refused).to_have_attribute("data-state", "failed")
    await expect(refused.locator(".upload-status")).to_contain_text(
        "larger than the server accepts"
    )
    await expect(refused.locator(".retry")).to_be_visible()


async def test_keyboard_alone_uploads_a_file_with_focus_always_visible(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    order = ["skip-link", "brand", "choose", "expires_in", "password", "max_downloads"]
    for expected in [*order, "upload-button"]:
        await page.keyboard.press("Tab")
        assert await _focused(page) == expected
        assert await _focus_is_visible(page), expected
    for _ in range(4):
        await page.keyboard.press("Shift+Tab")
    assert await _focused(page) == "choose"
    chooser = await _open_picker_with_space(page)
    await chooser.set_files(
        files=[{"name": "typed.txt", "mimeType": "text/plain", "buffer": b"no mouse"}]
    )
    for _ in range(4):
        await page.keyboard.press("Tab")
    assert await _focused(page) == "upload-button"
    await watch.screenshot("upload-keyboard-focus")
    await page.keyboard.press("Enter")
    ready = card(page, "typed.txt")
    await expect(ready).to_have_attribute("data-state", "ready")
    await expect(ready.locator(".share-url")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(ready.locator(".copy-link")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#announcer")).to_have_text("Link copied")


async def _open_picker_with_space(page: Page) -> FileChooser:
    """Press Space on the focused Choose button until the file picker opens (3 tries).

    Space, the other key that presses a button: Chromium opens a file picker from an
    emulated Enter only now and then, and from an emulated Space almost always — its user
    activation is flaky under DevTools input (a real key press is not emulated). A page
    whose button never opens the picker still fails here.
    """
    for attempt in range(3):
        try:
            async with page.expect_file_chooser(timeout=5000) as chooser:
                await page.keyboard.press(" ")
            return await chooser.value
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            assert await _focused(page) == "choose"
    raise AssertionError("unreachable")


async def test_phone_sized_screen_shows_the_whole_page_without_sideways_scrolling(
    server: LiveServer, phone: PageWatch
) -> None:
    page = phone.page
    await page.goto(f"{server.url}/")
    await phone.screenshot("phone-upload-page")
    await pick_files(page, {"holiday-photos-with-a-rather-long-name.zip": os.urandom(5000)})
    await page.click("#upload-button")
    ready = card(page, "holiday-photos-with-a-rather-long-name.zip")
    await expect(ready).to_have_attribute("data-state", "ready")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await phone.screenshot("phone-upload-link-ready")


async def test_upload_shows_sealing_until_the_worker_is_done(
    idle_server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{idle_server.url}/")
    await pick_files(page, {"slow-seal.txt": b"patience"})
    await page.click("#upload-button")
    sealing = card(page, "slow-seal.txt")
    await expect(sealing).to_have_attribute("data-state", "sealing")
    await expect(sealing.locator(".upload-status")).to_contain_text("Sealing")
    await expect(sealing.locator(".stat-percent")).to_have_text("100 %")
    await watch.screenshot("upload-sealing")
    async with idle_server.worker():
        await expect(sealing).to_have_attribute("data-state", "ready")


async def _focused(page: Page) -> str:
    name: str = await page.evaluate(
        "document.activeElement.id || document.activeElement.classList[0] || ''"
    )
    return name


async def _focus_is_visible(page: Page) -> bool:
    style = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth]; })()"
    )
    return bool(style[0] != "none" and style[1] != "0px")


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_rate_limited_upload_says_when_to_try_again(watch: PageWatch, tmp_path: Path) -> None:
    watch.expected_statuses.add(429)
    async with live_server(web_settings(tmp_path / "data", upload_rate_per_minute=1)) as limited:
        page = watch.page
        await page.goto(f"{limited.url}/")
        await pick_files(page, {"first.txt": b"1"})
        await page.click("#upload-button")
        await expect(card(page, "first.txt")).to_have_attribute("data-state", "ready")
        await pick_files(page, {"second.txt": b"2"})
        await page.click("#upload-button")
        refused = card(page, "second.txt")
        await expect(refused).to_have_attribute("data-state", "failed")
        await expect(refused.locator(".upload-status")).to_have_text(
            re.compile(r"^Too many uploads from your address\. Try again in \d+ seconds\.$")
        )
        await watch.screenshot("upload-rate-limited")
