"""Fixtures of the storage tests: a local store in a temporary folder, and a real S3 endpoint.

The S3 endpoint is the Ceph gateway of `../shared/tools/ceph-s3`, started once per session
(or reused from `SEALDROP_TEST_S3_DIR` if that folder holds a running one) and stopped at
the end. If it cannot start, S3 tests fail when `CI` is set and are skipped otherwise.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from app.storage.local import LocalStore
from tests.support.s3 import (
    CephUnavailable,
    ceph_is_running,
    create_bucket,
    environment,
    remove_bucket,
    start_ceph,
    stop_ceph,
)


@pytest.fixture
def local_root(tmp_path: Path) -> Path:
    """The folder of the local store (not created yet: the store makes it)."""
    return tmp_path / "data" / "objects"


@pytest.fixture
def local_store(local_root: Path) -> LocalStore:
    """A local store of its own for one test."""
    return LocalStore(local_root)


@pytest.fixture
def key_prefix() -> str:
    """A key prefix no other test uses, so tests can share one bucket."""
    return f"t{secrets.token_hex(4)}/"


@pytest.fixture(scope="session")
def ceph_s3() -> Iterator[dict[str, str]]:
    """A running Ceph S3 endpoint for the session; yields its environment for boto3."""
    reused = os.environ.get("SEALDROP_TEST_S3_DIR")
    # A short path: the gateway's sockets live in this folder.
    directory = Path(reused) if reused else Path(tempfile.mkdtemp(prefix="sealdrop-ceph-"))
    was_running = ceph_is_running(directory)
    try:
        try:
            env = start_ceph(directory)
        except CephUnavailable as exc:
            _unavailable(str(exc))
        yield env
    finally:
        if not was_running:
            stop_ceph(directory)
        if not reused:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_env(ceph_s3: dict[str, str]) -> Iterator[dict[str, str]]:
    """The endpoint's variables set in os.environ, where boto3's credential chain finds them."""
    with environment(ceph_s3):
        yield ceph_s3


@pytest.fixture(scope="module")
def s3_bucket(s3_env: dict[str, str]) -> Iterator[str]:
    """A bucket of this test module's own, emptied and removed afterwards."""
    name = create_bucket(s3_env)
    yield name
    remove_bucket(s3_env, name)


def _unavailable(reason: str) -> NoReturn:
    message = f"the S3 endpoint could not start: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
