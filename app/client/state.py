"""Unfinished uploads remembered across runs: `$XDG_STATE_HOME/sealdrop/transfers.json`.

An entry is keyed by server, absolute path, size and modification time, so a file that
changed is never continued into an old upload. It holds the upload URL (a capability) and,
for a direct upload, its one-time staging key: the file is mode 0600 in a 0700 folder,
rewritten whole through a temporary file, and an entry is removed once its upload is done.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

FILE_NAME = "transfers.json"


def state_dir() -> Path:
    """`$XDG_STATE_HOME/sealdrop`, `~/.local/state/sealdrop` by default."""
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "sealdrop"


def transfer_key(server: str, path: Path) -> str:
    """The key of `path`'s upload to `server`, as the file is now."""
    info = path.stat()
    return f"{server.rstrip('/')}|{path.resolve()}|{info.st_size}|{info.st_mtime_ns}"


class Transfers:
    """The state file, read and written whole (it holds a handful of entries)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or state_dir()) / FILE_NAME

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{FILE_NAME}.{os.getpid()}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(data, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.path)

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry of `key`, if an upload of it was left unfinished."""
        entry = self._read().get(key)
        return entry if isinstance(entry, dict) else None

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Remember `entry` for `key` (replacing any older one)."""
        data = self._read()
        data[key] = entry
        self._write(data)

    def forget(self, key: str) -> None:
        """Drop `key`'s entry (its upload is done or gone); the file goes when empty."""
        data = self._read()
        if data.pop(key, None) is None:
            return
        if data:
            self._write(data)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
