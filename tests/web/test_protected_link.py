"""A protected link in a real browser: the page's own password form, never the browser's
dialog; nothing about the file before the right password; then a download that needs no
second prompt, through a single-use ticket.
"""

from __future__ import annotations

import hashlib
import os

import pytest
from playwright.async_api import Page, expect

from tests.support.asgi import Uploaded
from tests.support.browser import PageWatch, downloaded_sha256
from tests.support.live import LiveServer
from tests.support.pages import card, pick_files, put

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"
DATA = os.urandom(120_000)


async def _protected(server: LiveServer) -> Uploaded:
    return await put(server.url, DATA, "secret-plans.pdf", **{"Link-Password": PASSWORD})


async def _unlock(page: Page, password: str) -> None:
    await page.fill("#password", password)
    await page.click("button[type=submit]")


async def test_protected_link_asks_for_the_password_in_the_page(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await _protected(server)
    watch.expected_statuses.add(401)
    answer = await watch.page.goto(created.body["url"])
    assert answer is not None
    assert answer.status == 401
    assert not answer.headers["www-authenticate"].lower().startswith("basic")
    await expect(watch.page.locator("h1")).to_have_text("This file is protected")
    await expect(watch.page.locator("#password")).to_be_focused()
    await watch.screenshot("protected-password-form")


async def test_wrong_password_shows_an_error_and_nothing_about_the_file(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await _protected(server)
    watch.expected_statuses.add(401)
    page = watch.page
    await page.goto(created.body["url"])
    await _unlock(page, "wrong guess")
    await expect(page.locator("#password-error")).to_have_text(
        "That password is not right. Check it and try again."
    )
    html = await page.content()
    for secret in ("secret-plans", "120,000", "117.2 KiB", hashlib.sha256(DATA).hexdigest()):
        assert secret not in html
    await watch.screenshot("protected-wrong-password")


async def test_right_password_downloads_identical_bytes_without_a_second_prompt(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await _protected(server)
    watch.expected_statuses.add(401)
    page = watch.page
    await page.goto(created.body["url"])
    await _unlock(page, PASSWORD)
    await expect(page.locator("h1")).to_have_text("secret-plans.pdf")
    await expect(page.locator(".digest")).to_have_text(hashlib.sha256(DATA).hexdigest())
    assert PASSWORD not in (await page.get_attribute("#download", "href") or "")
    await expect(page.locator("#time-left")).to_contain_text("left")
    await watch.screenshot("protected-unlocked")
    async with page.expect_download() as download:
        await page.click("#download")
    assert await downloaded_sha256(await download.value) == hashlib.sha256(DATA).hexdigest()
    await expect(page.locator("#download-status")).to_contain_text("download has started")


async def test_used_download_button_leads_back_to_the_password_form(
    server: LiveServer, watch: PageWatch
) -> None:
    created = await _protected(server)
    watch.expected_statuses.add(401)
    page = watch.page
    await page.goto(created.body["url"])
    await _unlock(page, PASSWORD)
    ticket_url = await page.get_attribute("#download", "href")
    assert ticket_url is not None
    async with page.expect_download():
        await page.click("#download")
    await page.goto(ticket_url)
    assert page.url == f"{created.body['url']}?ticket=spent"
    await expect(page.locator("#password-error")).to_contain_text("Enter the password again")


async def test_link_protected_on_the_upload_page_downloads_through_the_form(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await pick_files(page, {"payroll.csv": DATA})
    await page.fill("#password", PASSWORD)
    await page.click("#upload-button")
    ready = card(page, "payroll.csv")
    await expect(ready).to_have_attribute("data-state", "ready")
    await expect(ready.locator(".fact-password")).to_be_visible()
    share_url = await ready.locator(".share-url").input_value()
    watch.expected_statuses.add(401)
    await page.goto(share_url)
    await _unlock(page, PASSWORD)
    async with page.expect_download() as download:
        await page.click("#download")
    assert await downloaded_sha256(await download.value) == hashlib.sha256(DATA).hexdigest()
