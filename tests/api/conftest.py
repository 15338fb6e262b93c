"""Fixtures of the HTTP contract tests: an app whose worker is off, so links stay pending.

With the worker off nothing seals in the background: a test decides when (and whether)
jobs are claimed, and uploads answer at once (no wait for sealing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import running_app


@pytest.fixture
def idle_settings(make_settings: Callable[..., Settings]) -> Settings:
    """Embedded settings with no worker: uploads stay pending until a test acts."""
    return make_settings(worker="off", upload_wait_seconds=0)


@pytest.fixture
async def idle_client(idle_settings: Settings) -> AsyncIterator[AppClient]:
    """The app with its worker off."""
    async with running_app(idle_settings) as client:
        yield client
