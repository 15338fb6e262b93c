"""Settings: what the environment may say, and the configurations refused at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_sweep_age_shorter_than_the_longest_upload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SEALDROP_STAGING_MAX_AGE_SECONDS"):
        _settings(tmp_path, max_upload_seconds=7200, staging_max_age_seconds=3600)


def test_sweep_age_equal_to_the_longest_upload_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SEALDROP_MAX_UPLOAD_SECONDS"):
        _settings(tmp_path, max_upload_seconds=3600, staging_max_age_seconds=3600)


def test_sweep_age_longer_than_the_longest_upload_is_kept(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_upload_seconds=0.5, staging_max_age_seconds=1)
    assert settings.sweep_age_seconds == 1


def test_sweep_age_is_derived_from_the_longest_upload_when_not_set(tmp_path: Path) -> None:
    settings = _settings(tmp_path, max_upload_seconds=7200)
    assert settings.sweep_age_seconds > 7200


def test_default_longest_upload_lets_the_largest_file_arrive_at_one_megabit_per_second(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    assert settings.max_upload_bytes * 8 / 1_000_000 <= settings.max_upload_seconds
    assert settings.sweep_age_seconds > settings.max_upload_seconds


def test_longest_upload_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        _settings(tmp_path, max_upload_seconds=0)


def test_uploads_longer_than_the_s3_lifecycle_allows_are_refused_with_s3(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="lifecycle rules abort unfinished multipart"):
        _settings(
            tmp_path,
            storage_url="s3://blobs",
            master_keys="k1:" + "A" * 43,
            max_upload_seconds=24 * 3600,
        )


def test_the_default_longest_upload_fits_the_s3_lifecycle(tmp_path: Path) -> None:
    settings = _settings(tmp_path, staging_url="s3://staging", storage_url="s3://blobs",
                         master_keys="k1:" + "A" * 43)  # fmt: skip
    assert settings.max_upload_seconds + 3600 <= 24 * 3600


def test_long_uploads_are_allowed_on_a_local_folder(tmp_path: Path) -> None:
    assert _settings(tmp_path, max_upload_seconds=48 * 3600).max_upload_seconds == 48 * 3600


@pytest.mark.parametrize(
    ("worker", "seal_in_request", "seals"),
    [
        ("embedded", None, True),
        ("off", None, False),
        ("off", True, True),
        ("embedded", False, False),
    ],
)
def test_uploads_are_sealed_in_the_request_where_the_worker_runs_unless_told_otherwise(
    tmp_path: Path, worker: str, seal_in_request: bool | None, seals: bool
) -> None:
    settings = _settings(tmp_path, worker=worker, seal_in_request=seal_in_request)
    assert settings.seals_in_request is seals
