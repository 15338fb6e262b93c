"""Large files from the upload page over tus (the vendored tus-js-client in Chromium).

The server advertises its chunk size in the discovery document; these tests rewrite it to
1 MiB on the way to the page, so a 12 MiB file takes a dozen PATCH requests and a reload
or a dropped connection lands between acknowledged chunks. Uploads are slowed with
DevTools network emulation where a test needs to act in the middle of one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import CDPSession, Route, expect
from sqlalchemy import func, select

from app.db.models import Link
from app.domain import uploaders
from app.domain.uploaders import Limits
from tests.support.browser import PageWatch
from tests.support.live import LiveServer, live_server
from tests.support.pages import card, pick_paths, throttle_uploads
from tests.support.rows import link_row
from tests.support.tus_pages import (
    CHUNK,
    MIB,
    TUS,
    downloaded_sha256,
    forgive_dropped_requests,
    mib,
    random_file,
    server_offset,
    stored_tus_entries,
    until_offset,
    watch_tus,
)
from tests.web.conftest import web_settings

pytestmark = pytest.mark.browser

SIZE = 12 * MIB


@pytest.fixture(scope="module")
async def big_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """Sealdrop with its worker and room for the files of these tests."""
    settings = web_settings(tmp_path_factory.mktemp("web-tus"), max_upload_bytes=64 * MIB)
    async with live_server(settings) as live:
        yield live


async def _until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def test_large_file_goes_up_over_tus_in_chunks_and_downloads_identical(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    path, sha256 = random_file(tmp_path, "big.bin", SIZE)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploaded = card(page, "big.bin")
    await expect(uploaded).to_have_attribute("data-state", "ready", timeout=60_000)
    methods = [method for method, _ in traffic.requests]
    assert methods.count("POST") == 1
    assert traffic.patch_offsets() == [n * CHUNK for n in range(SIZE // CHUNK)]
    metadata = dict(
        pair.split(" ") for pair in traffic.creation_headers["upload-metadata"].split(",")
    )
    assert base64.b64decode(metadata["filename"]) == b"big.bin"
    assert traffic.creation_headers["x-csrf-token"]
    manage_token = await uploaded.locator(".manage-token").input_value()
    assert len(manage_token) >= 22
    share_url = await uploaded.locator(".share-url").input_value()
    token = share_url.rsplit("/", 1)[1]
    await expect(uploaded.locator(".qr img")).to_have_attribute(
        "src", f"/api/v1/links/{token}/qr.svg"
    )
    assert await downloaded_sha256(page) == sha256
    assert await stored_tus_entries(page) == []
    await watch.screenshot("upload-tus-ready")


async def test_a_file_of_four_mib_keeps_the_single_request(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    path, sha256 = random_file(tmp_path, "four.bin", 4 * MIB)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    await expect(card(page, "four.bin")).to_have_attribute("data-state", "ready")
    assert traffic.requests == [("POST", None)]  # POST /api/v1/links, nothing over tus
    assert await downloaded_sha256(page) == sha256


async def test_an_aborted_patch_is_retried_from_the_servers_offset(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    broken: list[int] = []

    async def break_the_fourth_patch(route: Route) -> None:
        patches = [offset for method, offset in traffic.requests if method == "PATCH"]
        if route.request.method == "PATCH" and len(patches) == 4 and not broken:
            broken.append(int(route.request.headers["upload-offset"]))
            await route.abort("connectionreset")
        else:
            await route.fallback()

    await page.route(f"{big_server.url}/api/v1/uploads/*", break_the_fourth_patch)
    path, sha256 = random_file(tmp_path, "flaky.bin", SIZE)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploaded = card(page, "flaky.bin")
    await expect(uploaded).to_have_attribute("data-state", "ready", timeout=60_000)
    assert broken == [3 * CHUNK]
    methods = [method for method, _ in traffic.requests]
    assert methods.count("POST") == 1
    assert "HEAD" in methods  # the retry asked the server where to go on
    assert traffic.patch_offsets().count(3 * CHUNK) == 2  # the lost chunk, sent again
    assert sorted(set(traffic.patch_offsets())) == [n * CHUNK for n in range(SIZE // CHUNK)]
    assert await downloaded_sha256(page) == sha256
    forgive_dropped_requests(watch)


async def test_going_offline_mid_upload_waits_for_the_network_and_completes(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    # One DevTools session both slows the upload and cuts the network (two sessions'
    # emulations would not add up: Playwright's own offline switch leaves this one's be).
    network = await page.context.new_cdp_session(page)
    await network.send("Network.enable")
    await _emulate(network, offline=False, upload=2_000_000)
    path, sha256 = random_file(tmp_path, "offline.bin", SIZE)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploading = card(page, "offline.bin")
    before = await until_offset(traffic, 3 * MIB)
    await _emulate(network, offline=True, upload=2_000_000)
    await expect(uploading.locator(".upload-status")).to_contain_text("You are offline")
    await watch.screenshot("upload-tus-offline")
    await expect(page.locator("#announcer")).to_contain_text("You are offline")
    await asyncio.sleep(0.5)  # the server keeps what arrived before the break: let it land
    stalled = await server_offset(traffic.upload_url)
    await asyncio.sleep(2)  # longer than the first retries: they must not be used up
    assert await server_offset(traffic.upload_url) == stalled
    await _emulate(network, offline=False, upload=-1)
    await expect(uploading).to_have_attribute("data-state", "ready", timeout=60_000)
    assert [method for method, _ in traffic.requests].count("POST") == 1
    assert min(traffic.head_offsets) >= before
    assert await downloaded_sha256(page) == sha256
    forgive_dropped_requests(watch)


async def _emulate(session: CDPSession, *, offline: bool, upload: int) -> None:
    await session.send(
        "Network.emulateNetworkConditions",
        {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload},
    )


async def test_reload_mid_upload_then_the_same_file_resumes_from_the_servers_offset(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    password = "tus-secret-7"
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    await throttle_uploads(page, 2_000_000)
    path, sha256 = random_file(tmp_path, "reloaded.bin", SIZE)
    await pick_paths(page, [path])
    await page.fill("#password", password)
    await page.click("#upload-button")
    acknowledged = await until_offset(traffic, 4 * MIB)
    stored = await stored_tus_entries(page)
    assert len(stored) == 1
    assert password not in stored[0]
    assert base64.b64encode(password.encode()).decode() not in stored[0]
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.reload()
    mark, head_mark = len(traffic.requests), len(traffic.head_offsets)
    await throttle_uploads(page, 2_000_000)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    resumed = card(page, "reloaded.bin")
    await expect(resumed.locator(".upload-status")).to_contain_text("Resuming: ")
    status = await resumed.locator(".upload-status").text_content() or ""
    await watch.screenshot("upload-tus-resumed")
    assert await watch.serious_accessibility_violations() == []
    await expect(resumed).to_have_attribute("data-state", "ready", timeout=60_000)
    after_reload = traffic.since(mark)
    assert "POST" not in [method for method, _ in after_reload]
    offset = traffic.head_offsets[head_mark]  # the page's first question after the reload
    assert offset >= acknowledged > 0
    assert status == f"Resuming: {mib(offset)} MiB already uploaded"
    sent_again = SIZE - min(traffic.patch_offsets(mark))
    assert min(traffic.patch_offsets(mark)) == offset
    assert sent_again < SIZE
    await expect(resumed.locator(".fact-password")).to_be_visible()
    assert await downloaded_sha256(page, password) == sha256
    assert await stored_tus_entries(page) == []


async def test_cancel_deletes_the_upload_on_the_server(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    await throttle_uploads(page, 1_000_000)
    path, _ = random_file(tmp_path, "cancelled-tus.bin", SIZE)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploading = card(page, "cancelled-tus.bin")
    await until_offset(traffic, CHUNK + 1)
    staging = big_server.services.settings.data_dir / "objects" / "staging"
    staged = set(staging.glob("*"))  # this upload's sealed pieces (and maybe others')
    assert staged
    await uploading.locator(".cancel").click()
    await expect(uploading).to_have_attribute("data-state", "cancelled")
    await expect(uploading.locator(".upload-status")).to_have_text(
        "Upload cancelled. Nothing was kept."
    )
    assert ("DELETE", None) in traffic.requests
    async with httpx.AsyncClient() as http:
        assert (await http.head(traffic.upload_url, headers=TUS)).status_code == 404
    # Every piece there was is gone: this upload's by the DELETE, others' once sealed.
    await _until(lambda: not any(piece.exists() for piece in staged))
    assert await stored_tus_entries(page) == []
    async with big_server.services.sessions() as session:
        kept = await session.scalar(
            select(func.count()).select_from(Link).where(Link.filename == "cancelled-tus.bin")
        )
    assert kept == 0
    forgive_dropped_requests(watch)


async def test_a_lost_final_answer_still_gives_the_link_from_the_uploads_state(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    await page.goto(f"{big_server.url}/")
    await watch_tus(page, big_server.url)

    async def strip_the_link_headers(route: Route) -> None:
        response = await route.fetch()
        kept = {k: v for k, v in response.headers.items() if not k.startswith("sealdrop-")}
        await route.fulfill(response=response, headers=kept)

    await page.route(f"{big_server.url}/api/v1/uploads/*", strip_the_link_headers)
    path, sha256 = random_file(tmp_path, "unanswered.bin", 5 * MIB)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploaded = card(page, "unanswered.bin")
    await expect(uploaded).to_have_attribute("data-state", "ready", timeout=60_000)
    await expect(uploaded.locator(".upload-status")).to_contain_text("manage token was lost")
    await expect(uploaded.locator(".manage")).to_be_hidden()
    share_url = await uploaded.locator(".share-url").input_value()
    token = share_url.rsplit("/", 1)[1]
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{big_server.url}/d/{token}/unanswered.bin")
    digest = hashlib.sha256(answer.content)
    assert digest.hexdigest() == sha256


async def test_under_policy_keys_the_tus_upload_carries_the_key(
    watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    watch.expected_statuses.add(401)
    settings = web_settings(tmp_path / "data", upload_policy="keys", max_upload_bytes=64 * MIB)
    async with live_server(settings) as server:
        key = await uploaders.add_uploader(server.services, "bob", Limits(), proxy=False)
        assert key is not None
        await page.goto(f"{server.url}/")
        traffic = await watch_tus(page, server.url)
        path, sha256 = random_file(tmp_path, "keyed.bin", 5 * MIB)
        await page.fill("#upload-key", "sdk_" + "x" * 43)
        await page.click("#key-form button[type=submit]")
        await pick_paths(page, [path])
        await page.click("#upload-button")
        await expect(card(page, "keyed.bin")).to_have_attribute("data-state", "failed")
        await expect(page.locator("#key-error")).to_contain_text("not accepted")
        assert traffic.requests == [("POST", None)]  # refused at creation, nothing sent

        await page.fill("#upload-key", key)
        await page.click("#key-form button[type=submit]")
        await card(page, "keyed.bin").locator(".retry").click()
        uploaded = card(page, "keyed.bin")
        await expect(uploaded).to_have_attribute("data-state", "ready", timeout=60_000)
        assert traffic.creation_headers["authorization"] == f"Bearer {key}"
        token = (await uploaded.locator(".share-url").input_value()).rsplit("/", 1)[1]
        row = await link_row(server.services, token)
        assert row is not None
        assert row.uploader_id is not None
        assert await downloaded_sha256(page) == sha256


async def test_a_stored_upload_the_server_forgot_starts_over_with_the_forms_options(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    watch.expected_statuses.add(404)
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    await throttle_uploads(page, 2_000_000)
    path, sha256 = random_file(tmp_path, "forgotten.bin", SIZE)
    await pick_paths(page, [path])
    await page.fill("#password", "first form")
    await page.click("#upload-button")
    await until_offset(traffic, 2 * MIB)
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.reload()
    forgotten = traffic.upload_url
    async with httpx.AsyncClient() as http:  # as if it had expired meanwhile
        assert (await http.delete(forgotten, headers=TUS)).status_code == 204
    mark = len(traffic.requests)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    again = card(page, "forgotten.bin")
    await expect(again).to_have_attribute("data-state", "ready", timeout=60_000)
    assert [method for method, _ in traffic.since(mark)][:2] == ["HEAD", "POST"]
    assert traffic.upload_url != forgotten
    assert traffic.patch_offsets(mark)[0] == 0
    await expect(again.locator(".upload-status")).not_to_contain_text("Resuming")
    await expect(again.locator(".fact-password")).to_be_hidden()  # this form had none
    assert await downloaded_sha256(page) == sha256
    assert await stored_tus_entries(page) == []
    forgive_dropped_requests(watch)


async def test_try_again_after_a_refused_patch_resumes_the_same_upload(
    big_server: LiveServer, watch: PageWatch, tmp_path: Path
) -> None:
    page = watch.page
    watch.expected_statuses.add(400)
    await page.goto(f"{big_server.url}/")
    traffic = await watch_tus(page, big_server.url)
    refused: list[int] = []

    async def refuse_the_sixth_patch(route: Route) -> None:
        patches = [offset for method, offset in traffic.requests if method == "PATCH"]
        if route.request.method == "PATCH" and len(patches) == 6 and not refused:
            refused.append(int(route.request.headers["upload-offset"]))
            await route.fulfill(status=400, json={"error": "refused for this test"})
        else:
            await route.fallback()

    await page.route(f"{big_server.url}/api/v1/uploads/*", refuse_the_sixth_patch)
    path, sha256 = random_file(tmp_path, "again.bin", SIZE)
    await pick_paths(page, [path])
    await page.click("#upload-button")
    uploading = card(page, "again.bin")
    await expect(uploading).to_have_attribute("data-state", "failed")
    await expect(uploading.locator(".upload-status")).to_have_text("Refused for this test.")
    mark = len(traffic.requests)
    await uploading.locator(".retry").click()
    await expect(uploading).to_have_attribute("data-state", "ready", timeout=60_000)
    assert refused == [5 * CHUNK]
    assert traffic.since(mark)[0] == ("HEAD", None)
    assert "POST" not in [method for method, _ in traffic.since(mark)]
    assert min(traffic.patch_offsets(mark)) == 5 * CHUNK
    await expect(uploading.locator(".upload-status")).to_have_text("")
    assert await downloaded_sha256(page) == sha256
