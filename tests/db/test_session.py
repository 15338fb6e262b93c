"""The embedded database's files on disk: private to their owner, like the objects and keys.

`sealdrop.db` and its `-wal` and `-shm` hold file names, digests, password hashes and
wrapped keys; a data folder that already existed with 0755 (made by hand, or a volume)
must not leave them readable by other users of the machine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import Settings

DATABASE_FILES = ("sealdrop.db", "sealdrop.db-wal", "sealdrop.db-shm")


@pytest.fixture(autouse=True)
def _group_readable_umask() -> Iterator[None]:
    """The common umask, under which a file created with SQLite's default mode is 0644."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def open_data_dir(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Settings whose data folder exists before the first start, with mode 0755."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    return make_settings(data_dir=data_dir)


def _modes(folder: Path) -> dict[str, str]:
    return {name: oct(stat.S_IMODE((folder / name).stat().st_mode)) for name in DATABASE_FILES}


@asynccontextmanager
async def _running(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app started on `app_settings` (migrations run), behind an httpx client."""
    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sealdrop.test") as http:
            yield http


async def _upload_and_download(http: httpx.AsyncClient) -> None:
    created = await http.put("/notes.txt", content=b"kept", headers={"Accept": "application/json"})
    assert created.status_code == 201, created.text
    download = await http.get(f"/d/{created.json()['token']}")
    assert download.content == b"kept"


async def test_database_files_are_private_in_a_data_folder_that_existed_with_0755(
    open_data_dir: Settings,
) -> None:
    async with _running(open_data_dir) as http:
        await _upload_and_download(http)
        assert _modes(open_data_dir.data_dir) == dict.fromkeys(DATABASE_FILES, "0o600")
    assert stat.S_IMODE(open_data_dir.data_dir.stat().st_mode) == 0o755


async def test_database_files_left_readable_by_others_are_made_private_at_start(
    open_data_dir: Settings,
) -> None:
    for name in DATABASE_FILES:
        # What an earlier version left behind; SQLite takes empty files as a new database.
        (open_data_dir.data_dir / name).touch(mode=0o644)
    async with _running(open_data_dir) as http:
        assert _modes(open_data_dir.data_dir) == dict.fromkeys(DATABASE_FILES, "0o600")
        await _upload_and_download(http)
