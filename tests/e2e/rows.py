"""Looking behind the API of a stack: a link's row and its blob, found by the link's token.

The database keeps only SHA-256 of a token (DESIGN §3), so rows are found by that hash;
several tests share one stack, and each looks only at its own link.
"""

from __future__ import annotations

import hashlib

from tests.support.stack import Stack


def token_hash(token: str) -> bytes:
    """What the `links.token_hash` column holds for `token`."""
    return hashlib.sha256(token.encode("ascii")).digest()


def link_state(stack: Stack, token: str) -> str:
    """The link's `state` column."""
    rows = stack.sql("select state from links where token_hash = :h", h=token_hash(token))
    assert len(rows) == 1, f"expected one links row for the token, found {len(rows)}"
    return str(rows[0].state)


def blob_key(stack: Stack, token: str) -> str:
    """The object key of the link's sealed blob, `blobs/<blob id>`."""
    rows = stack.sql("select blob_id from links where token_hash = :h", h=token_hash(token))
    assert len(rows) == 1, f"expected one links row for the token, found {len(rows)}"
    assert rows[0].blob_id, "the link has no blob"
    return f"blobs/{rows[0].blob_id}"
