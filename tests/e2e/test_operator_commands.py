"""`sealdrop links list` and `sealdrop links revoke` as an operator runs them, beside a
running server: the list names links by hash prefix only, and a revoke makes the server
answer 410 at once, with an audit line that holds no token.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.e2e.clients import curl
from tests.e2e.payloads import upload, write_payload
from tests.support.stack import Stack

SIZE = 70_000


def _prefix(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def test_list_names_a_link_by_hash_prefix_and_never_by_token(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "listed-name.bin"
    write_payload(source, SIZE)
    link = upload(stack, source, "-H", "Max-Downloads: 4")

    listed = stack.run_cli("links", "list", "--json", "--larger-than", f"{SIZE - 1}")
    table = stack.run_cli("links", "list")

    assert listed.returncode == 0, listed.stderr
    mine = [row for row in json.loads(listed.stdout) if row["hash"] == _prefix(link.token)]
    assert [(row["size"], row["downloads"], row["max_downloads"]) for row in mine] == [(SIZE, 0, 4)]
    assert table.returncode == 0, table.stderr
    assert _prefix(link.token) in table.stdout
    for output in (listed.stdout, listed.stderr, table.stdout, table.stderr):
        assert link.token not in output
        assert link.manage_token not in output
        assert "listed-name" not in output


def test_a_revoke_through_the_cli_is_answered_410_at_once(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "revoked.bin"
    write_payload(source, SIZE)
    link = upload(stack, source)
    assert curl("-o", "/dev/null", link.download_url).status == 200

    revoked = stack.run_cli("links", "revoke", link.share_url)

    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked link {_prefix(link.token)} (was ready)")
    assert f"sealdrop.audit link={_prefix(link.token)} revoked by the operator" in revoked.stderr
    assert link.token not in revoked.stdout + revoked.stderr
    assert curl("-o", "/dev/null", link.download_url).status == 410
    assert curl("-o", "/dev/null", link.share_url).status == 410
    again = stack.run_cli("links", "revoke", _prefix(link.token))
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1] == "sealdrop: no link matches"


def test_a_bad_size_or_reference_is_one_line_and_changes_nothing(stack: Stack) -> None:
    bad_size = stack.run_cli("links", "list", "--larger-than", "lots")
    assert bad_size.returncode == 2
    assert "not a size" in bad_size.stderr
    bad_ref = stack.run_cli("links", "revoke", "abc")
    assert bad_ref.returncode == 1
    assert bad_ref.stderr.strip().splitlines()[-1].startswith("sealdrop: give a share URL")
