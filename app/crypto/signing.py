"""HMAC signatures for short-lived values the pages hand out (download tickets, CSRF tokens).

The signing keys are derived from the master key ring with HKDF, one per purpose, so every
API process of a deployment signs and verifies alike with no extra secret to distribute.
A signature names the master key it came from, so it still verifies after a rotation makes
another key active, for as long as the old key stays in the ring. Its base64url has exactly
one accepted spelling: a lax decoder would read `…!!`, `…=` or a changed spare bit as the
same signature, and a spent value remembered by its text would come back as new.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.crypto.keys import KeyRing

_INFO_PREFIX = b"sealdrop/hmac/v1:"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@lru_cache(maxsize=64)
def _derived_key(master: bytes, purpose: str) -> bytes:
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO_PREFIX + purpose.encode()
    )
    return hkdf.derive(master)


def _mac(master: bytes, purpose: str, message: bytes) -> bytes:
    return hmac.new(_derived_key(master, purpose), message, hashlib.sha256).digest()


def sign(keys: KeyRing, purpose: str, message: bytes) -> str:
    """A signature of `message` for `purpose`: `<key id>.<base64url MAC>`."""
    mac = _mac(keys.keys[keys.active_id], purpose, message)
    return f"{keys.active_id}.{b64encode(mac)}"


def verify(keys: KeyRing, purpose: str, message: bytes, signature: str) -> bool:
    """Whether `signature` (from `sign`) is right for `message` and `purpose`."""
    key_id, dot, encoded = signature.rpartition(".")
    master = keys.keys.get(key_id)
    mac = b64decode(encoded)
    if not dot or master is None or mac is None:
        return False
    return hmac.compare_digest(mac, _mac(master, purpose, message))


def b64encode(data: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes | None:
    """The bytes of `text` if it is exactly what `b64encode` writes for them, else None.

    No padding, no character outside the URL-safe alphabet, no spare bit set in the last
    character: every byte string has one spelling, and no other spelling is read.
    """
    if len(text) > 512 or not _BASE64URL.fullmatch(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # The decoder ignores the last character's spare bits: only the canonical one passes.
    return data if b64encode(data) == text else None
