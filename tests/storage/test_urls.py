"""Storage URLs: what `file://` and `s3://` URLs may say, and what they must not."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.storage import StorageError, open_store
from app.storage.s3 import S3Store
from app.storage.urls import LocalLocation, S3Location, parse_store_url


@pytest.fixture(autouse=True)
def no_endpoint_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the S3 variables it needs, and only those."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


def test_file_url_gives_its_path_literally() -> None:
    assert parse_store_url("file:///var/lib/sealdrop data/objects") == LocalLocation(
        Path("/var/lib/sealdrop data/objects")
    )


def test_file_url_with_a_relative_path_is_refused() -> None:
    with pytest.raises(StorageError, match="absolute"):
        parse_store_url("file://objects")


def test_s3_url_gives_bucket_endpoint_and_region() -> None:
    url = "s3://sealdrop-blobs?endpoint_url=http://127.0.0.1:7480&region=eu-west-1"
    assert parse_store_url(url) == S3Location(
        "sealdrop-blobs", "http://127.0.0.1:7480", "eu-west-1"
    )


def test_s3_endpoint_and_region_come_from_the_environment_when_the_url_has_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert parse_store_url("s3://blobs") == S3Location("blobs", "http://minio:9000", "eu-central-1")


def test_s3_url_without_endpoint_means_aws_in_us_east_1() -> None:
    assert parse_store_url("s3://blobs") == S3Location("blobs", None, "us-east-1")


def test_s3_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(StorageError, match="must not carry credentials") as raised:
        parse_store_url("s3://AKIAEXAMPLE:TopSecret123@blobs")
    assert "TopSecret123" not in str(raised.value)
    assert "AKIAEXAMPLE" not in str(raised.value)


def test_s3_endpoint_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(StorageError, match="must not carry credentials") as raised:
        parse_store_url("s3://blobs?endpoint_url=http://user:TopSecret123@127.0.0.1:7480")
    assert "TopSecret123" not in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "s3://blobs?access_key=x",
        "s3://blobs?region=a&region=b",
        "s3://blobs/some/prefix",
        "s3://Not_A_Bucket",
        "s3://blobs?endpoint_url=ftp://host",
        "http://blobs",
    ],
)
def test_malformed_storage_url_is_refused(url: str) -> None:
    with pytest.raises(StorageError):
        parse_store_url(url)


async def test_s3_url_opens_an_s3_store_without_contacting_it() -> None:
    store = open_store("s3://sealdrop-blobs?endpoint_url=http://127.0.0.1:1")
    assert isinstance(store, S3Store)
    assert store.bucket == "sealdrop-blobs"
    await store.close()
