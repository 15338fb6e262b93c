"""No secret and no plaintext rests anywhere: not in the database, the objects, or the logs.

Tokens are stored only as hashes; a file's bytes are sealed in staging and in the blob
store; logs name links only by a short prefix of the token's hash (DESIGN §1, §3, §6).
"""

from __future__ import annotations

import logging
import secrets

import pytest

from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.datadir import all_files, staging_files
from tests.support.forms import basic

PASSWORD = "a password nobody may read"
CLIENT_LOGGERS = ("httpx", "httpcore")


def _marker_file() -> tuple[bytes, bytes]:
    marker = f"PLAINTEXT-MARKER-{secrets.token_hex(8)}|".encode()
    return marker, marker * 10_000  # about 340 KB: six 64 KiB segments


def _files_holding(settings: Settings, needle: bytes) -> list[str]:
    return [str(path) for path in all_files(settings) if needle in path.read_bytes()]


async def _links_in_use(client: AppClient) -> list[Uploaded]:
    plain = await upload(client, b"plain")
    protected = await upload(client, b"protected", headers={"Link-Password": PASSWORD})
    await client.get(f"/d/{plain.token}")
    await client.get(f"/d/{protected.token}", headers={"Authorization": basic("wrong")})
    await client.get(f"/d/{protected.token}", headers={"Authorization": basic(PASSWORD)})
    await client.get(f"/api/v1/links/{plain.token}")
    return [plain, protected]


async def test_tokens_appear_nowhere_in_the_sqlite_files(
    client: AppClient, settings: Settings
) -> None:
    created = await _links_in_use(client)
    sqlite_files = [settings.data_dir / f"sealdrop.db{suffix}" for suffix in ("", "-wal", "-shm")]
    assert all(path.exists() for path in sqlite_files)
    contents = b"".join(path.read_bytes() for path in sqlite_files)
    for link in created:
        assert link.token.encode() not in contents
        assert link.manage_token.encode() not in contents


async def test_tokens_appear_nowhere_in_the_data_folder(
    client: AppClient, settings: Settings
) -> None:
    created = await _links_in_use(client)
    for link in created:
        assert _files_holding(settings, link.token.encode()) == []
        assert _files_holding(settings, link.manage_token.encode()) == []


async def test_password_appears_nowhere_in_the_data_folder(
    client: AppClient, settings: Settings
) -> None:
    await _links_in_use(client)
    assert _files_holding(settings, PASSWORD.encode()) == []


async def test_file_content_appears_nowhere_in_the_data_folder_once_sealed(
    client: AppClient, settings: Settings
) -> None:
    marker, data = _marker_file()
    created = await upload(client, data, name="marked.txt")
    assert created.status == 201
    assert (await client.get(f"/d/{created.token}")).content == data
    assert _files_holding(settings, marker) == []


async def test_file_content_appears_nowhere_in_the_data_folder_while_pending(
    idle_client: AppClient, idle_settings: Settings
) -> None:
    marker, data = _marker_file()
    created = await upload(idle_client, data, name="marked.txt")
    assert created.status == 202
    assert len(staging_files(idle_settings)) == 1
    assert _files_holding(idle_settings, marker) == []


async def test_tokens_never_reach_the_logs(
    client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    created = await _links_in_use(client)
    deleted = created[0]
    await client.delete(
        f"/api/v1/links/{deleted.token}",
        headers={"Authorization": f"Bearer {deleted.manage_token}"},
    )
    await client.get(f"/d/{deleted.token}")
    # httpx logs the URLs it requests: that is the test's client, not the server.
    server = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    assert any(r.name.startswith("sealdrop") for r in server)
    text = "\n".join(logging.Formatter().format(record) for record in server)
    for link in created:
        assert link.token not in text
        assert link.manage_token not in text
    assert PASSWORD not in text
