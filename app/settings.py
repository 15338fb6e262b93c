"""Sealdrop's settings: every knob, read from `SEALDROP_*` environment variables.

Each value has a default that serves the embedded mode (one process, SQLite, a local
folder, an in-process worker); production overrides them (DESIGN §7). Values that are
derived from others (the database URL from the data dir, …) are resolved by the
`resolved_*` helpers so that the raw settings stay exactly what the operator gave.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SIZE_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}
# ASCII digits only: `\d` takes the digits of every script ('٣').
_SIZE_RE = re.compile(r"^\s*([0-9]+)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)
_DURATION_RE = re.compile(r"^([0-9]+)([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# What the janitor's sweep waits past the longest upload: an upload's staged object (an
# S3 multipart object dates from its start) has no row until its password is hashed and
# its transaction commits, and the store's clock may be ahead of the pod's.
SWEEP_MARGIN_SECONDS = 3600
# What `sealdrop storage init`'s lifecycle rules give an unfinished multipart upload (and a
# staging object) before S3 removes it: a day. An upload allowed longer would be cut by S3.
S3_LIFECYCLE_DAYS = 1


def parse_size(text: str | int) -> int:
    """Parse a byte size such as `5GiB`, `500M` or `1048576` into bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use bytes or K/M/G/T, optionally with 'iB')")
    number, unit = match.groups()
    return int(number) * _SIZE_UNITS[(unit or "").lower()]


def parse_duration(text: str | int) -> int:
    """Parse a duration such as `90`, `15m`, `24h` or `1d` into seconds.

    A bare number is seconds. Raises ValueError for anything else, including zero.
    """
    if isinstance(text, int):
        seconds = text
    else:
        match = _DURATION_RE.match(text.strip())
        if not match:
            raise ValueError(f"not a duration: {text!r} (use e.g. 90, 15m, 24h, 1d)")
        seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class Settings(BaseSettings):
    """All of Sealdrop's configuration. See docs/configuration.md for each value."""

    model_config = SettingsConfigDict(env_prefix="SEALDROP_", extra="ignore")

    data_dir: Path = Path("./sealdrop-data")
    host: str = "127.0.0.1"
    port: int = 8000

    database_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "sealdrop:"
    storage_url: str | None = None
    staging_url: str | None = None

    master_keys: SecretStr | None = None
    master_keys_file: Path | None = None
    active_key_id: str | None = None

    public_url: str | None = None
    download_url: str | None = None
    trusted_proxies: str = ""

    # Who may upload (docs/configuration.md, "Who may upload"): anyone, holders of an
    # upload key, or whoever the auth proxy in front names in `proxy_user_header`.
    upload_policy: Literal["open", "keys", "proxy"] = "open"
    proxy_user_header: str = "X-Auth-Request-User"
    # The limits a name first seen from the auth proxy starts with (none when unset).
    proxy_default_max_bytes_per_day: int | None = None
    proxy_default_max_file_size: int | None = None
    proxy_default_max_ttl: int | None = None
    proxy_default_max_live_links: int | None = Field(default=None, ge=1)

    max_ttl: int = Field(default=24 * 3600)
    max_upload_bytes: int = Field(default=5 * 1024**3)
    # Staged and sealed bytes the stores may hold together; 0: no cap.
    max_stored_bytes: int = Field(default=0, ge=0)
    # 5 GiB at 1 Mbit/s; an upload still arriving after this is ended (408), so that the
    # janitor can treat older unfinished writes as abandoned.
    max_upload_seconds: float = Field(default=12 * 3600, gt=0)
    # A resumable (tus) or direct upload that receives no byte for this long is removed
    # with everything it staged; it must also end within `max_upload_seconds` of its creation.
    unfinished_upload_seconds: float = Field(default=3600, gt=0)
    upload_wait_seconds: float = 30.0
    # How long a presigned S3 UploadPart URL of a direct upload stays valid.
    direct_url_seconds: int = Field(default=900, gt=0)
    # The staging S3 endpoint as uploaders reach it, when it differs from the staging
    # URL's (an in-cluster name): direct uploads' URLs are presigned for it.
    direct_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^/?#]+/?$")
    max_upload_waiters: int = 256

    worker: Literal["embedded", "off"] = "embedded"
    # Whether the API seals an upload received in one request (PUT, the form) itself,
    # straight into its blob, instead of staging it for a worker. Unset: only when this
    # process runs the worker. On in production, API pods need write access to the blobs.
    seal_in_request: bool | None = None
    worker_concurrency: int = 2
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 5
    job_retry_base_seconds: float = 2.0
    janitor_interval_seconds: float = 60.0
    purge_grace_seconds: float = 60.0
    tombstone_days: int = 7
    staging_max_age_seconds: float | None = Field(default=None, ge=0)

    segment_log2: int = 20
    password_max_failures: int = 10
    password_lock_seconds: int = 300
    password_lock_max_seconds: int = 3600
    argon2_concurrency: int = 4
    argon2_memory_kib: int = 19456
    argon2_time_cost: int = 2

    negative_cache_ttl_seconds: float = 30.0
    redis_timeout_seconds: float = 0.05
    upload_rate_per_minute: int = 60
    client_password_failures: int = 30
    client_password_window_seconds: int = 600
    body_idle_timeout_seconds: float = 60.0
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_min_bytes_per_second: int = Field(default=1024, ge=0)
    send_timeout_seconds: float = Field(default=60.0, gt=0)
    drain_seconds: float = 0.0
    s3_read_timeout_seconds: float = 60.0
    s3_max_attempts: int = 5
    log_level: str = "info"

    @field_validator("direct_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return None if value == "" else value

    @field_validator("max_ttl", mode="before")
    @classmethod
    def _duration(cls, value: str | int) -> int:
        return parse_duration(value)

    @field_validator("max_upload_bytes", "max_stored_bytes", mode="before")
    @classmethod
    def _size(cls, value: str | int) -> int:
        return parse_size(value)

    @field_validator(
        "proxy_default_max_bytes_per_day", "proxy_default_max_file_size", mode="before"
    )
    @classmethod
    def _optional_size(cls, value: str | int | None) -> int | None:
        return None if value is None or value == "" else parse_size(value)

    @field_validator("proxy_default_max_ttl", mode="before")
    @classmethod
    def _optional_duration(cls, value: str | int | None) -> int | None:
        return None if value is None or value == "" else parse_duration(value)

    @field_validator("segment_log2")
    @classmethod
    def _segment(cls, value: int) -> int:
        if not 16 <= value <= 20:
            raise ValueError("segment_log2 must be between 16 and 20 (64 KiB to 1 MiB)")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        uses_s3 = any((url or "").startswith("s3://") for url in (self.storage_url,))
        if uses_s3 and self.master_keys is None and self.master_keys_file is None:
            raise ValueError(
                "S3 storage needs SEALDROP_MASTER_KEYS (or SEALDROP_MASTER_KEYS_FILE): "
                "a key file created inside a container would be lost with it"
            )
        return self

    @model_validator(mode="after")
    def _refuse_proxy_policy_without_proxies(self) -> Settings:
        if self.upload_policy != "proxy":
            return self
        if "*" in self.trusted_proxy_list:
            raise ValueError(
                "SEALDROP_UPLOAD_POLICY=proxy cannot trust every address (*): anybody "
                f"could name himself in {self.proxy_user_header}"
            )
        if not self.trusted_proxy_list:
            raise ValueError(
                "SEALDROP_UPLOAD_POLICY=proxy needs SEALDROP_TRUSTED_PROXIES: without it "
                "nobody could upload, or anybody could name himself in "
                f"{self.proxy_user_header}"
            )
        return self

    @model_validator(mode="after")
    def _refuse_sweeping_live_uploads(self) -> Settings:
        age = self.staging_max_age_seconds
        if age is not None and age <= self.max_upload_seconds:
            raise ValueError(
                f"SEALDROP_STAGING_MAX_AGE_SECONDS ({age:g}) must be longer than "
                f"SEALDROP_MAX_UPLOAD_SECONDS ({self.max_upload_seconds:g}): the janitor "
                "would abort uploads still arriving"
            )
        return self

    @model_validator(mode="after")
    def _refuse_uploads_outliving_s3_lifecycle(self) -> Settings:
        urls = (self.storage_url, self.staging_url)
        if not any((url or "").startswith("s3://") for url in urls):
            return self
        longest = S3_LIFECYCLE_DAYS * 86400 - SWEEP_MARGIN_SECONDS
        if self.max_upload_seconds > longest:
            raise ValueError(
                f"SEALDROP_MAX_UPLOAD_SECONDS ({self.max_upload_seconds:g}) must be at most "
                f"{longest} with S3: the buckets' lifecycle rules abort unfinished multipart "
                f"uploads after {S3_LIFECYCLE_DAYS} day"
            )
        return self

    @property
    def trusted_proxy_list(self) -> list[str]:
        """`SEALDROP_TRUSTED_PROXIES` as a list of addresses and networks."""
        return [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]

    @property
    def sweep_age_seconds(self) -> float:
        """How old an object or unfinished write that no row knows must be before the
        janitor removes it: SEALDROP_STAGING_MAX_AGE_SECONDS, else the longest upload and
        a margin. Jobs need no allowance: the janitor never touches a running job's write."""
        if self.staging_max_age_seconds is not None:
            return self.staging_max_age_seconds
        return self.max_upload_seconds + SWEEP_MARGIN_SECONDS

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite inside the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sealdrop.db').resolve()}"

    @cached_property
    def resolved_storage_url(self) -> str:
        """Where sealed blobs go, defaulting to `<data dir>/objects`."""
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'objects').resolve()}"

    @cached_property
    def resolved_staging_url(self) -> str:
        """Where uploads are staged: the staging URL, else the storage URL (prefix staging/)."""
        return self.staging_url or self.resolved_storage_url

    @cached_property
    def resolved_master_keys_file(self) -> Path:
        """The key ring file used when SEALDROP_MASTER_KEYS is not set."""
        return self.master_keys_file or self.data_dir / "master.keys"

    @property
    def seals_in_request(self) -> bool:
        """Whether uploads received in one request are sealed into their blobs at once."""
        if self.seal_in_request is None:
            return self.worker == "embedded"
        return self.seal_in_request

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite (the embedded mode's)."""
        return self.resolved_database_url.startswith("sqlite")
