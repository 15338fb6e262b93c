"""curl as its users run it: `curl -T` to upload, `curl -fOJ` to download, `-u :pw`."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.clients import CURL_HTTP_ERROR, curl
from tests.e2e.payloads import upload, write_payload
from tests.support.stack import Stack

SIZE = 300_000


def test_curl_upload_prints_only_the_share_link(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    write_payload(source, SIZE)
    result = curl("-f", "-T", str(source), f"{stack.base_url}/")
    assert result.status == 201
    assert result.text == f"{result.headers['location']}\n"
    assert result.headers["location"].startswith(f"{stack.base_url}/s/")


def test_curl_remote_name_writes_the_identical_file_under_its_name(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "quarterly report.pdf"
    write_payload(source, SIZE)
    link = upload(stack, source)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    result = curl("-fOJ", link.download_url, cwd=downloads)
    assert result.status == 200
    assert [p.name for p in downloads.iterdir()] == ["quarterly report.pdf"]
    assert (downloads / "quarterly report.pdf").read_bytes() == source.read_bytes()


def test_curl_on_the_share_link_gets_the_file_itself(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "photo.jpg"
    write_payload(source, SIZE)
    link = upload(stack, source)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    curl("-fOJ", link.share_url, cwd=downloads)
    assert [p.name for p in downloads.iterdir()] == ["photo.jpg"]
    assert (downloads / "photo.jpg").read_bytes() == source.read_bytes()


def test_curl_with_the_password_as_basic_auth_downloads_a_protected_link(
    stack: Stack, tmp_path: Path
) -> None:
    source = tmp_path / "secret.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Link-Password: pw")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    curl("-u", ":pw", "-fOJ", link.download_url, cwd=downloads)
    assert (downloads / "secret.bin").read_bytes() == source.read_bytes()


def test_curl_without_the_password_exits_22_with_401(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "secret.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Link-Password: pw")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    result = curl("-fOJ", link.download_url, cwd=downloads, expect_exit=CURL_HTTP_ERROR)
    assert result.status == 401
    assert result.headers["www-authenticate"].startswith('Basic realm="sealdrop ')
    assert list(downloads.iterdir()) == []
