"""Reading the small URL-encoded forms the pages post (the password form).

The body is read with a cap and parsed to raw bytes, so that passwords are decoded the one
way every path decodes them (`app.crypto.passwords.decode_password`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import Request

from app.errors import BadRequest

MAX_FORM_BYTES = 8192


async def read_form(request: Request) -> dict[str, bytes]:
    """The fields of an `application/x-www-form-urlencoded` body, first value of each."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("expected a form (application/x-www-form-urlencoded)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise BadRequest("the form is too large")
    fields: dict[str, bytes] = {}
    for name, value in parse_qsl(bytes(body), keep_blank_values=True):
        fields.setdefault(name.decode("utf-8", "replace"), value)
    return fields
