"""The JSON API of one link: its status (`GET`) and its deletion (`DELETE`, manage token)."""

from __future__ import annotations

import pytest

from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.datadir import staging_files
from tests.support.rows import jobs_of, link_row

BROWSER = "text/html,*/*;q=0.8"
DATA = b"managed bytes"


async def _delete(client: AppClient, token: str, authorization: str | None) -> int:
    headers = {} if authorization is None else {"Authorization": authorization}
    return (await client.delete(f"/api/v1/links/{token}", headers=headers)).status_code


async def _upload(client: AppClient, **headers: str) -> Uploaded:
    return await upload(client, DATA, name="managed.txt", headers=headers)


# Status


async def test_status_shows_the_public_metadata(client: AppClient) -> None:
    created = await _upload(client, **{"Max-Downloads": "5", "Content-Type": "text/plain"})
    answer = await client.get(f"/api/v1/links/{created.token}")
    assert answer.status_code == 200
    assert answer.headers["cache-control"] == "no-store"
    assert answer.json() == {
        "state": "ready",
        "expires_at": created.body["expires_at"],
        "password_required": False,
        "max_downloads": 5,
        "downloads_left": 5,
        "filename": "managed.txt",
        "size": len(DATA),
        "content_type": "text/plain",
        "sha256": created.body["sha256"],
    }


async def test_status_counts_down_the_downloads_left(client: AppClient) -> None:
    created = await _upload(client, **{"Max-Downloads": "2"})
    await client.get(f"/d/{created.token}")
    body = (await client.get(f"/api/v1/links/{created.token}")).json()
    assert body["downloads_left"] == 1


async def test_status_of_a_pending_link_says_pending(idle_client: AppClient) -> None:
    created = await _upload(idle_client)
    body = (await idle_client.get(f"/api/v1/links/{created.token}")).json()
    assert body["state"] == "pending"


async def test_status_of_an_unknown_link_is_a_json_404(client: AppClient) -> None:
    answer = await client.get("/api/v1/links/AAAAAAAAAAAAAAAAAAAAAA")
    assert answer.status_code == 404
    assert answer.json()["status"] == 404
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("token", ["abc", "a" * 200])
async def test_status_of_a_badly_shaped_token_is_404(client: AppClient, token: str) -> None:
    assert (await client.get(f"/api/v1/links/{token}")).status_code == 404


# Delete


async def test_delete_with_the_manage_token_is_204(client: AppClient) -> None:
    created = await _upload(client)
    answer = await client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    assert answer.status_code == 204
    assert answer.content == b""
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("method", "path", "accept"),
    [
        ("GET", "/d/{token}", "*/*"),
        ("HEAD", "/d/{token}", "*/*"),
        ("GET", "/d/{token}/managed.txt", "*/*"),
        ("GET", "/s/{token}", "*/*"),
        ("GET", "/s/{token}", BROWSER),
        ("GET", "/api/v1/links/{token}", "application/json"),
    ],
)
async def test_deleted_link_answers_410_everywhere(
    client: AppClient, method: str, path: str, accept: str
) -> None:
    created = await _upload(client)
    assert await _delete(client, created.token, f"Bearer {created.manage_token}") == 204
    answer = await client.request(
        method, path.format(token=created.token), headers={"Accept": accept}
    )
    assert answer.status_code == 410


async def test_deleting_twice_is_410(client: AppClient) -> None:
    created = await _upload(client)
    assert await _delete(client, created.token, f"Bearer {created.manage_token}") == 204
    assert await _delete(client, created.token, f"Bearer {created.manage_token}") == 410


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-wrong-token-0", "Bearer ", "Bearer", "Basic Og=="],
)
async def test_delete_without_the_right_manage_token_is_403_and_the_link_still_works(
    client: AppClient, authorization: str | None
) -> None:
    created = await _upload(client)
    assert await _delete(client, created.token, authorization) == 403
    assert (await client.get(f"/d/{created.token}")).content == DATA


@pytest.mark.parametrize(
    "authorization",
    [b"Bearer \xff", "Bearer \u00e9t\u00e9".encode("latin-1"), b"Bearer " + b"\xe9" * 22],
)
async def test_delete_with_bearer_credentials_that_are_not_ascii_is_a_short_400(
    client: AppClient, authorization: bytes
) -> None:
    created = await _upload(client)
    answer = await client.delete(
        f"/api/v1/links/{created.token}", headers={"Authorization": authorization}
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "the Authorization header is not a valid Bearer token",
        "status": 400,
    }
    assert answer.headers["cache-control"] == "no-store"
    assert (await client.get(f"/d/{created.token}")).content == DATA


async def test_manage_token_of_another_link_is_403(client: AppClient) -> None:
    created = await _upload(client)
    other = await _upload(client)
    assert await _delete(client, created.token, f"Bearer {other.manage_token}") == 403
    assert (await client.get(f"/d/{created.token}")).status_code == 200


async def test_link_token_is_not_a_manage_token(client: AppClient) -> None:
    created = await _upload(client)
    assert await _delete(client, created.token, f"Bearer {created.token}") == 403


async def test_bearer_scheme_is_case_insensitive(client: AppClient) -> None:
    created = await _upload(client)
    assert await _delete(client, created.token, f"bearer {created.manage_token}") == 204


async def test_deleting_an_unknown_link_is_404(client: AppClient) -> None:
    assert await _delete(client, "AAAAAAAAAAAAAAAAAAAAAA", "Bearer AAAAAAAAAAAAAAAAAAAAAA") == 404


async def test_deleting_a_pending_link_removes_its_job_and_staged_object(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created = await _upload(idle_client)
    assert len(await jobs_of(idle_client.services, created.token)) == 1
    assert len(staging_files(idle_settings)) == 1
    assert await _delete(idle_client, created.token, f"Bearer {created.manage_token}") == 204
    assert await jobs_of(idle_client.services, created.token) == []
    assert staging_files(idle_settings) == []
    row = await link_row(idle_client.services, created.token)
    assert row is not None
    assert row.state == "deleted"
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 410
