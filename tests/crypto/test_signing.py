"""HMAC signatures: a signature has exactly one spelling, so a spent one cannot come back.

A lax base64 decoder reads `abc!!`, `abc=` and `abc` with its unused low bits set as the
same bytes; a value remembered by its string (a spent ticket) would then return as new.
"""

from __future__ import annotations

import pytest

from app.crypto import signing
from app.crypto.keys import KeyRing, new_key_entry

PURPOSE = "test"
MESSAGE = b"a message"


@pytest.fixture
def ring() -> KeyRing:
    """A key ring of one fresh key."""
    return KeyRing.parse(new_key_entry("k1"))


@pytest.mark.parametrize("size", [0, 1, 2, 3, 31, 32, 33])
def test_b64decode_reads_what_b64encode_writes(size: int) -> None:
    data = bytes(range(size))
    assert signing.b64decode(signing.b64encode(data)) == data


@pytest.mark.parametrize(
    "text",
    [
        "AAEC=",  # padding
        "AAEC==",
        "AAEC!!",  # characters outside the alphabet
        "AAEC~~",
        "AA EC",
        "AAEC\n",
        "AA+C",  # the standard alphabet's characters
        "AA/C",
        "AAB",  # two bytes (AAA) with the last character's spare bits set
        "AAAAAB",  # four bytes (AAAAAA), likewise
        "A",  # a length no byte string encodes to
    ],
)
def test_b64decode_refuses_every_spelling_but_the_canonical_one(text: str) -> None:
    assert signing.b64decode(text) is None


def test_signature_verifies(ring: KeyRing) -> None:
    assert signing.verify(ring, PURPOSE, MESSAGE, signing.sign(ring, PURPOSE, MESSAGE))


@pytest.mark.parametrize("suffix", ["!!", "~~", "=", "=="])
def test_signature_with_junk_appended_is_refused(ring: KeyRing, suffix: str) -> None:
    signature = signing.sign(ring, PURPOSE, MESSAGE)
    assert not signing.verify(ring, PURPOSE, MESSAGE, signature + suffix)


def test_signature_with_its_unused_bits_set_is_refused(ring: KeyRing) -> None:
    signature = signing.sign(ring, PURPOSE, MESSAGE)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) | 1]
    assert not signing.verify(ring, PURPOSE, MESSAGE, respelled)
