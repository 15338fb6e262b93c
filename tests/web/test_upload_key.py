"""The upload page under upload policy `keys`: it asks for the key once, keeps it in the
browser, sends it with each upload, and asks again (forgetting it) when it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from app.domain import uploaders
from app.domain.uploaders import Limits
from tests.support.browser import PageWatch
from tests.support.live import live_server
from tests.support.pages import card, pick_files
from tests.support.rows import link_row
from tests.web.conftest import web_settings

pytestmark = pytest.mark.browser

STORED = "() => localStorage.getItem('sealdrop.uploadKey')"


async def test_the_page_asks_for_the_key_once_and_again_when_it_is_refused(
    tmp_path: Path, watch: PageWatch
) -> None:
    page = watch.page
    watch.expected_statuses.add(401)
    async with live_server(web_settings(tmp_path, upload_policy="keys")) as server:
        key = await uploaders.add_uploader(server.services, "alice", Limits(), proxy=False)
        assert key is not None
        await page.goto(f"{server.url}/")
        await expect(page.locator("#key-form")).to_be_visible()
        await expect(page.locator("#upload-form")).to_be_hidden()

        await page.fill("#upload-key", "sdk_" + "x" * 43)
        await page.click("#key-form button[type=submit]")
        await expect(page.locator("#upload-form")).to_be_visible()
        await pick_files(page, {"first.bin": b"first"})
        await page.click("#upload-button")
        await expect(card(page, "first.bin")).to_have_attribute("data-state", "failed")
        await expect(page.locator("#key-form")).to_be_visible()
        await expect(page.locator("#key-error")).to_contain_text("not accepted")
        assert await page.evaluate(STORED) is None

        await page.fill("#upload-key", key)
        await page.click("#key-form button[type=submit]")
        await pick_files(page, {"second.bin": b"second"})
        await page.click("#upload-button")
        second = card(page, "second.bin")
        await expect(second).to_have_attribute("data-state", "ready")
        assert await page.evaluate(STORED) == key
        token = (await second.locator(".share-url").input_value()).rsplit("/", 1)[1]
        row = await link_row(server.services, token)
        assert row is not None
        assert row.uploader_id is not None

        await page.reload()
        await expect(page.locator("#key-form")).to_be_hidden()
        await expect(page.locator("#upload-form")).to_be_visible()
