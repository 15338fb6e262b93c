"""Which upload path the client takes from what the server's discovery document says."""

from __future__ import annotations

from typing import Any

import pytest

from app.client.discovery import DEFAULT_TUS_CHUNK, Offer, choose, parse_offer
from app.client.errors import EXIT_REFUSED, ClientError

SERVER = "https://drop.example"
FULL: dict[str, Any] = {
    "service": "sealdrop",
    "api_version": 1,
    "max_upload_bytes": 1 << 30,
    "uploads": {
        "put": {"url": "/"},
        "tus": {"url": "/api/v1/uploads/", "version": "1.0.0", "chunk_size": 1 << 20},
        "direct": {"url": "/api/v1/direct-uploads"},
    },
}


def test_every_path_offered_becomes_an_absolute_url() -> None:
    offer = parse_offer(SERVER, FULL)
    assert offer == Offer(
        put_url=f"{SERVER}/",
        tus_url=f"{SERVER}/api/v1/uploads/",
        tus_chunk_size=1 << 20,
        direct_url=f"{SERVER}/api/v1/direct-uploads",
        max_upload_bytes=1 << 30,
    )


@pytest.mark.parametrize("document", [None, [], {"service": "other"}, "text"])
def test_anything_but_our_document_means_put_only(document: Any) -> None:
    assert parse_offer(SERVER, document) == Offer(put_url=f"{SERVER}/")


def test_a_bad_chunk_size_falls_back_to_the_default() -> None:
    document = {**FULL, "uploads": {"tus": {"url": "/t/", "chunk_size": "big"}}}
    offer = parse_offer(SERVER, document)
    assert offer.tus_chunk_size == DEFAULT_TUS_CHUNK
    assert offer.direct_url is None


def test_auto_takes_tus_when_offered_else_put() -> None:
    assert choose(parse_offer(SERVER, FULL), "auto") == "tus"
    assert choose(Offer(put_url=f"{SERVER}/"), "auto") == "put"
    assert choose(parse_offer(SERVER, FULL), "put") == "put"
    assert choose(parse_offer(SERVER, FULL), "direct") == "direct"


@pytest.mark.parametrize("via", ["tus", "direct"])
def test_asking_for_a_path_not_offered_is_refused(via: Any) -> None:
    with pytest.raises(ClientError) as refused:
        choose(Offer(put_url=f"{SERVER}/"), via)
    assert refused.value.exit_code == EXIT_REFUSED
