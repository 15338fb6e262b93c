// Talking to Sealdrop's API: the upload with progress, waiting for sealing, a link's
// status, its edit and deletion, and a clear sentence for every way these can fail.

import { humanSize } from "./format.js";
import { currentKey } from "./upload_key.js";

const JSON_HEADERS = { Accept: "application/json" };

/** The page's CSRF token, sent with every request that changes something. */
function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

/** What an upload request carries besides its bytes: the CSRF token, the upload key if any. */
export function authHeaders() {
  const headers = { "X-CSRF-Token": csrfToken() };
  const key = currentKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

/** An error whose message is meant for the person at the page; `status` is the HTTP one. */
export class UploadError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status;
  }
}

/**
 * Upload `file` with `fields` (expires_in, password, max_downloads). `onProgress(sent, total)`
 * follows the bytes; the returned `abort()` cancels. Resolves with the API's JSON answer.
 */
export function uploadFile(file, fields, onProgress, maxBytes) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    const body = new FormData();
    for (const [name, value] of Object.entries(fields)) {
      if (value !== "") body.append(name, value);
    }
    body.append("file", file, file.name);
    xhr.open("POST", "/api/v1/links");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Prefer", "respond-async");
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      const answer = parseJson(xhr.responseText);
      if (xhr.status === 201 || xhr.status === 202) resolve(answer);
      else reject(new UploadError(describeFailure(xhr.status, answer, retryAfter(xhr), maxBytes), xhr.status));
    });
    xhr.addEventListener("error", () => reject(new UploadError(describeFailure(0))));
    xhr.addEventListener("abort", () => reject(new DOMException("cancelled", "AbortError")));
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}

/** Wait until the link is sealed; resolves with its status, rejects if it failed or vanished. */
export async function waitUntilSealed(token, { interval = 250, signal } = {}) {
  let wait = interval;
  for (;;) {
    const answer = await fetch(`/api/v1/links/${token}`, { headers: JSON_HEADERS, signal });
    const status = parseJson(await answer.text());
    if (!answer.ok) throw new UploadError(describeFailure(answer.status, status));
    if (status.state === "ready") return status;
    if (status.state === "failed") {
      throw new UploadError("The file could not be sealed. Please upload it again.");
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 1.5, 3000);
  }
}

/** Delete a link with its manage token. */
export async function deleteLink(token, manageToken) {
  const answer = await fetch(`/api/v1/links/${token}`, {
    method: "DELETE",
    headers: { ...JSON_HEADERS, Authorization: `Bearer ${manageToken}`, "X-CSRF-Token": csrfToken() },
  });
  if (answer.status === 204 || answer.status === 410) return;
  throw new UploadError(describeFailure(answer.status, parseJson(await answer.text())));
}

/** A link's status (GET): its state, expiry and limits, without its password. */
export async function linkStatus(token) {
  const answer = await fetch(`/api/v1/links/${token}`, { headers: JSON_HEADERS });
  const body = parseJson(await answer.text());
  if (!answer.ok) throw new UploadError(describeFailure(answer.status, body), answer.status);
  return body;
}

/** Edit a link with its manage token (PATCH); resolves with its new status. */
export async function editLink(token, manageToken, changes) {
  const answer = await fetch(`/api/v1/links/${token}`, {
    method: "PATCH",
    headers: {
      ...JSON_HEADERS,
      "Content-Type": "application/json",
      Authorization: `Bearer ${manageToken}`,
      "X-CSRF-Token": csrfToken(),
    },
    body: JSON.stringify(changes),
  });
  const body = parseJson(await answer.text());
  if (!answer.ok) throw new UploadError(describeFailure(answer.status, body), answer.status);
  return body;
}

/** The JSON in `text`, or `{}` when there is none. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

function retryAfter(xhr) {
  const value = Number.parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
  return Number.isFinite(value) ? value : null;
}

function sentence(text) {
  return text ? text[0].toUpperCase() + text.slice(1).replace(/\.?$/, ".") : "";
}

/** One clear sentence for an HTTP failure (status 0: the connection failed). */
export function describeFailure(status, answer = {}, retry = null, maxBytes = null) {
  const wait = retry ? `in ${retry < 120 ? `${retry} seconds` : `${Math.ceil(retry / 60)} minutes`}` : "later";
  switch (status) {
    case 0:
      return "The connection to the server was lost. Check your network and try again.";
    case 401:
      return "Your upload key was not accepted (unknown or revoked). Enter it again.";
    case 403:
      return sentence(answer.error) || "This page has expired. Reload it and try again.";
    case 404:
      return "This link does not exist (any more).";
    case 408:
      return "The upload stalled and was stopped. Try again.";
    case 410:
      return "This link has expired or was deleted.";
    case 413:
      return maxBytes
        ? `This file is larger than the server accepts (at most ${humanSize(maxBytes)}).`
        : "This file is larger than the server accepts.";
    case 429:
      // An uploader's own limits (daily quota, live links) say which in the server's words.
      if (/quota|live links/.test(answer.error || "")) return sentence(answer.error);
      return `Too many uploads from your address. Try again ${wait}.`;
    case 502:
    case 503:
    case 504:
      return `The server is unavailable right now. Try again ${wait === "later" ? "in a minute" : wait}.`;
    default:
      if (status >= 500) return "Something went wrong on the server. Please try again.";
      return sentence(answer.error) || `The server refused the upload (HTTP ${status}).`;
  }
}
