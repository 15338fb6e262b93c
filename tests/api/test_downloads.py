"""Downloads over HTTP: `/d/{token}` and `/d/{token}/{name}`, every header and status of §6.

Files of 200 000 bytes with 64 KiB segments span four segments, so ranges can start and
end on either side of a segment edge.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from urllib.parse import quote

import pytest

from app.db.clock import db_now_plus, seconds
from app.domain import links
from app.services import Services
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import Uploaded, upload
from tests.support.datadir import blob_files
from tests.support.rows import link_row, update_link
from worker import janitor, queue

SIZE = 200_000
SEGMENT = 1 << 16
DATA = os.urandom(SIZE)


async def _downloads(client: AppClient, token: str) -> int:
    row = await link_row(client.services, token)
    assert row is not None
    return row.download_count


async def _big(client: AppClient, **headers: str) -> Uploaded:
    return await upload(client, DATA, name="data.bin", headers=headers)


# The whole file and its headers


async def test_download_sends_the_whole_file_with_its_length(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 200
    assert answer.content == DATA
    assert answer.headers["content-length"] == str(SIZE)


async def test_download_with_the_name_in_the_path_sends_the_same_file(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}/data.bin")
    assert answer.status_code == 200
    assert answer.content == DATA


async def test_download_with_a_trailing_slash_sends_the_file_without_a_redirect(
    client: AppClient,
) -> None:
    # The README's `curl -fOJ -u :pw …/d/<token>/`: curl takes the name from the header.
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}/")
    assert answer.status_code == 200
    assert answer.content == DATA
    assert answer.headers["content-disposition"].startswith('attachment; filename="data.bin"')


async def test_head_with_a_trailing_slash_gives_the_file_headers(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.head(f"/d/{created.token}/")
    assert answer.status_code == 200
    assert answer.headers["content-length"] == str(SIZE)
    assert answer.content == b""


async def test_download_sends_the_stored_content_type(client: AppClient) -> None:
    created = await upload(client, b"\x89PNG", name="a.png", headers={"Content-Type": "image/png"})
    answer = await client.get(f"/d/{created.token}")
    assert answer.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "active",
    [
        "text/html",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/javascript",
        "text/css",
        "text/xml",
    ],
)
async def test_types_a_browser_would_render_are_sent_as_octet_stream(
    client: AppClient, active: str
) -> None:
    created = await upload(client, b"<script>x</script>", headers={"Content-Type": active})
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.content_type == active
    answer = await client.get(f"/d/{created.token}")
    assert answer.headers["content-type"] == "application/octet-stream"


# https://mimesniff.spec.whatwg.org/#javascript-mime-type
WHATWG_JAVASCRIPT_TYPES = [
    "application/ecmascript",
    "application/javascript",
    "application/x-ecmascript",
    "application/x-javascript",
    "text/ecmascript",
    "text/javascript",
    "text/javascript1.0",
    "text/javascript1.1",
    "text/javascript1.2",
    "text/javascript1.3",
    "text/javascript1.4",
    "text/javascript1.5",
    "text/jscript",
    "text/livescript",
    "text/x-ecmascript",
    "text/x-javascript",
]


@pytest.mark.parametrize(
    "declared",
    [
        *WHATWG_JAVASCRIPT_TYPES,
        "TEXT/JavaScript; charset=utf-8",
        "Application/X-JavaScript;version=1.8",
        "text/x-javascript ; charset=utf-8",
        "application/rss+xml",
        "application/mathml+xml",
        "text/xsl",
        "text/x-component",
        "application/x-shockwave-flash",
        "application/vnd.whatever-nobody-listed",
    ],
)
async def test_every_script_type_and_any_unlisted_type_goes_out_as_octet_stream(
    client: AppClient, declared: str
) -> None:
    created = await upload(client, b"alert(1)", name="x", headers={"Content-Type": declared})
    row = await link_row(client.services, created.token)
    assert row is not None
    assert row.content_type == declared.split(";")[0].strip().lower()
    for path in (f"/d/{created.token}", f"/d/{created.token}/x.js"):
        answer = await client.get(path)
        assert answer.headers["content-type"] == "application/octet-stream"
    status = await client.get(f"/api/v1/links/{created.token}")
    assert status.json()["content_type"] == row.content_type


@pytest.mark.parametrize(
    ("declared", "served"),
    [
        ("image/png", "image/png"),
        ("image/jpeg", "image/jpeg"),
        ("image/webp", "image/webp"),
        ("audio/mpeg", "audio/mpeg"),
        ("video/mp4", "video/mp4"),
        ("application/pdf", "application/pdf"),
        ("text/plain; charset=utf-8", "text/plain"),
        ("TEXT/CSV", "text/csv"),
        ("application/zip", "application/zip"),
        ("application/gzip", "application/gzip"),
        ("application/json", "application/json"),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ],
)
async def test_inert_types_go_out_as_stored(client: AppClient, declared: str, served: str) -> None:
    created = await upload(client, b"bytes", name="x", headers={"Content-Type": declared})
    answer = await client.get(f"/d/{created.token}")
    assert answer.headers["content-type"] == served


async def test_content_disposition_is_attachment_with_ascii_fallback_and_utf8_name(
    client: AppClient,
) -> None:
    name = 'résumé "final".pdf'
    created = await upload(client, name=quote(name))
    answer = await client.get(f"/d/{created.token}")
    assert answer.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''"
        "r%C3%A9sum%C3%A9%20%22final%22.pdf"
    )


async def test_download_sends_the_security_and_range_headers(client: AppClient) -> None:
    created = await _big(client)
    headers = (await client.get(f"/d/{created.token}")).headers
    assert headers["accept-ranges"] == "bytes"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert headers["cross-origin-resource-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"
    assert re.fullmatch(r'"[0-9a-f]{16,}"', headers["etag"])


async def test_repr_digest_is_the_base64_sha256_of_the_content(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}")
    digest = base64.b64encode(hashlib.sha256(DATA).digest()).decode()
    assert answer.headers["repr-digest"] == f"sha-256=:{digest}:"


async def test_empty_file_downloads_as_zero_bytes(client: AppClient) -> None:
    created = await upload(client, b"", name="empty.txt")
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-length"] == "0"
    assert await _downloads(client, created.token) == 1


# Range


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=-500", SIZE - 500, SIZE),
        ("bytes=100-", 100, SIZE),
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE),
        (f"bytes={SIZE - 10}-{SIZE + 5000}", SIZE - 10, SIZE),
        (f"bytes=-{SIZE + 10}", 0, SIZE),
        (f"bytes={SEGMENT - 6}-{SEGMENT + 9}", SEGMENT - 6, SEGMENT + 10),
        (f"bytes={SEGMENT}-{2 * SEGMENT - 1}", SEGMENT, 2 * SEGMENT),
        (f"bytes={SEGMENT - 1}-{SEGMENT}", SEGMENT - 1, SEGMENT + 1),
        (f"bytes=60000-{3 * SEGMENT + 5}", 60000, 3 * SEGMENT + 6),
        (f"bytes={3 * SEGMENT}-", 3 * SEGMENT, SIZE),
    ],
)
async def test_range_gives_206_with_exactly_those_bytes(
    client: AppClient, header: str, start: int, stop: int
) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 206
    assert answer.content == DATA[start:stop]
    assert answer.headers["content-range"] == f"bytes {start}-{stop - 1}/{SIZE}"
    assert answer.headers["content-length"] == str(stop - start)


async def test_several_ranges_are_answered_with_the_whole_file(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": "bytes=0-9,100-109"})
    assert answer.status_code == 200
    assert answer.content == DATA


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=5-3", "bytes=-", "0-5"])
async def test_malformed_range_is_answered_with_the_whole_file(
    client: AppClient, header: str
) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 200
    assert answer.content == DATA


# Beyond Python's 4 300-digit limit of int(): positions past any file, never a 500.
NINES = "9" * 5000


@pytest.mark.parametrize(
    ("header", "start"),
    [(f"bytes=0-{NINES}", 0), (f"bytes=-{NINES}", 0), (f"bytes={'0' * 5000}10-{NINES}", 10)],
)
async def test_range_ending_thousands_of_digits_past_the_file_is_clipped_to_it(
    client: AppClient, header: str, start: int
) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 206
    assert answer.content == DATA[start:]
    assert answer.headers["content-range"] == f"bytes {start}-{SIZE - 1}/{SIZE}"


@pytest.mark.parametrize("header", [f"bytes={NINES}-", f"bytes={NINES}-{NINES}"])
async def test_range_starting_thousands_of_digits_in_is_416(client: AppClient, header: str) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"
    assert len(answer.content) < 100


async def test_if_range_with_the_etag_gives_206(client: AppClient) -> None:
    created = await _big(client)
    etag = (await client.head(f"/d/{created.token}")).headers["etag"]
    answer = await client.get(
        f"/d/{created.token}", headers={"Range": "bytes=0-99", "If-Range": etag}
    )
    assert answer.status_code == 206
    assert answer.content == DATA[:100]


@pytest.mark.parametrize("if_range", ['"not-the-etag"', "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_if_range_with_another_value_gives_the_whole_file(
    client: AppClient, if_range: str
) -> None:
    created = await _big(client)
    answer = await client.get(
        f"/d/{created.token}", headers={"Range": "bytes=0-99", "If-Range": if_range}
    )
    assert answer.status_code == 200
    assert answer.content == DATA


@pytest.mark.parametrize(
    "header", [f"bytes={SIZE}-", f"bytes={SIZE + 100}-{SIZE + 200}", "bytes=-0"]
)
async def test_range_past_the_end_is_416_with_the_size(client: AppClient, header: str) -> None:
    created = await _big(client)
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{SIZE}"
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("header", ["bytes=0-", "bytes=0-0", "bytes=-1"])
async def test_any_range_on_an_empty_file_is_416(client: AppClient, header: str) -> None:
    created = await upload(client, b"", name="empty.txt")
    answer = await client.get(f"/d/{created.token}", headers={"Range": header})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == "bytes */0"


# HEAD and conditional requests


async def test_head_gives_the_headers_without_a_body_and_does_not_count(
    client: AppClient,
) -> None:
    created = await _big(client, **{"Max-Downloads": "1"})
    answer = await client.head(f"/d/{created.token}")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["content-length"] == str(SIZE)
    assert "repr-digest" in answer.headers
    assert await _downloads(client, created.token) == 0
    assert (await client.get(f"/d/{created.token}")).status_code == 200


async def test_head_with_a_range_gives_206_headers(client: AppClient) -> None:
    created = await _big(client)
    answer = await client.head(f"/d/{created.token}", headers={"Range": "bytes=0-9"})
    assert answer.status_code == 206
    assert answer.headers["content-length"] == "10"
    assert answer.content == b""


async def test_if_none_match_with_the_etag_gives_304_without_counting(client: AppClient) -> None:
    created = await _big(client, **{"Max-Downloads": "1"})
    etag = (await client.head(f"/d/{created.token}")).headers["etag"]
    answer = await client.get(f"/d/{created.token}", headers={"If-None-Match": etag})
    assert answer.status_code == 304
    assert answer.content == b""
    assert await _downloads(client, created.token) == 0


async def test_range_416_does_not_count(client: AppClient) -> None:
    created = await _big(client, **{"Max-Downloads": "1"})
    await client.get(f"/d/{created.token}", headers={"Range": f"bytes={SIZE}-"})
    assert await _downloads(client, created.token) == 0


async def test_each_get_counts_one_download(client: AppClient) -> None:
    created = await _big(client)
    await client.get(f"/d/{created.token}")
    await client.get(f"/d/{created.token}/data.bin", headers={"Range": "bytes=0-0"})
    assert await _downloads(client, created.token) == 2


# Missing and gone


@pytest.mark.parametrize(
    "path",
    ["/d/AAAAAAAAAAAAAAAAAAAAAA", "/d/AAAAAAAAAAAAAAAAAAAAAA/", "/d/AAAAAAAAAAAAAAAAAAAAAA/x.bin"],
)
async def test_unknown_token_is_404(client: AppClient, path: str) -> None:
    answer = await client.get(path)
    assert answer.status_code == 404
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "token", ["abc", "a" * 21, "a" * 65, "a" * 200, "has.dot.in.it.xxxxxxxxxxxxxx"]
)
async def test_badly_shaped_token_is_404(client: AppClient, token: str) -> None:
    answer = await client.get(f"/d/{token}")
    assert answer.status_code == 404


async def test_expired_link_is_410(client: AppClient) -> None:
    created = await _big(client)
    await update_link(client.services, created.token, expires_at=db_now_plus(seconds(-1)))
    assert (await client.get(f"/d/{created.token}")).status_code == 410


async def test_deleted_link_is_410(client: AppClient) -> None:
    created = await _big(client)
    deleted = await client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )
    assert deleted.status_code == 204
    assert (await client.get(f"/d/{created.token}")).status_code == 410


async def test_used_up_link_is_410(client: AppClient) -> None:
    created = await _big(client, **{"Max-Downloads": "2"})
    assert (await client.get(f"/d/{created.token}")).status_code == 200
    assert (await client.get(f"/d/{created.token}")).status_code == 200
    assert (await client.get(f"/d/{created.token}")).status_code == 410


async def test_failed_link_is_410(idle_client: AppClient) -> None:
    created = await upload(idle_client)
    job = await queue.claim(idle_client.services, "test-worker")
    assert job is not None
    assert await queue.fail(idle_client.services, job, "given up")
    assert (await idle_client.get(f"/d/{created.token}")).status_code == 410


async def test_blob_with_a_flipped_byte_is_never_served_as_a_success(
    client: AppClient, settings: Settings
) -> None:
    created = await _big(client)
    [blob] = blob_files(settings)
    sealed = bytearray(blob.read_bytes())
    sealed[100] ^= 0x01
    blob.write_bytes(sealed)
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 500
    assert DATA[:1000] not in answer.content
    assert await _downloads(client, created.token) == 0


async def test_link_purged_between_its_resolve_and_the_read_is_410(
    client: AppClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await _big(client)
    resolve = links.resolve

    async def resolve_then_purge(services: Services, token: str) -> links.LinkView:
        # The race a real service cannot show on demand: the janitor purges the link (blob
        # row, then object) after this request resolved it and before it reads the blob.
        view = await resolve(services, token)
        await update_link(services, token, state="deleted")
        assert await janitor.purge_links(services) == 1
        return view

    monkeypatch.setattr(links, "resolve", resolve_then_purge)
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 410
    assert answer.text == "this link has expired or was deleted\n"


async def test_missing_object_of_a_live_link_is_a_server_error(
    client: AppClient, settings: Settings
) -> None:
    created = await _big(client)
    [blob] = blob_files(settings)
    blob.unlink()
    answer = await client.get(f"/d/{created.token}")
    assert answer.status_code == 500
    assert await _downloads(client, created.token) == 0


async def test_pending_link_is_503_with_retry_after(idle_client: AppClient) -> None:
    created = await upload(idle_client)
    assert created.status == 202
    answer = await idle_client.get(f"/d/{created.token}")
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) > 0
    assert answer.headers["sealdrop-state"] == "pending"
    assert answer.headers["cache-control"] == "no-store"
