"""Parsing of storage URLs (`SEALDROP_STORAGE_URL`, `SEALDROP_STAGING_URL`).

- `file:///abs/path`: a local folder. The path is taken literally (no percent-decoding),
  the way the settings build it from the data dir.
- `s3://bucket?endpoint_url=http://host:port&region=us-east-1`: an S3 bucket. The endpoint
  may also come from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`. Credentials never come
  from a URL: boto3 finds them (environment, IRSA, instance profile), and a URL carrying
  `user:password@` is refused so that it cannot end up in a log by mistake.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.storage.base import StorageError

# Bucket names as S3 allows them (dots included: we address buckets path-style).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_S3_PARAMETERS = frozenset({"endpoint_url", "region"})
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True, slots=True)
class LocalLocation:
    """A folder that holds objects."""

    root: Path


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket, and where to reach it. `endpoint_url` is None for AWS itself."""

    bucket: str
    endpoint_url: str | None
    region: str


def parse_store_url(url: str) -> LocalLocation | S3Location:
    """Parse a storage URL; raise StorageError (without echoing secrets) if it is not valid."""
    if url.startswith("file://"):
        return _parse_file(url)
    if url.startswith("s3://"):
        return _parse_s3(url)
    raise StorageError("storage URL must start with file:// or s3://")


def _parse_file(url: str) -> LocalLocation:
    path = url.removeprefix("file://")
    if path.startswith("localhost/"):
        path = path.removeprefix("localhost")
    if not path.startswith("/"):
        raise StorageError(f"file storage URL needs an absolute path: {url}")
    return LocalLocation(root=Path(path))


def _parse_s3(url: str) -> S3Location:
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise StorageError(
            "an s3:// storage URL must not carry credentials; give them to boto3 "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, IRSA or an instance role)"
        )
    if not _BUCKET.fullmatch(parts.netloc):
        raise StorageError(f"not a valid bucket name in storage URL: {parts.netloc!r}")
    if parts.path not in ("", "/") or parts.fragment:
        raise StorageError("an s3:// storage URL names a bucket only: s3://bucket?options")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    unknown = set(query) - _S3_PARAMETERS
    if unknown or any(len(values) != 1 for values in query.values()):
        raise StorageError(
            f"s3:// storage URL takes endpoint_url and region once each, got {sorted(query)}"
        )
    endpoint = query.get("endpoint_url", [None])[0] or _endpoint_from_environment()
    if endpoint is not None:
        _check_endpoint(endpoint)
    region = query.get("region", [None])[0] or _region_from_environment()
    return S3Location(bucket=parts.netloc, endpoint_url=endpoint, region=region)


def _endpoint_from_environment() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def _region_from_environment() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageError("S3 endpoint must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise StorageError("S3 endpoint URL must not carry credentials")
