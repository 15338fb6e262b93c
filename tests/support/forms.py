"""Hand-built request parts: multipart bodies in a chosen field order, and Basic credentials.

httpx orders form fields before files; the upload contract says fields may come on
either side of the file, so tests build the body themselves.
"""

from __future__ import annotations

import base64

BOUNDARY = "sealdrop-test-boundary-7f3a"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"

Part = tuple[str, bytes] | tuple[str, bytes, str, str]


def field(name: str, value: str | bytes) -> Part:
    """A text field."""
    return (name, value.encode() if isinstance(value, str) else value)


def file(data: bytes, filename: str = "report.pdf", content_type: str = "application/pdf") -> Part:
    """The `file` field."""
    return ("file", data, filename, content_type)


def multipart(*parts: Part) -> bytes:
    """A multipart/form-data body of `parts`, in the order given."""
    out = bytearray()
    for part in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        if len(part) == 4:
            name, data, filename, content_type = part
            out += (
                f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n"
            ).encode()
        else:
            name, data = part[0], part[1]
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


def basic(password: str | bytes, user: str | bytes = b"") -> str:
    """An `Authorization: Basic …` value (the user name is ignored by Sealdrop)."""
    raw_user = user.encode() if isinstance(user, str) else user
    raw_password = password.encode() if isinstance(password, str) else password
    return "Basic " + base64.b64encode(raw_user + b":" + raw_password).decode()
