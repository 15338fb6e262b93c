"""The page's sealing (app/web/static/sealing.js, WebCrypto) against tests/vectors: each
vector's plaintext sealed in parts in headless Chromium concatenates to the vector's blob
byte for byte, as the server's `seal_part` does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.crypto.test_sealing import CASES, VECTORS, case_id
from tests.support.browser import PageWatch
from tests.support.live import LiveServer

pytestmark = pytest.mark.browser

_SEAL_IN_PARTS = """
async ([keyHex, prefixHex, log2, size, segmentsPerPart]) => {
  const { importSealingKey, sealPart } = await import("/static/sealing.js");
  const hex = (text) => Uint8Array.from(text.match(/../g) || [], (b) => parseInt(b, 16));
  const header = new Uint8Array(16);
  header.set([0x53, 0x44, 0x52, 0x50, 1, log2], 0);
  header.set(hex(prefixHex), 9);
  const plaintext = Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) % 251);
  const key = await importSealingKey(hex(keyHex));
  const segment = 2 ** log2;
  const partSize = segment * segmentsPerPart;
  const count = Math.max(1, Math.ceil(size / partSize));
  const parts = [];
  for (let n = 1; n <= count; n++) {
    const start = (n - 1) * partSize;
    const chunk = plaintext.subarray(start, Math.min(start + partSize, size));
    parts.push(await sealPart(key, header, start / segment, chunk, n === count));
  }
  const blob = new Uint8Array(await new Blob(parts).arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", blob));
  const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return { size: blob.length, sha256: toHex(digest), head: toHex(blob.subarray(0, 64)),
           tail: toHex(blob.subarray(Math.max(0, blob.length - 48))) };
}
"""


@pytest.mark.parametrize("segments_per_part", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_sealing_js_reproduces_the_vector_blob_in_parts(
    server: LiveServer, watch: PageWatch, case: dict[str, Any], segments_per_part: int
) -> None:
    await watch.page.goto(f"{server.url}/")
    sealed = await watch.page.evaluate(
        _SEAL_IN_PARTS,
        [
            VECTORS["data_key_hex"],
            VECTORS["nonce_prefix_hex"],
            case["segment_log2"],
            case["plaintext_size"],
            segments_per_part,
        ],
    )
    assert sealed["size"] == case["blob_size"]
    assert sealed["head"] == case["blob_head_hex"]
    assert sealed["tail"] == case["blob_tail_hex"]
    assert sealed["sha256"] == case["blob_sha256"]


async def test_sealing_js_refuses_a_part_cut_inside_a_segment(
    server: LiveServer, watch: PageWatch
) -> None:
    await watch.page.goto(f"{server.url}/")
    message = await watch.page.evaluate(
        """async () => {
          const { importSealingKey, sealPart } = await import("/static/sealing.js");
          const header = new Uint8Array(16);
          header.set([0x53, 0x44, 0x52, 0x50, 1, 16], 0);
          const key = await importSealingKey(new Uint8Array(32));
          try { await sealPart(key, header, 0, new Uint8Array(100), false); return "sealed"; }
          catch (error) { return error.message; }
        }"""
    )
    assert message == "a part that is not the last must hold whole segments"
