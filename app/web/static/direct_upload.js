// Direct-to-storage uploads from the page (S3 staging only; discovery lists `direct`, and
// send.js routes very large files here).
// The file is sealed here, part by part, under the one-time staging key the server sends,
// and each sealed part goes straight to S3 through its presigned URL: no plaintext leaves
// this browser, and the file's bytes never cross Sealdrop's API. Failed parts are sent
// again, expired URLs are refreshed, and the server checks every part before it queues
// the file for sealing.

import { importSealingKey, sealPart } from "./sealing.js";
import { UploadError, describeFailure } from "./transfer.js";
import { currentKey } from "./upload_key.js";

const API = "/api/v1/direct-uploads";
const CONCURRENCY = 3;
const ATTEMPTS = 5;

/** What the page sends with its own requests: its CSRF token, and its upload key if any. */
function pageHeaders() {
  const found = { "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content };
  const key = currentKey();
  if (key) found.Authorization = `Bearer ${key}`;
  return found;
}

function fromBase64url(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("cancelled", "AbortError"));
    });
  });
}

async function readJson(answer) {
  try {
    return await answer.json();
  } catch {
    return {};
  }
}

/** PUT `body` to `url` with progress; resolves with the status (0 for a network error). */
function putPart(url, body, onLoaded, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (event) => onLoaded(event.loaded));
    xhr.addEventListener("load", () => resolve(xhr.status));
    xhr.addEventListener("error", () => resolve(0));
    xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    signal.addEventListener("abort", () => xhr.abort());
    xhr.send(new Blob([body]));
  });
}

/**
 * Upload `file` directly with `fields` (expires_in, password, max_downloads; "" is absent).
 * `onProgress(sent, total)` follows the plaintext bytes. Sealdrop's own requests carry the
 * page's CSRF token and upload key. Returns `{ done, abort }`; `done` resolves with the
 * link-creation JSON, rejects with an UploadError (or an AbortError).
 */
export function uploadDirect(file, fields, onProgress, { maxBytes = null } = {}) {
  const headers = pageHeaders();
  const control = new AbortController();
  const signal = control.signal;
  let uploadUrl = null;
  const done = run().catch(async (error) => {
    if (uploadUrl && error.name === "AbortError") {
      // Nothing of a cancelled upload stays in the bucket.
      await fetch(uploadUrl, { method: "DELETE", headers }).catch(() => {});
    }
    throw error;
  });
  return { done, abort: () => control.abort() };

  async function api(path, init = {}) {
    const answer = await fetch(path, {
      ...init,
      signal,
      headers: { Accept: "application/json", ...headers, ...(init.headers || {}) },
    });
    return { answer, body: await readJson(answer) };
  }

  function failure(answer, body) {
    const retry = Number.parseInt(answer.headers.get("retry-after") || "", 10) || null;
    return new UploadError(describeFailure(answer.status, body, retry, maxBytes), answer.status);
  }

  async function run() {
    const request = { filename: file.name || "file", size: file.size };
    if (file.type) request.content_type = file.type;
    if (fields.expires_in) request.expires_in = fields.expires_in;
    if (fields.password) request.password = fields.password;
    if (fields.max_downloads) request.max_downloads = Number(fields.max_downloads);
    const { answer, body: created } = await api(API, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
    });
    if (answer.status !== 201) throw failure(answer, created);
    uploadUrl = created.upload_url;
    const key = await importSealingKey(fromBase64url(created.staging_key));
    const header = fromBase64url(created.header);
    const urls = new Map(created.parts.map((part) => [part.number, part.url]));
    const loaded = new Map();
    const report = () => {
      let sent = 0;
      for (const value of loaded.values()) sent += value;
      onProgress(Math.min(sent, file.size), file.size);
    };
    let refreshing = null;
    const refresh = () => {
      // One GET for every part whose URL expired meanwhile.
      refreshing ??= api(uploadUrl).then(({ answer, body }) => {
        refreshing = null;
        if (!answer.ok) throw failure(answer, body);
        for (const part of body.parts) urls.set(part.number, part.url);
        return body;
      });
      return refreshing;
    };

    async function send(number) {
      const start = (number - 1) * created.part_size;
      const stop = Math.min(start + created.part_size, file.size);
      const plain = new Uint8Array(await file.slice(start, stop).arrayBuffer());
      const firstSegment = start / created.segment_size;
      const sealed = await sealPart(key, header, firstSegment, plain, number === created.part_count);
      for (let attempt = 1; ; attempt++) {
        const status = await putPart(
          urls.get(number),
          sealed,
          (bytes) => {
            loaded.set(number, (bytes / sealed.length) * plain.length);
            report();
          },
          signal,
        );
        if (status === 200) {
          loaded.set(number, plain.length);
          report();
          return;
        }
        loaded.set(number, 0);
        if (attempt >= ATTEMPTS) {
          throw new UploadError(`The storage refused part ${number} of the file (HTTP ${status}). Please try again.`, status);
        }
        if (status === 403) await refresh(); // an expired URL
        else await sleep(Math.min(8000, 500 * 2 ** attempt), signal);
      }
    }

    async function sendAll(numbers) {
      const queue = [...numbers];
      const worker = async () => {
        while (queue.length) await send(queue.shift());
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
    }

    await sendAll(created.parts.map((part) => part.number));
    for (let round = 1; ; round++) {
      const { answer, body } = await api(`${uploadUrl}/complete`, {
        method: "POST",
        headers: { Prefer: "respond-async" },
      });
      if (answer.status === 201 || answer.status === 202) return body;
      if (answer.status !== 409 || round > 2) throw failure(answer, body);
      // Parts S3 does not hold as expected: send them again, with fresh URLs.
      const status = await refresh();
      await sendAll(status.parts.map((part) => part.number));
    }
  }
}
