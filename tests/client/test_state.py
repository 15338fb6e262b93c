"""The client's memory of unfinished uploads: private, keyed by the file as it is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from app.client.state import Transfers, state_dir, transfer_key


def test_entries_survive_and_are_forgotten(tmp_path: Path) -> None:
    transfers = Transfers(tmp_path / "state")
    transfers.put("k1", {"url": "https://h/api/v1/uploads/abc"})
    transfers.put("k2", {"url": "https://h/api/v1/uploads/def"})
    again = Transfers(tmp_path / "state")
    assert again.get("k1") == {"url": "https://h/api/v1/uploads/abc"}
    again.forget("k1")
    assert again.get("k1") is None
    assert again.get("k2") is not None
    again.forget("k2")
    assert not again.path.exists()


def test_the_file_and_its_folder_are_private(tmp_path: Path) -> None:
    transfers = Transfers(tmp_path / "state")
    transfers.put("k", {"staging_key": "secret"})
    assert stat.S_IMODE(transfers.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(transfers.path.parent.stat().st_mode) == 0o700


def test_a_damaged_file_reads_as_empty(tmp_path: Path) -> None:
    transfers = Transfers(tmp_path)
    transfers.path.write_text("{not json")
    assert transfers.get("k") is None
    transfers.put("k", {"a": 1})
    assert transfers.get("k") == {"a": 1}


def test_the_key_changes_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"one")
    first = transfer_key("https://h/", path)
    assert first == transfer_key("https://h", path)
    assert first != transfer_key("https://other", path)
    path.write_bytes(b"two!")
    assert transfer_key("https://h", path) != first
    os.utime(path, ns=(1, 1))
    touched = transfer_key("https://h", path)
    os.utime(path, ns=(2, 2))
    assert transfer_key("https://h", path) != touched


def test_the_state_folder_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_dir() == tmp_path / "sealdrop"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert state_dir() == Path.home() / ".local" / "state" / "sealdrop"
