"""A download's plaintext buffers (`app/domain/plaintext.py`): segments are decrypted into
reused buffers, and a buffer is reused only once nothing holds a view of it.

The HTTP server may keep a chunk it was given (the part the socket did not take): these
tests keep chunks the way it does and check that what they hold never changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from app.domain import serving
from app.domain.plaintext import ReusableBuffers
from app.domain.ranges import ByteRange
from app.domain.serving import FileAnswer, FileRequest
from tests.conftest import AppClient
from tests.support.asgi import upload

SEGMENT = 1 << 16  # the test settings' segments
DATA = os.urandom(5 * SEGMENT + 1234)  # six segments, the last one short
GET = FileRequest(method="GET", client="192.0.2.1")


def test_a_buffer_whose_views_are_gone_is_handed_out_again() -> None:
    buffers = ReusableBuffers(16)
    view = memoryview(buffers.take())[:10]
    first = view.obj
    assert len(first) == 16
    del view
    assert buffers.take() is first


def test_a_buffer_with_a_live_view_is_not_handed_out_until_the_view_is_gone() -> None:
    buffers = ReusableBuffers(16)
    # A cast of a slice of a view, as uvloop keeps what the socket did not take.
    held = memoryview(memoryview(buffers.take())[2:5]).cast("b")
    other = buffers.take()
    assert other is not held.obj
    assert buffers.take() is other  # nothing views `other`: it comes back
    del other
    held.release()
    del held
    assert len({id(buffers.take()) for _ in range(3)}) == 1


def test_buffers_beyond_the_kept_number_are_made_and_not_kept() -> None:
    buffers = ReusableBuffers(8, keep=2)
    views = [memoryview(buffers.take()) for _ in range(4)]
    assert len({id(view.obj) for view in views}) == 4
    kept = {id(view.obj) for view in views[:2]}
    for view in views:
        view[:] = b"x" * 8
        view.release()
    assert all(id(buffers.take()) in kept for _ in range(3))


async def _chunks(
    client: AppClient, token: str, byte_range: str | None, keep: Callable[[int], bool]
) -> tuple[bytes, list[tuple[int, memoryview | bytes, bytes]]]:
    """The body copied chunk by chunk, and the chunks `keep` picks, held as given, each
    with the bytes it held when it came."""
    answer = await serving.serve(client.services, token, replace(GET, range=byte_range))
    assert isinstance(answer, FileAnswer)
    assert answer.stream is not None
    body, kept = bytearray(), []
    try:
        number = 0
        async for chunk in answer.stream:
            if keep(number):
                kept.append((number, chunk, bytes(chunk)))
            body += chunk
            number += 1
    finally:
        await answer.stream.aclose()
    return bytes(body), kept


async def test_a_body_copied_as_it_comes_is_the_file_and_uses_at_most_two_buffers(
    client: AppClient,
) -> None:
    token = (await upload(client, DATA, name="data.bin")).token
    seen: set[int] = set()
    answer = await serving.serve(client.services, token, GET)
    assert isinstance(answer, FileAnswer)
    assert answer.stream is not None
    body = bytearray()
    async for chunk in answer.stream:
        assert isinstance(chunk, memoryview)
        seen.add(id(chunk.obj))
        body += chunk
    await answer.stream.aclose()
    assert bytes(body) == DATA
    # The consumer's loop variable holds one chunk while the next is decrypted: two
    # buffers take turns, however many segments the file has.
    assert len(seen) <= 2


async def test_chunks_a_server_keeps_never_change_while_later_ones_are_decrypted(
    client: AppClient,
) -> None:
    token = (await upload(client, DATA, name="data.bin")).token
    for keep in (lambda n: True, lambda n: n % 2 == 0, lambda n: n == 1):
        body, kept = await _chunks(client, token, None, keep)
        assert body == DATA
        assert kept
        for number, chunk, then in kept:
            assert bytes(chunk) == then, f"chunk {number} changed after it was sent"


async def test_a_range_across_segments_kept_chunk_by_chunk_is_the_right_part(
    client: AppClient,
) -> None:
    token = (await upload(client, DATA, name="data.bin")).token
    part = ByteRange(SEGMENT - 7, 4 * SEGMENT + 9)
    body, kept = await _chunks(
        client, token, f"bytes={part.start}-{part.stop - 1}", lambda n: n % 2 == 1
    )
    assert body == DATA[part.start : part.stop]
    for _number, chunk, then in kept:
        assert bytes(chunk) == then
    assert kept
