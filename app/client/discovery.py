"""What the server offers (`GET /api/v1/`) and which upload path the client takes.

A server without the discovery document (an older Sealdrop: 404, or an answer that is not
its JSON) still takes `PUT /<name>`, so the client falls back to that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin

import httpx

from app.client.errors import EXIT_REFUSED, ClientError
from app.client.http import fail, with_retries

Via = Literal["auto", "put", "tus", "direct"]
DEFAULT_TUS_CHUNK = 50 * 1024 * 1024


@dataclass(frozen=True)
class Offer:
    """The server's upload paths, as absolute URLs (None: not offered)."""

    put_url: str
    tus_url: str | None = None
    tus_chunk_size: int = DEFAULT_TUS_CHUNK
    direct_url: str | None = None
    max_upload_bytes: int | None = None


def parse_offer(server: str, document: Any) -> Offer:
    """The `Offer` of a discovery document; PUT only when it is not one of ours."""
    base = server.rstrip("/") + "/"
    if not isinstance(document, dict) or document.get("service") != "sealdrop":
        return Offer(put_url=base)
    uploads = document.get("uploads")
    uploads = uploads if isinstance(uploads, dict) else {}

    def url_of(name: str) -> str | None:
        entry = uploads.get(name)
        url = entry.get("url") if isinstance(entry, dict) else None
        return urljoin(base, url) if isinstance(url, str) else None

    tus = uploads.get("tus") if isinstance(uploads.get("tus"), dict) else {}
    chunk = tus.get("chunk_size") if isinstance(tus, dict) else None
    limit = document.get("max_upload_bytes")
    return Offer(
        put_url=url_of("put") or base,
        tus_url=url_of("tus"),
        tus_chunk_size=chunk if isinstance(chunk, int) and chunk > 0 else DEFAULT_TUS_CHUNK,
        direct_url=url_of("direct"),
        max_upload_bytes=limit if isinstance(limit, int) else None,
    )


def discover(client: httpx.Client, server: str) -> Offer:
    """Ask the server what it offers; PUT only when it does not say."""
    url = server.rstrip("/") + "/api/v1/"
    response = with_retries(lambda: client.get(url), "discovery")
    if response.status_code in (404, 405):
        return Offer(put_url=server.rstrip("/") + "/")
    if response.status_code != 200:
        raise fail(response, "discovery")
    try:
        document = json.loads(response.content)
    except ValueError:
        document = None
    return parse_offer(server, document)


def choose(offer: Offer, via: Via) -> Literal["put", "tus", "direct"]:
    """The upload path: the one asked for, else tus when offered, else PUT.

    Direct uploads (the client seals, the bytes go straight to S3) are taken only when
    asked for with `--via direct`: they need the server's S3 staging reachable from here.
    """
    if via == "put":
        return "put"
    if via == "tus":
        if offer.tus_url is None:
            raise ClientError("the server offers no resumable (tus) uploads", EXIT_REFUSED)
        return "tus"
    if via == "direct":
        if offer.direct_url is None:
            raise ClientError("the server offers no direct uploads", EXIT_REFUSED)
        return "direct"
    return "tus" if offer.tus_url is not None else "put"
