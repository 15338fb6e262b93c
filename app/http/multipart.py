"""A streaming `multipart/form-data` reader for uploads (python-multipart's parser).

The file part is handed on chunk by chunk as it arrives, never spooled to memory or disk
(Starlette's `request.form()` would spool it), as views of the body's chunks (no copy).
Small text fields are collected on the way, in any order, and each is handed to `on_field`
as soon as it ends, so that a bad option stops the upload there; all of them are complete
once the file iterator is exhausted, because that iterator reads the body to its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.errors import BadRequest

MAX_FIELDS = 16
MAX_FIELD_BYTES = 4096
MAX_HEADER_BYTES = 8192
FILE_FIELD = "file"
# The most a form may carry besides the file's bytes: every part's headers and fields.
MAX_OVERHEAD_BYTES = MAX_FIELDS * (MAX_HEADER_BYTES + MAX_FIELD_BYTES)


def field_text(name: str, raw: bytes) -> str:
    """A text field's raw value decoded as UTF-8; BadRequest if it is not."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"the field {name!r} is not valid UTF-8") from None


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str | None = None
    data: bytearray = field(default_factory=bytearray)


class StreamingForm:
    """Parses one multipart body; iterate `file_chunks()` to stream the `file` field."""

    def __init__(
        self,
        content_type: str | None,
        body: AsyncIterator[bytes],
        on_field: Callable[[str, bytes], None] | None = None,
    ) -> None:
        kind, params = parse_options_header(content_type or "")
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise BadRequest("expected multipart/form-data with a boundary")
        self._body = body
        self._on_field = on_field
        self.fields: dict[str, bytes] = {}
        self.filename: str | None = None
        self.file_content_type: str | None = None
        self.saw_file = False
        self._events: list[tuple[str, memoryview]] = []
        self._part = _Part()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._parts = 0
        self._ended = False
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks={
                    "on_part_begin": self._on_part_begin,
                    "on_part_data": self._on_part_data,
                    "on_part_end": self._on_part_end,
                    "on_header_field": self._on_header_field,
                    "on_header_value": self._on_header_value,
                    "on_header_end": self._on_header_end,
                    "on_headers_finished": self._on_headers_finished,
                    "on_end": self._on_end,
                },
                max_header_size=MAX_HEADER_BYTES,
            )
        except Exception:
            raise BadRequest("the multipart boundary is invalid") from None

    async def file_chunks(self) -> AsyncIterator[memoryview]:
        """The bytes of the `file` field as they arrive; reads the whole body."""
        async for chunk in self._body:
            try:
                self._parser.write(chunk)
            except MultipartParseError:
                raise BadRequest("the multipart body is malformed") from None
            for data in self._drain():
                yield data
        self._parser.finalize()
        for data in self._drain():
            yield data
        if not self._ended:
            raise BadRequest("the multipart body ended early")
        if not self.saw_file:
            raise BadRequest("the form has no 'file' field")

    def _drain(self) -> list[memoryview]:
        events, self._events = self._events, []
        return [data for kind, data in events if kind == "file"]

    def _on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS:
            raise BadRequest(f"the form has more than {MAX_FIELDS} fields")
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        part = self._part
        disposition, params = parse_options_header(part.headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise BadRequest("each form part needs Content-Disposition: form-data; name=…")
        part.name = params[b"name"].decode("utf-8", errors="replace")
        if part.name == FILE_FIELD:
            if self.saw_file:
                raise BadRequest("send one file per upload")
            self.saw_file = True
            raw_name = params.get(b"filename", b"")
            self.filename = raw_name.decode("utf-8", errors="replace") or None
            content_type = part.headers.get(b"content-type")
            self.file_content_type = content_type.decode("latin-1") if content_type else None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.name == FILE_FIELD:
            self._events.append(("file", memoryview(data)[start:end]))
            return
        part.data += data[start:end]
        if len(part.data) > MAX_FIELD_BYTES:
            raise BadRequest(f"the field {part.name!r} is too long")

    def _on_part_end(self) -> None:
        part = self._part
        if part.name != FILE_FIELD:
            self.fields[part.name] = bytes(part.data)
            if self._on_field is not None:
                self._on_field(part.name, self.fields[part.name])

    def _on_end(self) -> None:
        self._ended = True
