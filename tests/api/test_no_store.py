"""`Cache-Control: no-store` on every `/d/`, `/s/` and `/api/` answer, errors included.

Each case builds the situation it needs (a ready, protected, pending or deleted link) and
makes one request; whatever the status, no shared or browser cache may keep the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from app.db.clock import db_now_plus, seconds
from app.main import create_app
from app.settings import Settings
from tests.conftest import AppClient
from tests.support.asgi import upload
from tests.support.forms import CONTENT_TYPE, basic, file, multipart
from tests.support.rows import update_link

UNKNOWN = "AAAAAAAAAAAAAAAAAAAAAA"
BROWSER = "text/html,*/*;q=0.8"
Case = Callable[[AppClient], Awaitable[httpx.Response]]


async def _ready(client: AppClient, **headers: str) -> str:
    return (await upload(client, b"0123456789", headers=headers)).token


async def d_200(client: AppClient) -> httpx.Response:
    return await client.get(f"/d/{await _ready(client)}")


async def d_206(client: AppClient) -> httpx.Response:
    return await client.get(f"/d/{await _ready(client)}", headers={"Range": "bytes=0-1"})


async def d_head(client: AppClient) -> httpx.Response:
    return await client.head(f"/d/{await _ready(client)}/name.txt")


async def d_304(client: AppClient) -> httpx.Response:
    token = await _ready(client)
    etag = (await client.head(f"/d/{token}")).headers["etag"]
    return await client.get(f"/d/{token}", headers={"If-None-Match": etag})


async def d_400(client: AppClient) -> httpx.Response:
    token = await _ready(client, **{"Link-Password": "pw"})
    return await client.get(f"/d/{token}", headers={"Authorization": "Basic !!"})


async def d_401(client: AppClient) -> httpx.Response:
    token = await _ready(client, **{"Link-Password": "pw"})
    return await client.get(f"/d/{token}", headers={"Authorization": basic("wrong")})


async def d_404(client: AppClient) -> httpx.Response:
    return await client.get(f"/d/{UNKNOWN}")


async def d_404_shape(client: AppClient) -> httpx.Response:
    return await client.get("/d/short")


async def d_410(client: AppClient) -> httpx.Response:
    token = await _ready(client)
    await update_link(client.services, token, expires_at=db_now_plus(seconds(-1)))
    return await client.get(f"/d/{token}")


async def d_416(client: AppClient) -> httpx.Response:
    return await client.get(f"/d/{await _ready(client)}", headers={"Range": "bytes=99-"})


async def d_503(client: AppClient) -> httpx.Response:
    created = await upload(client, b"x")
    await update_link(client.services, created.token, state="pending")
    return await client.get(f"/d/{created.token}")


async def s_page(client: AppClient) -> httpx.Response:
    return await client.get(f"/s/{await _ready(client)}", headers={"Accept": BROWSER})


async def s_file(client: AppClient) -> httpx.Response:
    return await client.get(f"/s/{await _ready(client)}", headers={"Accept": "*/*"})


async def s_404_page(client: AppClient) -> httpx.Response:
    return await client.get(f"/s/{UNKNOWN}", headers={"Accept": BROWSER})


async def s_404_text(client: AppClient) -> httpx.Response:
    return await client.get(f"/s/{UNKNOWN}", headers={"Accept": "*/*"})


async def s_401_page(client: AppClient) -> httpx.Response:
    token = await _ready(client, **{"Link-Password": "pw"})
    return await client.get(f"/s/{token}", headers={"Accept": BROWSER})


async def api_status(client: AppClient) -> httpx.Response:
    return await client.get(f"/api/v1/links/{await _ready(client)}")


async def api_status_404(client: AppClient) -> httpx.Response:
    return await client.get(f"/api/v1/links/{UNKNOWN}")


async def api_status_401(client: AppClient) -> httpx.Response:
    token = await _ready(client, **{"Link-Password": "pw"})
    return await client.get(f"/api/v1/links/{token}", headers={"Link-Password": "wrong"})


async def api_delete_204(client: AppClient) -> httpx.Response:
    created = await upload(client)
    return await client.delete(
        f"/api/v1/links/{created.token}",
        headers={"Authorization": f"Bearer {created.manage_token}"},
    )


async def api_delete_403(client: AppClient) -> httpx.Response:
    return await client.delete(f"/api/v1/links/{await _ready(client)}")


async def api_post_201(client: AppClient) -> httpx.Response:
    return await client.post(
        "/api/v1/links", content=multipart(file(b"x")), headers={"Content-Type": CONTENT_TYPE}
    )


async def api_post_400(client: AppClient) -> httpx.Response:
    return await client.post("/api/v1/links", content=b"x", headers={"Content-Type": "text/plain"})


async def api_unknown_route_404(client: AppClient) -> httpx.Response:
    return await client.get("/api/v1/nothing-here")


async def api_wrong_method_405(client: AppClient) -> httpx.Response:
    return await client.put(f"/api/v1/links/{UNKNOWN}", content=b"x")


async def put_400(client: AppClient) -> httpx.Response:
    return await client.put("/a.txt", content=b"x", headers={"Expires-In": "soon"})


CASES: list[tuple[Case, int]] = [
    (d_200, 200),
    (d_206, 206),
    (d_head, 200),
    (d_304, 304),
    (d_400, 400),
    (d_401, 401),
    (d_404, 404),
    (d_404_shape, 404),
    (d_410, 410),
    (d_416, 416),
    (d_503, 503),
    (s_page, 200),
    (s_file, 200),
    (s_404_page, 404),
    (s_404_text, 404),
    (s_401_page, 401),
    (api_status, 200),
    (api_status_404, 404),
    (api_status_401, 401),
    (api_delete_204, 204),
    (api_delete_403, 403),
    (api_post_201, 201),
    (api_post_400, 400),
    (api_unknown_route_404, 404),
    (api_wrong_method_405, 405),
    (put_400, 400),
]


@pytest.mark.parametrize(("case", "status"), CASES, ids=[case.__name__ for case, _ in CASES])
async def test_every_answer_is_no_store(client: AppClient, case: Case, status: int) -> None:
    answer = await case(client)
    assert answer.status_code == status
    assert answer.headers.get("cache-control") == "no-store"


class _Bug(Exception):
    """An error no handler knows: what a bug raises."""


async def _raise_a_bug() -> None:
    raise _Bug("a bug's message, with a secret-looking s3cr3t in it")


@pytest.mark.parametrize(
    ("path", "accept", "kind"),
    [
        ("/api/v1/bug", "*/*", "application/json"),
        (f"/s/{UNKNOWN}/bug", "*/*", "text/plain"),
        (f"/s/{UNKNOWN}/bug", BROWSER, "text/html"),
    ],
)
async def test_an_unexpected_error_is_a_short_500_that_is_no_store(
    settings: Settings, path: str, accept: str, kind: str
) -> None:
    app = create_app(settings)
    app.add_api_route(path, _raise_a_bug)
    async with app.router.lifespan_context(app):
        # As under uvicorn: the exception goes on to the server's log, the client gets the answer.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://sealdrop.test") as http:
            answer = await http.get(path, headers={"Accept": accept})
    assert answer.status_code == 500
    assert answer.headers.get("cache-control") == "no-store"
    assert answer.headers["content-type"].startswith(kind)
    assert "s3cr3t" not in answer.text
    assert "Traceback" not in answer.text
    assert "_Bug" not in answer.text
    if kind != "text/html":
        assert answer.text.count("\n") <= 1
        assert len(answer.content) < 100
