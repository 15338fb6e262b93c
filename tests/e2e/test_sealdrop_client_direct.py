"""`sealdrop send --via direct`: on the production stack (S3 staging) the file is sealed by
the client and goes straight to the bucket, past the API; the embedded stack offers no
direct uploads and the client says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.client.errors import EXIT_REFUSED
from tests.e2e.payloads import new_marker, write_payload
from tests.e2e.sealdrop_client import sealdrop
from tests.support.fault_proxy import fault_proxy
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
