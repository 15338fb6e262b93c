"""CSRF: what the pages send (upload, delete, password form) must come from the page itself.

Browsers announce themselves with `Origin` and `Sec-Fetch-Site`; such a request needs our
own origin and the page's token. curl and scripts send neither and need nothing.
"""

from __future__ import annotations

import re

import httpx

from app.db.models import Link
from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.rows import count_rows, link_row

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://sealdrop.test"}
CROSS_SITE = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}


async def page_token(client: AppClient) -> str:
    """Open the upload page (which sets the cookie) and read its token."""
    page = await client.get("/", headers={"Accept": "text/html"})
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


async def post_upload(client: AppClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post(
        "/api/v1/links",
        files={"file": ("page.txt", b"from a page")},
        headers={"Accept": "application/json", **headers},
    )


async def test_upload_from_the_page_with_its_token_is_accepted(client: AppClient) -> None:
    token = await page_token(client)
    answer = await post_upload(client, {**SAME_ORIGIN, "X-CSRF-Token": token})
    assert answer.status_code == 201, answer.text


async def test_upload_from_another_site_is_refused_even_with_a_token(client: AppClient) -> None:
    token = await page_token(client)
    answer = await post_upload(client, {**CROSS_SITE, "X-CSRF-Token": token})
    assert answer.status_code == 403
    assert answer.json()["error"] == "requests from other sites are refused"
    assert await count_rows(client.services, Link) == 0


async def test_upload_from_the_page_without_its_token_is_refused(client: AppClient) -> None:
    await page_token(client)
    answer = await post_upload(client, SAME_ORIGIN)
    assert answer.status_code == 403
    assert "reload" in answer.json()["error"]


async def test_token_of_another_browser_is_refused(client: AppClient) -> None:
    token = await page_token(client)
    client.cookies.clear()
    await page_token(client)  # a new nonce: the old token no longer matches
    answer = await post_upload(client, {**SAME_ORIGIN, "X-CSRF-Token": token})
    assert answer.status_code == 403


async def test_foreign_origin_without_fetch_metadata_is_refused(client: AppClient) -> None:
    token = await page_token(client)
    answer = await post_upload(client, {"Origin": "https://evil.example", "X-CSRF-Token": token})
    assert answer.status_code == 403


async def test_own_origin_without_fetch_metadata_is_accepted(client: AppClient) -> None:
    token = await page_token(client)
    answer = await post_upload(client, {"Origin": "http://sealdrop.test", "X-CSRF-Token": token})
    assert answer.status_code == 201


async def test_curl_uploads_without_any_token(client: AppClient) -> None:
    answer = await post_upload(client, {})
    assert answer.status_code == 201


async def test_delete_from_another_site_is_refused(client: AppClient) -> None:
    created = await upload(client)
    answer = await client.delete(
        f"/api/v1/links/{created.token}",
        headers={**CROSS_SITE, "Authorization": f"Bearer {created.manage_token}"},
    )
    assert answer.status_code == 403
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.state == "ready"


async def test_delete_from_the_page_with_its_token_works(client: AppClient) -> None:
    created = await upload(client)
    token = await page_token(client)
    answer = await client.delete(
        f"/api/v1/links/{created.token}",
        headers={
            **SAME_ORIGIN,
            "X-CSRF-Token": token,
            "Authorization": f"Bearer {created.manage_token}",
        },
    )
    assert answer.status_code == 204


async def test_password_form_without_its_token_is_refused_and_counts_nothing(
    client: AppClient,
) -> None:
    created = await upload(client, headers={"Link-Password": "pw"})
    answer = await client.post(
        f"/s/{created.token}",
        data={"password": "guess"},
        headers={**SAME_ORIGIN, "Accept": "text/html"},
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.failed_attempts == 0


async def test_cookie_is_http_only_and_same_site(client: AppClient) -> None:
    page = await client.get("/", headers={"Accept": "text/html"})
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
