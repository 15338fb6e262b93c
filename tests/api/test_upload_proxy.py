"""Upload policy `proxy`: the auth proxy's user header names the uploader, and is believed
only on a connection from a trusted proxy (the test client connects from 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from app.domain import uploaders
from app.domain.uploaders import Limits
from app.settings import Settings
from tests.support.asgi import running_app, upload
from tests.support.rows import link_row

ASYNC = {"Prefer": "respond-async", "Accept": "application/json"}
USER = {**ASYNC, "X-Auth-Request-User": "carol@example.org"}


def proxy_settings(make_settings: Callable[..., Settings], trusted: str) -> Settings:
    """Policy `proxy` trusting `trusted`, worker off."""
    return make_settings(
        upload_policy="proxy",
        trusted_proxies=trusted,
        worker="off",
        upload_wait_seconds=0,
        proxy_default_max_live_links=1,
    )


async def test_a_trusted_proxys_user_uploads_and_is_created_with_the_defaults(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_app(proxy_settings(make_settings, "127.0.0.0/8")) as http:
        created = await upload(http, headers=USER)
        row = await link_row(http.services, created.token)
        assert row is not None
        assert row.uploader_id is not None
        (report,) = await uploaders.list_uploaders(http.services)
        assert (report.name, report.kind, report.limits.max_live_links) == (
            "carol@example.org",
            "proxy",
            1,
        )
        second = await http.put("/f.txt", content=b"x", headers=USER)
        assert second.status_code == 429


@pytest.mark.parametrize("trusted", ["10.0.0.0/8", "192.168.1.1"])
async def test_the_user_header_from_an_untrusted_peer_is_ignored(
    make_settings: Callable[..., Settings], trusted: str
) -> None:
    async with running_app(proxy_settings(make_settings, trusted)) as http:
        answer = await http.put("/f.txt", content=b"x", headers=USER)
        assert answer.status_code == 403
        assert "sign in" in answer.json()["error"]
        assert await uploaders.list_uploaders(http.services) == []


async def test_a_revoked_proxy_user_is_refused_with_403(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_app(proxy_settings(make_settings, "127.0.0.1")) as http:
        await uploaders.add_uploader(http.services, "carol@example.org", Limits(), proxy=True)
        await uploaders.revoke_uploader(http.services, "carol@example.org")
        answer = await http.put("/f.txt", content=b"x", headers=USER)
        assert answer.status_code == 403
        assert "stopped by the operator" in answer.json()["error"]


async def test_a_user_name_the_server_cannot_take_is_a_400(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_app(proxy_settings(make_settings, "127.0.0.1")) as http:
        headers = {**ASYNC, "X-Auth-Request-User": "carol smith"}
        answer = await http.put("/f.txt", content=b"x", headers=headers)
        assert answer.status_code == 400


@pytest.mark.parametrize("trusted", ["", "*", " , "])
def test_proxy_policy_refuses_to_start_without_a_narrow_trusted_list(trusted: str) -> None:
    with pytest.raises(ValidationError, match=r"SEALDROP_TRUSTED_PROXIES|every address"):
        Settings(upload_policy="proxy", trusted_proxies=trusted)
