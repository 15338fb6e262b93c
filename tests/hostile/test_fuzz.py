"""Fuzzing the API against its own OpenAPI document (schemathesis), on the production stack.

schemathesis reads `/openapi.json` from an API process of the stack and runs its coverage,
fuzzing and stateful phases (the stateful one follows the document's links from an
upload's answer to the link's status, share page, file, QR code and deletion). Every
answer must be no 5xx, have a documented status, content type and headers, and match its
documented schema; a deleted link must stay gone and a created one must be found.

It runs twice: as an API client that asks for JSON, and as curl does (no Accept, and
without waiting for sealing), whose uploads answer one line of text. `SEALDROP_SOAK=1`
raises the examples per operation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.conftest import scaled
from tests.support.production import ApiProcess, ProductionStack

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "use_after_free",
        "ensure_resource_availability",
    ]
)
EXAMPLES = scaled(10, 300)
RUN_TIMEOUT_SECONDS = scaled(120, 1800)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def api(stack: ProductionStack) -> Iterator[ApiProcess]:
    """An API process with no upload quota: the fuzzer uploads far more than 60 a minute."""
    process = stack.start_api(SEALDROP_UPLOAD_RATE_PER_MINUTE="0")
    try:
        yield process
    finally:
        process.stop()


def schemathesis(
    api: ApiProcess, workdir: Path, *headers: str, phases: str = "coverage,fuzzing,stateful"
) -> subprocess.CompletedProcess[str]:
    """One schemathesis run against `api`; its exit status and report."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "60",
        *(part for header in headers for part in ("-H", header)),
    ]
    return subprocess.run(
        command,
        cwd=workdir,  # its Hypothesis database and reports stay in the test's folder
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def test_json_clients_get_only_documented_answers(api: ApiProcess, tmp_path: Path) -> None:
    run = schemathesis(api, tmp_path, "Accept: application/json")

    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert " passed" in run.stdout


def test_curl_like_clients_get_only_documented_answers(api: ApiProcess, tmp_path: Path) -> None:
    # Their uploads answer a line of text, which no link can follow: no stateful phase.
    # Not waiting for sealing also puts 202 and the pending link's 503 in play.
    run = schemathesis(api, tmp_path, "Prefer: respond-async", phases="coverage,fuzzing")

    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert " passed" in run.stdout
