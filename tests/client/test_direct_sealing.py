"""The client's sealing of direct-upload parts: their concatenation is the blob that
`app.crypto.sealing` makes of the whole file, for sizes on and around the edges."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from app.client.direct import PartSealer
from app.client.errors import ClientError
from app.crypto.sealing import SegmentSealer, make_header, new_nonce_prefix, open_blob

LOG2 = 16
SEGMENT = 1 << LOG2
PART = 2 * SEGMENT


class _Count:
    def __init__(self) -> None:
        self.total = 0

    def advance(self, count: int) -> None:
        self.total += count

    def restart_at(self, done: int) -> None:
        self.total = done


def _whole_blob(data: bytes, key: bytes, header: bytes) -> bytes:
    sealer = SegmentSealer(key, segment_log2=LOG2, nonce_prefix=header[9:], expected_size=len(data))
    return b"".join([sealer.header, *sealer.update(data), sealer.finish()])


@pytest.mark.parametrize(
    "size", [0, 1, SEGMENT - 1, SEGMENT, PART, PART + 1, 3 * PART - 5, 5 * SEGMENT + 17]
)
def test_the_parts_make_the_blob_of_the_whole_file(tmp_path: Path, size: int) -> None:
    data = secrets.token_bytes(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    key, header = secrets.token_bytes(32), make_header(LOG2, new_nonce_prefix())
    sealer = PartSealer.of(size, key, header, PART)
    count = max(1, -(-size // PART))
    meter = _Count()
    parts = [b"".join(sealer.chunks(path, number, meter)) for number in range(1, count + 1)]
    assert [len(part) for part in parts] == [sealer.sealed_length(n) for n in range(1, count + 1)]
    assert b"".join(parts) == _whole_blob(data, key, header)
    assert open_blob(key, b"".join(parts), size) == data
    assert meter.total == size
    assert sum(sealer.plain_length(n) for n in range(1, count + 1)) == size


def test_a_part_size_off_the_segments_is_refused() -> None:
    header = make_header(LOG2, new_nonce_prefix())
    with pytest.raises(ClientError):
        PartSealer.of(10, secrets.token_bytes(32), header, SEGMENT + 1)
    with pytest.raises(ClientError):
        PartSealer.of(10, secrets.token_bytes(16), header, SEGMENT)
