// Direct-to-storage uploads from the page (S3 staging only; discovery lists `direct`, and
// send.js routes very large files here).
// The file is sealed here, part by part, under the one-time staging key the server sends,
// and each sealed part goes straight to S3 through its presigned URL: no plaintext leaves
// this browser, and the file's bytes never cross Sealdrop's API. Failed parts are sent
// again, expired URLs are refreshed, and the server checks every part before it queues
// the file for sealing.
//
// A page reload does not lose the upload: this browser keeps its upload URL (the
// capability, as tus keeps its own) with the file's name, size and modification time, and
// whether a password was set (never the password, never the staging key). The same file
// picked again asks the server (GET upload URL) for the parts S3 holds and the key to seal
// the others, and sends only those.

import { importSealingKey, sealPart } from "./sealing.js";
import { UploadError, describeFailure } from "./transfer.js";
import { currentKey } from "./upload_key.js";

const API = "/api/v1/direct-uploads";
const CONCURRENCY = 3;
const ATTEMPTS = 5;
const STORE_PREFIX = "sealdrop.direct::";
const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000;
// Upload URLs this page is sending to now: a second card of the same file must not join.
const inUse = new Set();

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
    if (signal.aborted) {
      reject(new DOMException("cancelled", "AbortError"));
      return;
    }
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
    // Cancelled while the part was being sealed: no abort event is coming.
    if (signal.aborted) {
      reject(new DOMException("cancelled", "AbortError"));
      return;
    }
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
 * `onProgress(sent, total)` follows the plaintext bytes; `onResumed(sent)` says that an
 * upload this browser began before (a reload) goes on with `sent` bytes already in S3.
 * Sealdrop's own requests carry the page's CSRF token and upload key. Returns
 * `{ done, abort, fields }`; `done` resolves with the link-creation JSON, rejects with an
 * UploadError (or an AbortError); `fields()` are the options the link is made with (a
 * resumed upload keeps those of its first start).
 */
export function uploadDirect(file, fields, onProgress, { maxBytes = null, onResumed = () => {} } = {}) {
  const headers = pageHeaders();
  const control = new AbortController();
  const signal = control.signal;
  let uploadUrl = null;
  let storeKey = null;
  let made = fields;
  const release = () => {
    if (uploadUrl) inUse.delete(uploadUrl);
  };
  const done = run()
    .then((link) => {
      release();
      forget(storeKey);
      return link;
    })
    .catch(async (error) => {
      release();
      if (uploadUrl && error.name === "AbortError") {
        // Nothing of a cancelled upload stays in the bucket, nor in this browser.
        forget(storeKey);
        await fetch(uploadUrl, { method: "DELETE", headers }).catch(() => {});
      }
      throw error;
    });
  return { done, abort: () => control.abort(), fields: () => made };

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

  async function create() {
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
    inUse.add(uploadUrl);
    storeKey = remember(file, uploadUrl, fields);
    return { plan: created, todo: created.parts, done: [] };
  }

  /** This file's upload begun before a reload, as the server holds it; null: start anew. */
  async function resume() {
    for (const stored of storedUploads(fingerprintOf(file))) {
      if (inUse.has(stored.uploadUrl)) continue;
      const { answer, body } = await api(stored.uploadUrl);
      if (answer.ok && body.header && body.size === file.size) {
        uploadUrl = stored.uploadUrl;
        inUse.add(uploadUrl);
        storeKey = stored.storeKey;
        made = { ...fields, ...stored.fields };
        return { plan: body, todo: body.parts, done: body.parts_done };
      }
      if (answer.ok || answer.status === 404 || answer.status === 410) {
        // Gone (expired, cancelled, completed), or not resumable here: forget it.
        forget(stored.storeKey);
        if (answer.ok) await fetch(stored.uploadUrl, { method: "DELETE", headers }).catch(() => {});
        continue;
      }
      throw failure(answer, body); // the server is unwell: keep it for the next try
    }
    return null;
  }

  async function run() {
    const begun = (await resume()) || (await create());
    const plan = begun.plan;
    const key = await importSealingKey(fromBase64url(plan.staging_key));
    const header = fromBase64url(plan.header);
    const urls = new Map(begun.todo.map((part) => [part.number, part.url]));
    const loaded = new Map();
    const plainSize = (number) => Math.min(plan.part_size, file.size - (number - 1) * plan.part_size);
    for (const part of begun.done) loaded.set(part.number, plainSize(part.number));
    const report = () => {
      let sent = 0;
      for (const value of loaded.values()) sent += value;
      onProgress(Math.min(sent, file.size), file.size);
    };
    if (begun.done.length > 0) {
      let already = 0;
      for (const value of loaded.values()) already += value;
      onResumed(already);
    }
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
      const start = (number - 1) * plan.part_size;
      const stop = Math.min(start + plan.part_size, file.size);
      const plain = new Uint8Array(await file.slice(start, stop).arrayBuffer());
      const firstSegment = start / plan.segment_size;
      const sealed = await sealPart(key, header, firstSegment, plain, number === plan.part_count);
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

    await sendAll(begun.todo.map((part) => part.number));
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

/** What tells a file picked again from another: its name, size and modification time. */
function fingerprintOf(file) {
  return [file.name, file.size, file.lastModified].map((part) => encodeURIComponent(String(part))).join(":");
}

/**
 * Keep a new upload for resuming: its URL, the time, and its options without the password
 * (only whether it had one). Returns its storage key (null without localStorage).
 */
function remember(file, uploadUrl, fields) {
  const key = `${STORE_PREFIX}${fingerprintOf(file)}::${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const kept = {
    uploadUrl,
    size: file.size,
    creationTime: new Date().toISOString(),
    fields: {
      expires_in: fields.expires_in || "",
      max_downloads: fields.max_downloads || "",
      password: fields.password ? "(set)" : "",
    },
  };
  return safely(() => {
    localStorage.setItem(key, JSON.stringify(kept));
    return key;
  });
}

function forget(key) {
  if (key) safely(() => localStorage.removeItem(key));
}

/** Stored uploads (of the file with `fingerprint`, or all), the newest first. */
function storedUploads(fingerprint = "") {
  const prefix = fingerprint ? `${STORE_PREFIX}${fingerprint}::` : STORE_PREFIX;
  const found = [];
  safely(() => {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key.startsWith(prefix)) continue;
      let upload = {};
      try {
        upload = JSON.parse(localStorage.getItem(key)) || {};
      } catch {
        // unreadable: dropped below
      }
      if (typeof upload.uploadUrl === "string" && upload.uploadUrl.startsWith(`${API}/`)) {
        found.push({ ...upload, storeKey: key });
      } else {
        localStorage.removeItem(key);
      }
    }
  });
  return found.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
}

/** Drop stored direct uploads older than a week (the server dropped them long before). */
export function forgetStaleDirectUploads() {
  for (const upload of storedUploads()) {
    if (!(Date.now() - Date.parse(upload.creationTime) < FORGET_AFTER_MS)) forget(upload.storeKey);
  }
}

function safely(action) {
  try {
    return action();
  } catch {
    return null; // no localStorage (a private window, storage full): no resuming, that's all
  }
}
