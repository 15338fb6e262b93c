"""axe-core on every state of the pages: no serious or critical violation, light or dark."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Browser, expect

from app.db.clock import db_now_plus, seconds
from tests.support.browser import PageWatch
from tests.support.live import LiveServer
from tests.support.pages import card, pick_files, put
from tests.support.rows import update_link
from tests.web.conftest import watched_page

pytestmark = pytest.mark.browser

Setup = Callable[[LiveServer, LiveServer, PageWatch], Awaitable[None]]


async def upload_page(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    await watch.page.goto(f"{server.url}/")


async def upload_page_with_links(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    await watch.page.goto(f"{server.url}/")
    await pick_files(watch.page, {"a.txt": b"a", "b.txt": b"b"})
    await watch.page.click("#upload-button")
    for name in ("a.txt", "b.txt"):
        await expect(card(watch.page, name)).to_have_attribute("data-state", "ready")
    await card(watch.page, "a.txt").locator(".delete").click()
    await expect(card(watch.page, "a.txt").locator(".delete")).to_be_hidden()


async def upload_page_editing_a_link(
    server: LiveServer, _idle: LiveServer, watch: PageWatch
) -> None:
    await upload_page_with_links(server, _idle, watch)
    await expect(watch.page.locator("li.saved-link")).to_have_count(2)
    entry = watch.page.locator("li.saved-link", has_text="b.txt")
    await entry.locator(".edit").click()
    await entry.locator(".edit-limit").fill("0")
    await entry.locator(".save").click()
    await expect(entry.locator(".edit-error")).to_be_visible()


async def share_page(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    created = await put(server.url, b"hello", "hello.txt", **{"Max-Downloads": "3"})
    await watch.page.goto(created.body["url"])
    await expect(watch.page.locator("#time-left")).to_contain_text("left")


async def password_form_with_error(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    created = await put(server.url, b"hidden", "hidden.txt", **{"Link-Password": "pw"})
    watch.expected_statuses.add(401)
    await watch.page.goto(created.body["url"])
    await watch.page.fill("#password", "nope")
    await watch.page.click("button[type=submit]")
    await expect(watch.page.locator("#password-error")).to_be_visible()


async def sealing_page(_server: LiveServer, idle: LiveServer, watch: PageWatch) -> None:
    created = await put(idle.url, b"later", "later.txt", Prefer="respond-async")
    await watch.page.goto(created.body["url"])


async def expired_page(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    created = await put(server.url, b"gone", "gone.txt")
    await update_link(server.services, created.token, expires_at=db_now_plus(seconds(-1)))
    watch.expected_statuses.add(410)
    await watch.page.goto(created.body["url"])


async def unknown_page(server: LiveServer, _idle: LiveServer, watch: PageWatch) -> None:
    watch.expected_statuses.add(404)
    await watch.page.goto(f"{server.url}/s/BBBBBBBBBBBBBBBBBBBBBB")


STATES: list[Setup] = [
    upload_page,
    upload_page_with_links,
    upload_page_editing_a_link,
    share_page,
    password_form_with_error,
    sealing_page,
    expired_page,
    unknown_page,
]


# Dark mode changes colours only: the states with the most colours are checked in it too.
CASES = [("light", state) for state in STATES] + [
    ("dark", state)
    for state in (
        upload_page_with_links,
        upload_page_editing_a_link,
        share_page,
        password_form_with_error,
    )
]


@pytest.mark.parametrize(
    ("scheme", "state"), CASES, ids=[f"{scheme}-{state.__name__}" for scheme, state in CASES]
)
async def test_page_has_no_serious_accessibility_violation(
    browser: Browser, server: LiveServer, idle_server: LiveServer, scheme: str, state: Setup
) -> None:
    async with watched_page(browser, color_scheme=scheme) as watch:
        await state(server, idle_server, watch)
        assert await watch.serious_accessibility_violations() == []
        if scheme == "dark":
            await watch.screenshot(f"dark-{state.__name__}")
