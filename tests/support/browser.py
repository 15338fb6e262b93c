"""Headless Chromium for page tests: Debian's chromium, driven by Playwright, never downloaded.

`PageWatch` wraps a page and keeps what a person would not see but a test must: console
errors, uncaught exceptions and Content-Security-Policy violations. It also runs axe-core
(shipped inside the `axe-playwright-python` wheel, injected through the DevTools protocol,
so the page's own CSP stays in force) and writes screenshots as test artifacts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, ConsoleMessage, Download, Page, async_playwright

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
SERIOUS = {"serious", "critical"}
_FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")

_REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__sealdropCsp(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless (Playwright starts it with a fresh temporary profile)."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


class PageWatch:
    """A page, and what it reported that nobody sees on screen."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.csp_violations: list[str] = []
        # Statuses a test expects documents to answer with (a 404 page, a 401 form).
        self.expected_statuses: set[int] = set()

    async def attach(self) -> None:
        """Start listening; call before the first navigation."""
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        await self.page.expose_binding(
            "__sealdropCsp", lambda _source, text: self.csp_violations.append(text)
        )
        await self.page.add_init_script(_REPORT_CSP)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        failed = _FAILED_LOAD.search(message.text)
        if failed and int(failed.group(1)) in self.expected_statuses:
            return
        self.console_errors.append(message.text)

    def problems(self) -> list[str]:
        """Console errors and CSP violations seen so far."""
        return self.console_errors + [f"CSP: {text}" for text in self.csp_violations]

    async def screenshot(self, name: str) -> Path:
        """Save the whole page as test-artifacts/screenshots/<name>.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path

    async def serious_accessibility_violations(self) -> list[str]:
        """axe-core's serious and critical findings on the page as it is now."""
        results = await Axe().run(self.page)
        violations: list[dict[str, Any]] = results.response["violations"]
        return [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(node["target"]) for node in v["nodes"])
            for v in violations
            if v["impact"] in SERIOUS
        ]


async def downloaded_sha256(download: Download) -> str:
    """SHA-256 of a finished download's bytes."""
    path = await download.path()
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
