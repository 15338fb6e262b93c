"""Fixtures shared by the whole suite: embedded-mode settings and the app through ASGI.

Every test gets its own data folder (SQLite database, objects, key file), so no test
depends on another's state. `client` drives the real ASGI app with httpx, the app's
lifespan running exactly as under uvicorn (migrations, the in-process worker);
`idle_client` is the same app with its worker off, so links stay pending until a test
claims their jobs (the HTTP contract tests and the queue and janitor tests use it).
`shared_stacks` holds the session's running stacks (one per mode) for the suites that
talk to real processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.support.asgi import AppClient, running_app
from tests.support.shared_stacks import SharedStacks

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build embedded-mode settings in a fresh folder, with overrides."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "segment_log2": 16,
            "janitor_interval_seconds": 3600,
            "job_retry_base_seconds": 0.05,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Embedded-mode settings with 64 KiB segments (many segments in small files)."""
    return make_settings()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AppClient]:
    """The real app, lifespan started, behind an httpx client (ASGI, no socket)."""
    async with running_app(settings) as http:
        yield http


@pytest.fixture
def idle_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Embedded settings with no worker: uploads stay pending until a test acts.

    With the worker off nothing seals in the background: a test decides when (and
    whether) jobs are claimed, and uploads answer at once (no wait for sealing).
    """
    return make_settings(worker="off", upload_wait_seconds=0)


@pytest.fixture
async def idle_client(idle_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with its worker off."""
    async with running_app(idle_settings) as http:
        yield http


@pytest.fixture(scope="session")
def shared_stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedStacks]:
    """The session's shared stacks, each started on first use and stopped at the end."""
    stacks = SharedStacks(tmp_path_factory.mktemp("shared-stacks"))
    try:
        yield stacks
    finally:
        stacks.stop_all()
