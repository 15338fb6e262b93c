"""Byte ranges and resumed downloads with curl and wget: every byte the same as the file's.

The file is a little over 1 MiB on a stack with 64 KiB segments, so ranges start and stop
inside segments and across their edges.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.clients import curl, wget
from tests.e2e.payloads import Uploaded, upload, write_payload
from tests.support.stack import Stack

SIZE = (1 << 20) + 12_345
SEGMENT = 1 << 16
SLOW_SIZE = (8 << 20) - 4321  # the shared stacks take up to 8 MiB


@dataclass(frozen=True)
class SharedFile:
    """One file uploaded once for the module's tests."""

    data: bytes
    name: str
    link: Uploaded


@pytest.fixture(scope="module")
def shared_file(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> SharedFile:
    """A file of SIZE bytes, uploaded to the shared stack."""
    source = tmp_path_factory.mktemp("ranges") / "movie.mkv"
    write_payload(source, SIZE)
    return SharedFile(source.read_bytes(), source.name, upload(stack, source))


@pytest.mark.parametrize(
    ("spec", "start", "stop"),
    [
        ("0-99", 0, 100),
        (f"{SEGMENT - 10}-{SEGMENT + 9}", SEGMENT - 10, SEGMENT + 10),
        (f"{3 * SEGMENT}-{5 * SEGMENT - 1}", 3 * SEGMENT, 5 * SEGMENT),
        ("-1000", SIZE - 1000, SIZE),
        (f"{SIZE - 5}-", SIZE - 5, SIZE),
        (f"100-{SIZE + 1000}", 100, SIZE),
    ],
    ids=["head", "across-a-segment-edge", "whole-segments", "suffix", "open-end", "past-the-end"],
)
def test_curl_range_gives_exactly_that_slice(
    shared_file: SharedFile, spec: str, start: int, stop: int
) -> None:
    result = curl("-f", "-r", spec, shared_file.link.download_url)
    assert result.status == 206
    assert result.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert result.body == shared_file.data[start:stop]


def test_wget_continues_a_download_that_curl_started(
    shared_file: SharedFile, tmp_path: Path
) -> None:
    half = SIZE // 2
    target = tmp_path / shared_file.name
    curl("-f", "-r", f"0-{half - 1}", "-o", str(target), shared_file.link.download_url)
    assert target.stat().st_size == half
    log = wget("-c", "--server-response", shared_file.link.download_url, cwd=tmp_path)
    assert "HTTP/1.1 206 Partial Content" in log
    assert f"content-range: bytes {half}-{SIZE - 1}/{SIZE}" in log.lower()
    assert target.read_bytes() == shared_file.data


def test_curl_continue_at_resumes_a_half_download(shared_file: SharedFile, tmp_path: Path) -> None:
    half = SIZE // 2 + 7
    target = tmp_path / "part"
    curl("-f", "-r", f"0-{half - 1}", "-o", str(target), shared_file.link.download_url)
    assert target.stat().st_size == half
    result = curl("-f", "-C", "-", "-o", str(target), shared_file.link.download_url)
    assert result.status == 206
    assert result.size_download == SIZE - half
    assert target.read_bytes() == shared_file.data


def test_a_slow_reader_gets_every_byte_while_the_server_holds_unsent_chunks(
    stack: Stack, tmp_path: Path
) -> None:
    # A small receive window and small reads: the server's socket fills (its send buffer
    # grows to 4 MiB at most, so the file is larger) and its transport keeps the rest of
    # each chunk while later segments are decrypted; a plaintext buffer reused too early
    # would show here as wrong bytes.
    source = tmp_path / "slow.bin"
    write_payload(source, SLOW_SIZE)
    url = urlsplit(upload(stack, source).download_url)
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.settimeout(30)
        client.connect((url.hostname, url.port))
        client.sendall(
            f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = bytearray()
        while piece := client.recv(1024):
            answer += piece
            if len(answer) % 65_536 < 1024:
                time.sleep(0.002)  # now and then the client is busy elsewhere
    head, _, body = bytes(answer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert len(body) == SLOW_SIZE
    assert body == source.read_bytes()
