"""A client that stops sending its body is dropped, and nothing of it is kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from app.main import create_app
from app.settings import Settings


async def _stalling_body() -> AsyncIterator[bytes]:
    yield b"x" * 100_000
    await asyncio.sleep(5)
    yield b"never sent"


async def test_a_stalled_upload_times_out_with_408_and_leaves_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(body_idle_timeout_seconds=0.3)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.put("/stalled.bin", content=_stalling_body())
    assert answer.status_code == 408
    assert "timed out" in answer.text
    objects = Path(settings.data_dir) / "objects"
    assert [p for p in objects.rglob("*") if p.is_file()] == []
