"""The share link `/s/{token}`: a page for browsers, the file for curl and wget.

A link with a download limit always gets the page, whoever asks, so link previewers that
fetch shared URLs never spend a download. The answer depends on `Accept`: `Vary: Accept`.
A ticket that is no good (`?ticket=spent`, where a refused ticket sends a browser) never
makes the link redirect to itself: curl gets the Basic challenge, and its password wins.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.forms import basic
from tests.support.rows import link_row

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
DATA = b"shared bytes"
PASSWORD = "pw"
BAD_TICKETS = ["spent", "1.2.3.4", ""]


async def test_browser_gets_the_share_page(client: AppClient) -> None:
    created = await upload(client, DATA, name="shared.txt")
    answer = await client.get(f"/s/{created.token}", headers={"Accept": BROWSER})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "shared.txt" in answer.text
    assert f"/d/{created.token}/shared.txt" in answer.text


async def test_share_page_has_the_privacy_headers(client: AppClient) -> None:
    created = await upload(client, DATA)
    headers = (await client.get(f"/s/{created.token}", headers={"Accept": BROWSER})).headers
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-robots-tag"] == "noindex"
    assert headers["cache-control"] == "no-store"


async def test_share_page_varies_on_accept(client: AppClient) -> None:
    created = await upload(client, DATA)
    answer = await client.get(f"/s/{created.token}", headers={"Accept": BROWSER})
    assert "accept" in answer.headers["vary"].lower()


async def test_share_file_varies_on_accept(client: AppClient) -> None:
    created = await upload(client, DATA)
    answer = await client.get(f"/s/{created.token}", headers={"Accept": "*/*"})
    assert answer.content == DATA
    assert "accept" in answer.headers["vary"].lower()


async def test_share_error_varies_on_accept(client: AppClient) -> None:
    answer = await client.get("/s/AAAAAAAAAAAAAAAAAAAAAA", headers={"Accept": BROWSER})
    assert answer.status_code == 404
    assert "accept" in answer.headers["vary"].lower()


@pytest.mark.parametrize("accept", ["*/*", None, "text/html;q=0, */*", "application/json"])
async def test_non_browser_gets_the_file(client: AppClient, accept: str | None) -> None:
    created = await upload(client, DATA)
    headers = {} if accept is None else {"Accept": accept}
    answer = await client.get(f"/s/{created.token}", headers=headers)
    assert answer.status_code == 200
    assert answer.content == DATA
    assert answer.headers["content-disposition"].startswith("attachment")


@pytest.mark.parametrize(
    "accept", ["text/html;q=..", "text/html; q=1.2.3, */*;q=0.8", "text/html;q=.;level=1"]
)
async def test_a_malformed_q_value_is_ignored_not_a_500(client: AppClient, accept: str) -> None:
    created = await upload(client, DATA)
    answer = await client.get(f"/s/{created.token}", headers={"Accept": accept})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("accept", [BROWSER, "*/*", None])
async def test_limited_link_gets_the_page_for_every_client_and_spends_nothing(
    client: AppClient, accept: str | None
) -> None:
    created = await upload(client, DATA, headers={"Max-Downloads": "1"})
    headers = {} if accept is None else {"Accept": accept}
    for _ in range(3):
        answer = await client.get(f"/s/{created.token}", headers=headers)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.download_count == 0
    assert (await client.get(f"/d/{created.token}")).content == DATA


async def test_share_page_of_a_pending_link_says_it_is_being_sealed(
    idle_client: AppClient,
) -> None:
    created = await upload(idle_client, DATA)
    answer = await idle_client.get(f"/s/{created.token}", headers={"Accept": BROWSER})
    assert answer.status_code == 200
    assert "being sealed" in answer.text


async def test_share_file_of_a_pending_link_is_503(idle_client: AppClient) -> None:
    created = await upload(idle_client, DATA)
    answer = await idle_client.get(f"/s/{created.token}", headers={"Accept": "*/*"})
    assert answer.status_code == 503
    assert answer.headers["sealdrop-state"] == "pending"


async def test_unknown_share_link_is_a_404_page_for_browsers(client: AppClient) -> None:
    answer = await client.get("/s/AAAAAAAAAAAAAAAAAAAAAA", headers={"Accept": BROWSER})
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("token", ["abc", "a" * 200])
async def test_badly_shaped_share_link_is_404(client: AppClient, token: str) -> None:
    assert (await client.get(f"/s/{token}")).status_code == 404


@pytest.mark.parametrize("ticket", BAD_TICKETS)
async def test_curl_with_a_bad_ticket_gets_the_basic_challenge(
    client: AppClient, ticket: str
) -> None:
    created = await upload(client, DATA, headers={"Link-Password": PASSWORD})
    answer = await client.get(f"/s/{created.token}?ticket={ticket}", headers={"Accept": "*/*"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic ")
    assert "location" not in answer.headers


@pytest.mark.parametrize("ticket", BAD_TICKETS)
async def test_curl_with_a_bad_ticket_and_the_right_password_gets_the_file(
    client: AppClient, ticket: str
) -> None:
    created = await upload(client, DATA, headers={"Link-Password": PASSWORD})
    answer = await client.get(
        f"/s/{created.token}?ticket={ticket}",
        headers={"Accept": "*/*", "Authorization": basic(PASSWORD)},
    )
    assert answer.status_code == 200
    assert answer.content == DATA


@pytest.mark.parametrize("accept", [BROWSER, "*/*"], ids=["browser", "curl"])
@pytest.mark.parametrize("ticket", BAD_TICKETS)
async def test_share_link_with_a_bad_ticket_never_redirects_to_itself(
    client: AppClient, accept: str, ticket: str
) -> None:
    created = await upload(client, DATA, headers={"Link-Password": PASSWORD})
    url = httpx.URL(f"http://sealdrop.test/s/{created.token}?ticket={ticket}")
    answer = await client.get(url, headers={"Accept": accept})
    location = answer.headers.get("location")
    assert location is None or url.join(location) != url


@pytest.mark.parametrize("accept", [BROWSER, "*/*"], ids=["browser", "curl"])
async def test_following_redirects_from_a_share_link_with_a_bad_ticket_ends(
    client: AppClient, accept: str
) -> None:
    created = await upload(client, DATA, headers={"Link-Password": PASSWORD})
    answer = await client.get(
        f"/s/{created.token}?ticket=spent", headers={"Accept": accept}, follow_redirects=True
    )
    assert answer.status_code == 401
