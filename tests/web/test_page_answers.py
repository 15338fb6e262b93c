"""The pages as HTTP answers (no browser): challenges, the password form's outcomes, the QR
code, and the headers that keep the pages safe from what they show.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest

from app.db.clock import db_now_plus, seconds
from app.http.qr import qr_svg
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.rows import link_row, update_link
from tests.web.test_csrf import page_token

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
PASSWORD = "open sesame"
NAME = "ledger.xlsx"


async def _protected(client: AppClient) -> str:
    created = await upload(client, b"numbers", name=NAME, headers={"Link-Password": PASSWORD})
    return created.token


async def _post_password(client: AppClient, token: str, password: str) -> httpx.Response:
    csrf = await page_token(client)
    return await client.post(
        f"/s/{token}",
        data={"password": password, "csrf": csrf},
        headers={**HTML, "Sec-Fetch-Site": "same-origin", "Origin": "http://sealdrop.test"},
    )


async def test_browser_gets_a_form_and_a_challenge_that_is_not_basic(client: AppClient) -> None:
    token = await _protected(client)
    answer = await client.get(f"/s/{token}", headers=HTML)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("SealdropPassword realm=")
    assert 'name="password"' in answer.text
    assert NAME not in answer.text


async def test_curl_on_a_limited_protected_share_link_still_gets_basic(client: AppClient) -> None:
    created = await upload(
        client, b"x", name=NAME, headers={"Link-Password": PASSWORD, "Max-Downloads": "2"}
    )
    answer = await client.get(f"/s/{created.token}", headers={"Accept": "*/*"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic ")


async def test_wrong_password_is_counted_and_reveals_nothing(client: AppClient) -> None:
    token = await _protected(client)
    answer = await _post_password(client, token, "wrong")
    assert answer.status_code == 401
    assert "That password is not right" in answer.text
    assert NAME not in answer.text
    row = await link_row(client.services, token)
    assert row is not None
    assert row.failed_attempts == 1


async def test_right_password_gives_the_page_with_a_ticket_link(client: AppClient) -> None:
    token = await _protected(client)
    answer = await _post_password(client, token, PASSWORD)
    assert answer.status_code == 200
    assert NAME in answer.text
    assert re.search(rf'href="http://sealdrop.test/d/{token}/{NAME}\?ticket=[^"]+"', answer.text)
    assert PASSWORD not in answer.text


async def test_locked_link_shows_the_lock_and_not_the_file(client: AppClient) -> None:
    token = await _protected(client)
    await update_link(client.services, token, locked_until=db_now_plus(seconds(300)))
    answer = await _post_password(client, token, PASSWORD)
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) > 0
    assert "Too many wrong passwords" in answer.text
    assert NAME not in answer.text


async def test_password_form_of_an_unknown_link_is_the_404_page(client: AppClient) -> None:
    answer = await _post_password(client, "CCCCCCCCCCCCCCCCCCCCCC", "x")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")


async def test_qr_code_is_the_share_url_as_svg_and_never_stored(client: AppClient) -> None:
    created = await upload(client)
    answer = await client.get(f"/api/v1/links/{created.token}/qr.svg")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    assert answer.headers["cache-control"] == "no-store"
    assert answer.content == qr_svg(f"http://sealdrop.test/s/{created.token}")
    assert b"<script" not in answer.content


async def test_qr_code_of_a_deleted_link_is_410(client: AppClient) -> None:
    created = await upload(client)
    await update_link(client.services, created.token, state="deleted")
    assert (await client.get(f"/api/v1/links/{created.token}/qr.svg")).status_code == 410


@pytest.mark.parametrize("path", ["/", "/s/AAAAAAAAAAAAAAAAAAAAAA"])
async def test_pages_have_a_strict_content_security_policy(client: AppClient, path: str) -> None:
    headers = (await client.get(path, headers=HTML)).headers
    policy = headers["content-security-policy"]
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"


async def test_pages_load_nothing_from_elsewhere(client: AppClient) -> None:
    created = await upload(client)
    for path in ("/", f"/s/{created.token}"):
        page = (await client.get(path, headers=HTML)).text
        for attribute in re.findall(r'(?:src|href)="([^"]*)"', page):
            assert attribute.startswith(("/", "#", f"http://sealdrop.test/d/{created.token}/"))


@pytest.mark.parametrize(
    ("asset", "kind"),
    [
        ("sealdrop.css", "text/css"),
        ("upload.js", "text/javascript"),
        ("card.js", "text/javascript"),
        ("transfer.js", "text/javascript"),
        ("format.js", "text/javascript"),
        ("share.js", "text/javascript"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_served_by_sealdrop(client: AppClient, asset: str, kind: str) -> None:
    answer = await client.get(f"/static/{asset}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == kind


async def test_a_file_of_exactly_the_limit_uploads_from_the_page(
    make_settings: Callable[..., Settings],
) -> None:
    # The page lets such a file through; the form's own bytes must not push it over.
    limit = 100_000
    async with running_app(make_settings(max_upload_bytes=limit)) as client:
        answer = await client.post(
            "/api/v1/links",
            files={"file": ("exact.bin", bytes(limit))},
            data={"expires_in": "3600", "password": "p" * 1024},
            headers={"Accept": "application/json"},
        )
    assert answer.status_code == 201, answer.text
    assert answer.json()["size"] == limit
