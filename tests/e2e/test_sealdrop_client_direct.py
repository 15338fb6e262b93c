"""`sealdrop send --via direct`: on the production stack (S3 staging) the file is sealed by
the client and goes straight to the bucket, past the API; the embedded stack offers no
direct uploads and the client says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.client.direct import DirectUpload, PartSealer, b64url
from app.client.errors import EXIT_REFUSED
from app.client.http import open_client
from app.client.put import SendOptions
from app.client.state import Transfers, transfer_key
from tests.e2e.payloads import new_marker, write_payload
from tests.e2e.sealdrop_client import sealdrop
from tests.support.fault_proxy import fault_proxy
from tests.support.shared_stacks import SharedStacks
from tests.support.stack import Stack

SIZE = 7 * (1 << 20) + 99  # under the shared stacks' 8 MiB limit; two parts of 5 MiB


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A folder for the client's files; its state folder beside it."""
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


def test_direct_upload_goes_past_the_api(stack: Stack, stack_mode: str, work: Path) -> None:
    source = work / "direct.bin"
    marker = new_marker()
    write_payload(source, SIZE, marker=marker)
    state = work.parent / "state"
    with fault_proxy(stack.base_url) as proxy:
        run = sealdrop(
            "send", "--via", "direct", "--json", str(source), "--server", proxy.url,
            state=state, cwd=work, expect_exit=None,
        )  # fmt: skip
        through_api = proxy.sent_up()
    if stack_mode == "embedded":
        assert run.exit_code == EXIT_REFUSED
        assert run.stderr == "sealdrop: the server offers no direct uploads\n"
        return
    assert run.exit_code == 0, run.stderr
    created = json.loads(run.lines[0])
    assert created["size"] == SIZE
    assert through_api < 64 * 1024  # requests only: the bytes went to S3
    assert not (state / "sealdrop" / "transfers.json").exists()  # the staging key is gone
    link = created["url"].replace(proxy.url, stack.base_url)
    sealdrop("get", link, "-o", str(work / "copy"), state=state, cwd=work)
    assert (work / "copy").read_bytes() == source.read_bytes()
    assert stack.places_holding(marker) == []


def test_a_direct_upload_left_half_done_is_finished_by_the_next_send(
    shared_stacks: SharedStacks, work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = shared_stacks.production()
    source = work / "half.bin"
    write_payload(source, SIZE)
    state = work.parent / "state"
    # A first run that got as far as part 1, done here with the client's own pieces.
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    transfers = Transfers()
    with open_client() as client:
        upload = DirectUpload(client, source, SendOptions())
        created = upload.create(f"{stack.base_url}/api/v1/direct-uploads")
        upload_url = f"{stack.base_url}{created['upload_url']}"
        key, header = b64url(created["staging_key"]), b64url(created["header"])
        sealer = PartSealer.of(SIZE, key, header, created["part_size"])
        assert created["part_count"] == 2
        parts = {part["number"]: part["url"] for part in created["parts"]}
        assert upload.put_part(sealer, 1, parts[1], _NoMeter(), 0)
        upload.bucket.close()
        transfers.put(
            transfer_key(stack.base_url, source),
            {"kind": "direct", "upload_url": upload_url, "staging_key": created["staging_key"],
             "header": created["header"], "part_size": created["part_size"]},
        )  # fmt: skip
        before = upload.status(upload_url)
    assert before is not None
    assert [part["number"] for part in before["parts_done"]] == [1]
    run = sealdrop(
        "send", "--via", "direct", "--json", str(source), "--server", stack.base_url,
        state=state, cwd=work,
    )  # fmt: skip
    created_link = json.loads(run.lines[0])
    assert not (state / "sealdrop" / "transfers.json").exists()
    sealdrop("get", created_link["url"], "-o", str(work / "copy"), state=state, cwd=work)
    assert (work / "copy").read_bytes() == source.read_bytes()
    # The upload it continued is the one that was begun: it is gone now, completed.
    with open_client() as client:
        assert client.get(upload_url).status_code == 404


class _NoMeter:
    def advance(self, count: int) -> None:
        pass

    def restart_at(self, done: int) -> None:
        pass
