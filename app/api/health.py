"""Liveness, readiness and metrics endpoints for orchestrators and Prometheus."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.db.session import ping
from app.http.deps import ServicesDep
from app.infra.metrics import REGISTRY

log = logging.getLogger("sealdrop.health")
router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> Response:
    """Alive: the process answers."""
    return PlainTextResponse("ok\n")


@router.get("/readyz")
async def readyz(request: Request, services: ServicesDep) -> Response:
    """Ready: started, the database answers, storage answers, not draining.

    Redis is reported (`ok` or `degraded`) but never makes the process unready.
    """
    checks: dict[str, str] = {}
    ready = not getattr(request.app.state, "draining", False)
    checks["draining"] = "yes" if not ready else "no"
    try:
        await ping(services.engine)
        checks["database"] = "ok"
    except Exception as error:
        log.warning("readiness: database unreachable: %s", type(error).__name__)
        checks["database"] = "unreachable"
        ready = False
    try:
        await services.blobs.check()
        checks["storage"] = "ok"
    except Exception as error:
        log.warning("readiness: storage unreachable: %s", type(error).__name__)
        checks["storage"] = "unreachable"
        ready = False
    if services.redis is not None:
        # Redis only holds what may be lost: without it Sealdrop serves, just less cheaply.
        checks["redis"] = "ok" if await services.redis.ping() else "degraded"
    return JSONResponse(
        {"ready": ready, "checks": checks},
        200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics")
async def metrics() -> Response:
    """Prometheus metrics of this process (its API and, embedded, its worker)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
