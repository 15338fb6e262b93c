"""Link and manage tokens: generation, hashing, shape checks, and log-safe prefixes.

Tokens carry 128 bits from `secrets` in URL-safe base64 (22 characters). The database keeps
only SHA-256 of the token's ASCII string; logs and metrics see only a short hash prefix.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

TOKEN_BYTES = 16
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{22,64}$")


def new_token() -> str:
    """A fresh random token (link, manage, or object id)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_id() -> str:
    """A fresh random row/object id: 22 base64url characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def derived_token(secret: str, purpose: str) -> str:
    """A token that only the holder of `secret` (itself a token) can compute: the link of a
    resumable upload is its URL's id so derived, so that whoever holds the upload URL can
    learn its link again, and nobody else (the database keeps neither)."""
    mac = hmac.new(secret.encode("ascii"), purpose.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:TOKEN_BYTES]).rstrip(b"=").decode("ascii")


def is_token_shaped(token: str) -> bool:
    """Whether `token` could be one of ours; anything else is a 404 without a lookup."""
    return bool(_TOKEN_RE.match(token))


def token_hash(token: str) -> bytes:
    """The 32-byte SHA-256 stored in place of a token."""
    return hashlib.sha256(token.encode("ascii")).digest()


def log_name(token_hash_bytes: bytes) -> str:
    """A short, log-safe name for a token: the first 8 hex digits of its hash."""
    return token_hash_bytes.hex()[:8]


def same_hash(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two hashes."""
    return hmac.compare_digest(a, b)
