"""The operator's link commands on the embedded app: `list_links` and `revoke`.

A revoke is the owner's delete: 410 at once, a pending job cancelled with its staged copy
and its stored bytes, one audit line naming the link by its hash prefix, never its token.
A reference that names no link, or several, changes nothing.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import insert

from app.crypto.tokens import token_hash
from app.db.clock import db_now_plus, seconds
from app.db.models import Uploader
from app.domain import operator_links, storage_cap
from app.errors import BadRequest, LinkGone, LinkNotFound
from app.settings import Settings
from tests.support.asgi import AppClient, Uploaded, upload
from tests.support.datadir import staging_files
from tests.support.rows import jobs_of, link_row, update_link


def _prefix(created: Uploaded, digits: int = 12) -> str:
    return token_hash(created.token).hex()[:digits]


async def _add_uploader(client: AppClient, name: str) -> str:
    async with client.services.sessions() as session, session.begin():
        await session.execute(insert(Uploader).values(id=f"id-{name}", name=name))
    return f"id-{name}"


# Listing


async def test_list_shows_live_and_pending_links_by_hash_prefix(idle_client: AppClient) -> None:
    pending = await upload(idle_client, b"p" * 10, name="secret-plans.pdf")
    gone = await upload(idle_client, b"g" * 10)
    expired = await upload(idle_client, b"e" * 10)
    await operator_links.revoke(idle_client.services, gone.token)
    await update_link(idle_client.services, expired.token, expires_at=db_now_plus(seconds(-1)))

    listed = await operator_links.list_links(idle_client.services)

    assert [link.hash_prefix for link in listed] == [_prefix(pending)]
    (link,) = listed
    assert (link.state, link.size, link.downloads, link.max_downloads) == ("pending", 10, 0, None)
    assert link.uploader is None
    assert "secret-plans" not in repr(link)
    assert pending.token not in repr(link)


async def test_list_filters_by_size_and_by_uploader(idle_client: AppClient) -> None:
    small = await upload(idle_client, b"s" * 10)
    large = await upload(idle_client, b"l" * 5000, headers={"Max-Downloads": "3"})
    alice = await _add_uploader(idle_client, "alice")
    await _add_uploader(idle_client, "bob")
    await update_link(idle_client.services, small.token, uploader_id=alice)

    bigger = await operator_links.list_links(idle_client.services, larger_than=4999)
    assert [(link.hash_prefix, link.max_downloads) for link in bigger] == [(_prefix(large), 3)]
    of_alice = await operator_links.list_links(idle_client.services, uploader="alice")
    assert [(link.hash_prefix, link.uploader) for link in of_alice] == [(_prefix(small), "alice")]
    assert await operator_links.list_links(idle_client.services, uploader="bob") == []
    with pytest.raises(BadRequest, match="no uploader is named 'carol'"):
        await operator_links.list_links(idle_client.services, uploader="carol")


# Revoking


@pytest.mark.parametrize(
    "reference",
    [
        "https://drop.example/s/{token}",
        "https://drop.example/d/{token}/report.pdf",
        "{token}",
        "{prefix}",
        "{prefix8}",
    ],
)
async def test_revoke_by_url_token_or_prefix_answers_410_at_once(
    client: AppClient, reference: str
) -> None:
    created = await upload(client, b"revoke me")
    assert (await client.get(f"/d/{created.token}")).status_code == 200
    ref = reference.format(
        token=created.token, prefix=_prefix(created), prefix8=_prefix(created, 8)
    )

    revoked = await operator_links.revoke(client.services, ref)

    assert revoked.hash_prefix == _prefix(created)
    assert revoked.was == "ready"
    assert (await client.get(f"/d/{created.token}")).status_code == 410
    assert (await client.get(f"/s/{created.token}")).status_code == 410


async def test_revoking_a_pending_upload_cancels_its_job_and_frees_its_bytes(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    created = await upload(idle_client, b"x" * 1000)
    assert await storage_cap.stored_bytes(idle_client.services) > 0

    revoked = await operator_links.revoke(idle_client.services, created.token)

    assert (revoked.was, revoked.staged_deleted) == ("pending", 1)
    assert await jobs_of(idle_client.services, created.token) == []
    assert staging_files(idle_settings) == []
    assert await storage_cap.stored_bytes(idle_client.services) == 0
    row = await link_row(idle_client.services, created.token)
    assert row is not None
    assert row.state == "deleted"


async def test_a_revoke_is_audited_by_hash_prefix_never_by_token(
    client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await upload(client, b"audit me")
    with caplog.at_level(logging.INFO, logger="sealdrop.audit"):
        await operator_links.revoke(client.services, f"http://sealdrop.test/s/{created.token}")
    audit = [r.getMessage() for r in caplog.records if r.name == "sealdrop.audit"]
    assert audit == [f"link={_prefix(created)} revoked by the operator (was ready)"]
    assert not any(created.token in r.getMessage() for r in caplog.records)


async def test_an_ambiguous_prefix_changes_nothing_and_says_how_many_matched(
    client: AppClient,
) -> None:
    first = await upload(client, b"one")
    second = await upload(client, b"two")
    shared = "abcdef01"
    for created, rest in ((first, "11"), (second, "22")):
        await update_link(
            client.services, created.token, token_hash=bytes.fromhex(shared + rest * 28)
        )

    with pytest.raises(BadRequest, match="2 links match"):
        await operator_links.revoke(client.services, shared)

    live = await operator_links.list_links(client.services)
    assert sorted(link.hash_prefix for link in live) == [shared + "1111", shared + "2222"]
    revoked = await operator_links.revoke(client.services, shared + "1")
    assert revoked.hash_prefix == (shared + "1111")


@pytest.mark.parametrize(
    "reference",
    ["abc1234", "not a token!", "https://drop.example/api/v1/links", "ABCDEFG1"],
)
async def test_a_reference_of_the_wrong_shape_is_refused(client: AppClient, reference: str) -> None:
    await upload(client, b"stays")
    with pytest.raises(BadRequest):
        await operator_links.revoke(client.services, reference)


async def test_an_unknown_or_already_revoked_link_is_said_so(client: AppClient) -> None:
    created = await upload(client, b"twice")
    with pytest.raises(LinkNotFound):
        await operator_links.revoke(client.services, "0" * 12)
    await operator_links.revoke(client.services, created.token)
    with pytest.raises(LinkGone, match="already deleted"):
        await operator_links.revoke(client.services, created.token)
    with pytest.raises(LinkNotFound):
        await operator_links.revoke(client.services, _prefix(created))
