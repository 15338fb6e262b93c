// Sealing a part of a direct upload in the browser: format v1 (docs/architecture.md,
// "Sealed format"), AES-256-GCM through WebCrypto. Byte for byte what the server's
// `app/crypto/sealing.py` `seal_part` makes, checked against tests/vectors in Chromium.
//
// A blob is header (16 bytes) || segment_0 || … ; segment i is AES-GCM(key) of S plaintext
// bytes (fewer in the last), nonce = header[9..16] (7) || uint32_be(i) || last (0 or 1),
// the header as associated data, the 16-byte tag after the ciphertext.

const HEADER_SIZE = 16;
const TAG_SIZE = 16;

/** Import the 32 raw bytes of a staging key for sealing only (never extractable). */
export async function importSealingKey(raw) {
  if (raw.byteLength !== 32) throw new Error("a staging key is 32 bytes");
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"]);
}

/** The segment size a v1 header names; throws if `header` is not a v1 header. */
export function segmentSize(header) {
  const magic = String.fromCharCode(header[0], header[1], header[2], header[3]);
  if (header.length !== HEADER_SIZE || magic !== "SDRP" || header[4] !== 1) {
    throw new Error("not a v1 sealed-blob header");
  }
  const log2 = header[5];
  if (log2 < 16 || log2 > 20) throw new Error("writers use segment sizes 2^16 to 2^20");
  return 2 ** log2;
}

function nonce(header, index, last) {
  const bytes = new Uint8Array(12);
  bytes.set(header.subarray(9, 16), 0);
  new DataView(bytes.buffer).setUint32(7, index, false);
  bytes[11] = last ? 1 : 0;
  return bytes;
}

/**
 * Seal one part: the segments of `plaintext` (a Uint8Array), indexed from `firstSegment`.
 * The part starting at segment 0 gets the header in front. `plaintext` holds whole
 * segments unless `last`, which flags its final segment as the file's last. Resolves
 * with the sealed bytes (a Uint8Array).
 */
export async function sealPart(key, header, firstSegment, plaintext, last) {
  const size = segmentSize(header);
  if (!last && (plaintext.length === 0 || plaintext.length % size !== 0)) {
    throw new Error("a part that is not the last must hold whole segments");
  }
  const count = Math.max(1, Math.ceil(plaintext.length / size));
  const withHeader = firstSegment === 0 ? HEADER_SIZE : 0;
  const out = new Uint8Array(withHeader + plaintext.length + TAG_SIZE * count);
  if (withHeader) out.set(header, 0);
  let at = withHeader;
  for (let offset = 0; offset < count; offset++) {
    const chunk = plaintext.subarray(offset * size, (offset + 1) * size);
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: nonce(header, firstSegment + offset, last && offset === count - 1),
        additionalData: header,
        tagLength: 128,
      },
      key,
      chunk,
    );
    out.set(new Uint8Array(sealed), at);
    at += sealed.byteLength;
  }
  return out;
}
