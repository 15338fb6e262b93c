"""Looking at what an embedded Sealdrop keeps on disk: objects, staging, temporaries."""

from __future__ import annotations

from pathlib import Path

from app.settings import Settings


def objects_root(settings: Settings) -> Path:
    """The local store's folder."""
    return settings.data_dir / "objects"


def staging_files(settings: Settings) -> list[Path]:
    """Every file under `staging/`, temporaries included."""
    return sorted(p for p in (objects_root(settings) / "staging").rglob("*") if p.is_file())


def blob_files(settings: Settings) -> list[Path]:
    """Every file under `blobs/`, temporaries included."""
    return sorted(p for p in (objects_root(settings) / "blobs").rglob("*") if p.is_file())


def all_files(settings: Settings) -> list[Path]:
    """Every file in the data folder (database, WAL, objects, keys)."""
    return sorted(p for p in settings.data_dir.rglob("*") if p.is_file())
