"""`app.domain.link_passwords`: the password check of a protected link and its lock.

Called directly, without HTTP (tests/api/test_passwords.py holds the answers over HTTP):
the count and the lock live in the link's row, by the database clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from app.db.clock import db_now_plus, seconds
from app.domain import link_passwords, links
from app.errors import PasswordRequired, TooManyAttempts
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.rows import link_row, update_link

PASSWORD = "correct horse"


@pytest.fixture
def strict_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Links lock after three wrong passwords, for 10 s, doubling up to 35 s."""
    return make_settings(
        password_max_failures=3, password_lock_seconds=10, password_lock_max_seconds=35
    )


@pytest.fixture
async def strict_client(strict_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with the strict lock."""
    async with running_app(strict_settings) as client:
        yield client


async def _protected(client: AppClient) -> str:
    return (await upload(client, b"secret", headers={"Link-Password": PASSWORD})).token


async def _failed_attempts(client: AppClient, token: str) -> int:
    row = await link_row(client.services, token)
    assert row is not None
    return row.failed_attempts


async def _authorize(client: AppClient, token: str, password: str | None) -> None:
    link = await links.resolve(client.services, token)
    await link_passwords.authorize(client.services, link, password, client="192.0.2.1")


@pytest.mark.parametrize(("attempts", "lock"), [(3, 10), (6, 20), (9, 35), (12, 35), (300, 35)])
def test_the_first_lock_lasts_the_configured_time_and_each_next_twice_as_long_up_to_the_maximum(
    strict_settings: Settings, attempts: int, lock: int
) -> None:
    assert link_passwords.lock_seconds(strict_settings, attempts) == lock


async def test_a_link_without_a_password_lets_any_request_through(
    strict_client: AppClient,
) -> None:
    token = (await upload(strict_client, b"open")).token
    await _authorize(strict_client, token, None)
    await _authorize(strict_client, token, "anything")
    assert await _failed_attempts(strict_client, token) == 0


async def test_a_wrong_password_is_counted_in_the_links_row(strict_client: AppClient) -> None:
    token = await _protected(strict_client)
    with pytest.raises(PasswordRequired):
        await _authorize(strict_client, token, "wrong")
    assert await _failed_attempts(strict_client, token) == 1


async def test_a_missing_password_is_refused_and_not_counted(strict_client: AppClient) -> None:
    token = await _protected(strict_client)
    with pytest.raises(PasswordRequired):
        await _authorize(strict_client, token, None)
    assert await _failed_attempts(strict_client, token) == 0


async def test_a_right_password_resets_the_count(strict_client: AppClient) -> None:
    token = await _protected(strict_client)
    for _ in range(2):
        with pytest.raises(PasswordRequired):
            await _authorize(strict_client, token, "wrong")
    await _authorize(strict_client, token, PASSWORD)
    assert await _failed_attempts(strict_client, token) == 0


async def test_the_attempt_that_reaches_the_limit_locks_the_link_for_its_lock_time(
    strict_client: AppClient,
) -> None:
    token = await _protected(strict_client)
    for _ in range(3):
        with pytest.raises(PasswordRequired):
            await _authorize(strict_client, token, "wrong")
    with pytest.raises(TooManyAttempts) as refusal:
        await _authorize(strict_client, token, PASSWORD)
    assert 1 <= refusal.value.retry_after <= 11


async def test_the_right_password_opens_the_link_once_its_lock_has_passed(
    strict_client: AppClient,
) -> None:
    token = await _protected(strict_client)
    await update_link(
        strict_client.services, token, failed_attempts=3, locked_until=db_now_plus(seconds(-1))
    )
    await _authorize(strict_client, token, PASSWORD)
    row = await link_row(strict_client.services, token)
    assert row is not None
    assert (row.failed_attempts, row.locked_until) == (0, None)
