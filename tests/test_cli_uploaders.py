"""`sealdrop uploaders add|list|revoke`, run as the console script's entry point against an
embedded data folder (SQLite), as README.md and docs/configuration.md show them."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from app.crypto.tokens import token_hash


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded server's data folder, named to the CLI through the environment."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("SEALDROP_DATA_DIR", str(folder))
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The lines `sealdrop <argv>` printed."""
    main(list(argv))
    return capsys.readouterr().out.splitlines()


def test_add_prints_a_key_once_and_stores_only_its_hash(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(capsys, "uploaders", "add", "alice", "--max-bytes-per-day", "10GiB")
    assert lines[0] == "uploader alice added; its upload key, shown only this once:"
    key = lines[1]
    assert key.startswith("sdk_")
    assert len(key) == 47
    stored = b"".join(p.read_bytes() for p in data_dir.glob("sealdrop.db*"))
    assert key.encode() not in stored
    assert token_hash(key) in stored


def test_list_shows_kind_limits_and_revocation(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "uploaders", "add", "alice", "--max-file-size", "1MiB", "--max-ttl", "2h")
    run(capsys, "uploaders", "add", "bob@example.org", "--proxy", "--max-live-links", "3")
    assert run(capsys, "uploaders", "revoke", "alice") == ["uploader alice revoked"]
    assert run(capsys, "uploaders", "revoke", "alice") == ["uploader alice was already revoked"]
    header, alice, bob = run(capsys, "uploaders", "list")
    assert header.split("\t")[:2] == ["name", "kind"]
    assert alice.split("\t")[:8] == ["alice", "key", "-", "1048576", "7200s", "-", "0", "0"]
    assert alice.split("\t")[8] != "-"
    assert bob.split("\t") == ["bob@example.org", "proxy", "-", "-", "-", "3", "0", "0", "-"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["add", "has space"], "1 to 64"),
        (["revoke", "nobody"], "no uploader is named nobody"),
    ],
)
def test_bad_names_exit_with_one_line(
    data_dir: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["uploaders", *argv])
    assert message in str(exit_.value)


def test_a_taken_name_is_refused(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "uploaders", "add", "alice")
    with pytest.raises(SystemExit, match="already exists"):
        main(["uploaders", "add", "alice", "--proxy"])


@pytest.mark.parametrize(
    "option", [["--max-bytes-per-day", "lots"], ["--max-ttl", "0"], ["--max-live-links", "-1"]]
)
def test_a_bad_limit_is_a_usage_error(
    data_dir: Path, option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["uploaders", "add", "alice", *option])
    assert exit_.value.code == 2
