"""`sealdrop storage init` for S3: create and configure the blob and staging buckets.

Idempotent: it can run at every deployment. Buckets are created if missing, public access
is blocked, and lifecycle rules are merged into whatever rules the buckets already have
(ours are recognised by their ids): staging objects expire after a day, and incomplete
multipart uploads are aborted after a day in both buckets. A versioned staging bucket is
refused, because a deleted staging object would live on as an old version. With a public
URL, the staging bucket gets a CORS rule (ours, by its id, beside any others) that lets
the upload page PUT direct-upload parts from that origin and read their `ETag`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.settings import S3_LIFECYCLE_DAYS
from app.storage.base import StorageError
from app.storage.object_keys import STAGING_PREFIX
from app.storage.s3_client import S3Calls
from app.storage.urls import S3Location, parse_store_url

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        CORSRuleOutputTypeDef,
        CORSRuleTypeDef,
        LifecycleRuleOutputTypeDef,
        LifecycleRuleTypeDef,
        PublicAccessBlockConfigurationTypeDef,
    )

EXPIRE_STAGING_RULE = "sealdrop-expire-staging"
ABORT_UPLOADS_RULE = "sealdrop-abort-incomplete-uploads"
DIRECT_UPLOADS_CORS_RULE = "sealdrop-direct-uploads"
_NO_CORS = frozenset({"NoSuchCORSConfiguration"})
_MISSING_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})
_NO_LIFECYCLE = frozenset({"NoSuchLifecycleConfiguration"})
_UNSUPPORTED = frozenset({"NotImplemented"})
_NO_ACCESS_BLOCK = frozenset({"NoSuchPublicAccessBlockConfiguration"})
_PROBE_KEY = "sealdrop-storage-init-probe"
_ALL_BLOCKED: PublicAccessBlockConfigurationTypeDef = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
_ACLS_IGNORED: PublicAccessBlockConfigurationTypeDef = {**_ALL_BLOCKED, "BlockPublicAcls": False}


async def init_buckets(
    blob_url: str, staging_url: str, *, public_url: str | None = None
) -> list[str]:
    """Create and configure both buckets (they may be one); return what was done, per line.

    `public_url` (SEALDROP_PUBLIC_URL) is the origin whose pages may PUT direct-upload
    parts into the staging bucket; without it no CORS rule is set (browsers cannot
    upload directly, other clients can).

    Raises StorageError if a URL is not `s3://`, the staging bucket is versioned, or S3
    refuses a call.
    """
    blob, staging = _s3_location(blob_url), _s3_location(staging_url)
    same_bucket = blob == staging
    messages: list[str] = []
    blob_s3 = S3Calls(blob)
    staging_s3 = blob_s3 if same_bucket else S3Calls(staging)
    buckets = [blob_s3] if same_bucket else [blob_s3, staging_s3]
    try:
        for s3 in buckets:
            messages.append(await _ensure_bucket(s3))
        await _refuse_versioning(staging_s3)
        if not same_bucket:
            messages.extend(await _warn_versioning(blob_s3))
        for s3 in buckets:
            messages.append(await _block_public_access(s3))
            messages.append(await _set_lifecycle(s3, expire_staging=s3 is staging_s3))
        messages.append(await _set_cors(staging_s3, public_url))
    finally:
        for s3 in buckets:
            s3.close()
    return messages


def _s3_location(url: str) -> S3Location:
    location = parse_store_url(url)
    if not isinstance(location, S3Location):
        raise StorageError("storage init works on s3:// URLs only")
    return location


async def _ensure_bucket(s3: S3Calls) -> str:
    bucket = s3.location.bucket
    try:
        await s3.call("HEAD of the bucket", s3.client.head_bucket, Bucket=bucket)
    except StorageError as exc:
        if exc.code not in _MISSING_BUCKET:
            raise
    else:
        return f"bucket {bucket}: exists"
    # AWS outside us-east-1 needs the region as a constraint; other servers get none.
    if s3.location.endpoint_url is None and s3.location.region != "us-east-1":
        await s3.call(
            "creation of the bucket",
            s3.client.create_bucket,
            Bucket=bucket,
            CreateBucketConfiguration={"LocationConstraint": s3.location.region},
        )
    else:
        try:
            await s3.call("creation of the bucket", s3.client.create_bucket, Bucket=bucket)
        except StorageError as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise
    return f"bucket {bucket}: created"


async def _versioning_status(s3: S3Calls) -> str | None:
    response = await s3.call(
        "reading of versioning", s3.client.get_bucket_versioning, Bucket=s3.location.bucket
    )
    return response.get("Status")


async def _refuse_versioning(s3: S3Calls) -> None:
    status = await _versioning_status(s3)
    if status is not None:
        raise StorageError(
            f"staging bucket {s3.location.bucket} has versioning {status.lower()}: deleted "
            "staging objects would survive as old versions; use a bucket that was never versioned"
        )


async def _warn_versioning(s3: S3Calls) -> list[str]:
    status = await _versioning_status(s3)
    if status is None:
        return []
    return [
        f"bucket {s3.location.bucket}: WARNING versioning is {status.lower()}; purged blobs stay "
        "as old versions (unreadable without their keys) until a rule expires them"
    ]


async def _block_public_access(s3: S3Calls) -> str:
    bucket = s3.location.bucket
    try:
        ignoring = await _access_block(s3) == _ACLS_IGNORED and s3.location.endpoint_url
        if not ignoring:
            await _put_access_block(s3, _ALL_BLOCKED)
            if s3.location.endpoint_url is None or await _owner_can_write(s3):
                return f"bucket {bucket}: public access blocked"
            await _put_access_block(s3, _ACLS_IGNORED)
    except StorageError as exc:
        if exc.code not in _UNSUPPORTED:
            raise
        return (
            f"bucket {bucket}: the server does not implement public access blocks "
            "(NotImplemented); make sure the bucket has no public ACL or policy"
        )
    return (
        f"bucket {bucket}: public access blocked; public ACLs are ignored rather than refused, "
        "because this server refuses even private writes under BlockPublicAcls"
    )


async def _access_block(s3: S3Calls) -> PublicAccessBlockConfigurationTypeDef | None:
    try:
        response = await s3.call(
            "reading of the public access block",
            s3.client.get_public_access_block,
            Bucket=s3.location.bucket,
        )
    except StorageError as exc:
        if exc.code not in _NO_ACCESS_BLOCK:
            raise
        return None
    return response["PublicAccessBlockConfiguration"]


async def _put_access_block(s3: S3Calls, flags: PublicAccessBlockConfigurationTypeDef) -> None:
    await s3.call(
        "blocking of public access",
        s3.client.put_public_access_block,
        Bucket=s3.location.bucket,
        PublicAccessBlockConfiguration=flags,
    )


async def _owner_can_write(s3: S3Calls) -> bool:
    """Whether the bucket still takes a private write from its owner.

    Ceph RGW (16.2 at least) refuses every write, ACL or not, while BlockPublicAcls is on;
    on such a server IgnorePublicAcls alone keeps any public ACL void.
    """
    bucket = s3.location.bucket
    try:
        await s3.call("probe write", s3.client.put_object, Bucket=bucket, Key=_PROBE_KEY, Body=b"")
    except StorageError as exc:
        if exc.code != "AccessDenied":
            raise
        return False
    await s3.call("probe delete", s3.client.delete_object, Bucket=bucket, Key=_PROBE_KEY)
    return True


async def _set_lifecycle(s3: S3Calls, *, expire_staging: bool) -> str:
    bucket = s3.location.bucket
    ours = _our_rules(expire_staging=expire_staging)
    ids = {rule["ID"] for rule in ours}
    kept = [rule for rule in await _lifecycle_rules(s3) if rule.get("ID") not in ids]
    await s3.call(
        "setting of lifecycle rules",
        s3.client.put_bucket_lifecycle_configuration,
        Bucket=bucket,
        LifecycleConfiguration={"Rules": [*kept, *ours]},
    )
    return f"bucket {bucket}: lifecycle rules {', '.join(sorted(ids))} set"


async def _lifecycle_rules(s3: S3Calls) -> list[LifecycleRuleOutputTypeDef]:
    try:
        response = await s3.call(
            "reading of lifecycle rules",
            s3.client.get_bucket_lifecycle_configuration,
            Bucket=s3.location.bucket,
        )
    except StorageError as exc:
        if exc.code not in _NO_LIFECYCLE:
            raise
        return []
    return list(response.get("Rules", []))


def _our_rules(*, expire_staging: bool) -> list[LifecycleRuleTypeDef]:
    rules: list[LifecycleRuleTypeDef] = [
        {
            "ID": ABORT_UPLOADS_RULE,
            "Filter": {"Prefix": ""},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": S3_LIFECYCLE_DAYS},
        }
    ]
    if expire_staging:
        rules.append(
            {
                "ID": EXPIRE_STAGING_RULE,
                "Filter": {"Prefix": STAGING_PREFIX},
                "Status": "Enabled",
                "Expiration": {"Days": S3_LIFECYCLE_DAYS},
            }
        )
    return rules


def public_origin(public_url: str) -> str:
    """`scheme://host[:port]` of a public URL: what a browser sends as `Origin`."""
    parts = urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise StorageError("SEALDROP_PUBLIC_URL must be an http(s) URL for the CORS rule")
    return f"{parts.scheme}://{parts.netloc}".lower()


async def _set_cors(s3: S3Calls, public_url: str | None) -> str:
    bucket = s3.location.bucket
    if not public_url:
        return (
            f"bucket {bucket}: no CORS rule (set SEALDROP_PUBLIC_URL so that the upload page "
            "can send direct uploads)"
        )
    origin = public_origin(public_url)
    ours: CORSRuleTypeDef = {
        "ID": DIRECT_UPLOADS_CORS_RULE,
        "AllowedOrigins": [origin],
        "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 3600,
    }
    kept = [rule for rule in await _cors_rules(s3) if rule.get("ID") != DIRECT_UPLOADS_CORS_RULE]
    try:
        await s3.call(
            "setting of CORS rules",
            s3.client.put_bucket_cors,
            Bucket=bucket,
            CORSConfiguration={"CORSRules": [*kept, ours]},
        )
    except StorageError as exc:
        if exc.code not in _UNSUPPORTED:
            raise
        return (
            f"bucket {bucket}: the server does not implement CORS rules (NotImplemented); "
            f"browsers at {origin} cannot send direct uploads"
        )
    return f"bucket {bucket}: CORS rule {DIRECT_UPLOADS_CORS_RULE} set (PUT from {origin})"


async def _cors_rules(s3: S3Calls) -> list[CORSRuleOutputTypeDef]:
    try:
        response = await s3.call(
            "reading of CORS rules", s3.client.get_bucket_cors, Bucket=s3.location.bucket
        )
    except StorageError as exc:
        if exc.code not in _NO_CORS:
            raise
        return []
    return list(response.get("CORSRules", []))
