"""Uploading a file in one request: `PUT /<name>`, streamed from disk.

What every server takes; nothing to resume (a broken PUT starts again from zero).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from app.client.errors import ClientError
from app.client.http import fail, with_retries
from app.client.progress import Meter

CHUNK = 1 << 20
LINK_FIELDS = ("token", "url", "download_url", "manage_token", "expires_at", "state", "size")


@dataclass(frozen=True)
class SendOptions:
    """The link's options, as the user gave them, and the upload key if any."""

    expires: str | None = None
    max_downloads: int | None = None
    password: str | None = None
    upload_key: str | None = None


def auth_headers(options: SendOptions) -> dict[str, str]:
    """The Bearer upload key, for servers whose policy asks for one."""
    return {"Authorization": f"Bearer {options.upload_key}"} if options.upload_key else {}


def option_headers(options: SendOptions) -> dict[bytes, bytes]:
    """The PUT headers of the link options, as bytes (the password is raw UTF-8)."""
    headers = {name.encode(): value.encode() for name, value in auth_headers(options).items()}
    if options.expires is not None:
        headers[b"Expires-In"] = options.expires.encode()
    if options.max_downloads is not None:
        headers[b"Max-Downloads"] = str(options.max_downloads).encode()
    if options.password is not None:
        headers[b"Link-Password"] = options.password.encode()
    return headers


def file_chunks(path: Path, start: int, stop: int, meter: Meter) -> Iterator[bytes]:
    """Bytes `[start, stop)` of `path`, a chunk at a time, counted on `meter`."""
    with path.open("rb") as file:
        file.seek(start)
        left = stop - start
        while left > 0:
            chunk = file.read(min(CHUNK, left))
            if not chunk:
                raise ClientError(f"{path.name}: the file shrank while it was being sent")
            left -= len(chunk)
            meter.advance(len(chunk))
            yield chunk


def link_of(response: httpx.Response, what: str) -> dict[str, Any]:
    """The link-creation JSON of an answer, checked to be one."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("url"), str):
        raise ClientError(f"{what}: the server's answer holds no link")
    return body


def put_upload(
    client: httpx.Client, put_url: str, path: Path, options: SendOptions, meter: Meter
) -> dict[str, Any]:
    """PUT the whole file; the link-creation JSON of the answer."""
    size = path.stat().st_size
    url = put_url.rstrip("/") + "/" + quote(path.name, safe="")
    headers = {**option_headers(options), b"Content-Length": str(size).encode()}

    def send() -> httpx.Response:
        meter.restart_at(0)
        return client.put(url, content=file_chunks(path, 0, size, meter), headers=headers)

    response = with_retries(send, f"upload of {path.name}")
    if response.status_code not in (200, 201, 202):
        raise fail(response, f"upload of {path.name}")
    return link_of(response, f"upload of {path.name}")
