"""A Python client of the direct-upload API for tests and the bench: create, seal each
part with `seal_part` under the answer's staging key, PUT it to its presigned URL, complete."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from app.crypto.sealing import PartPlan, parse_header, seal_part

API = "/api/v1/direct-uploads"


def b64decode(text: str) -> bytes:
    """base64url without padding, as the API sends keys and headers."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def create(base_url: str, filename: str, size: int, **options: Any) -> dict[str, Any]:
    """POST a new direct upload; the 201 answer's JSON."""
    answer = httpx.post(
        base_url + API, json={"filename": filename, "size": size, **options}, timeout=60
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def plan_of(created: dict[str, Any]) -> PartPlan:
    """The part plan the answer describes."""
    log2 = parse_header(b64decode(created["header"]))[0]
    return PartPlan(created["size"], created["part_size"], log2)


def sealed_part(
    created: dict[str, Any], path: Path, number: int, *, key: bytes | None = None
) -> bytes:
    """Part `number` of the file at `path`, sealed as the API asks (or under `key`)."""
    plan = plan_of(created)
    start, stop = plan.plain_range(number)
    with path.open("rb") as source:
        source.seek(start)
        plaintext = source.read(stop - start)
    return seal_part(
        key or b64decode(created["staging_key"]),
        b64decode(created["header"]),
        plan.first_segment(number),
        plaintext,
        last=plan.is_last(number),
    )


def put_part(url: str, body: bytes) -> httpx.Response:
    """PUT one sealed part to its presigned URL (straight to S3)."""
    return httpx.put(url, content=body, timeout=120)


def put_parts(
    created: dict[str, Any], path: Path, numbers: Iterable[int] | None = None
) -> list[str]:
    """PUT the parts `numbers` (all by default); their ETags."""
    urls = {part["number"]: part["url"] for part in created["parts"]}
    etags = []
    for number in numbers or sorted(urls):
        answer = put_part(urls[number], sealed_part(created, path, number))
        assert answer.status_code == 200, answer.text
        etags.append(answer.headers["etag"])
    return etags


def complete(base_url: str, created: dict[str, Any], **headers: str) -> httpx.Response:
    """POST the completion (JSON answer)."""
    return httpx.post(
        base_url + created["upload_url"] + "/complete",
        headers={"Accept": "application/json", **headers},
        timeout=120,
    )


def upload(base_url: str, path: Path, **options: Any) -> dict[str, Any]:
    """The whole direct upload of `path`; the link-creation JSON."""
    created = create(base_url, path.name, path.stat().st_size, **options)
    put_parts(created, path)
    answer = complete(base_url, created)
    assert answer.status_code in (201, 202), answer.text
    link: dict[str, Any] = answer.json()
    return link
