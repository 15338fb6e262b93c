"""An owner's edit of a link (`PATCH /api/v1/links/{token}` with the manage token).

Every refusal is checked to have changed nothing: the row is compared before and after.
"""

from __future__ import annotations

import base64
import warnings
from datetime import timedelta
from typing import Any

import pytest

from app.db.clock import as_utc, db_now_plus, seconds
from app.domain import links, tickets
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.rows import link_row, update_link

DATA = b"owned bytes"
UNKNOWN = "AAAAAAAAAAAAAAAAAAAAAA"


async def _upload(client: AppClient, **headers: str) -> Uploaded:
    return await upload(client, DATA, name="owned.txt", headers=headers)


async def _patch(
    client: AppClient, created: Uploaded, body: Any, *, manage: str | None = None
) -> Any:
    token = created.manage_token if manage is None else manage
    return await client.patch(
        f"/api/v1/links/{created.token}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


async def _snapshot(client: AppClient, token: str) -> dict[str, Any]:
    row = await link_row(client.services, token)
    assert row is not None
    names = ("expires_at", "max_downloads", "password_hash", "failed_attempts", "locked_until")
    return {name: getattr(row, name) for name in names} | {"state": row.state}


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f":{password}".encode()).decode()}


# Creation records the ceiling


async def test_upload_records_the_latest_expiry_as_creation_plus_the_max_ttl(
    client: AppClient, settings: Settings
) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.max_expires_at is not None
    ceiling = as_utc(row.created_at) + timedelta(seconds=settings.max_ttl)
    assert abs((as_utc(row.max_expires_at) - ceiling).total_seconds()) < 1


# Expiry


async def test_extend_within_the_ceiling_answers_the_new_status(client: AppClient) -> None:
    created = await _upload(client, **{"Expires-In": "1h", "Content-Type": "text/plain"})
    answer = await _patch(client, created, {"expires_in": "2h"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["state"] == "ready"
    assert body["filename"] == "owned.txt"
    assert body["expires_at"] > created.body["expires_at"]
    row = await link_row(client.services, created.token)
    assert row is not None
    assert body["expires_at"].startswith(as_utc(row.expires_at).isoformat()[:19])
    assert created.manage_token not in answer.text
    assert created.token not in answer.text


async def test_expires_in_as_seconds_and_shortening_are_allowed(client: AppClient) -> None:
    created = await _upload(client)
    assert (await _patch(client, created, {"expires_in": 60})).status_code == 200
    status = (await client.get(f"/api/v1/links/{created.token}")).json()
    assert status["expires_at"] < created.body["expires_at"]
    assert (await client.get(f"/d/{created.token}")).content == DATA


async def test_extending_past_the_ceiling_is_400_naming_it_and_changes_nothing(
    client: AppClient, settings: Settings
) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    before = await _snapshot(client, created.token)
    answer = await _patch(client, created, {"expires_in": settings.max_ttl + 60})
    assert answer.status_code == 400
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.max_expires_at is not None
    latest = as_utc(row.max_expires_at).isoformat(timespec="seconds").replace("+00:00", "Z")
    assert answer.json()["error"] == (
        f"expires_in goes past this link's latest allowed expiry, {latest}"
    )
    assert await _snapshot(client, created.token) == before


async def test_the_ceiling_is_fixed_at_creation_not_moved_by_time(client: AppClient) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    # Ten hours later, the full max_ttl from now would pass creation + max_ttl.
    await update_link(
        client.services,
        created.token,
        created_at=db_now_plus(seconds(-36000)),
        max_expires_at=db_now_plus(seconds(24 * 3600 - 36000)),
    )
    assert (await _patch(client, created, {"expires_in": "1d"})).status_code == 400
    assert (await _patch(client, created, {"expires_in": "13h"})).status_code == 200


async def test_an_older_link_without_a_ceiling_uses_creation_plus_max_ttl(
    client: AppClient,
) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    await update_link(
        client.services,
        created.token,
        created_at=db_now_plus(seconds(-36000)),
        max_expires_at=None,
    )
    assert (await _patch(client, created, {"expires_in": "15h"})).status_code == 400
    assert (await _patch(client, created, {"expires_in": "13h"})).status_code == 200


# Download limit


async def test_set_change_and_remove_the_download_limit(client: AppClient) -> None:
    created = await _upload(client)
    answer = await _patch(client, created, {"max_downloads": 3})
    assert answer.json()["downloads_left"] == 3
    await client.get(f"/d/{created.token}")
    answer = await _patch(client, created, {"max_downloads": 5})
    assert (answer.json()["max_downloads"], answer.json()["downloads_left"]) == (5, 4)
    answer = await _patch(client, created, {"max_downloads": None})
    assert (answer.json()["max_downloads"], answer.json()["downloads_left"]) == (None, None)


async def test_a_limit_below_the_downloads_made_is_409_and_changes_nothing(
    client: AppClient,
) -> None:
    created = await _upload(client, **{"Max-Downloads": "5"})
    for _ in range(2):
        assert (await client.get(f"/d/{created.token}")).status_code == 200
    before = await _snapshot(client, created.token)
    answer = await _patch(client, created, {"max_downloads": 1})
    assert answer.status_code == 409
    assert answer.json()["error"] == ("max_downloads cannot be below the 2 downloads already made")
    assert await _snapshot(client, created.token) == before


async def test_a_limit_equal_to_the_downloads_made_ends_the_link(client: AppClient) -> None:
    created = await _upload(client)
    await client.get(f"/d/{created.token}")
    answer = await _patch(client, created, {"max_downloads": 1})
    assert answer.status_code == 410
    assert (await client.get(f"/d/{created.token}")).status_code == 410


# Password


async def test_set_a_password_then_the_download_needs_it(client: AppClient) -> None:
    created = await _upload(client)
    answer = await _patch(client, created, {"password": "new secret"})
    assert answer.status_code == 200
    assert answer.json()["password_required"] is True
    assert "new secret" not in answer.text
    assert (await client.get(f"/d/{created.token}")).status_code == 401
    assert (await client.get(f"/d/{created.token}", headers=_basic("new secret"))).content == DATA


async def test_change_the_password_refuses_the_old_one_and_resets_the_lock(
    client: AppClient,
) -> None:
    created = await _upload(client, **{"Link-Password": "old"})
    await update_link(
        client.services,
        created.token,
        failed_attempts=7,
        locked_until=db_now_plus(seconds(600)),
    )
    assert (await _patch(client, created, {"password": "fresh"})).status_code == 200
    row = await link_row(client.services, created.token)
    assert row is not None
    assert (row.failed_attempts, row.locked_until) == (0, None)
    assert (await client.get(f"/d/{created.token}", headers=_basic("old"))).status_code == 401
    assert (await client.get(f"/d/{created.token}", headers=_basic("fresh"))).content == DATA


async def test_remove_the_password_opens_the_link(client: AppClient) -> None:
    created = await _upload(client, **{"Link-Password": "old"})
    answer = await _patch(client, created, {"password": None})
    assert answer.json()["password_required"] is False
    assert (await client.get(f"/d/{created.token}")).content == DATA


async def test_a_ticket_issued_under_the_old_password_is_refused_after_a_change(
    client: AppClient,
) -> None:
    created = await _upload(client, **{"Link-Password": "old"})
    ticket = await tickets.issue(
        client.services, await links.resolve(client.services, created.token)
    )
    assert (await client.head(f"/d/{created.token}?ticket={ticket}")).status_code == 200
    assert (await _patch(client, created, {"password": "fresh"})).status_code == 200
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).status_code == 401


async def test_several_fields_in_one_edit(client: AppClient) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    body = {"expires_in": "3h", "max_downloads": 2, "password": "pw"}
    answer = (await _patch(client, created, body)).json()
    assert answer["max_downloads"] == 2
    assert answer["password_required"] is True
    assert answer["expires_at"] > created.body["expires_at"]


# A pending link may be edited


async def test_a_pending_link_may_be_edited(idle_client: AppClient) -> None:
    created = await _upload(idle_client)
    answer = await _patch(idle_client, created, {"max_downloads": 4})
    assert answer.status_code == 200
    assert answer.json()["state"] == "pending"


# Cannot revive


async def _expire(client: AppClient, token: str) -> None:
    await update_link(client.services, token, expires_at=db_now_plus(seconds(-1)))


async def _use_up(client: AppClient, token: str) -> None:
    await update_link(client.services, token, max_downloads=1, download_count=1)


async def _delete(client: AppClient, token: str) -> None:
    await update_link(client.services, token, state="deleted")


async def _fail(client: AppClient, token: str) -> None:
    await update_link(client.services, token, state="failed")


async def _purge(client: AppClient, token: str) -> None:
    await update_link(client.services, token, purged_at=db_now_plus(seconds(-1)))


@pytest.mark.parametrize("end", [_expire, _use_up, _delete, _fail, _purge])
@pytest.mark.parametrize(
    "body",
    [{"expires_in": "2h"}, {"max_downloads": 1000}, {"max_downloads": None}, {"password": None}],
)
async def test_an_ended_link_is_410_and_stays_ended(
    client: AppClient, end: Any, body: dict[str, Any]
) -> None:
    created = await _upload(client, **{"Expires-In": "1h"})
    await end(client, created.token)
    before = await _snapshot(client, created.token)
    answer = await _patch(client, created, body)
    assert answer.status_code == 410
    assert await _snapshot(client, created.token) == before
    assert (await client.get(f"/d/{created.token}")).status_code == 410


# The manage token


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-wrong-token-0", "Bearer " + UNKNOWN, "Bearer", "Basic Og=="],
)
async def test_without_the_right_manage_token_is_403_and_changes_nothing(
    client: AppClient, authorization: str | None
) -> None:
    created = await _upload(client, **{"Link-Password": "pw"})
    before = await _snapshot(client, created.token)
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = await client.patch(
        f"/api/v1/links/{created.token}",
        json={"expires_in": 5, "max_downloads": 1, "password": None},
        headers=headers,
    )
    assert answer.status_code == 403
    assert answer.json() == {"error": "a valid manage token is needed", "status": 403}
    assert await _snapshot(client, created.token) == before


async def test_the_link_token_or_another_links_manage_token_is_403(client: AppClient) -> None:
    created = await _upload(client)
    other = await _upload(client)
    for manage in (created.token, other.manage_token):
        answer = await _patch(client, created, {"password": None}, manage=manage)
        assert answer.status_code == 403


async def test_an_unknown_link_is_404(client: AppClient) -> None:
    answer = await client.patch(
        f"/api/v1/links/{UNKNOWN}",
        json={"max_downloads": 1},
        headers={"Authorization": f"Bearer {UNKNOWN}"},
    )
    assert answer.status_code == 404
    answer = await client.patch(
        "/api/v1/links/abc", json={"max_downloads": 1}, headers={"Authorization": "Bearer x"}
    )
    assert answer.status_code == 404


async def test_a_browser_request_from_another_site_is_403(client: AppClient) -> None:
    created = await _upload(client)
    answer = await client.patch(
        f"/api/v1/links/{created.token}",
        json={"max_downloads": 1},
        headers={
            "Authorization": f"Bearer {created.manage_token}",
            "Origin": "https://evil.example",
        },
    )
    assert answer.status_code == 403
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.max_downloads is None


# Bad bodies


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"expires_in": None},
        {"expires_in": 0},
        {"expires_in": -5},
        {"expires_in": "0"},
        {"expires_in": ""},
        {"expires_in": "2 weeks"},
        {"expires_in": "٣h"},
        {"expires_in": True},
        {"expires_in": 1.5},
        {"max_downloads": 0},
        {"max_downloads": 1_000_001},
        {"max_downloads": "5"},
        {"max_downloads": True},
        {"password": ""},
        {"password": "x" * 1025},
        {"password": 1234},
        {"colour": "red"},
        {"max_downloads": 3, "manage_token": "x"},
        [],
        "expires_in",
    ],
)
async def test_a_bad_body_is_a_short_400_and_changes_nothing(client: AppClient, body: Any) -> None:
    created = await _upload(client)
    before = await _snapshot(client, created.token)
    answer = await _patch(client, created, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["status"] == 400
    assert len(answer.json()["error"]) < 160
    assert created.manage_token not in answer.text
    assert await _snapshot(client, created.token) == before


@pytest.mark.parametrize(
    "content", [b"{", b"", b"not json", b'{"password": "\\ud800"}', b"\xff\xfe"]
)
async def test_malformed_json_is_400(client: AppClient, content: bytes) -> None:
    created = await _upload(client)
    before = await _snapshot(client, created.token)
    answer = await client.patch(
        f"/api/v1/links/{created.token}",
        content=content,
        headers={
            "Authorization": f"Bearer {created.manage_token}",
            "Content-Type": "application/json",
        },
    )
    assert answer.status_code == 400, answer.text
    assert await _snapshot(client, created.token) == before


async def test_the_password_never_appears_in_the_logs(
    client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await _upload(client)
    await _patch(client, created, {"password": "hunter2-secret"})
    await _patch(client, created, {"password": "x"}, manage="wrong-wrong-wrong-wrong0")
    for secret in ("hunter2-secret", created.manage_token, created.token):
        assert secret not in caplog.text


async def test_openapi_documents_the_edit(client: AppClient) -> None:
    with warnings.catch_warnings():
        # FastAPI warns of the GET and HEAD download routes sharing an operation id.
        warnings.simplefilter("ignore", UserWarning)
        spec = (await client.get("/openapi.json")).json()
    patch = spec["paths"]["/api/v1/links/{token}"]["patch"]
    assert {"200", "400", "403", "404", "409", "410"} <= set(patch["responses"])
