"""tus-js-client, vendored: the file is the one docs/web.md names, served from Sealdrop itself."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.conftest import AppClient
from tests.support.browser import REPO

STATIC = REPO / "app" / "web" / "static"
HTML = {"Accept": "text/html"}
_ROW = re.compile(
    r"^\| tus-js-client \| (?P<version>4\.\d+\.\d+) \| `dist/tus\.min\.js` \| "
    r"`(?P<sha256>[0-9a-f]{64})` \|$",
    re.MULTILINE,
)


def test_vendored_file_is_the_version_and_hash_the_docs_name() -> None:
    documented = _ROW.search((REPO / "docs" / "web.md").read_text())
    assert documented is not None, "docs/web.md lacks the tus-js-client row"
    vendored = hashlib.sha256((STATIC / "tus.min.js").read_bytes()).hexdigest()
    assert vendored == documented["sha256"]


def test_its_licence_is_vendored_beside_it() -> None:
    licence = (STATIC / "tus-js-client.LICENSE").read_text()
    assert licence.startswith("The MIT License")
    assert "tus - Resumable File Uploads" in licence


async def test_upload_page_loads_it_from_its_own_origin_before_its_modules(
    client: AppClient,
) -> None:
    page = await client.get("/", headers=HTML)
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == [
        '<script defer src="/static/tus.min.js">',
        '<script type="module" src="/static/upload.js">',
    ]
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_it_is_served_unchanged_as_javascript(client: AppClient) -> None:
    answer = await client.get("/static/tus.min.js")
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == "text/javascript"
    assert answer.content == (STATIC / "tus.min.js").read_bytes()


@pytest.mark.parametrize("name", ["tus.min.js", "upload.js", "sealing.js"])
async def test_static_files_are_never_sniffed(client: AppClient, name: str) -> None:
    answer = await client.get(f"/static/{name}")
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
