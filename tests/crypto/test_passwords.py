"""Reading passwords (`app/crypto/passwords.py`): HTTP Basic credentials to the password
that is hashed, with the user name ignored and anything unreadable a short 400."""

from __future__ import annotations

import base64
import unicodedata

import pytest

from app.crypto.passwords import MAX_AUTHORIZATION_BYTES, basic_password
from app.errors import BadRequest


def _basic(credentials: bytes, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(credentials).decode()}"


def test_the_user_name_is_ignored() -> None:
    assert basic_password(_basic(b"anyone:secret")) == "secret"


def test_credentials_split_at_the_first_colon() -> None:
    assert basic_password(_basic(b":b:c")) == "b:c"


@pytest.mark.parametrize("scheme", ["basic", "BASIC", "bAsIc"])
def test_the_scheme_is_read_in_any_case(scheme: str) -> None:
    assert basic_password(_basic(b":secret", scheme)) == "secret"


def test_the_password_is_nfc_normalised() -> None:
    decomposed = unicodedata.normalize("NFD", "café")
    assert basic_password(_basic(f":{decomposed}".encode())) == "café"


@pytest.mark.parametrize("authorization", [None, "Bearer abc", _basic(b"user:"), _basic(b":")])
def test_no_header_another_scheme_or_an_empty_password_is_no_password(
    authorization: str | None,
) -> None:
    assert basic_password(authorization) is None


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!not-base64!!!",
        "Basic YWJj",  # "abc": no colon
        _basic(b":\xff\xfe"),  # not UTF-8
        _basic(b":" + b"x" * 1025),  # longer than a password may be
        "Basic " + "A" * MAX_AUTHORIZATION_BYTES,
    ],
)
def test_unreadable_credentials_are_a_bad_request(authorization: str) -> None:
    with pytest.raises(BadRequest):
        basic_password(authorization)
