"""How large the pieces of an upload staged into S3 as it arrives are."""

from __future__ import annotations

import pytest

from app.domain.piece_staging import MAX_PIECES, PIECE_BYTES, piece_bytes

GIB = 1024**3


@pytest.mark.parametrize("size", [4 * 1024**2, 5 * GIB, 16 * GIB])
def test_uploads_up_to_16_gib_are_staged_in_16_mib_pieces(size: int) -> None:
    assert piece_bytes(size) == PIECE_BYTES


@pytest.mark.parametrize("size", [16 * GIB + 1, 100 * GIB, 5 * 1024 * GIB])
def test_larger_uploads_have_larger_pieces_of_whole_16_mib_and_at_most_1024(size: int) -> None:
    each = piece_bytes(size)
    assert each > PIECE_BYTES
    assert each % PIECE_BYTES == 0
    assert -(-size // each) <= MAX_PIECES
