"""The master key ring: parsing it, wrapping and unwrapping data keys (DESIGN.md §5).

A data key is wrapped as `nonce (12) || AES-256-GCM(master key).encrypt(nonce, data key,
context)`, where the context names what the key seals (a blob or a staging job), so a
wrapped key moved to another row does not unwrap. No message here ever shows key bytes.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.settings import Settings

KEY_SIZE = 32
NONCE_SIZE = 12
WRAPPED_KEY_SIZE = NONCE_SIZE + KEY_SIZE + 16

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_ENTRY_SEPARATOR = re.compile(r"[,\n]")

logger = logging.getLogger("sealdrop.keys")


class KeyRingError(ValueError):
    """A key ring that cannot be parsed or loaded, or a wrapped key that does not unwrap."""


def data_key_context(blob_id: str) -> bytes:
    """The associated data that binds a wrapped data key to its blob."""
    return b"sealdrop/data-key/v1:" + _context_id(blob_id)


def staging_key_context(job_id: str) -> bytes:
    """The associated data that binds a wrapped staging key to its job."""
    return b"sealdrop/staging-key/v1:" + _context_id(job_id)


def _context_id(identifier: str) -> bytes:
    if not identifier:
        raise KeyRingError("a key-wrapping context needs a non-empty id")
    return identifier.encode()


def new_data_key() -> bytes:
    """A fresh random data key, for sealing exactly one blob."""
    return secrets.token_bytes(KEY_SIZE)


def new_key_entry(key_id: str) -> str:
    """A new key ring entry `key_id:base64url(32 random bytes)`, without padding."""
    _check_key_id(key_id)
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(KEY_SIZE)).rstrip(b"=")
    return f"{key_id}:{encoded.decode()}"


def _check_key_id(key_id: str) -> None:
    if not _KEY_ID.fullmatch(key_id):
        raise KeyRingError(f"key id {key_id!r} is not 1 to 64 of A-Z a-z 0-9 . _ -")


@dataclass(frozen=True)
class KeyRing:
    """Master keys by id; every one unwraps, the active one wraps new data keys."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_id: str

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            _check_key_id(key_id)
            if len(key) != KEY_SIZE:
                raise KeyRingError(f"key {key_id!r} is {len(key)} bytes, expected {KEY_SIZE}")
        if self.active_id not in self.keys:
            raise KeyRingError(f"active key id {self.active_id!r} is not in the key ring")
        # A read-only copy: the ring cannot change under code that holds it.
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    @classmethod
    def parse(cls, text: str, active_id: str | None = None) -> KeyRing:
        """Parse `id:base64url-key` entries separated by commas or newlines.

        The active key defaults to the first entry. Errors name the entry by its number.
        """
        keys: dict[str, bytes] = {}
        entries = [entry.strip() for entry in _ENTRY_SEPARATOR.split(text)]
        for number, entry in enumerate(filter(None, entries), start=1):
            key_id, key = _parse_entry(number, entry)
            if key_id in keys:
                raise KeyRingError(f"key ring entry {number}: duplicate key id {key_id!r}")
            keys[key_id] = key
        if not keys:
            raise KeyRingError("the key ring has no entries")
        return cls(keys, active_id or next(iter(keys)))

    def wrap(self, data_key: bytes, context: bytes) -> tuple[str, bytes]:
        """(active key id, wrapped key): `data_key` sealed under the active master key."""
        if len(data_key) != KEY_SIZE:
            raise KeyRingError(f"a data key is {KEY_SIZE} bytes, got {len(data_key)}")
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = AESGCM(self.keys[self.active_id]).encrypt(nonce, data_key, context)
        return self.active_id, nonce + sealed

    def unwrap(self, key_id: str, wrapped: bytes, context: bytes) -> bytes:
        """The data key in `wrapped`; KeyRingError if it does not unwrap under that context."""
        master = self.keys.get(key_id)
        if master is None:
            raise KeyRingError(f"unknown key id {key_id!r}")
        if len(wrapped) != WRAPPED_KEY_SIZE:
            raise KeyRingError(f"a wrapped key is {WRAPPED_KEY_SIZE} bytes, got {len(wrapped)}")
        nonce, sealed = wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:]
        try:
            return AESGCM(master).decrypt(nonce, sealed, context)
        except InvalidTag:
            raise KeyRingError(
                f"wrapped key does not unwrap with key {key_id!r} for this context"
            ) from None

    def __repr__(self) -> str:
        return f"KeyRing(ids={list(self.keys)!r}, active_id={self.active_id!r})"


def _parse_entry(number: int, entry: str) -> tuple[str, bytes]:
    key_id, colon, encoded = (part.strip() for part in entry.partition(":"))
    if not colon:
        raise KeyRingError(f"key ring entry {number}: expected 'key_id:base64url-key'")
    if not _KEY_ID.fullmatch(key_id):
        raise KeyRingError(f"key ring entry {number}: key id is not 1 to 64 of A-Z a-z 0-9 . _ -")
    key = _decode_base64url(encoded)
    if key is None:
        raise KeyRingError(f"key ring entry {number} ({key_id!r}): key is not base64url")
    if len(key) != KEY_SIZE:
        raise KeyRingError(
            f"key ring entry {number} ({key_id!r}): key is {len(key)} bytes, expected {KEY_SIZE}"
        )
    return key_id, key


def _decode_base64url(encoded: str) -> bytes | None:
    # b64decode would also take '+' and '/', and ignores junk without validate=True.
    if not _BASE64URL.fullmatch(encoded):
        return None
    unpadded = encoded.rstrip("=")
    try:
        return base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        return None


def load_key_ring(settings: Settings) -> KeyRing:
    """The key ring from SEALDROP_MASTER_KEYS, else from the key file (created if absent)."""
    if settings.master_keys is not None:
        source, text = "SEALDROP_MASTER_KEYS", settings.master_keys.get_secret_value()
    else:
        path = settings.resolved_master_keys_file
        if not path.exists():
            _create_key_file(path)
        source, text = str(path), _read_key_file(path)
    try:
        return KeyRing.parse(text, settings.active_key_id)
    except KeyRingError as error:
        raise KeyRingError(f"{source}: {error}") from None


def _read_key_file(path: Path) -> str:
    with path.open(encoding="utf-8") as file:
        if os.fstat(file.fileno()).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "master key file %s can be read by other users than its owner; run: chmod 600 %s",
                path,
                path,
            )
        return file.read()


def _create_key_file(path: Path) -> None:
    """Write a new one-key ring to `path`, atomically: a racing process sees all or nothing."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    entry = new_key_entry("k" + datetime.now(UTC).strftime("%Y%m%d"))
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(entry + "\n")
            file.flush()
            os.fsync(file.fileno())
        # link() refuses an existing name, so of two processes starting at once one wins.
        os.link(temporary, path)
    except FileExistsError:
        return
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_directory(path.parent)
    logger.warning(
        "created master key file %s: whoever copies the data folder together with this "
        "file can read every stored file; keep it apart from backups of the data, or set "
        "SEALDROP_MASTER_KEYS",
        path,
    )


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
