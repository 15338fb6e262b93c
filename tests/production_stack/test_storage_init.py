"""`sealdrop storage init`: creates and configures the buckets, and is safe to run again.

The stack's start ran it once; these tests look at what it set and run it again.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.production_stack.checks import download_digest, put_file, write_random_file
from tests.support.production import ProductionStack
from tests.support.s3 import public_access_block
from tests.support.shared_stacks import SharedStacks

pytestmark = [pytest.mark.production]

DAY = 1


@pytest.fixture
def stack(shared_stacks: SharedStacks) -> ProductionStack:
    """The session's shared production stack: its start ran storage init once."""
    return shared_stacks.production()


def _bucket_state(stack: ProductionStack) -> dict[str, object]:
    s3 = stack.s3
    return {
        bucket: (
            stack.bucket_lifecycle(bucket),
            public_access_block(s3, bucket),
        )
        for bucket in (stack.blobs_bucket, stack.staging_bucket)
    }


def _rule(stack: ProductionStack, bucket: str, action: str) -> dict[str, object]:
    rules = [rule for rule in stack.bucket_lifecycle(bucket) if action in rule]
    assert len(rules) == 1, rules
    return rules[0]


def _anonymous_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            status: int = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status


def test_storage_init_run_again_changes_nothing(stack: ProductionStack, tmp_path: Path) -> None:
    payload = tmp_path / "kept.bin"
    digest = write_random_file(payload, 100_000)
    link = put_file(stack, payload, respond_async=False)
    before = _bucket_state(stack)

    again = stack.run_cli("storage", "init")

    assert again.returncode == 0, again.stderr
    assert f"bucket {stack.blobs_bucket}: exists" in again.stdout
    assert f"bucket {stack.staging_bucket}: exists" in again.stdout
    assert _bucket_state(stack) == before
    assert download_digest(link.download_url) == digest


def test_storage_init_expires_staging_objects_after_a_day(stack: ProductionStack) -> None:
    rule = _rule(stack, stack.staging_bucket, "Expiration")

    assert rule["Status"] == "Enabled"
    assert rule["Filter"] == {"Prefix": "staging/"}
    assert rule["Expiration"] == {"Days": DAY}
    assert not any("Expiration" in r for r in stack.bucket_lifecycle(stack.blobs_bucket))


@pytest.mark.parametrize("role", ["blobs", "staging"])
def test_storage_init_aborts_incomplete_uploads_after_a_day(
    stack: ProductionStack, role: str
) -> None:
    bucket = stack.blobs_bucket if role == "blobs" else stack.staging_bucket

    rule = _rule(stack, bucket, "AbortIncompleteMultipartUpload")

    assert rule["Status"] == "Enabled"
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": DAY}


@pytest.mark.parametrize("role", ["blobs", "staging"])
def test_storage_init_leaves_no_object_readable_without_credentials(
    stack: ProductionStack, role: str
) -> None:
    bucket = stack.blobs_bucket if role == "blobs" else stack.staging_bucket
    key = f"{role}/made-public-by-mistake"
    stack.s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    # Refused outright, or accepted and ignored: either way the object must stay private.
    with suppress(ClientError):
        stack.s3.put_object_acl(Bucket=bucket, Key=key, ACL="public-read")

    try:
        status = _anonymous_status(f"{stack.backends.endpoint_url}/{bucket}/{key}")
    finally:
        stack.s3.delete_object(Bucket=bucket, Key=key)

    assert status == 403
