"""Fixtures for the page tests: live servers on loopback and a headless Chromium.

One browser and two servers serve the whole directory (starting them is most of the
cost) and stop when it is done; each test gets a fresh browser context, so no cookie or
download crosses tests. `server` runs the in-process worker; `idle_server` has none, so
its links stay pending until a test starts a worker. Every browser test ends by checking
that its page logged no error and violated no Content-Security-Policy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from app.settings import Settings
from tests.support.browser import CHROMIUM, PageWatch, chromium
from tests.support.live import LiveServer, live_server

VIEWER_TIME_ZONE = "Pacific/Auckland"
# Generous waits: the machine is small and shared; a wait only ends early, never late.
expect.set_options(timeout=15_000)
MAX_UPLOAD_BYTES = 4 * 1024 * 1024


def web_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Embedded settings for a page test's server."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "segment_log2": 16,
        "janitor_interval_seconds": 3600,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture(scope="package")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium (installed by scripts/install-test-deps)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps")
    async with chromium() as launched:
        yield launched


@pytest.fixture(scope="package")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """Sealdrop on loopback with its in-process worker."""
    async with live_server(web_settings(tmp_path_factory.mktemp("web"))) as live:
        yield live


@pytest.fixture(scope="package")
async def idle_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """Sealdrop on loopback without a worker: uploads stay pending until a test starts one."""
    settings = web_settings(tmp_path_factory.mktemp("web-idle"), worker="off")
    async with live_server(settings) as live:
        yield live


@asynccontextmanager
async def watched_page(browser: Browser, **options: Any) -> AsyncIterator[PageWatch]:
    """A fresh page in its own context, checked for errors and CSP violations at the end."""
    context = await browser.new_context(timezone_id=VIEWER_TIME_ZONE, locale="en-GB", **options)
    context.set_default_timeout(30_000)
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    watched = PageWatch(await context.new_page())
    await watched.attach()
    yield watched
    await context.close()
    assert watched.problems() == []


@pytest.fixture
async def watch(browser: Browser) -> AsyncIterator[PageWatch]:
    """A desktop-sized page in the viewer's time zone (Auckland: far from UTC)."""
    async with watched_page(browser, viewport={"width": 1100, "height": 900}) as watched:
        yield watched


@pytest.fixture
async def phone(browser: Browser) -> AsyncIterator[PageWatch]:
    """A phone-sized page (390 × 844 CSS pixels, touch, mobile viewport)."""
    async with watched_page(
        browser,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    ) as watched:
        yield watched
