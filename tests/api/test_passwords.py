"""Protected links: the Basic challenge, how passwords are read, and the lock after failures.

A wrong password is counted in the link's row; after `password_max_failures` (3 here) the
link is locked and answers 429 to everyone, the right password included, until
`locked_until` passes in the database.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Callable

import pytest

from app.db.clock import db_now_plus, seconds
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, running_app, upload
from tests.support.forms import basic
from tests.support.rows import link_row, update_link

PASSWORD = "correct horse"
BASIC_CHALLENGE = re.compile(r'^Basic realm="sealdrop [0-9a-f]{8}", charset="UTF-8"$')


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Links lock after three wrong passwords."""
    return make_settings(password_max_failures=3)


@pytest.fixture
async def strict_client(strict_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with a lock after three wrong passwords."""
    async with running_app(strict_settings) as client:
        yield client


async def _protected(client: AppClient, password: str = PASSWORD) -> Uploaded:
    return await upload(client, b"secret bytes", headers={"Link-Password": password})


async def _get(client: AppClient, token: str, password: str | None) -> int:
    headers = {} if password is None else {"Authorization": basic(password)}
    return (await client.get(f"/d/{token}", headers=headers)).status_code


# The challenge


async def test_download_without_a_password_is_401_with_a_basic_challenge(
    client: AppClient,
) -> None:
    created = await _protected(client)
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 401
    assert BASIC_CHALLENGE.match(answer.headers["www-authenticate"])
    assert answer.headers["cache-control"] == "no-store"


# Browsers get the share page's own password form instead (tests/web/test_share_page.py).
@pytest.mark.parametrize("accept", ["*/*", "text/html;q=0, */*"])
async def test_share_link_without_a_password_is_401_with_a_basic_challenge(
    client: AppClient, accept: str
) -> None:
    created = await _protected(client)
    answer = await client.get(f"/s/{created.token}", headers={"Accept": accept})
    assert answer.status_code == 401
    assert BASIC_CHALLENGE.match(answer.headers["www-authenticate"])


async def test_realm_names_the_link_without_its_token(client: AppClient) -> None:
    created = await _protected(client)
    challenge = (await client.get(f"/d/{created.token}")).headers["www-authenticate"]
    assert created.token not in challenge


async def test_json_api_challenge_is_not_basic(client: AppClient) -> None:
    created = await _protected(client)
    answer = await client.get(f"/api/v1/links/{created.token}", headers={"Link-Password": "wrong"})
    assert answer.status_code == 401
    assert not answer.headers["www-authenticate"].lower().startswith("basic")


async def test_json_api_challenge_is_not_basic_for_wrong_basic_credentials(
    client: AppClient,
) -> None:
    created = await _protected(client)
    answer = await client.get(
        f"/api/v1/links/{created.token}", headers={"Authorization": basic("wrong")}
    )
    assert answer.status_code == 401
    assert not answer.headers["www-authenticate"].lower().startswith("basic")


# Reading Basic credentials


async def test_right_password_downloads_the_file(client: AppClient) -> None:
    created = await _protected(client)
    answer = await client.get(f"/d/{created.token}", headers={"Authorization": basic(PASSWORD)})
    assert answer.status_code == 200
    assert answer.content == b"secret bytes"


async def test_user_name_is_ignored(client: AppClient) -> None:
    created = await _protected(client)
    assert await _get(client, created.token, None) == 401
    answer = await client.get(
        f"/d/{created.token}", headers={"Authorization": basic(PASSWORD, user="anyone at all")}
    )
    assert answer.status_code == 200


async def test_basic_splits_at_the_first_colon(client: AppClient) -> None:
    created = await _protected(client, password="b:c")
    raw = base64.b64encode(b"a:b:c").decode()
    answer = await client.get(f"/d/{created.token}", headers={"Authorization": f"Basic {raw}"})
    assert answer.status_code == 200


async def test_lowercase_basic_scheme_works(client: AppClient) -> None:
    created = await _protected(client)
    raw = base64.b64encode(f":{PASSWORD}".encode()).decode()
    answer = await client.get(f"/d/{created.token}", headers={"Authorization": f"basic {raw}"})
    assert answer.status_code == 200


@pytest.mark.parametrize("value", ["Basic !!!not-base64!!!", "Basic YWJj", "Basic =="])
async def test_malformed_basic_credentials_are_400(client: AppClient, value: str) -> None:
    created = await _protected(client)
    answer = await client.get(f"/d/{created.token}", headers={"Authorization": value})
    assert answer.status_code == 400


async def test_basic_password_that_is_not_utf8_is_400(client: AppClient) -> None:
    created = await _protected(client)
    answer = await client.get(f"/d/{created.token}", headers={"Authorization": basic(b"\xff\xfe")})
    assert answer.status_code == 400


async def test_missing_and_wrong_password_answer_identically(client: AppClient) -> None:
    created = await _protected(client)
    missing = await client.get(f"/d/{created.token}")
    wrong = await client.get(f"/d/{created.token}", headers={"Authorization": basic("nope")})
    assert (missing.status_code, missing.content) == (wrong.status_code, wrong.content)
    assert missing.headers["www-authenticate"] == wrong.headers["www-authenticate"]


async def test_missing_password_is_not_counted_as_a_failure(client: AppClient) -> None:
    created = await _protected(client)
    await client.get(f"/d/{created.token}")
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.failed_attempts == 0


# Lock after failures


async def test_wrong_passwords_up_to_the_limit_lock_the_link_with_429(
    strict_client: AppClient,
) -> None:
    created = await _protected(strict_client)
    assert [await _get(strict_client, created.token, "wrong") for _ in range(3)] == [401] * 3
    answer = await strict_client.get(
        f"/d/{created.token}", headers={"Authorization": basic("wrong")}
    )
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) > 0
    assert answer.headers["cache-control"] == "no-store"


async def test_right_password_gets_429_while_locked(strict_client: AppClient) -> None:
    created = await _protected(strict_client)
    for _ in range(3):
        await _get(strict_client, created.token, "wrong")
    answer = await strict_client.get(
        f"/d/{created.token}", headers={"Authorization": basic(PASSWORD)}
    )
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) > 1


async def test_missing_password_gets_429_while_locked(strict_client: AppClient) -> None:
    created = await _protected(strict_client)
    for _ in range(3):
        await _get(strict_client, created.token, "wrong")
    assert await _get(strict_client, created.token, None) == 429


async def test_lock_covers_the_share_link_and_the_api(strict_client: AppClient) -> None:
    created = await _protected(strict_client)
    for _ in range(3):
        await _get(strict_client, created.token, "wrong")
    share = await strict_client.get(
        f"/s/{created.token}", headers={"Authorization": basic(PASSWORD), "Accept": "*/*"}
    )
    api = await strict_client.get(
        f"/api/v1/links/{created.token}", headers={"Link-Password": PASSWORD}
    )
    assert (share.status_code, api.status_code) == (429, 429)


async def test_once_the_lock_has_passed_the_right_password_works_and_resets_the_count(
    strict_client: AppClient,
) -> None:
    created = await _protected(strict_client)
    for _ in range(3):
        await _get(strict_client, created.token, "wrong")
    await update_link(strict_client.services, created.token, locked_until=db_now_plus(seconds(-1)))
    assert await _get(strict_client, created.token, PASSWORD) == 200
    row = await link_row(strict_client.services, created.token)
    assert row is not None
    assert (row.failed_attempts, row.locked_until) == (0, None)


async def test_a_right_password_before_the_limit_resets_the_count(
    strict_client: AppClient,
) -> None:
    created = await _protected(strict_client)
    for _ in range(2):
        await _get(strict_client, created.token, "wrong")
    assert await _get(strict_client, created.token, PASSWORD) == 200
    assert [await _get(strict_client, created.token, "wrong") for _ in range(2)] == [401] * 2
    assert await _get(strict_client, created.token, PASSWORD) == 200


# Status endpoint


async def test_status_of_a_protected_link_hides_the_file_details_without_the_password(
    client: AppClient,
) -> None:
    created = await _protected(client)
    answer = await client.get(f"/api/v1/links/{created.token}")
    body = answer.json()
    assert answer.status_code == 200
    assert body["password_required"] is True
    assert (body["filename"], body["size"], body["sha256"], body["content_type"]) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("header", ["Link-Password", "Authorization"])
async def test_status_of_a_protected_link_shows_the_file_details_with_the_password(
    client: AppClient, header: str
) -> None:
    created = await _protected(client)
    value = PASSWORD if header == "Link-Password" else basic(PASSWORD)
    body = (await client.get(f"/api/v1/links/{created.token}", headers={header: value})).json()
    assert (body["filename"], body["size"], body["sha256"]) == (
        "hello.txt",
        12,
        created.body["sha256"],
    )
