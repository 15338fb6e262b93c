"""A real uvicorn serving the real app on a free loopback port, inside the test's event loop.

Browsers need a socket; running the server as a task of the same loop lets a test reach
the app's services (its database, a worker it starts later) directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.services import Services
from app.settings import Settings
from worker.runner import Worker


class _QuietServer(uvicorn.Server):
    """uvicorn that leaves the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class LiveServer:
    """A running server: its base URL and the app behind it."""

    url: str
    app: FastAPI

    @property
    def services(self) -> Services:
        """The app's services (database, stores, key ring)."""
        services: Services = self.app.state.services
        return services

    @asynccontextmanager
    async def worker(self) -> AsyncIterator[Worker]:
        """Run a worker for this server's database while the block lasts."""
        worker = Worker(self.services, concurrency=1)
        task = asyncio.create_task(worker.run(grace_seconds=1))
        try:
            yield worker
        finally:
            worker.stop()
            with suppress(asyncio.CancelledError):
                await task


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """Serve the app for `settings` on 127.0.0.1 at a free port until the block ends."""
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        await task
        sock.close()
