"""Download tickets: what the share page gives a browser once the password was right.

A ticket opens one link, once, for a minute, in any API process sharing the key ring. A
refused one sends a browser back to the password form (never to the URL it came from) and
gets any other client the Basic challenge; a password sent beside it decides instead.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from app.crypto.keys import KeyRing, new_key_entry
from app.domain import links, tickets
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app, upload
from tests.support.forms import basic
from tests.support.rows import link_row

DATA = b"protected bytes"
HEADERS = {"Link-Password": "pw"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CURL = {"Accept": "*/*", "User-Agent": "curl/8.5.0"}


async def issue(client: AppClient, token: str) -> str:
    return await tickets.issue(client.services, await links.resolve(client.services, token))


async def test_ticket_downloads_a_protected_file(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    answer = await client.get(f"/d/{created.token}/hello.txt?ticket={ticket}")
    assert answer.status_code == 200
    assert answer.content == DATA


async def test_ticket_works_only_once(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    await client.get(f"/d/{created.token}?ticket={ticket}")
    again = await client.get(f"/d/{created.token}?ticket={ticket}")
    assert again.status_code == 401


async def test_refused_ticket_sends_a_browser_to_the_password_form_not_to_itself(
    client: AppClient,
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    url = f"http://sealdrop.test/d/{created.token}/hello.txt?ticket={ticket}"
    await client.get(url, headers=BROWSER)
    again = await client.get(url, headers=BROWSER)
    assert again.status_code == 303
    assert again.headers["location"] == f"http://sealdrop.test/s/{created.token}?ticket=spent"
    assert again.headers["location"] != url


async def test_refused_ticket_gets_curl_the_basic_challenge(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    await client.get(f"/d/{created.token}?ticket={ticket}", headers=CURL)
    again = await client.get(f"/d/{created.token}?ticket={ticket}", headers=CURL)
    assert again.status_code == 401
    assert again.headers["www-authenticate"].startswith("Basic ")
    assert "location" not in again.headers


async def test_right_password_wins_over_a_refused_ticket(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    headers = {**CURL, "Authorization": basic("pw")}
    answer = await client.get(f"/d/{created.token}?ticket=spent", headers=headers)
    assert answer.status_code == 200
    assert answer.content == DATA


@pytest.mark.parametrize("accept", [BROWSER, CURL], ids=["browser", "curl"])
async def test_following_redirects_from_a_refused_ticket_ends_at_the_password_challenge(
    client: AppClient, accept: dict[str, str]
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    answer = await client.get(
        f"/d/{created.token}/hello.txt?ticket=spent", headers=accept, follow_redirects=True
    )
    assert answer.status_code == 401
    assert len(answer.history) <= 1


async def test_head_checks_a_ticket_without_spending_it(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    assert (await client.head(f"/d/{created.token}?ticket={ticket}")).status_code == 200
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).content == DATA


async def test_ticket_download_counts_as_a_download(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    await client.get(f"/d/{created.token}?ticket={ticket}")
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.download_count == 1


async def test_ticket_of_another_link_is_refused(client: AppClient) -> None:
    mine = await upload(client, DATA, headers=HEADERS)
    other = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, other.token)
    assert (await client.get(f"/d/{mine.token}?ticket={ticket}")).status_code == 401


ALTERATIONS: dict[str, Callable[[str], str]] = {
    "signature": lambda ticket: ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB"),
    "expiry": lambda ticket: "9" + ticket,
    "not ascii": lambda _ticket: "é",
}


@pytest.mark.parametrize("change", ALTERATIONS.values(), ids=ALTERATIONS.keys())
async def test_altered_ticket_is_refused(client: AppClient, change: Callable[[str], str]) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    altered = change(await issue(client, created.token))
    assert (await client.get(f"/d/{created.token}?ticket={altered}")).status_code == 401


def _set_unused_bits(ticket: str) -> str:
    # A 32-byte MAC is 43 characters; the last one carries 4 bits and 2 unused ones.
    last = BASE64URL.index(ticket[-1])
    return ticket[:-1] + BASE64URL[last | 1]


BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# Spellings of a ticket that a lax base64 decoder reads as the same signature.
RESPELLINGS: dict[str, Callable[[str], str]] = {
    "'!!' appended": lambda ticket: ticket + "!!",
    "'~~' appended": lambda ticket: ticket + "~~",
    "'%3D' appended": lambda ticket: ticket + "%3D",
    "'=' appended": lambda ticket: ticket + "=",
    "unused low bits of the last character set": _set_unused_bits,
}


@pytest.mark.parametrize("respell", RESPELLINGS.values(), ids=RESPELLINGS.keys())
async def test_respelled_ticket_is_refused_after_the_original_was_spent(
    client: AppClient, respell: Callable[[str], str]
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).content == DATA
    replayed = await client.get(f"/d/{created.token}?ticket={respell(ticket)}")
    assert replayed.status_code == 401
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.download_count == 1


@pytest.mark.parametrize("respell", RESPELLINGS.values(), ids=RESPELLINGS.keys())
async def test_respelled_ticket_is_refused_on_its_own(
    client: AppClient, respell: Callable[[str], str]
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    answer = await client.get(f"/d/{created.token}?ticket={respell(ticket)}")
    assert answer.status_code == 401


async def test_ticket_named_by_another_id_of_the_same_key_is_refused_once_spent(
    client: AppClient,
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ring = client.services.keys
    [(key_id, key)] = ring.keys.items()
    # The same key under a second id: both names verify the same signature.
    client.services.keys = KeyRing.parse(f"{key_id}:{_b64(key)},alias:{_b64(key)}")
    ticket = await issue(client, created.token)
    assert f".{key_id}." in ticket
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).content == DATA
    renamed = ticket.replace(f".{key_id}.", ".alias.")
    assert (await client.get(f"/d/{created.token}?ticket={renamed}")).status_code == 401


async def test_expired_ticket_is_refused(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    monkeypatch.setattr(tickets, "TICKET_SECONDS", 0)
    ticket = await issue(client, created.token)
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).status_code == 401


async def test_ticket_is_ignored_on_a_link_without_password(client: AppClient) -> None:
    created = await upload(client, DATA)
    answer = await client.get(f"/d/{created.token}?ticket=anything")
    assert answer.content == DATA


async def test_ticket_from_one_process_opens_the_file_in_another(settings: Settings) -> None:
    async with running_app(settings) as first, running_app(settings) as second:
        created = await upload(first, DATA, headers=HEADERS)
        ticket = await issue(first, created.token)
        answer = await second.get(f"/d/{created.token}?ticket={ticket}")
    assert answer.content == DATA


async def test_ticket_survives_a_key_rotation_that_keeps_the_old_key(client: AppClient) -> None:
    created = await upload(client, DATA, headers=HEADERS)
    ticket = await issue(client, created.token)
    old = client.services.keys
    rotated = ",".join([new_key_entry("new")] + [f"{i}:{_b64(k)}" for i, k in old.keys.items()])
    client.services.keys = KeyRing.parse(rotated)
    assert client.services.keys.active_id == "new"
    assert (await client.get(f"/d/{created.token}?ticket={ticket}")).content == DATA


def _b64(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")
