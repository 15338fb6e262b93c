"""Fixtures of the storage tests: a local store in a temporary folder, and a real S3 endpoint.

The S3 endpoint is the one the production stacks use (`tests.support.production`:
SeaweedFS started once per session, or the server `SEALDROP_TEST_S3_URL` names), so the
session starts one S3 server however many suites need it. If it cannot start, S3 tests
fail when `CI` is set and are skipped otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.storage.local import LocalStore
from tests.support.production import (
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
    shared_backends,
)
from tests.support.s3 import create_bucket, environment, remove_bucket


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


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """The endpoint's variables set in os.environ, where boto3's credential chain finds them."""
    env = shared_backends().s3_env
    with environment(env):
        yield env


@pytest.fixture(scope="module")
def s3_bucket(s3_env: dict[str, str]) -> Iterator[str]:
    """A bucket of this test module's own, emptied and removed afterwards."""
    name = create_bucket(s3_env)
    yield name
    remove_bucket(s3_env, name)
