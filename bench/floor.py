"""The Python floor for downloads: the least a Python server does to send a sealed file.

A raw ASGI app under uvicorn (uvloop, httptools), one process like Sealdrop, that reads
each 1 MiB AES-256-GCM segment of a sealed copy of the bench file in the event loop
(`preadv` into one buffer), decrypts it into a new `bytes` and sends it: no routing, no
database, no checks. It is the probe issue 13 measured on an Intel host (0.86× nginx
there), kept as a reference case: `GET / Python floor GET` tells how much of a gap to
nginx is Sealdrop's own and how much any Python server on this host pays.

`python -m bench.floor SEALED SIZE PORT KEY_HEX` serves the file; `Floor` seals the copy,
starts that process and probes it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.system import Probe, free_port, wait_for_http

SEGMENT = 1 << 20
TAG = 16
HEADER = 16


class Floor:
    """A sealed copy of `source` under `root`, served by the floor app on a free port."""

    def __init__(self, root: Path, source: Path) -> None:
        self.root = root
        self.source = source
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/file"
        self.process: subprocess.Popen[bytes] | None = None
        self.probe: Probe | None = None

    def start(self) -> None:
        """Seal the copy (outside any measurement) and start the server."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = AESGCM.generate_key(bit_length=256)
        sealed = self.root / "sealed.bin"
        _seal(self.source, sealed, key)
        size = str(self.source.stat().st_size)
        log = (self.root / "floor.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", str(sealed), size, str(self.port), key.hex()],
            cwd=Path(__file__).resolve().parents[1],
            stdout=log,
            stderr=log,
        )
        wait_for_http(f"http://127.0.0.1:{self.port}/healthz", process=self.process)
        self.probe = Probe("floor", self.process.pid)

    def stop(self) -> None:
        """Stop the server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def _seal(source: Path, target: Path, key: bytes) -> None:
    cipher = AESGCM(key)
    with source.open("rb") as plain, target.open("wb") as out:
        out.write(bytes(HEADER))
        index = 0
        while segment := plain.read(SEGMENT):
            out.write(cipher.encrypt(index.to_bytes(12, "big"), segment, None))
            index += 1


def make_app(sealed: Path, size: int, key: bytes) -> Any:
    """The ASGI app: `/healthz`, and the whole file at any other path."""
    cipher = AESGCM(key)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok\n"})
            return
        length = str(size).encode()
        headers = [(b"content-length", length), (b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        fd = os.open(sealed, os.O_RDONLY)
        try:
            buffer = memoryview(bytearray(SEGMENT + TAG))
            for index in range(-(-size // SEGMENT)):
                want = min(SEGMENT, size - index * SEGMENT) + TAG
                os.preadv(fd, [buffer[:want]], HEADER + index * (SEGMENT + TAG))
                plain = cipher.decrypt(index.to_bytes(12, "big"), buffer[:want], None)
                await send({"type": "http.response.body", "body": plain, "more_body": True})
                await asyncio.sleep(0)  # let other connections in, as Sealdrop does
            await send({"type": "http.response.body", "body": b""})
        finally:
            os.close(fd)

    return app


def main() -> None:
    """Serve `SEALED` (`SIZE` plaintext bytes) on loopback `PORT` with key `KEY_HEX`."""
    import uvicorn

    sealed, size, port, key = sys.argv[1:5]
    app = make_app(Path(sealed), int(size), bytes.fromhex(key))
    uvicorn.run(
        app, host="127.0.0.1", port=int(port), loop="uvloop", http="httptools", log_level="warning"
    )


if __name__ == "__main__":
    main()
