"""Object keys: built and read back in one place, under the prefixes stored objects use."""

from __future__ import annotations

import pytest

from app.crypto.tokens import new_id
from app.storage.base import check_key, check_prefix
from app.storage.object_keys import (
    BLOBS_PREFIX,
    STAGING_PREFIX,
    Piece,
    blob_id_of,
    blob_object_key,
    dump_pieces,
    job_id_of,
    load_pieces,
    piece_object_key,
    piece_prefix,
    staged_object_keys,
    staging_object_key,
)


def test_the_prefixes_are_the_ones_stored_objects_already_use() -> None:
    assert (STAGING_PREFIX, BLOBS_PREFIX) == ("staging/", "blobs/")
    assert (check_prefix(STAGING_PREFIX), check_prefix(BLOBS_PREFIX)) == ("staging/", "blobs/")


def test_a_job_is_staged_under_staging_slash_its_id() -> None:
    assert staging_object_key("Jb7x") == "staging/Jb7x"


def test_a_blob_is_stored_under_blobs_slash_its_id() -> None:
    assert blob_object_key("Bl0b") == "blobs/Bl0b"


def test_an_id_made_by_the_service_gives_a_valid_key_and_comes_back_out() -> None:
    job_id, blob_id = new_id(), new_id()
    assert check_key(staging_object_key(job_id)) == staging_object_key(job_id)
    assert check_key(blob_object_key(blob_id)) == blob_object_key(blob_id)
    assert job_id_of(staging_object_key(job_id)) == job_id
    assert blob_id_of(blob_object_key(blob_id)) == blob_id


@pytest.mark.parametrize("key", ["blobs/abc", "staging", "staging/", "xstaging/abc", ""])
def test_a_key_that_is_no_staging_key_has_no_job_id(key: str) -> None:
    assert job_id_of(key) is None


@pytest.mark.parametrize("key", ["staging/abc", "blobs", "blobs/", "old-blobs/abc", ""])
def test_a_key_that_is_no_blob_key_has_no_blob_id(key: str) -> None:
    assert blob_id_of(key) is None


def test_a_piece_is_a_valid_key_whose_job_id_comes_back_out() -> None:
    job_id, piece_id = new_id(), new_id()
    key = piece_object_key(job_id, piece_id)
    assert check_key(key) == key == f"staging/{job_id}.{piece_id}"
    assert key.startswith(piece_prefix(job_id))
    assert job_id_of(key) == job_id


def test_pieces_round_trip_through_their_row_form_in_order() -> None:
    pieces = [
        Piece("b", 10, b"h" * 16),
        Piece("a", 0, bytes(16)),
        Piece("c", 1 << 40, b"\xff" * 16),
    ]
    assert load_pieces(dump_pieces(pieces)) == pieces
    assert load_pieces(None) is None
    keys = ["staging/J.b", "staging/J.a", "staging/J.c"]
    assert staged_object_keys("J", dump_pieces(pieces)) == keys
    assert staged_object_keys("J", None) == ["staging/J"]
