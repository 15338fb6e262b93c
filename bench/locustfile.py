"""A mixed, hostile-ish load on Sealdrop for locust (headless): uploads, Range reads, wrong
passwords and unknown tokens, each answer checked as it comes.

    LOAD_RESULTS=/tmp/load.json locust -f bench/locustfile.py --headless \\
        -u 6 -r 6 -t 40s --host http://127.0.0.1:8000

The hostile suite runs it (tests/hostile/test_load.py), which sets the variables below and
then checks the queue drained and the uploads download byte-identical. Only loopback
addresses are ever a target of it. Settings, from the environment:

- `LOAD_MIN_BYTES`, `LOAD_MAX_BYTES`: upload sizes (default 1 MB to 4 MB);
- `LOAD_BUDGET_BYTES`: how much the run uploads in all (default 1 GB); past it, the
  other requests go on (a test S3 server that keeps objects in memory must not fill up);
- `LOAD_PASSWORD_LINK`: a protected link (token) the wrong passwords go to (none: no
  password guessing);
- `LOAD_CLIENT_ADDRESS`: sent as `X-Forwarded-For` (the API trusts it from loopback when
  `SEALDROP_TRUSTED_PROXIES` says so), so per-client counters of the run stay its own;
- `LOAD_RESULTS`: where the run writes what it uploaded (token, size, SHA-256), how every
  kind of request was answered, and every answer it did not expect.

Content is made from a seed, block by block (SHAKE-128), so that any range of any upload
can be checked without keeping the file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task

BLOCK = 1 << 16
MIN_BYTES = int(os.environ.get("LOAD_MIN_BYTES", str(1_000_000)))
MAX_BYTES = int(os.environ.get("LOAD_MAX_BYTES", str(4_000_000)))
CLIENT_ADDRESS = os.environ.get("LOAD_CLIENT_ADDRESS", "")
PASSWORD_LINK = os.environ.get("LOAD_PASSWORD_LINK", "")
RESULTS = os.environ.get("LOAD_RESULTS", "")
BUDGET_BYTES = int(os.environ.get("LOAD_BUDGET_BYTES", str(1_000_000_000)))
TIMEOUT_SECONDS = 600
STREAM_ABOVE = 8_000_000

_lock = threading.Lock()
_uploads: list[dict[str, Any]] = []
_answers: Counter[str] = Counter()
_problems: list[str] = []
_spent = [0]


def block(seed: int, index: int) -> bytes:
    """Block `index` of the content made from `seed`."""
    return hashlib.shake_128(b"%d:%d" % (seed, index)).digest(BLOCK)


def content(seed: int, start: int, stop: int) -> bytes:
    """Bytes [start, stop) of the content made from `seed`."""
    first, last = start // BLOCK, (stop - 1) // BLOCK
    data = b"".join(block(seed, i) for i in range(first, last + 1))
    return data[start - first * BLOCK : stop - first * BLOCK]


def _blocks(seed: int, size: int, digest: Any) -> Iterator[bytes]:
    """The content made from `seed`, a block at a time, fed to `digest` on the way."""
    for start in range(0, size, BLOCK):
        chunk = content(seed, start, min(size, start + BLOCK))
        digest.update(chunk)
        yield chunk


def _spend(size: int) -> bool:
    """Take `size` bytes from the run's upload budget; False once it is spent."""
    with _lock:
        if _spent[0] + size > BUDGET_BYTES:
            return False
        _spent[0] += size
        return True


def _record(kind: str, status: int, expected: bool, detail: str = "") -> None:
    with _lock:
        _answers[f"{kind} {status}"] += 1
        if not expected:
            _problems.append(f"{kind}: {status} {detail}"[:300])


def _retry_after_ok(response: Any) -> bool:
    return str(response.headers.get("Retry-After", "")).isdigit()


class Visitor(HttpUser):
    """One client: uploads files, reads ranges of them, guesses passwords and tokens."""

    wait_time = between(0.0, 0.2)

    def on_start(self) -> None:
        """This user's headers, and its uploads so far (none)."""
        self.headers = {"X-Forwarded-For": CLIENT_ADDRESS} if CLIENT_ADDRESS else {}
        self.mine: list[dict[str, Any]] = []

    @task(3)
    def upload(self) -> None:
        """PUT a file of a random size; half of them do not wait for sealing. Large ones
        stream (chunked), made block by block, so no user stalls the others for long."""
        seed, size = secrets.randbits(48), random.randint(MIN_BYTES, MAX_BYTES)
        if not _spend(size):
            return
        digest = hashlib.sha256()
        data = _blocks(seed, size, digest) if size > STREAM_ABOVE else content(seed, 0, size)
        if isinstance(data, bytes):
            digest.update(data)
        headers = {**self.headers, "Accept": "application/json"}
        if random.random() < 0.5:
            headers["Prefer"] = "respond-async"
        with self.client.put(
            f"/load-{seed}.bin",
            data=data,
            headers=headers,
            name="PUT /<name>",
            catch_response=True,
            timeout=TIMEOUT_SECONDS,
        ) as answer:
            ok = answer.status_code in (201, 202)
            _record("upload", answer.status_code, ok, answer.text[:200])
            if not ok:
                answer.failure(f"upload answered {answer.status_code}")
                return
            made = answer.json()
            if made["sha256"] != digest.hexdigest() or made["size"] != size:
                _record("upload-digest", answer.status_code, False, "the answer's digest differs")
                answer.failure("the upload's digest differs")
                return
        upload = {"token": made["token"], "seed": seed, "size": size, "sha256": made["sha256"]}
        self.mine.append(upload)
        with _lock:
            _uploads.append(upload)

    @task(4)
    def read_range(self) -> None:
        """GET a random range of one of this user's uploads and check its bytes."""
        if not self.mine:
            return
        upload = random.choice(self.mine)
        start = random.randrange(upload["size"])
        stop = min(upload["size"], start + random.randint(1, 3 * BLOCK))
        headers = {**self.headers, "Range": f"bytes={start}-{stop - 1}"}
        with self.client.get(
            f"/d/{upload['token']}",
            headers=headers,
            name="GET /d/<token> (Range)",
            catch_response=True,
            timeout=TIMEOUT_SECONDS,
        ) as answer:
            if answer.status_code == 503 and _retry_after_ok(answer):
                _record("range", 503, True)  # still being sealed: expected
                answer.success()
                return
            expected = content(upload["seed"], start, stop)
            ok = answer.status_code == 206 and answer.content == expected
            _record("range", answer.status_code, ok, "bytes differ" if answer.ok else "")
            if not ok:
                answer.failure(f"range answered {answer.status_code} or wrong bytes")

    @task(1)
    def wrong_password(self) -> None:
        """GET the protected link with a wrong password: 401, or 429 once it is locked."""
        if not PASSWORD_LINK:
            return
        guess = base64.b64encode(b":wrong-" + secrets.token_hex(4).encode()).decode()
        with self.client.get(
            f"/d/{PASSWORD_LINK}",
            headers={**self.headers, "Authorization": f"Basic {guess}"},
            name="GET /d/<protected> (wrong password)",
            catch_response=True,
            timeout=TIMEOUT_SECONDS,
        ) as answer:
            ok = answer.status_code == 401 or (
                answer.status_code == 429 and _retry_after_ok(answer)
            )
            _record("wrong-password", answer.status_code, ok)
            if ok:
                answer.success()
            else:
                answer.failure(f"a wrong password answered {answer.status_code}")

    @task(2)
    def unknown_token(self) -> None:
        """GET a token that never existed, as a file and as the API's status: 404."""
        token = secrets.token_urlsafe(16)
        path = random.choice([f"/d/{token}", f"/api/v1/links/{token}", f"/s/{token}"])
        with self.client.get(
            path,
            headers=self.headers,
            name="GET <unknown token>",
            catch_response=True,
            timeout=TIMEOUT_SECONDS,
        ) as answer:
            ok = answer.status_code == 404
            _record("unknown-token", answer.status_code, ok)
            if ok:
                answer.success()
            else:
                answer.failure(f"an unknown token answered {answer.status_code}")


@events.quitting.add_listener
def _write_results(environment: Any, **_kwargs: Any) -> None:
    if not RESULTS:
        return
    with _lock:
        report = {
            "uploads": list(_uploads),
            "answers": dict(_answers),
            "problems": list(_problems),
            "requests": environment.stats.total.num_requests,
            "failures": environment.stats.total.num_failures,
        }
    Path(RESULTS).write_text(json.dumps(report, indent=1))
