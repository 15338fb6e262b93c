"""A real S3 endpoint for tests: the throw-away Ceph RADOS Gateway of `../shared/tools`.

`start_ceph(dir)` boots it (or finds it already running in `dir`) and returns the
environment boto3 needs (`AWS_ENDPOINT_URL`, keys, region); `stop_ceph(dir)` ends it.
`create_bucket` / `remove_bucket` give each test run its own bucket.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

REPO = Path(__file__).resolve().parents[2]
CEPH_S3 = REPO.parent / "shared" / "tools" / "ceph-s3"
START_TIMEOUT_SECONDS = 300  # the first start on a fresh machine installs Debian packages
# Variables that would make boto3 ignore the endpoint's keys or talk to another endpoint.
_SHADOWING = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


class CephUnavailable(RuntimeError):
    """The S3 endpoint could not be started (the message says why)."""


def ceph_is_running(directory: Path) -> bool:
    """True if the endpoint recorded in `directory` is up and answering."""
    if not (directory / "settings").exists():
        return False
    return _run("status", directory, timeout=30).returncode == 0


def start_ceph(directory: Path) -> dict[str, str]:
    """Start the endpoint in `directory` (idempotent) and return its environment for boto3."""
    try:
        result = _run("start", directory, timeout=START_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CephUnavailable(f"{CEPH_S3} start failed: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise CephUnavailable(f"{CEPH_S3} start exited {result.returncode}: {tail}")
    return parse_exports(result.stdout)


def stop_ceph(directory: Path) -> None:
    """Stop the daemons recorded in `directory` (only those)."""
    _run("stop", directory, timeout=60)


def parse_exports(text: str) -> dict[str, str]:
    """The variables of `export NAME=value` lines."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            env[name] = value
    return env


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` in os.environ (without variables that shadow it) for the block's duration."""
    touched = {*env, *_SHADOWING}
    saved = {name: os.environ.get(name) for name in touched}
    for name in _SHADOWING:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def unique_bucket_name(label: str = "test") -> str:
    """A bucket name no earlier run used."""
    return f"sealdrop-{label}-{secrets.token_hex(6)}"


def client(env: Mapping[str, str]) -> S3Client:
    """A plain boto3 client for the endpoint, for test set-up and inspection."""
    return boto3.session.Session(
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env.get("AWS_REGION", "us-east-1"),
    ).client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def create_bucket(env: Mapping[str, str], label: str = "test") -> str:
    """Create a fresh bucket and return its name."""
    name = unique_bucket_name(label)
    client(env).create_bucket(Bucket=name)
    return name


def remove_bucket(env: Mapping[str, str], name: str) -> None:
    """Abort its uploads, delete its objects, then the bucket itself."""
    s3 = client(env)
    for uploads in s3.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in uploads.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for objects in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in objects.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def _run(command: str, directory: Path, *, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CEPH_S3), command, str(directory)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
