// The upload page: choose or drop files, send them one after another with live progress,
// and show each link as it becomes ready. Several batches can follow without a reload.
// Each link made is remembered in this browser and listed under "Your links".

import { UploadCard } from "./card.js";
import { forgetStaleDirectUploads } from "./direct_upload.js";
import { humanSize } from "./format.js";
import { SavedLinks } from "./saved.js";
import { forgetStaleUploads } from "./resumable.js";
import { startTransfer } from "./send.js";
import { UploadError, waitUntilSealed } from "./transfer.js";
import { forgetKey, setUpKeyForm } from "./upload_key.js";

const form = document.getElementById("upload-form");
const input = document.getElementById("file");
const dropzone = document.getElementById("dropzone");
const selection = document.getElementById("selection");
const formError = document.getElementById("form-error");
const list = document.getElementById("uploads");
const template = document.getElementById("upload-item");
const announcer = document.getElementById("announcer");
const maxBytes = Number(form.dataset.maxBytes);
const keyForm = document.getElementById("key-form");
// Only under upload policy `keys` does the page hold a key form.
const keys = keyForm ? setUpKeyForm(keyForm, form) : null;

const lifetimes = Array.from(form.elements.expires_in.options, (option) => [option.value, option.text]);
const saved = new SavedLinks(
  document.getElementById("saved-section"),
  document.getElementById("saved-item"),
  lifetimes,
  announce,
);

let chosen = [];
const queue = [];
let busy = false;

function announce(text) {
  // Emptied first, so that the same sentence twice is spoken twice.
  announcer.textContent = "";
  setTimeout(() => (announcer.textContent = text), 60);
}

function showError(message, focusTarget) {
  formError.textContent = message;
  formError.hidden = !message;
  if (message && focusTarget) focusTarget.focus();
}

function choose(files) {
  chosen = Array.from(files);
  showError("");
  const total = chosen.reduce((sum, file) => sum + file.size, 0);
  if (chosen.length === 0) selection.textContent = "No file chosen yet.";
  else if (chosen.length === 1) selection.textContent = `${chosen[0].name} (${humanSize(total)})`;
  else selection.textContent = `${chosen.length} files (${humanSize(total)}): ${chosen.map((f) => f.name).join(", ")}`;
  dropzone.classList.toggle("has-files", chosen.length > 0);
  if (tooLarge().length) showError(tooLargeMessage());
}

function tooLarge() {
  return chosen.filter((file) => file.size > maxBytes);
}

function tooLargeMessage() {
  const names = tooLarge().map((file) => file.name).join(", ");
  return `${names}: larger than the server accepts (at most ${maxBytes.toLocaleString()} bytes, ${humanSize(maxBytes)}).`;
}

function readOptions() {
  const fields = {
    expires_in: form.elements.expires_in.value,
    password: form.elements.password.value,
    max_downloads: form.elements.max_downloads.value.trim(),
  };
  const limit = fields.max_downloads;
  if (limit !== "" && !(/^\d+$/.test(limit) && Number(limit) >= 1 && Number(limit) <= 1000000)) {
    showError("The download limit must be a whole number from 1 to 1,000,000.", form.elements.max_downloads);
    return null;
  }
  return fields;
}

function submit(event) {
  event.preventDefault();
  if (chosen.length === 0) {
    showError("Choose a file to upload first.", document.getElementById("choose"));
    return;
  }
  if (tooLarge().length) {
    showError(tooLargeMessage(), document.getElementById("choose"));
    return;
  }
  const fields = readOptions();
  if (fields === null) return;
  showError("");
  document.getElementById("uploads-section").hidden = false;
  for (const file of chosen) {
    const card = new UploadCard(template, file, announce);
    card.onDeleted = (token) => saved.deleted(token);
    const job = { file, fields, card };
    card.onRetry = () => {
      queue.push(job);
      pump();
    };
    list.prepend(card.root);
    queue.push(job);
  }
  announce(chosen.length === 1 ? `Uploading ${chosen[0].name}` : `Uploading ${chosen.length} files`);
  input.value = "";
  choose([]);
  pump();
}

async function pump() {
  if (busy) return;
  busy = true;
  while (queue.length > 0) {
    const job = queue.shift();
    await send(job);
    if (queue.length === 0 && job.card.root.dataset.state === "ready" && !formHasFocus()) {
      job.card.focusLink();
    }
  }
  busy = false;
}

function formHasFocus() {
  // Someone already busy choosing the next files keeps their place.
  return form.contains(document.activeElement) && document.activeElement.id !== "upload-button";
}

async function send({ file, fields, card }) {
  if (card.cancelled) {
    card.wasCancelled();
    return;
  }
  card.started();
  const transfer = startTransfer(file, fields, {
    onProgress: (sent, total) => card.progress(sent, total),
    onResumed: (offset) => card.resumed(offset),
    onNote: (text) => card.note(text),
    maxBytes,
  });
  card.onCancel = transfer.abort;
  try {
    const { created, fields: made } = await transfer.done;
    card.uploaded();
    let link = created;
    if (created.state !== "ready") {
      card.sealing();
      const status = await waitUntilSealed(created.token);
      link = { ...created, state: status.state, expires_at: created.expires_at || status.expires_at };
    }
    card.ready(link, made);
    // Without its manage token the link could not be edited or deleted from the list.
    if (link.manage_token) saved.remember(link, file.name);
  } catch (error) {
    if (error.name === "AbortError") {
      card.wasCancelled(error.removed !== false);
    } else if (error instanceof UploadError) {
      card.failed(error.message);
      if (error.status === 401 && keys) {
        forgetKey();
        keys.ask(error.message);
      }
    } else {
      console.error(error); // a bug of this page: let it be seen
      card.failed("Something went wrong. Please try again.");
    }
  }
}

function hasFiles(event) {
  return Array.from(event.dataTransfer?.types || []).includes("Files");
}

forgetStaleUploads();
forgetStaleDirectUploads();
document.getElementById("choose").addEventListener("click", () => input.click());
input.addEventListener("change", () => choose(input.files));
form.addEventListener("submit", submit);

// The whole window takes drops, so a file dropped a little beside the zone is not opened
// by the browser in place of the page.
let dragDepth = 0;
window.addEventListener("dragenter", (event) => {
  if (!hasFiles(event)) return;
  dragDepth += 1;
  dropzone.classList.add("dragging");
});
window.addEventListener("dragleave", () => {
  dragDepth = Math.max(0, dragDepth - 1);
  if (dragDepth === 0) dropzone.classList.remove("dragging");
});
window.addEventListener("dragover", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  event.dataTransfer.dropEffect = "copy";
});
window.addEventListener("drop", (event) => {
  if (!hasFiles(event)) return;
  event.preventDefault();
  dragDepth = 0;
  dropzone.classList.remove("dragging");
  choose(event.dataTransfer.files);
  document.getElementById("upload-button").focus();
});
window.addEventListener("beforeunload", (event) => {
  if (busy) event.preventDefault();
});
