// How a file goes to the server. The API's discovery document (`GET /api/v1/`) says
// which ways it offers; a small file takes the single request, a larger one tus, which
// resumes; a very large one, when the server stages on S3, straight to S3 (direct_upload.js).

import { uploadDirect } from "./direct_upload.js";
import { tusAvailable, tusTransfer } from "./resumable.js";
import { uploadFile } from "./transfer.js";

/** Files above this size go through tus; below it one request is quicker (no round trips). */
export const RESUMABLE_ABOVE_BYTES = 4 * 1024 * 1024;

let discovery = null;

/** The API's discovery document, fetched once (`{}` while it cannot be had). */
export function discover() {
  discovery ??= fetch("/api/v1/", { headers: { Accept: "application/json" } })
    .then((answer) => (answer.ok ? answer.json() : {}))
    .catch(() => {
      discovery = null; // a network failure: ask again next time
      return {};
    });
  return discovery;
}

/**
 * Start sending `file` with the link options `fields`. `hooks`: `onProgress(sent, total)`,
 * `onResumed(offset)`, `onNote(text)`, `maxBytes`. Returns `{done, abort}`; `done`
 * resolves with `{created, fields}`: the link-creation JSON (`manage_token` null if the
 * server's last answer was lost) and the options the link was made with.
 */
export function startTransfer(file, fields, hooks) {
  let running = null;
  let cancelled = false;
  const done = (async () => {
    const route = await routeFor(file);
    if (cancelled) throw new DOMException("cancelled", "AbortError");
    running = route(file, fields, hooks);
    return running.done;
  })();
  return {
    done,
    abort: () => {
      cancelled = true;
      running?.abort();
    },
  };
}

/**
 * Files from this size go straight to S3 when discovery offers `direct` (S3 staging): the
 * bytes skip the API. Below it tus, which also resumes after a reload, is worth more.
 */
export const DIRECT_FROM_BYTES = 64 * 1024 * 1024;

/** Which way `file` goes: a function (file, fields, hooks) → {done, abort}. */
async function routeFor(file) {
  if (file.size <= RESUMABLE_ABOVE_BYTES) return single;
  const offered = (await discover()).uploads || {};
  // Direct-to-storage hook (direct_upload.js).
  if (offered.direct && file.size >= DIRECT_FROM_BYTES) return direct;
  const tus = offered.tus;
  if (!tus || !tusAvailable()) return single;
  return (file, fields, hooks) => tusTransfer(file, fields, { endpoint: tus.url, chunkSize: tus.chunk_size }, hooks);
}

function direct(file, fields, hooks) {
  const transfer = uploadDirect(file, fields, hooks.onProgress, {
    maxBytes: hooks.maxBytes,
    onResumed: hooks.onResumed,
  });
  // A resumed upload's link has the options of its first start, not today's form's.
  return { done: transfer.done.then((created) => ({ created, fields: transfer.fields() })), abort: transfer.abort };
}

function single(file, fields, hooks) {
  const transfer = uploadFile(file, fields, hooks.onProgress, hooks.maxBytes);
  return { done: transfer.done.then((created) => ({ created, fields })), abort: transfer.abort };
}
