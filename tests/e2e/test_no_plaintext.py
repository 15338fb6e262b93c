"""No plaintext byte of a file rests anywhere once it is sealed (DESIGN, the promise)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.clients import curl
from tests.e2e.payloads import new_marker, upload, write_payload
from tests.support.stack import Stack, file_contains

SIZE = 2 * 1024 * 1024


def test_sealed_file_leaves_its_marker_nowhere_at_rest(stack: Stack, tmp_path: Path) -> None:
    marker = new_marker()
    source = tmp_path / "diary.txt"
    write_payload(source, SIZE, marker=marker)
    link = upload(stack, source)
    assert link.status == 201
    downloaded = tmp_path / "downloaded"
    curl("-f", "-o", str(downloaded), link.download_url)
    assert file_contains(downloaded, marker)  # the search would find it if it were there
    assert stack.places_holding(marker) == []
