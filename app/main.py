"""The ASGI application: routers, error handlers, and the lifespan that owns the clients.

In embedded mode (SQLite) the lifespan also applies migrations and runs the worker in
this process; in production migrations are their own step and workers their own pods.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from fastapi import FastAPI

from app import migrate
from app.api import direct_uploads, discovery, downloads, health, links, tus, uploads
from app.http import error_answers as errors
from app.http import openapi
from app.http.proxies import ForwardedPeer
from app.services import Services, open_services
from app.settings import Settings
from app.web import pages
from app.web.assets import StaticAssets
from worker.runner import Worker

log = logging.getLogger("sealdrop")

STATIC_DIR = Path(__file__).parent / "web" / "static"


async def start_services(app: FastAPI, settings: Settings) -> Services:
    """Open the clients; migrate the embedded database; start the in-process worker."""
    services = await open_services(settings)
    if settings.is_sqlite:
        await migrate.upgrade(services.engine)
    app.state.services = services
    if settings.worker == "embedded":
        worker = Worker(services, concurrency=settings.worker_concurrency)
        app.state.worker = worker
        app.state.worker_task = asyncio.create_task(worker.run())
    return services


async def stop_services(app: FastAPI) -> None:
    """Drain: readiness fails first, then the worker stops, then the clients close."""
    app.state.draining = True
    worker: Worker | None = getattr(app.state, "worker", None)
    if worker is not None:
        worker.stop()
        task: asyncio.Task[None] = app.state.worker_task
        with suppress(asyncio.CancelledError):
            await task
    services: Services | None = getattr(app.state, "services", None)
    if services is not None:
        await services.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application for `settings` (read from the environment by default)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await start_services(app, settings)
        try:
            yield
        finally:
            await stop_services(app)

    app = FastAPI(
        title="Sealdrop",
        summary="Share files through encrypted links that expire.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.draining = False
    app.state.render_share_page = pages.render_share_page
    app.state.render_error_page = pages.render_error_page
    errors.install(app)
    openapi.install(app)
    app.add_middleware(ForwardedPeer, trusted=settings.trusted_proxy_list)
    app.include_router(health.router)
    app.include_router(pages.router)
    app.include_router(links.router)
    app.include_router(downloads.router)
    app.include_router(discovery.router)
    app.include_router(tus.router)
    app.include_router(direct_uploads.router)
    app.include_router(uploads.router)  # last: PUT /{filename} catches any single segment
    app.mount("/static", StaticAssets(directory=STATIC_DIR), name="static")
    return app
