"""The tus client's pure parts: the Upload-Metadata header and a chunk's checksum."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from app.client.errors import ClientError
from app.client.put import SendOptions
from app.client.tus import chunk_checksum, metadata


def _decoded(header: str) -> dict[str, str]:
    pairs = (item.split(" ") for item in header.split(","))
    return {key: base64.b64decode(value).decode() for key, value in pairs}


def test_metadata_carries_the_name_type_and_options(tmp_path: Path) -> None:
    options = SendOptions(expires="2h", max_downloads=3, password="pä ss,word")
    header = metadata(tmp_path / "rapport final.pdf", options)
    assert _decoded(header) == {
        "filename": "rapport final.pdf",
        "filetype": "application/pdf",
        "expires_in": "2h",
        "max_downloads": "3",
        "password": "pä ss,word",
    }


def test_metadata_without_options_has_only_the_file(tmp_path: Path) -> None:
    assert _decoded(metadata(tmp_path / "blob", SendOptions())) == {
        "filename": "blob",
        "filetype": "application/octet-stream",
    }


def test_the_checksum_covers_exactly_the_chunk(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = bytes(range(256)) * 10_000
    path.write_bytes(data)
    expected = base64.b64encode(hashlib.sha256(data[1000:2_000_000]).digest()).decode()
    assert chunk_checksum(path, 1000, 2_000_000) == f"sha256 {expected}"
    with pytest.raises(ClientError, match="shrank"):
        chunk_checksum(path, 0, len(data) + 1)
