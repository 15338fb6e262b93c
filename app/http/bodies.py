"""A request body as it arrives: the one reader behind PUT, the upload form and tus PATCH."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.requests import ClientDisconnect

from app.errors import UploadAborted, UploadTimedOut, UploadTooLarge

_KEPT = "what arrived was kept"


async def arriving_body(
    request: Request, *, idle_seconds: float, limit: int | None = None, keeps_partial: bool = False
) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; a client that goes silent for `idle_seconds` or
    goes away ends it with UploadTimedOut / UploadAborted, and a body past `limit` bytes is
    refused as it crosses it (UploadTooLarge). `keeps_partial` says so in those errors, for
    a caller (tus) that keeps what arrived before the break."""
    chunks = request.stream()
    received = 0
    try:
        while True:
            try:
                async with asyncio.timeout(idle_seconds):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            received += len(chunk)
            if limit is not None and received > limit:
                raise UploadTooLarge()
            if chunk:
                yield chunk
    except ClientDisconnect:
        if keeps_partial:
            raise UploadAborted(f"the connection broke; {_KEPT}") from None
        raise UploadAborted() from None
    except TimeoutError:
        if keeps_partial:
            raise UploadTimedOut(f"the body stalled; {_KEPT}") from None
        raise UploadTimedOut() from None
