"""Tests of the key ring: parsing, wrapping data keys, and the embedded key file."""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from app.crypto.keys import (
    KEY_SIZE,
    WRAPPED_KEY_SIZE,
    KeyRing,
    KeyRingError,
    data_key_context,
    load_key_ring,
    new_data_key,
    new_key_entry,
    staging_key_context,
)
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
VECTORS = json.loads((REPO / "tests" / "vectors" / "sealed-v1.json").read_text())
KEY_WRAP = VECTORS["key_wrap"]

MASTER = bytes(range(100, 132))
OTHER_MASTER = bytes(range(200, 232))
DATA_KEY = bytes(range(32))
CONTEXT = data_key_context("blob-1")


def encode(key: bytes, *, padded: bool = False) -> str:
    text = base64.urlsafe_b64encode(key).decode()
    return text if padded else text.rstrip("=")


def ring(*entries: tuple[str, bytes], active_id: str | None = None) -> KeyRing:
    return KeyRing.parse(",".join(f"{key_id}:{encode(key)}" for key_id, key in entries), active_id)


def embedded_settings(data_dir: Path, **values: object) -> Settings:
    # Explicit values win over any SEALDROP_* variable of the environment running the tests.
    defaults: dict[str, object] = {
        "master_keys": None,
        "master_keys_file": None,
        "active_key_id": None,
    }
    return Settings(data_dir=data_dir, **(defaults | values))  # type: ignore[arg-type]


# Known answer ---------------------------------------------------------------------------


def test_vector_key_ring_line_parses_to_the_vector_master_key() -> None:
    key_ring = KeyRing.parse(KEY_WRAP["master_keys_line"])
    assert key_ring.active_id == "k1"
    assert key_ring.keys["k1"] == bytes.fromhex(KEY_WRAP["master_key_hex"])


def test_vector_wrapped_key_unwraps_to_the_vector_data_key() -> None:
    key_ring = KeyRing.parse(KEY_WRAP["master_keys_line"])
    wrapped = bytes.fromhex(KEY_WRAP["wrapped_key_hex"])
    context = data_key_context(KEY_WRAP["blob_id"])
    assert len(wrapped) == WRAPPED_KEY_SIZE
    assert wrapped[:12].hex() == KEY_WRAP["nonce_hex"]
    assert key_ring.unwrap("k1", wrapped, context).hex() == KEY_WRAP["data_key_hex"]


def test_wrapping_with_the_vector_nonce_gives_the_vector_bytes() -> None:
    # The format, computed independently: nonce || AES-GCM(master, nonce, key, context).
    master = bytes.fromhex(KEY_WRAP["master_key_hex"])
    nonce = bytes.fromhex(KEY_WRAP["nonce_hex"])
    context = b"sealdrop/data-key/v1:" + KEY_WRAP["blob_id"].encode()
    expected = nonce + AESGCM(master).encrypt(
        nonce, bytes.fromhex(KEY_WRAP["data_key_hex"]), context
    )
    assert expected.hex() == KEY_WRAP["wrapped_key_hex"]
    assert data_key_context(KEY_WRAP["blob_id"]) == context


def test_wrap_output_follows_the_format() -> None:
    key_ring = KeyRing.parse(KEY_WRAP["master_keys_line"])
    _, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    master = bytes.fromhex(KEY_WRAP["master_key_hex"])
    assert wrapped[12:] == AESGCM(master).encrypt(wrapped[:12], DATA_KEY, CONTEXT)


# Contexts and new keys ------------------------------------------------------------------


def test_contexts_name_what_the_key_seals() -> None:
    assert data_key_context("abc_-9") == b"sealdrop/data-key/v1:abc_-9"
    assert staging_key_context("job-7") == b"sealdrop/staging-key/v1:job-7"


def test_context_with_an_empty_id_is_refused() -> None:
    with pytest.raises(KeyRingError):
        data_key_context("")


def test_new_data_keys_are_random_256_bit_keys() -> None:
    keys = {new_data_key() for _ in range(50)}
    assert len(keys) == 50
    assert {len(key) for key in keys} == {KEY_SIZE}


def test_new_key_entry_parses_back_with_its_id() -> None:
    entry = new_key_entry("k2025.01_a-b")
    assert "=" not in entry
    key_ring = KeyRing.parse(entry)
    assert key_ring.active_id == "k2025.01_a-b"
    assert len(key_ring.keys["k2025.01_a-b"]) == KEY_SIZE


def test_new_key_entries_differ() -> None:
    assert new_key_entry("k1") != new_key_entry("k1")


@pytest.mark.parametrize("key_id", ["", "a:b", "a b", "é", "x" * 65])
def test_new_key_entry_refuses_a_bad_id(key_id: str) -> None:
    with pytest.raises(KeyRingError):
        new_key_entry(key_id)


# Parsing --------------------------------------------------------------------------------


def test_entries_separated_by_commas_parse() -> None:
    key_ring = KeyRing.parse(f"a:{encode(MASTER)},b:{encode(OTHER_MASTER)}")
    assert dict(key_ring.keys) == {"a": MASTER, "b": OTHER_MASTER}


def test_entries_separated_by_newlines_parse() -> None:
    key_ring = KeyRing.parse(f"a:{encode(MASTER)}\r\nb:{encode(OTHER_MASTER)}\n")
    assert dict(key_ring.keys) == {"a": MASTER, "b": OTHER_MASTER}


def test_spaces_and_blank_entries_are_ignored() -> None:
    text = f"\n ,  a : {encode(MASTER)} ,,\n\n\t b:{encode(OTHER_MASTER)}  \n,"
    assert dict(KeyRing.parse(text).keys) == {"a": MASTER, "b": OTHER_MASTER}


def test_padded_key_parses() -> None:
    assert KeyRing.parse(f"a:{encode(MASTER, padded=True)}").keys["a"] == MASTER


def test_only_the_first_colon_splits() -> None:
    with pytest.raises(KeyRingError, match=r"entry 1 .*base64url"):
        KeyRing.parse(f"a:b:{encode(MASTER)}")


def test_active_key_defaults_to_the_first_entry() -> None:
    assert ring(("z", MASTER), ("a", OTHER_MASTER)).active_id == "z"


def test_active_key_can_be_chosen() -> None:
    assert ring(("z", MASTER), ("a", OTHER_MASTER), active_id="a").active_id == "a"


def test_unknown_active_key_is_refused() -> None:
    with pytest.raises(KeyRingError, match="active key id 'c'"):
        ring(("a", MASTER), ("b", OTHER_MASTER), active_id="c")


def test_duplicate_key_ids_are_refused() -> None:
    with pytest.raises(KeyRingError, match="entry 2: duplicate key id 'a'"):
        ring(("a", MASTER), ("a", OTHER_MASTER))


@pytest.mark.parametrize("text", ["", " ", ",\n,", "\n\n"])
def test_empty_key_ring_is_refused(text: str) -> None:
    with pytest.raises(KeyRingError, match="no entries"):
        KeyRing.parse(text)


def test_entry_without_colon_is_refused() -> None:
    with pytest.raises(KeyRingError, match="entry 2: expected 'key_id:base64url-key'"):
        KeyRing.parse(f"a:{encode(MASTER)},{encode(OTHER_MASTER)}")


@pytest.mark.parametrize("key_id", ["", "a b", "a/b", "ключ", "x" * 65])
def test_bad_key_id_is_refused(key_id: str) -> None:
    with pytest.raises(KeyRingError, match="entry 1: key id"):
        KeyRing.parse(f"{key_id}:{encode(MASTER)}")


@pytest.mark.parametrize(
    "encoded",
    [
        base64.b64encode(b"\xfb" * 32).decode(),  # standard alphabet: '+' and '/'
        encode(MASTER)[:-1] + "!",
        encode(MASTER) + "===",
        "=" + encode(MASTER),
        encode(MASTER)[:10] + "=" + encode(MASTER)[10:],
        "A",
    ],
)
def test_key_that_is_not_base64url_is_refused(encoded: str) -> None:
    with pytest.raises(KeyRingError, match="entry 1 \\('a'\\): key is not base64url"):
        KeyRing.parse(f"a:{encoded}")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_key_of_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(KeyRingError, match=f"key is {size} bytes, expected 32"):
        KeyRing.parse(f"a:{encode(MASTER)}\nb:{encode(bytes(size))}")


def test_parse_errors_never_show_the_key() -> None:
    short = MASTER[:31]
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(f"a:{encode(short)}")
    assert encode(short) not in str(caught.value)
    assert short.hex() not in str(caught.value)


def test_keys_cannot_be_changed_through_the_ring() -> None:
    source = {"a": MASTER}
    key_ring = KeyRing(source, "a")
    source["a"] = OTHER_MASTER
    assert key_ring.keys["a"] == MASTER
    with pytest.raises(TypeError):
        key_ring.keys["b"] = OTHER_MASTER  # type: ignore[index]


def test_repr_shows_ids_but_not_keys() -> None:
    key_ring = ring(("a", MASTER), ("b", OTHER_MASTER))
    for text in (repr(key_ring), str(key_ring)):
        assert "'a'" in text
        assert "'b'" in text
        for key in (MASTER, OTHER_MASTER):
            assert key.hex() not in text
            assert repr(key)[2:20] not in text
            assert encode(key) not in text


# Wrapping -------------------------------------------------------------------------------


def test_wrap_then_unwrap_gives_the_data_key_back() -> None:
    key_ring = ring(("a", MASTER))
    key_id, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    assert (key_id, len(wrapped)) == ("a", WRAPPED_KEY_SIZE)
    assert key_ring.unwrap(key_id, wrapped, CONTEXT) == DATA_KEY


def test_wrap_uses_the_active_key() -> None:
    key_ring = ring(("a", MASTER), ("b", OTHER_MASTER), active_id="b")
    key_id, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    assert key_id == "b"
    assert ring(("b", OTHER_MASTER)).unwrap("b", wrapped, CONTEXT) == DATA_KEY


def test_any_entry_unwraps_what_it_wrapped() -> None:
    old_id, wrapped = ring(("old", MASTER)).wrap(DATA_KEY, CONTEXT)
    rotated = ring(("new", OTHER_MASTER), ("old", MASTER))
    assert rotated.unwrap(old_id, wrapped, CONTEXT) == DATA_KEY


def test_each_wrap_uses_a_fresh_nonce() -> None:
    key_ring = ring(("a", MASTER))
    nonces = {key_ring.wrap(DATA_KEY, CONTEXT)[1][:12] for _ in range(100)}
    assert len(nonces) == 100


def test_wrong_context_does_not_unwrap() -> None:
    key_ring = ring(("a", MASTER))
    _, wrapped = key_ring.wrap(DATA_KEY, data_key_context("blob-1"))
    for context in (data_key_context("blob-2"), staging_key_context("blob-1"), b""):
        with pytest.raises(KeyRingError, match="does not unwrap"):
            key_ring.unwrap("a", wrapped, context)


def test_wrong_key_id_does_not_unwrap() -> None:
    key_ring = ring(("a", MASTER), ("b", OTHER_MASTER))
    _, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    with pytest.raises(KeyRingError, match="does not unwrap with key 'b'"):
        key_ring.unwrap("b", wrapped, CONTEXT)


def test_unknown_key_id_is_refused() -> None:
    key_ring = ring(("a", MASTER))
    _, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    with pytest.raises(KeyRingError, match="unknown key id 'gone'"):
        key_ring.unwrap("gone", wrapped, CONTEXT)


def test_every_tampered_byte_of_a_wrapped_key_is_rejected() -> None:
    key_ring = ring(("a", MASTER))
    _, wrapped = key_ring.wrap(DATA_KEY, CONTEXT)
    for position in range(WRAPPED_KEY_SIZE):
        tampered = bytearray(wrapped)
        tampered[position] ^= 0x01
        with pytest.raises(KeyRingError):
            key_ring.unwrap("a", bytes(tampered), CONTEXT)


@pytest.mark.parametrize("size", [0, 12, 59, 61])
def test_wrapped_key_of_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(KeyRingError, match="60 bytes"):
        ring(("a", MASTER)).unwrap("a", bytes(size), CONTEXT)


@pytest.mark.parametrize("size", [16, 31, 33])
def test_data_key_of_wrong_length_is_not_wrapped(size: int) -> None:
    with pytest.raises(KeyRingError, match="32 bytes"):
        ring(("a", MASTER)).wrap(bytes(size), CONTEXT)


# Loading --------------------------------------------------------------------------------


def test_master_keys_setting_is_used_and_no_file_is_written(tmp_path: Path) -> None:
    text = f"a:{encode(MASTER)},b:{encode(OTHER_MASTER)}"
    settings = embedded_settings(tmp_path, master_keys=SecretStr(text), active_key_id="b")
    key_ring = load_key_ring(settings)
    assert (dict(key_ring.keys), key_ring.active_id) == ({"a": MASTER, "b": OTHER_MASTER}, "b")
    assert list(tmp_path.iterdir()) == []


def test_bad_master_keys_setting_names_its_source(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, master_keys=SecretStr("a:short"))
    with pytest.raises(KeyRingError, match=r"^SEALDROP_MASTER_KEYS: key ring entry 1"):
        load_key_ring(settings)


def test_missing_key_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    key_ring = load_key_ring(embedded_settings(tmp_path))
    path = tmp_path / "master.keys"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.parse(path.read_text()) == key_ring
    assert key_ring.active_id.startswith("k")
    assert [p.name for p in tmp_path.iterdir()] == ["master.keys"]


def test_key_file_is_created_inside_a_missing_data_dir(tmp_path: Path) -> None:
    load_key_ring(embedded_settings(tmp_path / "data" / "dir"))
    assert (tmp_path / "data" / "dir" / "master.keys").is_file()


def test_created_key_file_is_reused(tmp_path: Path) -> None:
    first = load_key_ring(embedded_settings(tmp_path))
    second = load_key_ring(embedded_settings(tmp_path))
    assert first == second


def test_creating_the_key_file_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sealdrop.keys"):
        load_key_ring(embedded_settings(tmp_path))
        load_key_ring(embedded_settings(tmp_path))
    warnings = [r for r in caplog.records if r.name == "sealdrop.keys"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "copies the data folder" in warnings[0].getMessage()


def test_created_key_never_appears_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sealdrop.keys"):
        key_ring = load_key_ring(embedded_settings(tmp_path))
    key = key_ring.keys[key_ring.active_id]
    assert encode(key) not in caplog.text
    assert key.hex() not in caplog.text


def test_configured_key_file_path_is_used(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.keys"
    path.write_text(f"x:{encode(MASTER)}\n")
    path.chmod(0o600)
    key_ring = load_key_ring(embedded_settings(tmp_path / "data", master_keys_file=path))
    assert dict(key_ring.keys) == {"x": MASTER}
    assert not (tmp_path / "data").exists()


def test_active_key_id_setting_applies_to_the_key_file(tmp_path: Path) -> None:
    (tmp_path / "master.keys").write_text(f"a:{encode(MASTER)}\nb:{encode(OTHER_MASTER)}\n")
    (tmp_path / "master.keys").chmod(0o600)
    assert load_key_ring(embedded_settings(tmp_path, active_key_id="b")).active_id == "b"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_key_file_readable_by_others_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"a:{encode(MASTER)}\n")
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger="sealdrop.keys"):
        load_key_ring(embedded_settings(tmp_path))
    assert "chmod 600" in caplog.text


def test_private_existing_key_file_loads_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"a:{encode(MASTER)}\n")
    path.chmod(0o600)
    with caplog.at_level(logging.DEBUG, logger="sealdrop.keys"):
        load_key_ring(embedded_settings(tmp_path))
    assert caplog.records == []


def test_bad_key_file_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text("a:short\n")
    path.chmod(0o600)
    with pytest.raises(KeyRingError, match=r"master\.keys: key ring entry 1"):
        load_key_ring(embedded_settings(tmp_path))


def test_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    path.write_text(f"a:{encode(MASTER)}\n")
    path.chmod(0o600)
    before = os.stat(path)
    load_key_ring(embedded_settings(tmp_path))
    assert path.read_text() == f"a:{encode(MASTER)}\n"
    assert os.stat(path).st_ino == before.st_ino
