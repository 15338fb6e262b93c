"""What the OpenAPI document says about answers FastAPI cannot infer from the routes.

A file goes out with its own stored type, so a file answer is documented as any type; an
upload answers JSON or one line of text, as the client's `Accept` asks. FastAPI documents
a 422 for every route with parameters, but Sealdrop answers a request that fails
validation with 400 (`app.http.error_answers`), and every error of the JSON API as
`{"error", "status"}`: `install` corrects the document to say so. The hostile suite's
fuzzer (tests/hostile/test_fuzz.py) holds the API to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

BINARY: dict[str, Any] = {"schema": {"type": "string", "format": "binary"}}
FILE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file, with its stored type", "content": {"*/*": BINARY}},
    206: {"description": "The part of the file the Range asked for", "content": {"*/*": BINARY}},
    304: {"description": "Not modified (If-None-Match named the file's ETag)"},
    400: {"description": "Malformed credentials"},
}
SHARE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": "The share page (browsers) or the file", "content": {"*/*": BINARY}},
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    "required": ["error", "status"],
}
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


_LINKED_ID = "$response.body#/token"
# Where the token of a JSON upload answer leads (OpenAPI links: a fuzzer follows them).
_LINKS: dict[str, Any] = {
    "status": {"operationRef": "#/paths/~1api~1v1~1links~1{token}/get"},
    "qr": {"operationRef": "#/paths/~1api~1v1~1links~1{token}~1qr.svg/get"},
    "share": {"operationRef": "#/paths/~1s~1{token}/get"},
    "download": {"operationRef": "#/paths/~1d~1{token}/get"},
    "delete": {
        "operationRef": "#/paths/~1api~1v1~1links~1{token}/delete",
        "parameters": {"header.authorization": "Bearer {$response.body#/manage_token}"},
    },
}


def created_answers(model: type[Any]) -> dict[str, Any]:
    """An upload's 201 and 202: `model` as JSON (or the share URL as text), and its links."""
    links = {
        name: {**link, "parameters": {"token": _LINKED_ID, **link.get("parameters", {})}}
        for name, link in _LINKS.items()
    }
    return {
        "model": model,
        "content": {"text/plain": {"schema": {"type": "string"}}},
        "links": links,
    }


def install(app: FastAPI) -> None:
    """Make `app`'s document name 400 where FastAPI would name 422, and JSON API errors."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _correct(generate())
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _correct(document: dict[str, Any]) -> None:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            answers: dict[str, Any] = operation.get("responses", {})
            if answers.pop("422", None) is not None:
                answers.setdefault("400", {"description": "Bad request"})
            if not path.startswith("/api/"):
                continue  # pages and files answer errors as text or a page, as asked
            for status, answer in answers.items():
                if status >= "400" and "content" not in answer:
                    answer["content"] = error
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Error"] = _ERROR_SCHEMA
