"""Hostile file names and active content: stored and shown safely, never run by a browser.

Names arrive through the `PUT` path and the form's `filename` parameter. Whatever comes
in, a download answers one valid `Content-Disposition` (parsed strictly and by the
standard library's `email` parser), no injected header, an ASCII fallback, and a
`filename*` that decodes to a name with no path separators or control characters; and no
file appears outside the buckets. Uploads a browser would render or run are always sent
as `attachment`, `nosniff`, `Content-Security-Policy: default-src 'none'; sandbox`, never
with a renderable type, and headless Chromium navigating to (or embedding) them runs none
of their script.
"""

from __future__ import annotations

import asyncio
import email.policy
import io
import re
import secrets
import unicodedata
import zipfile
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest
from playwright.async_api import Browser, Error, Page

from tests.hostile.conftest import Uploaded, post_form, repo_root, upload, upload_form
from tests.hostile.watcher import LoopbackWatch
from tests.support.browser import CHROMIUM, chromium
from tests.support.production import ProductionStack

MARKER = f"hostile-{secrets.token_hex(4)}"
HOSTILE_NAMES = {
    "dot-dot-slash": "../../etc/passwd",
    "dot-dot-backslash": "..\\..\\x",
    "traversal-to-tmp": f"../../../../../../tmp/{MARKER}",
    "absolute": f"/tmp/{MARKER}-absolute",
    "windows-drive": "C:\\Windows\\win.ini",
    "nul": "evil\x00.txt",
    "crlf-header": "a\r\nX-Injected: yes\r\n.txt",
    "quotes": "say \"hi\" 'there'.txt",
    "parameter-injection": 'a.txt"; filename="evil.html',
    "percent-traversal": "%2e%2e%2fsecret",
    "rtl-override": "invoice\u202efdp.exe",
    "emoji-kilobyte": "\U0001f600" * 256,
    "nfd": "cafe\u0301.txt",
    "only-dots": "..",
    "html-tag": "<img src=x onerror=alert(1)>.txt",
}
# RFC 6266 with RFC 8187: the exact shape we promise, nothing more.
DISPOSITION = re.compile(
    r"^attachment; filename=\"(?P<ascii>[ !#-\[\]-~]+)\"; "
    r"filename\*=UTF-8''(?P<encoded>(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+)$"
)
RENDERABLE = re.compile(
    r"^(text/html|application/xhtml\+xml|image/svg\+xml|text/xml|application/xml|.*\+xml"
    r"|text/javascript|application/javascript|application/ecmascript|text/css)$"
)
SAFE_BUCKET_KEY = re.compile(r"^(blobs|staging)/[A-Za-z0-9_-]{16,64}$")
PAYLOAD_WAIT_SECONDS = 0.5


def disposition_name(value: str) -> str:
    """The name a `Content-Disposition` value gives, checked strictly and by `email`."""
    match = DISPOSITION.match(value)
    assert match, f"not the promised shape: {value!r}"
    message = email.message_from_string(
        f"Content-Disposition: {value}\n\n", policy=email.policy.HTTP
    )
    assert isinstance(message, EmailMessage)
    # RFC 6266 sends both `filename` and `filename*`; to RFC 2231's reading (the email
    # package's) they are one parameter given twice, which is the only defect allowed.
    defects = [str(d) for d in message["Content-Disposition"].defects]
    assert set(defects) <= {"duplicate parameter name; duplicate(s) ignored"}, defects
    assert message.get_content_disposition() == "attachment"
    name = unquote(match["encoded"], errors="strict")
    fallback = match["ascii"]
    # Which of the two it keeps is the parser's choice (RFC 6266 readers take filename*).
    assert message.get_filename() in (name, fallback)
    assert fallback.strip()
    assert fallback not in (".", "..")
    assert "/" not in fallback
    assert "\\" not in fallback
    return name


def assert_safe_name(name: str) -> None:
    """A label, never a path: no separators, controls or format characters; NFC; short."""
    assert name
    assert name not in (".", "..")
    assert "/" not in name
    assert "\\" not in name
    assert all(unicodedata.category(c) not in ("Cc", "Cf") for c in name), repr(name)
    assert unicodedata.normalize("NFC", name) == name
    assert len(name.encode()) <= 255


def assert_served_safely(answer: httpx.Response) -> str:
    """The download's headers are the safe ones; the name it gives is returned."""
    raw = [(key.decode("latin-1").lower(), value) for key, value in answer.headers.raw]
    assert [key for key, _ in raw].count("content-disposition") == 1
    assert not any(key.startswith("x-injected") for key, _ in raw)
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == "default-src 'none'; sandbox"
    served_type = answer.headers["content-type"].split(";")[0].strip().lower()
    assert not RENDERABLE.match(served_type), served_type
    name = disposition_name(answer.headers["content-disposition"])
    assert_safe_name(name)
    return name


def stored_by_put(client: httpx.Client, name: str) -> Uploaded | None:
    """Upload through the PUT path; None if the server refused the name (nothing stored)."""
    answer = client.put(
        f"/{quote(name, safe='')}", content=b"content", headers={"Accept": "application/json"}
    )
    if answer.status_code != 201:
        assert 400 <= answer.status_code < 500, answer.status_code
        return None
    body = answer.json()
    return Uploaded(body["token"], body["download_url"], body["size"], body["sha256"])


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_hostile_name_through_the_put_path_is_served_safely(
    stack: ProductionStack, client: httpx.Client, name: str
) -> None:
    uploaded = stored_by_put(client, name)
    if uploaded is None:
        return  # refused at the door (a path with "/" matches no route): nothing stored
    assert "\r" not in uploaded.download_url
    assert "\n" not in uploaded.download_url
    served = assert_served_safely(client.get(uploaded.path))
    assert client.get(f"/api/v1/links/{uploaded.token}").json()["filename"] == served


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_hostile_name_as_the_form_filename_is_served_safely(
    stack: ProductionStack, client: httpx.Client, name: str
) -> None:
    answer = post_form(client, name.encode(), b"content")
    if answer.status_code == 400:
        return  # a name that breaks the part's header is a malformed form: nothing stored
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    served = assert_served_safely(client.get(f"/d/{token}"))
    assert client.get(f"/api/v1/links/{token}").json()["filename"] == served


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"../../etc/passwd", "passwd"),
        (b"..\\..\\x", "x"),
        (b"cafe\xcc\x81.txt", "caf\u00e9.txt"),
        (b"invoice\xe2\x80\xaefdp.exe", "invoicefdp.exe"),
        (b"evil\x00.txt", "evil.txt"),
    ],
    ids=["dot-dot-slash", "dot-dot-backslash", "nfd", "rtl-override", "nul"],
)
def test_form_filename_keeps_only_its_last_visible_part(
    client: httpx.Client, raw: bytes, expected: str
) -> None:
    uploaded = upload_form(client, raw, b"content")
    assert assert_served_safely(client.get(uploaded.path)) == expected


def test_rfc_8187_form_filename_cannot_smuggle_a_path_or_a_header(client: httpx.Client) -> None:
    boundary = "hostile-8187"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        "filename*=UTF-8''..%2F..%2Fevil%0D%0AX-Injected%3A%20yes\r\n\r\ncontent\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    answer = client.post(
        "/api/v1/links",
        content=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Accept": "application/json",
        },
    )
    assert answer.status_code in (201, 400), answer.text
    if answer.status_code == 201:
        assert_served_safely(client.get(f"/d/{answer.json()['token']}"))


def test_an_emoji_name_of_a_kilobyte_is_cut_to_whole_characters(client: httpx.Client) -> None:
    uploaded = upload(client, "\U0001f600" * 256, b"content")
    name = assert_served_safely(client.get(uploaded.path))
    assert name == "\U0001f600" * 63  # 252 bytes: a 64th would pass 255


def test_no_name_reaches_the_file_system_or_a_bucket_key(
    stack: ProductionStack, client: httpx.Client
) -> None:
    for name in (f"../../../../../../tmp/{MARKER}", f"..\\..\\..\\tmp\\{MARKER}"):
        upload_form(client, name.encode(), b"content")
        stored_by_put(client, name)
    assert [key for key in stack.list_objects() if not SAFE_BUCKET_KEY.match(key)] == []
    assert list(_files_named_like(MARKER)) == []


def _files_named_like(marker: str) -> Iterator[Path]:
    """Files whose name holds `marker` where a traversing name could have landed."""
    yield from Path("/tmp").glob(f"*{marker}*")
    for root in (repo_root(), Path("/work/shared")):
        for path in root.rglob(f"*{marker}*"):
            if ".venv" not in path.parts:
                yield path


# -- active content --------------------------------------------------------------------


def payload_script(watch: LoopbackWatch, label: str) -> str:
    """Script that, if it ever ran, sets the title and calls the watcher."""
    return (
        f"document.title='pwned-{label}';"
        f"fetch('{watch.url}/hit/{label}').catch(function(){{}});"
        f"new Image().src='{watch.url}/hit/{label}-img';"
    )


def active_uploads(watch: LoopbackWatch) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    """label -> (name, body, upload headers) of content a browser would render or run."""
    script = payload_script
    html_page = f"<!doctype html><html><body><script>{script(watch, 'html')}</script></body></html>"
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="' + script(watch, "svg-onload") + '">'
        f"<script>{script(watch, 'svg')}</script></svg>"
    )
    xhtml = (
        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>x</title>'
        f"</head><body><script>{script(watch, 'xhtml')}</script></body></html>"
    )
    return {
        "html": ("page.html", html_page.encode(), {}),
        "svg": ("image.svg", svg.encode(), {}),
        "xhtml": ("page.xhtml", xhtml.encode(), {}),
        "polyglot": ("archive.zip", _html_zip_polyglot(script(watch, "polyglot")), {}),
        "extensionless-html": (
            "README",
            f"<html><script>{script(watch, 'bare')}</script></html>".encode(),
            {},
        ),
        "declared-html": (
            "notes.txt",
            f"<html><script>{script(watch, 'declared')}</script></html>".encode(),
            {"Content-Type": "text/html; charset=utf-8"},
        ),
        "javascript": ("app.js", script(watch, "js").encode(), {}),
    }


def _html_zip_polyglot(script: str) -> bytes:
    """A valid ZIP archive whose first bytes are an HTML page with a script."""
    archive = io.BytesIO()
    archive.write(f"<html><script>{script}</script><!--".encode())
    with zipfile.ZipFile(archive, "a") as zipped:
        zipped.writestr("inner.txt", "inner")
    return archive.getvalue()


@pytest.fixture(scope="module")
def watch() -> Iterator[LoopbackWatch]:
    """The loopback server a payload would call."""
    with LoopbackWatch() as running:
        yield running


@pytest.fixture(scope="module")
def active(
    stack: ProductionStack, watch: LoopbackWatch
) -> dict[str, tuple[Uploaded, dict[str, str]]]:
    """Every active payload, uploaded once: label -> (link, upload headers)."""
    with httpx.Client(base_url=stack.base_url, timeout=60, trust_env=False) as http:
        return {
            label: (upload(http, name, body, **headers), headers)
            for label, (name, body, headers) in active_uploads(watch).items()
        }


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Headless Debian Chromium."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-test-deps")
    async with chromium() as launched:
        yield launched


async def test_the_watch_sees_a_payload_that_does_run(browser: Browser) -> None:
    # The control: served as a page of its own, the same payload calls the watcher.
    with LoopbackWatch() as control:
        context = await browser.new_context()
        try:
            page = await context.new_page()
            await page.set_content(f"<script>{payload_script(control, 'control')}</script>")
            assert await page.title() == "pwned-control"
            await page.wait_for_timeout(PAYLOAD_WAIT_SECONDS * 1000)
        finally:
            await context.close()
        assert "/hit/control" in control.hits()


@pytest.mark.parametrize("where", ["/d/{token}", "/d/{token}/page.html", "/s/{token}"])
def test_active_content_is_always_an_attachment_that_cannot_render(
    client: httpx.Client, active: dict[str, tuple[Uploaded, dict[str, str]]], where: str
) -> None:
    for uploaded, _headers in active.values():
        path = where.format(token=uploaded.token)
        for answer in (client.get(path, headers={"Accept": "*/*"}), client.head(path)):
            if answer.request.method == "HEAD" and where.startswith("/s/"):
                continue  # /s/ answers GET only
            assert answer.status_code == 200
            assert answer.headers["content-disposition"].startswith("attachment;")
            assert_served_safely(answer)


async def test_chromium_navigating_to_active_content_runs_no_script(
    stack: ProductionStack,
    browser: Browser,
    watch: LoopbackWatch,
    active: dict[str, tuple[Uploaded, dict[str, str]]],
) -> None:
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        for uploaded, _headers in active.values():
            for url in (uploaded.download_url, f"{stack.base_url}/s/{uploaded.token}"):
                await _visit(page, url)
                assert not (await page.title()).startswith("pwned")
    finally:
        await context.close()
    await asyncio.sleep(PAYLOAD_WAIT_SECONDS)
    assert watch.hits() == []


async def test_a_page_of_another_origin_embedding_active_content_runs_no_script(
    browser: Browser, watch: LoopbackWatch, active: dict[str, tuple[Uploaded, dict[str, str]]]
) -> None:
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        for uploaded, _headers in active.values():
            await _visit(page, watch.embedding_page_url(uploaded.download_url))
            titles = [await frame.title() for frame in page.frames if not frame.is_detached()]
            assert not any(title.startswith("pwned") for title in titles), titles
    finally:
        await context.close()
    await asyncio.sleep(PAYLOAD_WAIT_SECONDS)
    assert watch.hits() == []


async def test_share_page_shows_a_hostile_name_as_text(
    stack: ProductionStack, client: httpx.Client, browser: Browser, watch: LoopbackWatch
) -> None:
    call = quote(f"{watch.url}/hit/name", safe=":")  # no "/": a name never holds one
    name = f"<img src=x onerror=\"document.title='pwned';fetch(decodeURI('{call}'))\">.txt"
    uploaded = upload(client, name, b"content")
    page_html = client.get(f"/s/{uploaded.token}", headers={"Accept": "text/html"}).text
    assert "<img src=x" not in page_html
    context = await browser.new_context(accept_downloads=True)
    try:
        page = await context.new_page()
        await _visit(page, f"{stack.base_url}/s/{uploaded.token}")
        assert await page.locator("img[src=x]").count() == 0
        assert not (await page.title()).startswith("pwned")
    finally:
        await context.close()
    await asyncio.sleep(PAYLOAD_WAIT_SECONDS)
    assert watch.hits() == []


async def _visit(page: Page, url: str) -> None:
    """Navigate until the page has loaded (inline scripts have run by then); a download
    is no error. Calls a script may have sent are awaited once, at the end of a test."""
    try:
        await page.goto(url, wait_until="load", timeout=15_000)
    except Error as error:
        # An attachment turns the navigation into a download: Chromium renders nothing.
        if "Download is starting" not in str(error) and "ERR_ABORTED" not in str(error):
            raise
