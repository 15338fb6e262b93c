"""What a person does on Sealdrop's pages, as Playwright steps: pick or drop files, upload.

Progress is recorded by a MutationObserver on the page (a `<progress>` element reflects its
value into its attribute), so a test sees every value the bar showed, not only the last.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Locator, Page

from tests.support.asgi import Uploaded

_RECORD_PROGRESS = """() => {
  window.__progress = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      if (change.target.tagName === "PROGRESS") window.__progress.push(change.target.value);
    }
  }).observe(document.getElementById("uploads"), {
    subtree: true, attributes: true, attributeFilter: ["value"],
  });
}"""

_DROP = """([names, contents]) => {
  const transfer = new DataTransfer();
  names.forEach((name, i) => {
    const bytes = Uint8Array.from(atob(contents[i]), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: "application/octet-stream" }));
  });
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    const init = { bubbles: true, cancelable: true, dataTransfer: transfer };
    zone.dispatchEvent(new DragEvent(type, init));
  }
}"""


async def record_progress(page: Page) -> None:
    """Start keeping every value the upload progress bars take."""
    await page.evaluate(_RECORD_PROGRESS)


async def progress_values(page: Page) -> list[int]:
    """The values recorded since `record_progress`."""
    values: list[int] = await page.evaluate("window.__progress")
    return values


async def pick_files(page: Page, files: dict[str, bytes]) -> None:
    """Choose files as the file picker would."""
    await page.set_input_files(
        "#file",
        files=[
            {"name": name, "mimeType": "application/octet-stream", "buffer": data}
            for name, data in files.items()
        ],
    )


async def pick_paths(page: Page, paths: list[Path]) -> None:
    """Choose files on disk (large ones: the browser reads them itself, nothing is copied)."""
    await page.set_input_files("#file", files=[str(path) for path in paths])


async def drop_files(page: Page, files: dict[str, bytes]) -> None:
    """Drag files from the desktop onto the drop zone (a real DataTransfer with Files)."""
    encoded = [base64.b64encode(data).decode() for data in files.values()]
    await page.evaluate(_DROP, [list(files), encoded])


def card(page: Page, name: str) -> Locator:
    """The upload page's card for the file `name`."""
    return page.locator("li.upload", has=page.locator(".upload-name", has_text=name))


async def throttle_uploads(page: Page, bytes_per_second: int) -> None:
    """Slow this page's uploads down (DevTools network emulation), so progress is visible."""
    session = await page.context.new_cdp_session(page)
    await session.send("Network.enable")
    await session.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": bytes_per_second,
        },
    )


async def put(base_url: str, data: bytes, name: str, **headers: Any) -> Uploaded:
    """Upload with `PUT` straight to a live server, as curl would; the created link."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        answer = await http.put(
            f"/{name}", content=data, headers={"Accept": "application/json", **headers}
        )
    assert answer.status_code in (201, 202), answer.text
    body = answer.json()
    return Uploaded(body["token"], body["manage_token"], answer.status_code, body)
