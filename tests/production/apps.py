"""The app for a production test: through ASGI from any client address, or behind uvicorn.

`running(settings)` starts the app's lifespan once and hands out clients that appear to come
from a chosen address (what uvicorn would put in `request.client`). `serving(settings)` runs
the app under a real uvicorn on loopback with the options `sealdrop serve` uses, for what
only a socket shows (X-Forwarded-For and trusted proxies).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from app.cli import proxy_options
from app.main import create_app
from app.services import Services
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.services import LOOPBACK, free_port

START_TIMEOUT_SECONDS = 30.0


def random_address() -> str:
    """A client address no other test uses (its counters start at zero)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


@dataclass
class RunningApp:
    """An app whose lifespan is running."""

    app: FastAPI

    @property
    def services(self) -> Services:
        """The app's services."""
        services: Services = self.app.state.services
        return services

    def client(self, address: str = "127.0.0.1") -> AppClient:
        """An httpx client whose requests come from `address`; close it after use."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        http = AppClient(transport=transport, base_url="http://sealdrop.test")
        http.services = self.services
        return http


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningApp]:
    """The real app for `settings`, lifespan started."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield RunningApp(app)


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """The app under uvicorn on loopback, as `sealdrop serve` runs it; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host=LOOPBACK,
        port=port,
        lifespan="on",
        ws="none",
        log_level="warning",
        **proxy_options(settings),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn exited before it started")
                await asyncio.sleep(0.02)
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        await task
