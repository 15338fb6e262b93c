"""The S3 store against a real S3 server (SeaweedFS on loopback, or the one
SEALDROP_TEST_S3_URL names): the shared contract, parts bigger than one, bounded memory,
error messages, and `init_buckets`.
"""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ClientError

from app.storage import ObjectMissing, StorageError, open_store
from app.storage.s3 import S3Store, init_buckets
from app.storage.s3_setup import ABORT_UPLOADS_RULE, EXPIRE_STAGING_RULE
from app.storage.s3_writer import MAX_PARTS, MIN_PART_BYTES, first_part_size, part_size
from tests.storage.store_behaviours import MIB, StoreBehaviours, read_chunks, write_object
from tests.support.s3 import (
    client,
    environment,
    public_access_block,
    remove_bucket,
    unique_bucket_name,
)

TIB = 1 << 40


@pytest.fixture
async def store(s3_bucket: str) -> AsyncIterator[S3Store]:
    """A store on this module's bucket, closed after the test."""
    store = open_store(f"s3://{s3_bucket}")
    assert isinstance(store, S3Store)
    yield store
    await store.close()


@pytest.fixture
def new_buckets(s3_env: dict[str, str]) -> Iterator[list[str]]:
    """Names for buckets that a test has created (by init_buckets); removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        remove_bucket(s3_env, name)


class TestS3Store(StoreBehaviours):
    """The ObjectStore contract on a real S3 server."""


async def test_object_larger_than_a_part_is_uploaded_in_parts(
    store: S3Store, key_prefix: str, s3_env: dict[str, str]
) -> None:
    data = os.urandom(2 * MIN_PART_BYTES + 2 * MIB)
    key = f"{key_prefix}blobs/multipart"
    assert await write_object(store, key, data, piece=MIB) == len(data)
    assert b"".join(await read_chunks(store, key)) == data
    etag = client(s3_env).head_object(Bucket=store.bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3")  # two whole parts and 2 MiB


async def test_bodies_written_are_not_hashed_for_the_signature(
    store: S3Store, key_prefix: str
) -> None:
    # botocore signs an UploadPart's or PutObject's body with its SHA-256 unless told not
    # to: a second hash pass over every byte stored. The sealed format authenticates them.
    sent: dict[str, str] = {}

    def record(request: AWSPreparedRequest, **_: object) -> None:
        if request.body:
            value = request.headers["X-Amz-Content-SHA256"]
            sent[request.url] = value.decode() if isinstance(value, bytes) else value

    store._s3.client.meta.events.register("before-send.s3", record)
    data = os.urandom(MIN_PART_BYTES + MIB)
    assert await write_object(store, f"{key_prefix}blobs/unsigned", data, piece=MIB) == len(data)
    assert len(sent) >= 2
    assert set(sent.values()) == {"UNSIGNED-PAYLOAD"}
    assert b"".join(await read_chunks(store, f"{key_prefix}blobs/unsigned")) == data


async def test_writer_holds_at_most_two_parts_in_memory(store: S3Store, key_prefix: str) -> None:
    piece = os.urandom(MIB)
    tracemalloc.start()
    try:
        writer = await store.open_writer(f"{key_prefix}blobs/bounded")
        for _ in range(40):
            await writer.write(piece)
        await writer.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Two parts (one filling, one in flight) plus the copy of the part botocore may hold
    # while it signs and sends it, and a little slack: a constant, far below the 40 MiB
    # written, whatever the object's size.
    assert peak < 3 * MIN_PART_BYTES + 4 * MIB


async def test_read_of_a_large_object_holds_one_chunk_at_a_time(
    store: S3Store, key_prefix: str
) -> None:
    key = f"{key_prefix}blobs/read-bounded"
    await write_object(store, key, os.urandom(24 * MIB), piece=MIB)
    tracemalloc.start()
    try:
        async for _chunk in store.read(key):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MIB


def test_parts_start_at_the_s3_minimum_of_5_mib() -> None:
    assert first_part_size(None) == first_part_size(1000) == 5 * MIB


def test_parts_grow_so_the_size_hint_fits_in_10000_parts() -> None:
    hint = 200 * (1 << 30)
    first = first_part_size(hint)
    assert first % MIB == 0
    assert first * MAX_PARTS >= hint > (first - MIB) * MAX_PARTS


def test_parts_of_an_unknown_size_grow_enough_for_5_tib() -> None:
    total = sum(part_size(first_part_size(None), n) for n in range(1, MAX_PARTS + 1))
    assert total >= 5 * TIB


async def test_check_of_a_missing_bucket_fails(s3_env: dict[str, str]) -> None:
    store = open_store(f"s3://{unique_bucket_name('missing')}")
    with pytest.raises(StorageError, match="does not exist") as raised:
        await store.check()
    assert not isinstance(raised.value, ObjectMissing)
    await store.close()


async def test_wrong_credentials_fail_without_revealing_the_secret(
    s3_env: dict[str, str], s3_bucket: str
) -> None:
    wrong_secret = "WrongSecretKeyThatMustNotBeLogged0123456"
    with environment({**s3_env, "AWS_SECRET_ACCESS_KEY": wrong_secret}):
        store = open_store(f"s3://{s3_bucket}")
    with pytest.raises(StorageError, match="SignatureDoesNotMatch") as raised:
        await store.delete("blobs/anything")
    await store.close()
    assert wrong_secret not in str(raised.value)
    assert s3_env["AWS_ACCESS_KEY_ID"] not in str(raised.value)


async def test_check_with_wrong_credentials_fails_as_forbidden(
    s3_env: dict[str, str], s3_bucket: str
) -> None:
    with environment({**s3_env, "AWS_SECRET_ACCESS_KEY": "wrong"}):
        store = open_store(f"s3://{s3_bucket}")
    with pytest.raises(StorageError, match="HTTP 403 Forbidden"):
        await store.check()
    await store.close()


async def test_init_buckets_creates_both_and_sets_their_lifecycle_rules(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    messages = await init_buckets(f"s3://{blobs}", f"s3://{staging}")
    assert f"bucket {blobs}: created" in messages
    assert f"bucket {staging}: created" in messages
    assert _rules(s3_env, staging) == {
        EXPIRE_STAGING_RULE: ("staging/", {"Days": 1}, None),
        ABORT_UPLOADS_RULE: ("", None, {"DaysAfterInitiation": 1}),
    }
    assert _rules(s3_env, blobs) == {ABORT_UPLOADS_RULE: ("", None, {"DaysAfterInitiation": 1})}


async def test_init_buckets_twice_changes_nothing_and_keeps_other_rules(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    await init_buckets(f"s3://{blobs}", f"s3://{staging}")
    s3 = client(s3_env)
    rules = s3.get_bucket_lifecycle_configuration(Bucket=blobs)["Rules"]
    s3.put_bucket_lifecycle_configuration(
        Bucket=blobs,
        LifecycleConfiguration={
            "Rules": [
                *rules,
                {"ID": "operator", "Filter": {"Prefix": "x/"}, "Status": "Enabled",
                 "Expiration": {"Days": 30}},
            ]
        },
    )  # fmt: skip
    messages = await init_buckets(f"s3://{blobs}", f"s3://{staging}")
    assert f"bucket {blobs}: exists" in messages
    assert set(_rules(s3_env, blobs)) == {ABORT_UPLOADS_RULE, "operator"}
    assert set(_rules(s3_env, staging)) == {ABORT_UPLOADS_RULE, EXPIRE_STAGING_RULE}


async def test_init_buckets_on_one_bucket_for_both_sets_both_rules_once(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    bucket = unique_bucket_name("shared")
    new_buckets.append(bucket)
    await init_buckets(f"s3://{bucket}", f"s3://{bucket}")
    assert set(_rules(s3_env, bucket)) == {ABORT_UPLOADS_RULE, EXPIRE_STAGING_RULE}


async def test_init_buckets_blocks_public_access(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    bucket = unique_bucket_name("public")
    new_buckets.append(bucket)
    messages = await init_buckets(f"s3://{bucket}", f"s3://{bucket}")
    flags = public_access_block(client(s3_env), bucket)
    if flags is None:
        # SeaweedFS implements no public access blocks: init says so and goes on.
        assert f"bucket {bucket}: the server does not implement public access blocks" in " ".join(
            messages
        )
        return
    assert any(m.startswith(f"bucket {bucket}: public access blocked") for m in messages)
    # BlockPublicAcls stays off where the server then refuses every write (Ceph 16).
    assert flags["IgnorePublicAcls"]
    assert flags["BlockPublicPolicy"]
    assert flags["RestrictPublicBuckets"]


async def test_init_buckets_refuses_a_versioned_staging_bucket(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    s3 = client(s3_env)
    s3.create_bucket(Bucket=staging)
    s3.put_bucket_versioning(Bucket=staging, VersioningConfiguration={"Status": "Enabled"})
    with pytest.raises(StorageError, match="versioning enabled"):
        await init_buckets(f"s3://{blobs}", f"s3://{staging}")


def _rules(env: dict[str, str], bucket: str) -> dict[str, tuple[object, object, object]]:
    """Each lifecycle rule of `bucket`: id -> (prefix, expiration, abort-incomplete)."""
    rules = client(env).get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    return {
        rule["ID"]: (
            rule.get("Filter", {}).get("Prefix", rule.get("Prefix")),
            rule.get("Expiration"),
            rule.get("AbortIncompleteMultipartUpload"),
        )
        for rule in rules
    }


def _preflight(env: dict[str, str], bucket: str, origin: str) -> httpx.Response:
    return httpx.options(
        f"{env['AWS_ENDPOINT_URL']}/{bucket}/staging/x?partNumber=1&uploadId=y",
        headers={"Origin": origin, "Access-Control-Request-Method": "PUT"},
        timeout=10,
    )


async def test_init_buckets_lets_the_public_origin_put_parts_into_staging_only(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    s3 = client(s3_env)
    messages = await init_buckets(
        f"s3://{blobs}", f"s3://{staging}", public_url="https://Drop.example:8443/upload"
    )
    assert any("CORS rule sealdrop-direct-uploads set" in line for line in messages)
    (rule,) = s3.get_bucket_cors(Bucket=staging)["CORSRules"]
    assert rule["AllowedOrigins"] == ["https://drop.example:8443"]
    assert rule["AllowedMethods"] == ["PUT"]
    assert rule["ExposeHeaders"] == ["ETag"]
    allowed = _preflight(s3_env, staging, "https://drop.example:8443")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://drop.example:8443"
    assert "etag" in allowed.headers["access-control-expose-headers"].lower()
    refused = _preflight(s3_env, staging, "https://evil.example")
    assert "access-control-allow-origin" not in refused.headers
    # No preflight check of the blob bucket: SeaweedFS answers any origin for a bucket
    # without CORS rules. What matters is that no rule of ours is there.
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=blobs)


async def test_init_buckets_keeps_other_cors_rules_and_replaces_its_own(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    await init_buckets(f"s3://{blobs}", f"s3://{staging}", public_url="https://a.example")
    s3 = client(s3_env)
    rules = s3.get_bucket_cors(Bucket=staging)["CORSRules"]
    other = {"ID": "operator", "AllowedOrigins": ["https://ops.example"], "AllowedMethods": ["GET"]}
    s3.put_bucket_cors(Bucket=staging, CORSConfiguration={"CORSRules": [*rules, other]})
    await init_buckets(f"s3://{blobs}", f"s3://{staging}", public_url="https://b.example")
    found = {r["ID"]: r["AllowedOrigins"] for r in s3.get_bucket_cors(Bucket=staging)["CORSRules"]}
    assert found == {
        "operator": ["https://ops.example"],
        "sealdrop-direct-uploads": ["https://b.example"],
    }


async def test_init_buckets_without_a_public_url_sets_no_cors_rule(
    s3_env: dict[str, str], new_buckets: list[str]
) -> None:
    blobs, staging = unique_bucket_name("blobs"), unique_bucket_name("staging")
    new_buckets += [blobs, staging]
    messages = await init_buckets(f"s3://{blobs}", f"s3://{staging}")
    assert any("no CORS rule" in line for line in messages)
    with pytest.raises(ClientError, match="NoSuchCORSConfiguration"):
        client(s3_env).get_bucket_cors(Bucket=staging)
