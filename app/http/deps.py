"""Dependency and parameter aliases shared by the routers and the pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.http.requests import client_address
from app.services import Services
from app.settings import Settings


async def get_services(request: Request) -> Services:
    """The process's services, built in the app's lifespan.

    `async` so that FastAPI calls it in the event loop: a plain function would cost every
    request a hop to the thread pool and back.
    """
    services: Services = request.app.state.services
    return services


async def get_settings(request: Request) -> Settings:
    """The process's settings."""
    settings: Settings = request.app.state.settings
    return settings


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# A link's token in a route's path. No max_length: a token of any wrong shape is a 404
# (DESIGN §6), never a 400.
Token = Annotated[str, Path()]


async def limit_uploads(request: Request, services: ServicesDep) -> None:
    """Count an upload against its client's limit, before a byte of the body is read."""
    await services.limits.check_upload(client_address(request))
