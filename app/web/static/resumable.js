// Resumable uploads from the upload page: tus 1.0 through the vendored tus-js-client
// (/static/tus.min.js, a classic script that defines `window.tus` before the page's
// modules run). What the server acknowledged survives a network drop (retries, and a wait
// for the network to come back) and a page reload: the upload's URL is kept in this
// browser, keyed by the file, and the same file picked again resumes at the server's offset.

import { UploadError, authHeaders, describeFailure, parseJson } from "./transfer.js";

// Waits before each retry of a failed request; the count starts again once bytes move.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000];
// Statuses worth another try: a lost connection (0), a stalled request, a server that
// is restarting, an offset that moved under us (the next try asks the server first).
const RETRIED = new Set([0, 408, 409, 423, 500, 502, 503, 504]);
const STORE_PREFIX = "sealdrop.tus::";
const FORGET_AFTER_MS = 7 * 24 * 3600 * 1000;
// Upload URLs this page is sending to now: a second card of the same file must not join.
const inUse = new Set();

/** Whether the vendored tus-js-client loaded and runs in this browser. */
export function tusAvailable() {
  return typeof window.tus === "object" && window.tus !== null && window.tus.isSupported;
}

/**
 * Send `file` over tus: `route` is `{endpoint, chunkSize}` from the API's discovery,
 * `hooks` has `onProgress(sent, total)`, `onResumed(offset)`, `onNote(text)` and
 * `maxBytes`. Resolves with `{created, fields}` (the link and the options it was made
 * with: a resumed upload keeps those of its first start); `abort()` cancels and deletes.
 */
export function tusTransfer(file, fields, route, hooks) {
  const transfer = new TusTransfer(file, fields, route, hooks);
  transfer.run().catch((error) => transfer.reject(error));
  return { done: transfer.done, abort: () => transfer.abort() };
}

class TusTransfer {
  constructor(file, fields, route, hooks) {
    this.file = file;
    this.fields = fields;
    this.hooks = hooks;
    this.resuming = null; // the stored upload being resumed, until the server confirms it
    this.cancelled = false;
    this.offline = null;
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.upload = new window.tus.Upload(file, {
      endpoint: new URL(route.endpoint, window.location.href).href,
      chunkSize: route.chunkSize || Number.POSITIVE_INFINITY,
      retryDelays: RETRY_DELAYS,
      metadata: metadataOf(file, fields),
      headers: authHeaders(),
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      urlStorage: store,
      onUploadUrlAvailable: () => inUse.add(this.upload.url),
      onProgress: (sent, total) => hooks.onProgress(sent, total),
      onAfterResponse: (request, response) => this.answered(request, response),
      onShouldRetry: (error) => this.shouldRetry(error),
      onSuccess: ({ lastResponse }) => this.succeeded(lastResponse),
      onError: (error) => this.failed(error),
    });
  }

  /** Resume this file's stored upload when there is one, else create a new one. */
  async run() {
    const previous = (await this.upload.findPreviousUploads()).filter((stored) => !inUse.has(stored.uploadUrl));
    previous.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
    if (this.cancelled) return;
    if (previous.length > 0) {
      this.resuming = previous[0];
      this.upload.resumeFromPreviousUpload(previous[0]);
    }
    this.upload.start();
  }

  answered(request, response) {
    if (request.getMethod() !== "HEAD") return;
    const status = response.getStatus();
    if (status === 423 || status >= 500) return; // asked again after a wait
    const resumed = this.resuming;
    this.resuming = null;
    // Not found or expired: tus-js-client creates a new upload, with this form's options.
    if (status !== 200) return;
    // A HEAD asks the server where to go on: after a reload, or after a retry.
    const offset = Number.parseInt(response.getHeader("Upload-Offset"), 10);
    if (resumed) {
      // The link will have the options the upload was created with, not today's form's.
      this.fields = { ...this.fields, ...resumed.fields };
      this.hooks.onResumed(offset);
    } else {
      this.hooks.onNote("");
    }
  }

  shouldRetry(error) {
    const status = error.originalResponse ? error.originalResponse.getStatus() : 0;
    if (!RETRIED.has(status)) return false;
    // Offline, tus-js-client's own retries would only burn their delays: wait instead.
    if (!navigator.onLine) return false;
    this.hooks.onNote("The connection broke. Retrying…");
    return true;
  }

  async succeeded(response) {
    inUse.delete(this.upload.url);
    try {
      const created = linkFromHeaders(response) || (await this.fetchLink());
      this.resolve({ created, fields: this.fields });
    } catch (error) {
      this.reject(error);
    }
  }

  /** The link from the upload's state: when the final answer was lost (its manage token too). */
  async fetchLink() {
    const answer = await fetch(this.upload.url, { headers: { Accept: "application/json" } });
    const state = parseJson(await answer.text());
    if (!answer.ok || !state.token) throw new UploadError(describeFailure(answer.status, state), answer.status);
    return { ...state, manage_token: null };
  }

  failed(error) {
    const response = error.originalResponse;
    if (!response && error.originalRequest && !navigator.onLine) {
      this.waitForNetwork();
      return;
    }
    inUse.delete(this.upload.url);
    if (!error.originalRequest) {
      console.warn(error); // the file could not be read
      this.reject(new UploadError("The file could not be read (was it changed or moved?). Choose it again."));
      return;
    }
    const status = response ? response.getStatus() : 0;
    const body = response ? parseJson(response.getBody()) : {};
    const retry = response ? Number.parseInt(response.getHeader("Retry-After") || "", 10) : Number.NaN;
    const message = describeFailure(status, body, Number.isFinite(retry) ? retry : null, this.hooks.maxBytes);
    this.reject(new UploadError(message, status));
  }

  /** Offline: say so, and go on (HEAD first, then the missing bytes) once the network is back. */
  waitForNetwork() {
    this.hooks.onNote("You are offline. The upload goes on when the network is back.");
    this.offline = () => {
      this.offline = null;
      this.hooks.onNote("Back online. Resuming…");
      this.upload.start();
    };
    window.addEventListener("online", this.offline, { once: true });
    // Back already (between the failure and now): no event is coming.
    if (navigator.onLine) {
      window.removeEventListener("online", this.offline);
      this.offline();
    }
  }

  /** Cancel: stop sending and delete the upload on the server (tus termination). */
  async abort() {
    this.cancelled = true;
    if (this.offline) window.removeEventListener("online", this.offline);
    inUse.delete(this.upload.url);
    let removed = true;
    try {
      await this.upload.abort(true);
    } catch {
      removed = false; // offline: the server drops it when it expires; forget it here
      for (const stored of storedUploads(STORE_PREFIX)) {
        if (stored.uploadUrl === this.upload.url) store.removeUpload(stored.urlStorageKey);
      }
    }
    const cancelled = new DOMException("cancelled", "AbortError");
    cancelled.removed = removed;
    this.reject(cancelled);
  }
}

function metadataOf(file, fields) {
  const metadata = { filename: file.name };
  if (file.type) metadata.filetype = file.type;
  for (const name of ["expires_in", "max_downloads", "password"]) {
    if (fields[name] !== "") metadata[name] = fields[name];
  }
  return metadata;
}

function linkFromHeaders(response) {
  const url = response.getHeader("Sealdrop-Link");
  const manageToken = response.getHeader("Sealdrop-Manage-Token");
  if (!url || !manageToken) return null;
  return {
    token: decodeURIComponent(new URL(url, window.location.href).pathname.split("/").pop()),
    url,
    download_url: response.getHeader("Sealdrop-Download-Url"),
    manage_token: manageToken,
    expires_at: response.getHeader("Sealdrop-Expires-At"),
    state: "pending",
  };
}

/**
 * Where tus-js-client keeps upload URLs for resuming (localStorage, `sealdrop.tus::…`).
 * Its own store would keep the creation metadata, password included; this one keeps
 * the URL, the size, the time and the options without the password (only that it had one).
 */
const store = {
  findAllUploads: () => Promise.resolve(storedUploads(STORE_PREFIX)),
  findUploadsByFingerprint: (fingerprint) => Promise.resolve(storedUploads(`${STORE_PREFIX}${fingerprint}::`)),
  removeUpload(key) {
    safely(() => localStorage.removeItem(key));
    return Promise.resolve();
  },
  addUpload(fingerprint, upload) {
    const key = `${STORE_PREFIX}${fingerprint}::${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
    const { password, ...options } = upload.metadata;
    const fields = {
      expires_in: options.expires_in || "",
      max_downloads: options.max_downloads || "",
      password: password ? "(set)" : "",
    };
    const kept = { uploadUrl: upload.uploadUrl, size: upload.size, creationTime: upload.creationTime, fields };
    safely(() => localStorage.setItem(key, JSON.stringify(kept)));
    return Promise.resolve(key);
  },
};

function storedUploads(prefix) {
  const found = [];
  safely(() => {
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key.startsWith(prefix)) continue;
      const upload = parseJson(localStorage.getItem(key));
      if (upload.uploadUrl) found.push({ ...upload, urlStorageKey: key });
    }
  });
  return found;
}

/** Drop stored uploads older than a week (the server dropped them long before). */
export function forgetStaleUploads() {
  for (const upload of storedUploads(STORE_PREFIX)) {
    const created = Date.parse(upload.creationTime);
    if (!(Date.now() - created < FORGET_AFTER_MS)) store.removeUpload(upload.urlStorageKey);
  }
}

function safely(action) {
  try {
    action();
  } catch {
    // No localStorage (a private window, storage full): uploads still work, minus resuming.
  }
}
