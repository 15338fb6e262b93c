"""QR codes of share links, drawn on the server as SVG (no script, no external asset)."""

from __future__ import annotations

import io

import segno


def qr_svg(url: str) -> bytes:
    """An SVG QR code of `url`: scalable (no fixed size), black on white, quiet zone kept."""
    code = segno.make(url, error="m")
    out = io.BytesIO()
    code.save(
        out,
        kind="svg",
        border=4,
        xmldecl=False,
        omitsize=True,
        dark="#000",
        light="#fff",
        title="QR code of the share link",
    )
    return out.getvalue()
