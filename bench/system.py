"""What the benchmark needs from the machine: tools, ports, and measurements of processes.

A `Probe` watches one process through /proc: CPU time (utime + stime, all threads) and
peak resident memory (VmHWM, which writing `5` to /proc/PID/clear_refs resets to the
current RSS), so each case measures its own peak and not an earlier one's.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.storage.page_cache import memory_backed

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CRYPTO_PROBE_BYTES = 256 << 20
WARM_BLOCK = bytes(1 << 20)
APT_PACKAGES = {"nginx": "nginx", "wrk": "wrk", "curl": "curl"}


def ensure_tools() -> None:
    """Install nginx, wrk and curl from apt when missing (needs root, as in CI)."""
    missing = [package for tool, package in APT_PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"bench: please install {' '.join(missing)} (apt-get install -y …)")
    print(f"bench: installing {' '.join(missing)} with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        ["apt-get", "install", "-y", "-q", *missing], check=True, env=env, stdout=subprocess.DEVNULL
    )


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_http(
    url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll `url` until it answers 2xx; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Usage:
    """What one process used during one measurement."""

    cpu_seconds: float  # user and kernel time together
    idle_rss: int  # bytes, when the measurement started
    peak_rss: int  # bytes, the highest RSS during the measurement
    kernel_seconds: float = 0.0  # the part of cpu_seconds spent in the kernel

    @property
    def rss_growth(self) -> int:
        """Peak minus idle, in bytes."""
        return max(0, self.peak_rss - self.idle_rss)


class Probe:
    """CPU and peak memory of one process, measured between `start` and `stop`."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self._cpu = (0, 0)
        self._idle = 0

    def start(self) -> None:
        """Reset the peak to the current RSS and note the CPU time so far."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        self._idle = self._status("VmRSS")
        self._cpu = self._ticks()

    def stop(self) -> Usage:
        """CPU used and peak RSS reached since `start`."""
        user, kernel = (now - then for now, then in zip(self._ticks(), self._cpu, strict=True))
        return Usage(
            cpu_seconds=(user + kernel) / CLOCK_TICKS,
            idle_rss=self._idle,
            peak_rss=self._status("VmHWM"),
            kernel_seconds=kernel / CLOCK_TICKS,
        )

    def rss(self) -> int:
        """The current RSS in bytes."""
        return self._status("VmRSS")

    def _ticks(self) -> tuple[int, int]:
        text = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name (field 2) may hold spaces: count fields after its closing ')'.
        fields = text[text.rindex(")") + 2 :].split()
        return int(fields[11]), int(fields[12])  # utime, stime (fields 14 and 15)

    def _status(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} for pid {self.pid}")


def machine() -> dict[str, str]:
    """The machine and versions, for the report."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        **crypto_speeds(),
        "memory": f"{int(mem) // 1024 // 1024} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": _version(["nginx", "-v"]),
        "curl": _version(["curl", "--version"]).split(" (")[0],
        "wrk": _version(["wrk", "--version"]).split(" [")[0],
    }


def crypto_speeds(nbytes: int = CRYPTO_PROBE_BYTES) -> dict[str, str]:
    """AES-256-GCM (1 MiB segments) and SHA-256 in this process, one thread: the host's
    crypto, which sets the floor of every case's CPU and differs fourfold between hosts."""
    cipher = AESGCM(AESGCM.generate_key(bit_length=256))
    block, out = os.urandom(1 << 20), bytearray((1 << 20) + 16)
    count = nbytes >> 20
    started = time.perf_counter()
    for index in range(count):
        cipher.encrypt_into(index.to_bytes(12, "big"), block, b"header", out)
    sealed = time.perf_counter() - started
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(count):
        digest.update(block)
    hashed = time.perf_counter() - started
    return {
        "aes-256-gcm": f"{nbytes / sealed / 1e9:.1f} GB/s",
        "sha-256": f"{nbytes / hashed / 1e9:.2f} GB/s",
    }


def warm_memory(folder: Path, nbytes: int) -> None:
    """Write `nbytes` into a file in `folder` and remove it, before an upload is measured.

    On a guest that hands idle memory back to its host, a tmpfs write into pages unused for
    a while costs several times one into pages freed moments ago; without this, an upload's
    speed depends on which case ran before it in the round. Folders on a disk are left
    alone (the 5 GiB case).
    """
    if not memory_backed(folder):
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".bench-warm"
    with path.open("wb") as out:
        for _ in range(0, nbytes, len(WARM_BLOCK)):
            out.write(WARM_BLOCK)
    path.unlink()


def _version(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "missing"
    text = (result.stdout or result.stderr).strip().splitlines()
    return text[0].replace("nginx version: ", "") if text else "unknown"
