"""Resumable uploads with tuspy, the Python tus client, against Sealdrop's real processes.

In both modes (embedded, and production on PostgreSQL and S3 staging): tuspy uploads in
pieces and the download is byte-identical; a connection dropped at about half the body
(through a TCP proxy that cuts it) is resumed from the acknowledged offset, and the proxy
sees no acknowledged byte sent again; an expired unfinished upload leaves no object, no
unfinished write and no row. No plaintext byte of a half-done upload rests in staging.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError
from tusclient.uploader import Uploader

from tests.e2e.clients import curl_sha256
from tests.e2e.payloads import new_marker, write_payload
from tests.support.stack import Stack, wait_until
from tests.support.tcp_proxy import TcpProxy

MiB = 1024 * 1024
SIZE = 6 * MiB  # under the shared stacks' 8 MiB limit
# What a PATCH carries besides its body: the request line and headers.
REQUEST_OVERHEAD = 4096
OPEN_FILES: list[BinaryIO] = []


class Sha256Uploader(Uploader):  # type: ignore[misc]
    """tuspy with sha256 checksums (its default, sha1, is not offered by Sealdrop)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


def stack_file(path: Path) -> BinaryIO:
    """`path` opened for tuspy, closed when the test ends (tuspy leaves the files it opens
    itself to the garbage collector)."""
    stream = path.open("rb")
    OPEN_FILES.append(stream)
    return stream


@pytest.fixture(autouse=True)
def _close_files() -> Iterator[None]:
    yield
    while OPEN_FILES:
        OPEN_FILES.pop().close()


def tus_endpoint(base_url: str) -> str:
    """The tus collection URL of a server."""
    return f"{base_url}/api/v1/uploads/"


def finished_link(upload_url: str) -> dict[str, str]:
    """The upload's state as JSON (once complete, its link)."""
    answer = requests.get(upload_url, headers={"Accept": "application/json"}, timeout=30)
    answer.raise_for_status()
    body: dict[str, str] = answer.json()
    return body


def served_digest(stack: Stack, download_url: str) -> bytes:
    """The SHA-256 of the file the link serves, once sealed (curl retries while pending)."""
    path = urlsplit(download_url).path
    digest, _count = curl_sha256(
        "--retry", "30", "--retry-delay", "1", "--retry-all-errors", f"{stack.base_url}{path}"
    )
    return digest


def offset_of(upload_url: str) -> int:
    """The acknowledged offset (HEAD)."""
    answer = requests.head(upload_url, headers={"Tus-Resumable": "1.0.0"}, timeout=30)
    assert answer.status_code == 200, answer.status_code
    return int(answer.headers["Upload-Offset"])


def test_tuspy_upload_in_pieces_is_served_byte_identical(stack: Stack, tmp_path: Path) -> None:
    marker = new_marker()
    source = tmp_path / "holiday.mov"
    digest = write_payload(source, SIZE, marker=marker)
    stream = stack_file(source)
    uploader = Sha256Uploader(
        file_stream=stream,
        client=tus_client.TusClient(tus_endpoint(stack.base_url)),
        chunk_size=MiB + 12345,  # pieces that do not fall on segment edges
        metadata={"filename": "holiday.mov", "filetype": "video/quicktime", "expires_in": "1h"},
        upload_checksum=True,
    )
    uploader.upload(stop_at=3 * MiB)
    assert offset_of(uploader.url) >= 3 * MiB
    # Half of it staged, sealed: no plaintext byte rests anywhere.
    assert stack.places_holding(marker) == []
    uploader.upload()
    link = finished_link(uploader.url)
    assert link["upload_state"] == "complete"
    assert link["size"] == SIZE
    assert served_digest(stack, link["download_url"]) == digest
    # Sealed: the worker computed the digest, and removed every piece.
    sealed = wait_until(
        lambda: finished_link(uploader.url)["sha256"], timeout=60, what="the link's digest"
    )
    assert bytes.fromhex(sealed) == digest
    job_id = stack.sql("select id from tus_uploads where state = 'complete'")[-1].id
    assert stack.list_objects(f"staging/{job_id}") == []


def test_an_upload_cut_at_half_resumes_without_resending_acknowledged_bytes(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    digest = write_payload(source, SIZE)
    port = urlsplit(stack.base_url).port
    assert port is not None
    with TcpProxy("127.0.0.1", port) as proxy, source.open("rb") as stream:
        endpoint = tus_endpoint(proxy.base_url)
        # One PATCH for the whole file; the proxy drops the connection at about half.
        uploader = Uploader(
            file_stream=stream, client=tus_client.TusClient(endpoint), chunk_size=SIZE
        )
        uploader.set_url(uploader.create_url())
        proxy.reset(cut_after=SIZE // 2)
        with pytest.raises((TusCommunicationError, requests.RequestException)):
            uploader.upload()
        assert proxy.cuts == 1
        proxy.reset()
        acknowledged = wait_until(
            lambda: offset_of(uploader.url) or None, timeout=30, what="bytes acknowledged"
        )
        # What arrived before the break was sealed and acknowledged (all but what the
        # server had not read off the socket yet).
        assert SIZE // 4 < acknowledged <= SIZE // 2
        proxy.reset()
        resumed = Uploader(file_stream=stream, url=uploader.url, chunk_size=SIZE)
        assert resumed.offset == acknowledged
        resumed.upload()
        # Only the bytes past the acknowledged offset went over the wire again.
        remaining = SIZE - acknowledged
        assert remaining <= proxy.sent < remaining + REQUEST_OVERHEAD
    link = finished_link(uploader.url.replace(proxy.base_url, stack.base_url))
    assert served_digest(stack, link["download_url"]) == digest


def test_an_expired_unfinished_upload_leaves_nothing(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "abandoned.bin"
    write_payload(source, 2 * MiB)
    uploader = Uploader(
        file_stream=stack_file(source),
        client=tus_client.TusClient(tus_endpoint(stack.base_url)),
        chunk_size=MiB // 2,
    )
    uploader.upload(stop_at=MiB)
    job_id = stack.sql("select id from tus_uploads where state = 'open'")[-1].id
    prefix = f"staging/{job_id}."
    assert len(stack.list_objects(prefix)) == 2
    # A PATCH whose process died mid-body leaves an unfinished write of its piece.
    stack.start_unfinished_write(f"{prefix}killedpiece", b"\0" * 1024)
    assert stack.list_pending_writes(prefix) != []
    stack.sql(
        "update tus_uploads set expires_at = created_at - interval '1 hour' where id = :id"
        if stack.mode == "production"
        else "update tus_uploads set expires_at = '2000-01-01 00:00:00.000000' where id = :id",
        id=job_id,
    )
    purged = stack.run_cli("purge")
    assert purged.returncode == 0, purged.stderr
    assert "expired 1 unfinished resumable uploads" in purged.stdout
    assert stack.list_objects(prefix) == []
    assert stack.list_pending_writes(prefix) == []
    assert stack.sql("select id from tus_uploads where id = :id", id=job_id) == []
    assert stack.sql("select id from storage_reservations where id = :id", id=job_id) == []
    assert (
        requests.head(uploader.url, headers={"Tus-Resumable": "1.0.0"}, timeout=30).status_code
        == 404
    )
