"""Link passwords: decoding, argon2id hashing and verification off the event loop.

Passwords from every path (header, form field, HTTP Basic) are raw bytes decoded as UTF-8
and NFC-normalised, so "é" typed on any keyboard matches; Basic credentials split at the
first ':' and the user name is ignored. Hashing runs in worker threads, at most
`concurrency` at a time, so a flood of guesses cannot exhaust memory (argon2 uses 19 MiB
per hash) or block the event loop.
"""

from __future__ import annotations

import base64
import binascii
import unicodedata

import anyio
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.errors import BadRequest

MAX_PASSWORD_BYTES = 1024
MAX_AUTHORIZATION_BYTES = 4096


def decode_password(raw: bytes) -> str:
    """Turn raw password bytes into the normalised string we hash. BadRequest if invalid."""
    if not raw:
        raise BadRequest("the password is empty")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise BadRequest(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the password is not valid UTF-8") from None
    return unicodedata.normalize("NFC", text)


def basic_password(authorization: str | None) -> str | None:
    """The password of an HTTP Basic `Authorization` header value; the user name is ignored.

    None without a header, for another scheme, and for an empty password; BadRequest for
    credentials that cannot be read.
    """
    if authorization is None:
        return None
    if len(authorization) > MAX_AUTHORIZATION_BYTES:
        raise BadRequest("the Authorization header is too long")
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("the Authorization header is not valid Basic credentials") from None
    _user, colon, password = raw.partition(b":")
    if not colon:
        raise BadRequest("Basic credentials need a ':' between user name and password")
    if not password:
        return None
    return decode_password(password)


class PasswordHashing:
    """argon2id hashing with a cap on concurrent computations."""

    def __init__(self, *, memory_kib: int, time_cost: int, concurrency: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID
        )
        self._limiter = anyio.CapacityLimiter(concurrency)

    async def hash(self, password: str) -> str:
        """The argon2id hash string of `password`."""
        return await anyio.to_thread.run_sync(self._hasher.hash, password, limiter=self._limiter)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether `password` matches `password_hash`."""
        return await anyio.to_thread.run_sync(
            self._check, password_hash, password, limiter=self._limiter
        )

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
