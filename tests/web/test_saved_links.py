"""The upload page's "Your links" in a real browser: remembered in localStorage across a
reload, each with its state and time left; Edit (PATCH) and Delete with its manage token.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Locator, Page, expect

from tests.support.browser import PageWatch
from tests.support.live import LiveServer
from tests.support.pages import card, pick_files

pytestmark = pytest.mark.browser


def saved(page: Page, name: str) -> Locator:
    """The entry of "Your links" for the file `name`."""
    return page.locator("li.saved-link", has=page.locator(".saved-name", has_text=name))


async def _stored(page: Page) -> dict[str, dict[str, Any]]:
    entries = json.loads(await page.evaluate("localStorage.getItem('sealdrop.links')"))
    return {entry["filename"]: entry for entry in entries}


async def _upload_two(page: Page, server: LiveServer) -> dict[str, dict[str, Any]]:
    await page.goto(f"{server.url}/")
    await pick_files(page, {"alpha.txt": b"alpha bytes", "beta.txt": b"beta bytes"})
    await page.click("#upload-button")
    for name in ("alpha.txt", "beta.txt"):
        await expect(card(page, name)).to_have_attribute("data-state", "ready")
        # Each saved entry asks for its link's status and stores the whole list again when
        # the answer comes ("Checking…" turns "Ready" after that): wait for it, or a late
        # answer overwrites what a test puts into the stored list itself.
        await expect(saved(page, name).locator(".saved-state")).to_have_text("Ready")
    return await _stored(page)


async def _status(server: LiveServer, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.get(f"/api/v1/links/{token}")


async def test_links_made_are_listed_after_a_reload_with_state_and_time_left(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    stored = await _upload_two(page, server)
    assert set(stored) == {"alpha.txt", "beta.txt"}
    for entry in stored.values():
        assert {"token", "url", "download_url", "manage_token", "expires_at"} <= set(entry)
    await page.reload()
    await expect(page.locator("#saved-section")).to_be_visible()
    for name in ("alpha.txt", "beta.txt"):
        entry = saved(page, name)
        await expect(entry.locator(".saved-state")).to_have_text("Ready")
        await expect(entry.locator(".saved-left")).to_have_text(
            re.compile(r"23 hours 5\d minutes left")
        )
        link = entry.locator(".saved-url")
        await expect(link).to_have_attribute("href", stored[name]["url"])
    await watch.screenshot("saved-links")


async def test_edit_sets_expiry_and_password_then_the_download_asks_for_it(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    stored = await _upload_two(page, server)
    entry = saved(page, "alpha.txt")
    await entry.locator(".edit").click()
    await expect(entry.locator(".edit-expires")).to_be_focused()
    await entry.locator(".edit-expires").select_option("3600")
    await entry.get_by_label("Download limit").fill("4")
    await entry.get_by_label("New password").fill("brand new pass")
    await watch.screenshot("saved-link-edit")
    await entry.locator(".save").click()
    await expect(entry.locator(".saved-status")).to_have_text("Saved.")
    await expect(entry.locator(".edit-form")).to_be_hidden()
    await expect(entry.locator(".saved-limits")).to_have_text(" · 4 downloads left · password")
    await expect(entry.locator(".saved-left")).to_have_text(
        re.compile(r"59 minutes \d+ seconds left")
    )
    token = stored["alpha.txt"]["token"]
    status = (await _status(server, token)).json()
    assert status["password_required"] is True
    assert status["max_downloads"] == 4
    expires_at = datetime.fromisoformat(status["expires_at"].replace("Z", "+00:00"))
    assert abs(expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=5)
    # The share page now asks for the new password, and takes it.
    watch.expected_statuses.add(401)
    await page.goto(stored["alpha.txt"]["url"])
    await expect(page.locator("h1")).to_have_text("This file is protected")
    await page.fill("#password", "brand new pass")
    await page.click("button[type=submit]")
    await expect(page.get_by_role("link", name="Download")).to_be_visible()


async def test_remove_the_password_with_edit(server: LiveServer, watch: PageWatch) -> None:
    page = watch.page
    await page.goto(f"{server.url}/")
    await page.fill("#password", "first")
    await pick_files(page, {"gamma.txt": b"gamma"})
    await page.click("#upload-button")
    await expect(card(page, "gamma.txt")).to_have_attribute("data-state", "ready")
    entry = saved(page, "gamma.txt")
    await expect(entry.locator(".saved-limits")).to_have_text(" · password")
    await entry.locator(".edit").click()
    await entry.get_by_label("No password").check()
    await expect(entry.get_by_label("New password")).to_be_disabled()
    await entry.locator(".save").click()
    await expect(entry.locator(".saved-status")).to_have_text("Saved.")
    await expect(entry.locator(".saved-limits")).to_have_text("")
    token = (await _stored(page))["gamma.txt"]["token"]
    assert (await _status(server, token)).json()["password_required"] is False


async def test_edit_shows_the_servers_refusal(server: LiveServer, watch: PageWatch) -> None:
    page = watch.page
    await _upload_two(page, server)
    watch.expected_statuses.add(400)
    entry = saved(page, "beta.txt")
    await entry.locator(".edit").click()
    # The longest lifetime from now goes a little past the ceiling fixed at creation.
    await entry.locator(".edit-expires").select_option("86400")
    await entry.locator(".save").click()
    error = entry.locator(".edit-error")
    await expect(error).to_contain_text("Expires_in goes past this link's latest allowed expiry")
    await entry.locator(".cancel-edit").click()
    await expect(entry.locator(".edit")).to_be_focused()


async def test_delete_ends_the_link_and_it_can_be_removed_from_the_list(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    stored = await _upload_two(page, server)
    entry = saved(page, "beta.txt")
    await entry.locator(".delete").click()
    await entry.locator(".keep").click()
    await expect(entry.locator(".confirm")).to_be_hidden()
    await entry.locator(".delete").click()
    await entry.locator(".confirm-delete").click()
    await expect(entry.locator(".saved-state")).to_have_text("Deleted")
    await expect(entry).to_have_attribute("data-state", "ended")
    assert (await _status(server, stored["beta.txt"]["token"])).status_code == 410
    await expect(entry.locator(".forget")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(saved(page, "beta.txt")).to_have_count(0)
    await page.reload()
    await expect(saved(page, "alpha.txt")).to_have_count(1)
    await expect(saved(page, "beta.txt")).to_have_count(0)


async def test_ended_links_are_marked_and_drop_off_after_a_day(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    stored = await _upload_two(page, server)
    now = datetime.now(UTC)
    stale = {
        **stored["alpha.txt"],
        "filename": "old.txt",
        "expires_at": (now - timedelta(days=2)).isoformat(),
    }
    recent = {
        **stored["alpha.txt"],
        "filename": "recent.txt",
        "token": "AAAAAAAAAAAAAAAAAAAAAA",
        "expires_at": (now - timedelta(minutes=5)).isoformat(),
    }
    entries = [stale, recent, stored["beta.txt"]]
    await page.evaluate("(e) => localStorage.setItem('sealdrop.links', e)", json.dumps(entries))
    await page.reload()
    await expect(saved(page, "recent.txt").locator(".saved-state")).to_have_text("Ended")
    await expect(saved(page, "recent.txt").locator(".forget")).to_be_visible()
    await expect(saved(page, "beta.txt").locator(".saved-state")).to_have_text("Ready")
    await expect(saved(page, "old.txt")).to_have_count(0)
    assert set(await _stored(page)) == {"recent.txt", "beta.txt"}


async def test_a_link_that_ended_on_the_server_is_marked(
    server: LiveServer, watch: PageWatch
) -> None:
    page = watch.page
    stored = await _upload_two(page, server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        token, manage = stored["alpha.txt"]["token"], stored["alpha.txt"]["manage_token"]
        deleted = await http.delete(
            f"/api/v1/links/{token}", headers={"Authorization": f"Bearer {manage}"}
        )
        assert deleted.status_code == 204
    watch.expected_statuses.add(410)
    await page.reload()
    entry = saved(page, "alpha.txt")
    await expect(entry.locator(".saved-state")).to_have_text("Ended (expired, used up or deleted)")
    await expect(entry.locator(".edit")).to_be_hidden()
