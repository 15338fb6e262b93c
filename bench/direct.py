"""The direct-upload client of the bench: seal each part in this process (as a browser or
`sealdrop send` would) and PUT it straight to S3, a few parts at a time, then complete.

Unlike the curl cases, the client's own work (reading and sealing) is part of the time:
that is the cost a direct upload moves from the API to the uploader.
"""

from __future__ import annotations

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from app.crypto.sealing import PartPlan, parse_header, seal_part

API = "/api/v1/direct-uploads"
PARALLEL_PARTS = 3


def _b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def upload(base_url: str, source: Path) -> tuple[float, dict[str, Any]]:
    """Create, seal and PUT every part, complete (waiting for sealing); seconds and answer."""
    size = source.stat().st_size
    started = time.monotonic()
    with httpx.Client(timeout=900, trust_env=False) as http:
        created = http.post(base_url + API, json={"filename": source.name, "size": size})
        created.raise_for_status()
        plan_json = created.json()
        key, header = _b64(plan_json["staging_key"]), _b64(plan_json["header"])
        plan = PartPlan(size, plan_json["part_size"], parse_header(header)[0])

        def send(part: dict[str, Any]) -> None:
            number = part["number"]
            start, stop = plan.plain_range(number)
            with source.open("rb") as file:
                file.seek(start)
                plain = file.read(stop - start)
            body = seal_part(
                key, header, plan.first_segment(number), plain, last=plan.is_last(number)
            )
            http.put(part["url"], content=body).raise_for_status()

        with ThreadPoolExecutor(PARALLEL_PARTS) as pool:
            list(pool.map(send, plan_json["parts"]))
        sent = time.monotonic()
        done = http.post(
            base_url + plan_json["upload_url"] + "/complete",
            headers={"Accept": "application/json"},
        )
    seconds = time.monotonic() - started
    # Where the time went: the client's sealing and PUTs, then completion and the worker.
    parts_seconds = sent - started
    print(
        f"    direct: parts sent {parts_seconds:.1f} s, "
        f"complete → ready {seconds - parts_seconds:.1f} s",
        flush=True,
    )
    if done.status_code != 201:
        raise RuntimeError(f"direct → ready: {done.status_code} {done.text[:300]!r}")
    answer: dict[str, Any] = done.json()
    return seconds, answer
