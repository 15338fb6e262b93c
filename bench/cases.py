"""The benchmark's cases: each moves bytes (or answers requests) once and is measured.

A case returns a `Sample`: its speed (MB/s, ms or requests/s) and, for Sealdrop cases, the
CPU and peak memory of every Sealdrop process while it ran. Cases that create links delete
them afterwards, outside the measurement; the janitor runs between rounds, so that rounds
do not fill memory.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench import clients
from bench.floor import Floor
from bench.nginx import Nginx
from bench.stacks import Stack
from bench.system import Probe, Usage, warm_memory

MB = 1_000_000
GIB = 1 << 30
UNKNOWN_TOKEN = "bench-unknown-token-0000000000"
# What a tus client sends per PATCH: the chunk size `GET /api/v1/` advises.
TUS_CHUNK = 50 * 1024 * 1024


@dataclass
class Sample:
    """One measurement of one case."""

    case: str
    value: float
    unit: str  # "MB/s", "ms" or "req/s"
    nbytes: int = 0
    usage: dict[str, Usage] = field(default_factory=dict)

    @property
    def cpu_per_gib(self) -> float | None:
        """Server CPU seconds per GiB moved (all the server's processes together)."""
        if not self.nbytes or not self.usage:
            return None
        return sum(u.cpu_seconds for u in self.usage.values()) / (self.nbytes / GIB)

    @property
    def kernel_per_gib(self) -> float | None:
        """The part of `cpu_per_gib` spent in the kernel (socket and file copies, pages)."""
        if not self.nbytes or not self.usage:
            return None
        return sum(u.kernel_seconds for u in self.usage.values()) / (self.nbytes / GIB)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "case": self.case,
            "value": round(self.value, 3),
            "unit": self.unit,
            "bytes": self.nbytes,
            "cpu_s_per_gib": None if self.cpu_per_gib is None else round(self.cpu_per_gib, 3),
            "processes": {
                name: {
                    "cpu_s": round(u.cpu_seconds, 3),
                    "kernel_s": round(u.kernel_seconds, 3),
                    "idle_rss_mib": round(u.idle_rss / 2**20, 1),
                    "peak_rss_mib": round(u.peak_rss / 2**20, 1),
                }
                for name, u in self.usage.items()
            },
        }


def sample_from_dict(data: dict[str, Any]) -> Sample:
    """A sample back from its JSON form (`Sample.as_dict`), memory to 0.1 MiB."""
    usage = {
        name: Usage(
            cpu_seconds=p["cpu_s"],
            idle_rss=round(p["idle_rss_mib"] * 2**20),
            peak_rss=round(p["peak_rss_mib"] * 2**20),
            kernel_seconds=p.get("kernel_s", 0.0),
        )
        for name, p in data["processes"].items()
    }
    return Sample(data["case"], data["value"], data["unit"], data["bytes"], usage)


@contextmanager
def measured(probes: list[Probe], usage: dict[str, Usage]) -> Any:
    """Fill `usage` with what each probed process used during the block."""
    for probe in probes:
        probe.start()
    yield
    for probe in probes:
        usage[probe.name] = probe.stop()


def mbps(nbytes: int, seconds: float) -> float:
    """Megabytes (10^6) per second."""
    return nbytes / seconds / MB


@dataclass
class Files:
    """The test files on tmpfs: one large random file and one of 4 KiB."""

    big: Path
    small: Path
    size: int

    @property
    def byte_range(self) -> tuple[int, int]:
        """An unaligned middle half of the large file (inclusive ends)."""
        return self.size // 4 + 12_345, 3 * self.size // 4 + 6_789

    @property
    def range_length(self) -> int:
        """How many bytes `byte_range` holds."""
        first, last = self.byte_range
        return last - first + 1


def make_files(folder: Path, size: int) -> Files:
    """Write a random file of `size` bytes (1 MiB at a time) and a 4 KiB one."""
    folder.mkdir(parents=True, exist_ok=True)
    big, small = folder / "big.bin", folder / "small.bin"
    if not big.exists() or big.stat().st_size != size:
        with big.open("wb") as out:
            block = os.urandom(1 << 20)
            for offset in range(0, size, 1 << 20):
                # Vary each block cheaply so that nothing downstream sees repeats.
                out.write(offset.to_bytes(8, "big") + block[8 : min(1 << 20, size - offset)])
    small.write_bytes(os.urandom(4096))
    return Files(big, small, size)


def split_file(source: Path, folder: Path, chunk: int = TUS_CHUNK) -> list[Path]:
    """Cut `source` into files of `chunk` bytes (the last shorter), for tus PATCHes: curl
    sends a whole file, never a slice of one. A sparse source gives sparse chunks."""
    folder.mkdir(parents=True, exist_ok=True)
    size = source.stat().st_size
    sparse = source.stat().st_blocks == 0
    chunks: list[Path] = []
    with source.open("rb") as data:
        for number, offset in enumerate(range(0, max(size, 1), chunk)):
            path = folder / f"chunk-{number:05d}"
            length = min(chunk, size - offset)
            chunks.append(path)
            with path.open("wb") as out:
                if sparse:
                    out.truncate(length)
                    continue
                data.seek(offset)
                for _ in range(0, length, 1 << 20):
                    out.write(data.read(min(1 << 20, length - out.tell())))
    return chunks


class SealdropCases:
    """The Sealdrop side of a round, against one stack (and its cache-off twin)."""

    def __init__(self, stack: Stack, files: Files, scratch: Path, *, cache_off: Stack) -> None:
        self.stack = stack
        self.cache_off = cache_off
        self.files = files
        self.scratch = scratch
        self.token = ""
        self._tus_chunks: list[Path] = []

    def prepare(self) -> None:
        """Upload the large file once: the GET cases download it."""
        answer = clients.put(
            f"{self.stack.base_url}/big.bin", self.files.big, answer=self.scratch / "prepare.json"
        )
        if answer.status != 201:
            raise RuntimeError(f"preparing the download link failed: {answer.body[:300]!r}")
        self.token = answer.json()["token"]

    def download(self, name: str = "GET") -> Sample:
        """GET the whole sealed file (decrypting every segment)."""
        return self._get(name, None, self.files.size)

    def download_range(self) -> Sample:
        """GET an unaligned middle half of the sealed file."""
        return self._get("GET range", self.files.byte_range, self.files.range_length)

    def upload(self, name: str = "PUT → ready") -> Sample:
        """PUT the large file and wait for the link to be ready (201)."""
        return self._upload(name, clients.put, "/big.bin")

    def upload_form(self) -> Sample:
        """POST the large file as a multipart form and wait for the link to be ready."""
        return self._upload("POST form → ready", clients.post_form, "/api/v1/links")

    def upload_direct(self) -> Sample:
        """A direct upload of the large file (sealed here, parts PUT to S3) until ready."""
        from bench import direct

        usage: dict[str, Usage] = {}
        warm_memory(self.stack.root, 2 * self.files.size)
        with measured(self.stack.probes, usage):
            seconds, created = direct.upload(self.stack.base_url, self.files.big)
        self._delete(created)
        return Sample(
            "direct → ready", mbps(self.files.size, seconds), "MB/s", self.files.size, usage
        )

    def upload_tus(self, name: str = "tus → ready") -> Sample:
        """Upload the large file with tus in 50 MiB PATCHes and wait for the link to be ready."""
        if not self._tus_chunks:
            self._tus_chunks = split_file(self.files.big, self.scratch / "tus-chunks")
        usage: dict[str, Usage] = {}
        warm_memory(self.stack.root, 2 * self.files.size)
        with measured(self.stack.probes, usage):
            done = clients.tus_upload(
                self.stack.base_url, self._tus_chunks, self.files.size, scratch=self.scratch
            )
        self._delete({"token": done.token, "manage_token": done.manage_token})
        return Sample(name, mbps(self.files.size, done.seconds), "MB/s", self.files.size, usage)

    def small_latency(self, count: int) -> Sample:
        """The median time from a 4 KiB PUT to its 201 (sealed and ready)."""
        usage: dict[str, Usage] = {}
        with measured(self.stack.probes, usage):
            times, answers = clients.small_upload_latencies(
                self.stack.base_url, self.files.small.read_bytes(), count
            )
        for answer in answers:
            self._delete(answer)
        return Sample("4 KiB PUT → ready", clients.median_ms(times), "ms", usage=usage)

    def unknown_rps(self, seconds: float, *, cache: bool) -> Sample:
        """Requests per second for one unknown token, negative cache warm or off."""
        stack = self.stack if cache else self.cache_off
        url = f"{stack.base_url}/d/{UNKNOWN_TOKEN}"
        clients.get(url)  # warms the cache
        usage: dict[str, Usage] = {}
        with measured(stack.probes, usage):
            load = clients.wrk(url, seconds=seconds)
        name = "unknown token, cache warm" if cache else "unknown token, cache off"
        return Sample(name, load.rps, "req/s", usage=usage)

    def trivial_rps(self, seconds: float) -> Sample:
        """Requests per second of `/healthz` on the same server (the reference)."""
        usage: dict[str, Usage] = {}
        with measured(self.stack.probes, usage):
            load = clients.wrk(f"{self.stack.base_url}/healthz", seconds=seconds)
        return Sample("GET /healthz", load.rps, "req/s", usage=usage)

    def _get(self, name: str, byte_range: tuple[int, int] | None, expected: int) -> Sample:
        usage: dict[str, Usage] = {}
        with measured(self.stack.probes, usage):
            answer = clients.get(f"{self.stack.base_url}/d/{self.token}", byte_range=byte_range)
        if answer.status not in (200, 206) or answer.downloaded != expected:
            raise RuntimeError(f"{name}: {answer.status}, {answer.downloaded} bytes")
        return Sample(name, mbps(expected, answer.seconds), "MB/s", expected, usage)

    def upload_and_keep(self, name: str) -> Sample:
        """PUT the large file and keep the link: the GET cases download it afterwards."""
        return self._upload(name, clients.put, "/big.bin", keep=True)

    def warm_up(self) -> None:
        """One small upload and download, so that every code path is loaded."""
        base = self.stack.base_url
        answer = clients.put(f"{base}/small.bin", self.files.small, answer=self.scratch / "w.json")
        created = answer.json()
        clients.get(f"{base}/d/{created['token']}")
        self._delete(created)

    def _upload(
        self, name: str, send: Callable[..., clients.Transfer], path: str, *, keep: bool = False
    ) -> Sample:
        usage: dict[str, Usage] = {}
        body = self.scratch / "answer.json"
        # Two copies are stored at the peak: the staged body and the sealed blob.
        warm_memory(self.stack.root, 2 * self.files.size)
        with measured(self.stack.probes, usage):
            answer = send(f"{self.stack.base_url}{path}", self.files.big, answer=body)
        if answer.status != 201:
            raise RuntimeError(f"{name}: {answer.status} {answer.body[:300]!r}")
        if keep:
            self.token = answer.json()["token"]
        else:
            self._delete(answer.json())
        return Sample(name, mbps(self.files.size, answer.seconds), "MB/s", self.files.size, usage)

    def _delete(self, created: dict[str, Any]) -> None:
        clients.delete(
            f"{self.stack.base_url}/api/v1/links/{created['token']}", bearer=created["manage_token"]
        )


class NginxCases:
    """The nginx references: sendfile GET (whole and range) and WebDAV PUT."""

    def __init__(self, nginx: Nginx, files: Files) -> None:
        self.nginx = nginx
        self.files = files
        self._puts = 0

    def get(self) -> Sample:
        """GET the plaintext file with sendfile."""
        usage: dict[str, Usage] = {}
        with measured(self._probes(), usage):
            answer = clients.get(self.nginx.file_url(self.files.big.name))
        return self._sample("nginx GET", self.files.size, answer.seconds, usage)

    def get_range(self) -> Sample:
        """GET the same middle half."""
        usage: dict[str, Usage] = {}
        with measured(self._probes(), usage):
            answer = clients.get(
                self.nginx.file_url(self.files.big.name), byte_range=self.files.byte_range
            )
        return self._sample("nginx GET range", self.files.range_length, answer.seconds, usage)

    def put(self) -> Sample:
        """PUT the file to WebDAV (stored on tmpfs), then remove it.

        Its CPU per GiB is what receiving one copy and storing it on this tmpfs costs here:
        the floor under each of Sealdrop's two stored copies (staging and blob).
        """
        self._puts += 1
        url = self.nginx.dav_url(f"put-{self._puts}.bin")
        usage: dict[str, Usage] = {}
        warm_memory(self.nginx.root, self.files.size)
        with measured(self._probes(), usage):
            answer = clients.put(url, self.files.big)
        if answer.status not in (201, 204):
            raise RuntimeError(f"nginx PUT answered {answer.status}")
        clients.delete(url)
        return self._sample("nginx PUT", self.files.size, answer.seconds, usage)

    def _probes(self) -> list[Probe]:
        return [] if self.nginx.probe is None else [self.nginx.probe]

    def _sample(self, name: str, nbytes: int, seconds: float, usage: dict[str, Usage]) -> Sample:
        return Sample(name, mbps(nbytes, seconds), "MB/s", nbytes, usage)


def aes_gcm(size: int) -> Sample:
    """AES-256-GCM over `size` bytes in 1 MiB segments into one reused buffer, one thread."""
    cipher = AESGCM(AESGCM.generate_key(bit_length=256))
    plain = os.urandom(1 << 20)
    out = bytearray((1 << 20) + 16)
    nonce = bytes(12)
    count = max(1, size >> 20)
    started = time.perf_counter()
    for _ in range(count):
        cipher.encrypt_into(nonce, plain, b"header", out)
    return Sample(
        "AES-256-GCM (in process)",
        mbps(count << 20, time.perf_counter() - started),
        "MB/s",
        count << 20,
    )


def floor_get(floor: Floor, files: Files) -> Sample:
    """GET the file from the Python floor app (`bench.floor`): a Python server's least."""
    usage: dict[str, Usage] = {}
    with measured([] if floor.probe is None else [floor.probe], usage):
        answer = clients.get(floor.url)
    if answer.status != 200 or answer.downloaded != files.size:
        raise RuntimeError(f"Python floor GET: {answer.status}, {answer.downloaded} bytes")
    return Sample("Python floor GET", mbps(files.size, answer.seconds), "MB/s", files.size, usage)
