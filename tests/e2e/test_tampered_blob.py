"""A stored blob with one flipped byte is never served as a success (DESIGN §4).

With 64 KiB segments a 1 MiB file has 16 of them. A flip in the first needed segment is
found before the status line: a clean 5xx. A flip in a later one is found mid-body: the
connection is cut, curl reports a short transfer, and what it did receive is a true
prefix of the file. Ranges that need only untouched segments are still served.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.clients import CURL_PARTIAL_FILE, CURL_RECV_ERROR, curl
from tests.e2e.payloads import Uploaded, upload, write_payload
from tests.e2e.rows import blob_key
from tests.support.stack import Stack

SEGMENT = 1 << 16
HEADER = 16
TAG = 16
SIZE = 16 * SEGMENT - 1000
TAMPERED_SEGMENT = 10


def _uploaded(stack: Stack, tmp_path: Path) -> tuple[bytes, Uploaded]:
    source = tmp_path / "ledger.bin"
    write_payload(source, SIZE)
    return source.read_bytes(), upload(stack, source)


def _flip_byte_in_segment(stack: Stack, link: Uploaded, segment: int) -> None:
    key = blob_key(stack, link.token)
    blob = bytearray(stack.read_object(key))
    at = HEADER + segment * (SEGMENT + TAG) + SEGMENT // 2
    blob[at] ^= 0x01
    stack.write_object(key, bytes(blob))


def test_flip_in_a_later_segment_cuts_the_download_short(stack: Stack, tmp_path: Path) -> None:
    data, link = _uploaded(stack, tmp_path)
    _flip_byte_in_segment(stack, link, TAMPERED_SEGMENT)
    target = tmp_path / "received"
    result = curl(
        "-o", str(target), link.download_url, expect_exit={CURL_PARTIAL_FILE, CURL_RECV_ERROR}
    )
    received = target.read_bytes() if target.exists() else b""
    assert result.status == 200
    assert len(received) <= TAMPERED_SEGMENT * SEGMENT < SIZE
    assert received == data[: len(received)]


def test_flip_in_the_first_segment_gives_a_clean_5xx(stack: Stack, tmp_path: Path) -> None:
    _, link = _uploaded(stack, tmp_path)
    _flip_byte_in_segment(stack, link, 0)
    target = tmp_path / "received"
    result = curl("-o", str(target), link.download_url)
    assert 500 <= result.status < 600
    assert result.headers.get("content-type", "").startswith("text/plain")
    assert result.body == b""
    assert target.read_bytes() == b"the stored file failed its integrity check\n"


def test_range_over_untouched_segments_still_downloads(stack: Stack, tmp_path: Path) -> None:
    data, link = _uploaded(stack, tmp_path)
    _flip_byte_in_segment(stack, link, TAMPERED_SEGMENT)
    start, stop = 2 * SEGMENT + 5, TAMPERED_SEGMENT * SEGMENT
    result = curl("-f", "-r", f"{start}-{stop - 1}", link.download_url)
    assert result.status == 206
    assert result.body == data[start:stop]
