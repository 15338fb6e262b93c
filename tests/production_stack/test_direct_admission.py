"""Direct uploads are admitted like a PUT (upload policy `keys`, the uploader's limits, the
storage cap), on the production stack; what is refused starts nothing in S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.domain import storage_cap
from tests.production_stack.conftest import ProductionStacks
from tests.production_stack.test_upload_policy import add_uploader
from tests.support import direct
from tests.support.production import ProductionStack

pytestmark = [pytest.mark.production, pytest.mark.slow]

MIB = 1 << 20
CAP = storage_cap.charge(6 * MIB, 20) + 1000  # one 6 MiB upload, not two


def _create(stack: ProductionStack, key: str | None, size: int) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(
        stack.base_url + direct.API,
        json={"filename": "f.bin", "size": size},
        headers=headers,
        timeout=60,
    )


def _staged_writes(stack: ProductionStack) -> int:
    return len(stack.pending_writes("staging/"))


@pytest.fixture
def stack(make_stack: ProductionStacks) -> ProductionStack:
    """Keys policy, a storage cap for one 6 MiB upload, no worker (links stay pending)."""
    return make_stack(
        workers=0,
        SEALDROP_UPLOAD_POLICY="keys",
        SEALDROP_UPLOAD_RATE_PER_MINUTE="0",
        SEALDROP_MAX_STORED_BYTES=str(CAP),
        SEALDROP_UPLOAD_WAIT_SECONDS="0",
    )


def test_admission_follows_the_upload_policy_limits_and_cap(
    stack: ProductionStack, tmp_path: Path
) -> None:
    alice = add_uploader(stack, "alice", "--max-file-size", "7MiB", "--max-bytes-per-day", "13MiB")
    bob = add_uploader(stack, "bob", "--max-live-links", "1")
    assert _create(stack, None, 10).status_code == 401
    assert _create(stack, "sdk_" + "x" * 43, 10).status_code == 401
    assert _create(stack, alice, 8 * MIB).status_code == 413
    assert _staged_writes(stack) == 0

    first = _create(stack, alice, 6 * MIB)
    assert first.status_code == 201, first.text
    # The cap holds one 6 MiB upload: another is refused before anything starts in S3.
    full = _create(stack, bob, 6 * MIB)
    assert full.status_code == 507
    assert _staged_writes(stack) == 1
    cancelled = httpx.delete(stack.base_url + first.json()["upload_url"], timeout=30)
    assert cancelled.status_code == 204
    assert _staged_writes(stack) == 0
    assert int(stack.sql("SELECT stored_bytes FROM storage_usage")[0][0]) == 0
    # Nothing was sent to S3: cancelling gave all of the day's bytes back.
    assert int(stack.sql("SELECT sum(bytes) FROM uploader_usage")[0][0]) == 0
    again = _create(stack, alice, 6 * MIB)
    assert again.status_code == 201, again.text
    assert int(stack.sql("SELECT sum(bytes) FROM uploader_usage")[0][0]) == 6 * MIB
    httpx.delete(stack.base_url + again.json()["upload_url"], timeout=30)


def _completed(
    stack: ProductionStack, key: str, path: Path
) -> tuple[dict[str, Any], httpx.Response]:
    answer = _create(stack, key, path.stat().st_size)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    direct.put_parts(created, path)
    return created, direct.complete(stack.base_url, created, Prefer="respond-async")


def test_an_uploaders_live_links_are_counted_at_completion(
    stack: ProductionStack, tmp_path: Path
) -> None:
    bob = add_uploader(stack, "bob", "--max-live-links", "1")
    path = tmp_path / "note.txt"
    path.write_bytes(b"hello" * 20)
    _, done = _completed(stack, bob, path)
    assert done.status_code == 202
    first = done.json()
    second, refused = _completed(stack, bob, path)
    assert refused.status_code == 429
    assert "live links" in refused.text
    # Refused before S3 completes anything: the upload stays open, and goes in once the
    # first link is deleted.
    assert httpx.get(stack.base_url + second["upload_url"], timeout=30).status_code == 200
    assert stack.sql("SELECT count(*) FROM links")[0][0] == 1
    deleted = httpx.delete(
        f"{stack.base_url}/api/v1/links/{first['token']}",
        headers={"Authorization": f"Bearer {first['manage_token']}"},
        timeout=30,
    )
    assert deleted.status_code == 204
    again = direct.complete(stack.base_url, second, Prefer="respond-async")
    assert again.status_code == 202, again.text
    assert _staged_writes(stack) == 0
    assert stack.sql("SELECT count(*) FROM direct_uploads")[0][0] == 0
