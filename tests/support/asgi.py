"""Running the real app for a test, and uploading through it.

`running_app` starts the app for settings a test builds itself; the `client` and
`idle_client` fixtures of `tests/conftest.py` are made with it. `upload` sends a `PUT` and
returns the secrets of the created link from its JSON answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from app.main import create_app
from app.services import Services
from app.settings import Settings


class AppClient(httpx.AsyncClient):
    """An httpx client bound to a running app, with its services at hand."""

    services: Services


@asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[AppClient]:
    """The real app for `settings`, lifespan started, behind an httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with AppClient(transport=transport, base_url="http://sealdrop.test") as http:
            http.services = app.state.services
            yield http


@dataclass(frozen=True)
class Uploaded:
    """A link created by a test: its secrets and the upload's JSON answer."""

    token: str
    manage_token: str
    status: int
    body: dict[str, Any]


async def upload(
    client: httpx.AsyncClient,
    data: bytes = b"hello, sealdrop\n",
    *,
    name: str = "hello.txt",
    headers: dict[str, Any] | None = None,
) -> Uploaded:
    """PUT `data` as `name` and return the created link (asserts 201 or 202)."""
    sent = {"Accept": "application/json", **(headers or {})}
    answer = await client.put(f"/{name}", content=data, headers=sent)
    assert answer.status_code in (201, 202), answer.text
    body = answer.json()
    return Uploaded(body["token"], body["manage_token"], answer.status_code, body)
