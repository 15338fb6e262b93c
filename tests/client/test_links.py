"""The client's reading of links and answers: URLs, passwords, file names, digests."""

from __future__ import annotations

import base64
import hashlib

import pytest

from app.client.links import FALLBACK_NAME, filename_from, sha256_of_repr_digest, split_link


@pytest.mark.parametrize(
    ("link", "url", "password"),
    [
        ("https://h.example/s/abc", "https://h.example/d/abc/", None),
        ("https://h.example/s/abc/", "https://h.example/d/abc/", None),
        ("http://127.0.0.1:8000/d/abc/f.txt", "http://127.0.0.1:8000/d/abc/f.txt", None),
        ("https://:p%C3%A4ss%20w@h.example/s/abc", "https://h.example/d/abc/", "päss w"),
        ("https://user:pw@h.example:8443/s/t", "https://h.example:8443/d/t/", "pw"),
        ("http://[::1]:8000/s/t", "http://[::1]:8000/d/t/", None),
    ],
)
def test_split_link_takes_the_password_out(link: str, url: str, password: str | None) -> None:
    assert split_link(link) == (url, password)


@pytest.mark.parametrize("link", ["ftp://h/s/a", "h.example/s/a", "https:///s/a", ""])
def test_split_link_refuses_what_is_no_http_url(link: str) -> None:
    with pytest.raises(ValueError, match="http"):
        split_link(link)


@pytest.mark.parametrize(
    ("disposition", "name"),
    [
        ("attachment; filename=\"a.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ('attachment; filename="plain name.txt"', "plain name.txt"),
        ("attachment; filename=bare.txt", "bare.txt"),
        ("attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"),
        ('attachment; filename="..\\\\evil.exe"', "evil.exe"),
        ("attachment; filename*=UTF-8''..", FALLBACK_NAME),
        ("attachment; filename*=UTF-8''a%0Ab%00c", "abc"),
    ],
)
def test_the_file_name_is_a_safe_base_name(disposition: str, name: str) -> None:
    assert filename_from(disposition, "https://h/d/tok/") == name


def test_without_a_disposition_the_name_comes_from_the_url_never_a_token() -> None:
    assert filename_from(None, "https://h/d/tok/report%20v2.pdf") == "report v2.pdf"
    assert filename_from(None, "https://h/d/3U9rWS8jNZXuiGpNS1Efzg/") == FALLBACK_NAME


def test_repr_digest_gives_the_sha256() -> None:
    digest = hashlib.sha256(b"x").digest()
    encoded = base64.b64encode(digest).decode()
    assert sha256_of_repr_digest(f"sha-256=:{encoded}:") == digest
    assert sha256_of_repr_digest(f"sha-512=:AAAA:, sha-256=:{encoded}:") == digest


@pytest.mark.parametrize(
    "header", [None, "", "sha-512=:AAAA:", "sha-256=:AAAA:", "sha-256=:not base64!:"]
)
def test_a_missing_or_unusable_repr_digest_gives_none(header: str | None) -> None:
    assert sha256_of_repr_digest(header) is None
