"""Reading ahead: fetch the next chunk of an object while the caller works on this one.

A download decrypts and sends segment i while segment i + 1 is read (in a worker thread
for a local file, over the connection for S3); the worker reseals one segment while the
next one is read. At most one chunk is fetched ahead, so memory stays one segment larger.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator


async def read_ahead(chunks: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    """Yield `chunks` in order while the next one is already being fetched.

    Errors of the underlying reader come out where they would have; leaving early (or an
    error) cancels the fetch in flight and closes the reader.
    """
    fetching = asyncio.ensure_future(anext(chunks, None))
    try:
        while (chunk := await fetching) is not None:
            fetching = asyncio.ensure_future(anext(chunks, None))
            yield chunk
    finally:
        if not fetching.done():
            fetching.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fetching
        await chunks.aclose()
