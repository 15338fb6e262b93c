"""The clients the benchmark drives servers with: curl for bytes, wrk for requests per second.

Both are C programs, so the client costs the same CPU against nginx, S3 and Sealdrop, and
the ratios compare servers. curl reports its own transfer time (`time_total`), which leaves
out the cost of starting it.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any
from urllib.parse import urlsplit

_CURL = ("curl", "--silent", "--show-error", "--noproxy", "*", "-H", "Expect:")
_WRITE_OUT = "%{http_code} %{size_download} %{size_upload} %{time_total}"


@dataclass(frozen=True)
class Transfer:
    """One curl transfer: status, bytes each way, seconds, and the answer's body."""

    status: int
    downloaded: int
    uploaded: int
    seconds: float
    body: bytes = b""

    def json(self) -> Any:
        """The answer's body as JSON."""
        return json.loads(self.body)


def _curl(*args: str, body_file: Path | None = None) -> Transfer:
    output = ["-o", str(body_file) if body_file else "/dev/null"]
    result = subprocess.run(
        [*_CURL, *output, "-w", _WRITE_OUT, *args], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args)}: {result.stderr.decode().strip()}")
    status, down, up, seconds = result.stdout.decode().split()
    body = body_file.read_bytes() if body_file else b""
    return Transfer(int(status), int(down), int(up), float(seconds), body)


def get(url: str, *, byte_range: tuple[int, int] | None = None) -> Transfer:
    """GET `url` to /dev/null, optionally one byte range (inclusive ends)."""
    extra = ("-r", f"{byte_range[0]}-{byte_range[1]}") if byte_range else ()
    return _curl(*extra, url)


def put(url: str, source: Path, *, answer: Path | None = None) -> Transfer:
    """PUT the file `source` as the raw body, asking for a JSON answer."""
    return _curl("-T", str(source), "-H", "Accept: application/json", url, body_file=answer)


def post_form(url: str, source: Path, *, answer: Path) -> Transfer:
    """POST the file `source` as the `file` field of a multipart form."""
    return _curl("-F", f"file=@{source}", "-H", "Accept: application/json", url, body_file=answer)


def delete(url: str, *, bearer: str | None = None) -> Transfer:
    """DELETE `url`."""
    extra = ("-H", f"Authorization: Bearer {bearer}") if bearer else ()
    return _curl("-X", "DELETE", *extra, url)


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_TOTAL = re.compile(r"(\d+) requests in")


@dataclass(frozen=True)
class Load:
    """One wrk run: requests per second, and how many answers were not 2xx/3xx."""

    rps: float
    requests: int
    non_2xx: int


def wrk(url: str, *, seconds: float, connections: int = 16) -> Load:
    """Load `url` with wrk (one thread, `connections` keep-alive connections)."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", url],
        capture_output=True,
        text=True,
        check=True,
    )
    rps = _RPS.search(result.stdout)
    total = _TOTAL.search(result.stdout)
    if rps is None or total is None:
        raise RuntimeError(f"wrk printed no rate: {result.stdout}{result.stderr}")
    non_2xx = _NON_2XX.search(result.stdout)
    return Load(float(rps[1]), int(total[1]), int(non_2xx[1]) if non_2xx else 0)


def small_upload_latencies(
    base_url: str, data: bytes, count: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """PUT `data` `count` times over one keep-alive connection; seconds until each 201.

    The PUT waits for sealing, so each time is upload → link ready. Returns the times and
    the JSON answers (to delete the links afterwards).
    """
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    times: list[float] = []
    answers: list[dict[str, Any]] = []
    try:
        for index in range(count):
            started = time.perf_counter()
            connection.request(
                "PUT", f"/small-{index}.bin", body=data, headers={"Accept": "application/json"}
            )
            answer = connection.getresponse()
            body = answer.read()
            times.append(time.perf_counter() - started)
            if answer.status != 201:
                raise RuntimeError(f"small upload answered {answer.status}: {body[:200]!r}")
            answers.append(json.loads(body))
    finally:
        connection.close()
    return times, answers


def median_ms(times: list[float]) -> float:
    """The median of `times` (seconds), in milliseconds."""
    return median(times) * 1000


@dataclass(frozen=True)
class TusUpload:
    """One resumable upload: seconds from creation to the link ready, and its secrets."""

    seconds: float
    token: str
    manage_token: str


_TUS = ("-H", "Tus-Resumable: 1.0.0")


def tus_upload(base_url: str, chunks: list[Path], size: int, *, scratch: Path) -> TusUpload:
    """Upload `chunks` (the file cut in order) with tus: a POST, then one curl process
    sending each chunk as a PATCH over one keep-alive connection, then wait (polling the
    upload's JSON every 10 ms) until the link is ready, as `PUT → ready` waits for its 201.
    """
    started = time.perf_counter()
    location = _tus_create(base_url, size, scratch / "tus-created.txt")
    patches: list[str] = [_CURL[0]]
    offset = 0
    for number, chunk in enumerate(chunks):
        headers = scratch / f"tus-patch-{number}.txt"
        # `--next` resets the options: each PATCH states them all again.
        patches += [*(("--next",) if number else ()), *_CURL[1:], *_TUS, "-X", "PATCH"]
        patches += ["-H", "Content-Type: application/offset+octet-stream"]
        patches += ["-H", f"Upload-Offset: {offset}", "-T", str(chunk), "-o", "/dev/null"]
        patches += ["-D", str(headers), location]
        offset += chunk.stat().st_size
    result = subprocess.run(patches, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tus PATCHes: {result.stderr.decode().strip()}")
    last = _headers(scratch / f"tus-patch-{len(chunks) - 1}.txt")
    for number in range(len(chunks)):
        # curl goes on after an answer that is not a success: name the first one.
        status = _status_line(scratch / f"tus-patch-{number}.txt")
        if " 204" not in status:
            if " 503" not in status:
                raise RuntimeError(f"tus PATCH {number + 1} of {len(chunks)} answered {status!r}")
            # What a tus client does after a server error: ask for the offset, go on.
            print(f"    tus: PATCH {number + 1} answered {status!r}; resuming", flush=True)
            last = _resume(location, chunks, size)
            break
    if last.get("upload-offset") != str(size) or "sealdrop-link" not in last:
        raise RuntimeError(f"tus upload did not complete: {last}")
    _wait_ready(location)
    seconds = time.perf_counter() - started
    token = last["sealdrop-link"].rsplit("/", 1)[1]
    return TusUpload(seconds, token, last["sealdrop-manage-token"])


def _resume(location: str, chunks: list[Path], size: int) -> dict[str, str]:
    """Send the rest of a tus upload from the offset the server holds (HEAD), in one PATCH
    read from the chunk files; the answer's headers."""
    parts = urlsplit(location)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    tus = {"Tus-Resumable": "1.0.0"}
    try:
        connection.request("HEAD", parts.path, headers=tus)
        head = connection.getresponse()
        head.read()
        offset = int(head.headers["Upload-Offset"])
        headers = {
            **tus,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset),
            "Content-Length": str(size - offset),
        }
        connection.request("PATCH", parts.path, body=_bytes_from(chunks, offset), headers=headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 204:
            raise RuntimeError(f"tus resume from {offset} answered {answer.status}")
        return {name.lower(): value for name, value in answer.getheaders()}
    finally:
        connection.close()


def _bytes_from(chunks: list[Path], offset: int) -> Iterator[bytes]:
    """The bytes of the file cut into `chunks`, from `offset` on, 1 MiB at a time."""
    for chunk in chunks:
        length = chunk.stat().st_size
        if offset >= length:
            offset -= length
            continue
        with chunk.open("rb") as source:
            source.seek(offset)
            offset = 0
            while block := source.read(1 << 20):
                yield block


def _tus_create(base_url: str, size: int, headers: Path) -> str:
    answer = _curl(
        *_TUS, "-X", "POST", "-H", f"Upload-Length: {size}", "-D", str(headers),
        f"{base_url}/api/v1/uploads/",
    )  # fmt: skip
    if answer.status != 201:
        raise RuntimeError(f"tus creation answered {answer.status}")
    return _headers(headers)["location"]


def _status_line(path: Path) -> str:
    """The final answer's status line (after any `100 Continue`)."""
    statuses = [line.strip() for line in path.read_text().splitlines() if line.startswith("HTTP/")]
    return statuses[-1] if statuses else "no answer"


def _headers(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, colon, value = line.partition(":")
        if colon:
            found[name.strip().lower()] = value.strip()
    return found


def _wait_ready(upload_url: str) -> None:
    parts = urlsplit(upload_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        while True:
            connection.request("GET", parts.path, headers={"Accept": "application/json"})
            answer = connection.getresponse()
            state = json.loads(answer.read()).get("state")
            if state == "ready":
                return
            if state == "failed":
                raise RuntimeError("the tus upload's link failed")
            time.sleep(0.01)
    finally:
        connection.close()
