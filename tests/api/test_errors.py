"""Error answers (`app/http/error_answers.py`): short, in the client's form, and never an error
themselves, whatever the request's `Accept` says."""

from __future__ import annotations

import httpx
import pytest
from fastapi import Request

from app.main import create_app
from app.settings import Settings
from tests.conftest import AppClient

UNKNOWN = "AAAAAAAAAAAAAAAAAAAAAA"
MALFORMED_Q = ["text/html;q=..", "application/json;q=1.2.3", "text/html;q=.,application/json;q=."]


@pytest.mark.parametrize("accept", MALFORMED_Q)
@pytest.mark.parametrize("path", [f"/s/{UNKNOWN}", f"/d/{UNKNOWN}"])
async def test_an_error_for_a_client_with_a_malformed_q_value_is_still_a_short_answer(
    client: AppClient, path: str, accept: str
) -> None:
    answer = await client.get(path, headers={"Accept": accept})
    assert answer.status_code == 404
    assert answer.headers["cache-control"] == "no-store"
    assert len(answer.content) < 4096


@pytest.mark.parametrize("accept", [q for q in MALFORMED_Q if "json" in q])
async def test_a_refused_upload_with_a_malformed_q_value_is_a_400(
    client: AppClient, accept: str
) -> None:
    answer = await client.put(
        "/a.txt", content=b"a", headers={"Accept": accept, "Max-Downloads": "0"}
    )
    assert answer.status_code == 400
    assert "Max-Downloads" in answer.text


def _broken_page(request: Request, status: int, message: str, headers: dict[str, str]) -> None:
    raise RuntimeError("a bug in the error page")


async def test_an_error_page_that_fails_is_answered_as_one_line_of_text(settings: Settings) -> None:
    app = create_app(settings)
    app.state.render_error_page = _broken_page
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sealdrop.test") as http:
            answer = await http.get(f"/s/{UNKNOWN}", headers={"Accept": "text/html"})
    assert answer.status_code == 404
    assert answer.text == "no such link\n"
    assert answer.headers["cache-control"] == "no-store"
