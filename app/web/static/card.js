// One file on the upload page: its progress, its sealing, then its link, QR code and
// manage token (or why it failed).

import { humanDuration, humanSize, localDateTime, mebibytes } from "./format.js";
import { deleteLink } from "./transfer.js";

const SPEED_WINDOW_MS = 3000;
let nextId = 0;

export class UploadCard {
  /** A card for `file`, built from the page's <template>; `announce` speaks to screen readers. */
  constructor(template, file, announce) {
    this.file = file;
    this.announce = announce;
    this.root = template.content.firstElementChild.cloneNode(true);
    this.samples = [];
    this.lastSpoken = 0;
    this.cancelled = false;
    this.onCancel = () => {};
    this.onRetry = () => {};
    this.onDeleted = () => {};
    const id = ++nextId;
    this.$(".upload-name").textContent = file.name;
    this.$(".upload-size").textContent = humanSize(file.size);
    this.$("progress").setAttribute("aria-label", `Upload of ${file.name}`);
    this.link("share", id, ".share-label", ".share-url");
    this.link("manage", id, ".manage-label", ".manage-token");
    this.$(".cancel").setAttribute("aria-label", `Cancel the upload of ${file.name}`);
    this.$(".cancel").addEventListener("click", () => {
      this.cancelled = true;
      this.onCancel();
    });
    this.$(".retry").setAttribute("aria-label", `Upload ${file.name} again`);
    this.$(".retry").addEventListener("click", () => this.onRetry());
    this.setStatus("Waiting for its turn…");
  }

  $(selector) {
    return this.root.querySelector(selector);
  }

  link(name, id, labelSelector, inputSelector) {
    const input = this.$(inputSelector);
    input.id = `${name}-${id}`;
    this.$(labelSelector).htmlFor = input.id;
    input.addEventListener("focus", () => input.select());
  }

  setStatus(text) {
    this.$(".upload-status").textContent = text;
  }

  /** The upload has started. */
  started() {
    this.root.dataset.state = "uploading";
    this.cancelled = false;
    this.lastSpoken = 0;
    this.$(".retry").hidden = true;
    this.$(".upload-progress").hidden = false;
    this.$(".cancel").hidden = false;
    this.$("progress").value = 0;
    this.$(".upload-status").removeAttribute("role");
    this.resumeNote = "";
    this.setStatus("");
    this.samples = [[performance.now(), 0]];
  }

  /** `sent` of `total` bytes are on their way. */
  progress(sent, total) {
    const percent = sent >= total ? 100 : Math.floor((sent * 100) / total);
    const now = performance.now();
    this.samples.push([now, sent]);
    while (this.samples.length > 2 && now - this.samples[0][0] > SPEED_WINDOW_MS) this.samples.shift();
    const [then, sentThen] = this.samples[0];
    const speed = now - then > 250 ? ((sent - sentThen) * 1000) / (now - then) : 0;
    this.$("progress").value = percent;
    this.$(".stat-percent").textContent = `${percent} %`;
    this.$(".stat-bytes").textContent = `${humanSize(sent)} of ${humanSize(total)}`;
    this.$(".stat-speed").textContent = speed > 0 ? `${humanSize(Math.round(speed))}/s` : "";
    this.$(".stat-eta").textContent =
      speed > 0 && sent < total ? `${humanDuration(Math.ceil((total - sent) / speed))} left` : "";
    if (percent >= this.lastSpoken + 25) {
      this.lastSpoken = percent - (percent % 25);
      this.announce(`${this.file.name}: ${percent} % uploaded`);
    }
  }

  /** A stored upload goes on: `offset` bytes were already on the server. */
  resumed(offset) {
    this.samples = [[performance.now(), offset]];
    this.progress(offset, this.file.size);
    this.resumeNote = `Resuming: ${mebibytes(offset)} already uploaded`;
    this.note("");
    this.announce(`${this.file.name}: resuming, ${mebibytes(offset)} already uploaded`);
  }

  /** A word on how the upload is going (a retry, the network): "" goes back to normal. */
  note(text) {
    if (text && text !== this.$(".upload-status").textContent) this.announce(`${this.file.name}: ${text}`);
    this.setStatus(text || this.resumeNote || "");
  }

  /** Every byte is sent and the server has answered. */
  uploaded() {
    this.$("progress").value = 100;
    this.$(".stat-percent").textContent = "100 %";
    this.$(".stat-bytes").textContent = humanSize(this.file.size);
    this.$(".stat-eta").textContent = "";
    this.$(".cancel").hidden = true;
  }

  /** The server is sealing the file. */
  sealing() {
    this.root.dataset.state = "sealing";
    this.setStatus("Sealing… the link is ready in a moment.");
    this.announce(`${this.file.name} is uploaded and being sealed`);
  }

  /** The link is ready: show it with its QR code, expiry and manage token. */
  ready(created, fields) {
    this.root.dataset.state = "ready";
    this.setStatus("");
    this.$(".upload-progress").hidden = true;
    this.$(".upload-result").hidden = false;
    this.$(".share-url").value = created.url;
    this.$(".manage-token").value = created.manage_token || "";
    // The server shows a manage token once; when its answer was lost, so is the token.
    this.$(".manage").hidden = !created.manage_token;
    if (!created.manage_token) this.setStatus("The connection broke as the upload ended: the link works, but its manage token was lost.");
    this.$(".qr img").src = `/api/v1/links/${encodeURIComponent(created.token)}/qr.svg`;
    const expires = new Date(created.expires_at);
    const time = this.$("time.expires");
    time.dateTime = created.expires_at;
    const minutesLeft = Math.round((expires - Date.now()) / 60000);
    time.textContent = `${localDateTime(expires)} (in ${humanDuration(minutesLeft * 60)})`;
    this.$(".fact-password").hidden = !fields.password;
    if (fields.max_downloads) {
      this.$(".fact-limit").hidden = false;
      this.$(".limit").textContent = `${fields.max_downloads} download${fields.max_downloads === "1" ? "" : "s"}`;
    }
    this.wireCopy(".copy-link", ".share-url", "Link copied");
    this.wireCopy(".copy-manage", ".manage-token", "Manage token copied");
    this.wireDelete(created);
    this.announce(`${this.file.name} is ready. Its share link is shown.`);
  }

  /** The upload or its sealing failed: say why. */
  failed(message) {
    this.root.dataset.state = "failed";
    this.$(".upload-progress").hidden = true;
    this.setStatus(message);
    this.$(".upload-status").setAttribute("role", "alert");
    this.$(".retry").hidden = false;
  }

  /** The person cancelled: nothing was kept (`removed` false: the server drops it later). */
  wasCancelled(removed = true) {
    this.root.dataset.state = "cancelled";
    this.$(".upload-progress").hidden = true;
    this.setStatus(
      removed
        ? "Upload cancelled. Nothing was kept."
        : "Upload cancelled. The server deletes the part it received when the upload expires.",
    );
    this.announce(`Upload of ${this.file.name} cancelled`);
  }

  focusLink() {
    this.$(".share-url").focus();
  }

  wireCopy(buttonSelector, inputSelector, spoken) {
    const button = this.$(buttonSelector);
    const input = this.$(inputSelector);
    const label = button.textContent;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(input.value);
      } catch {
        input.select();
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      this.announce(spoken);
      setTimeout(() => (button.textContent = label), 2000);
    });
  }

  wireDelete(created) {
    const start = this.$(".delete");
    const confirm = this.$(".confirm");
    start.addEventListener("click", () => {
      start.hidden = true;
      confirm.hidden = false;
      this.$(".confirm-delete").focus();
    });
    this.$(".keep").addEventListener("click", () => {
      confirm.hidden = true;
      start.hidden = false;
      start.focus();
    });
    this.$(".confirm-delete").addEventListener("click", async () => {
      this.$(".confirm-delete").disabled = true;
      try {
        await deleteLink(created.token, created.manage_token);
      } catch (error) {
        this.$(".confirm-delete").disabled = false;
        this.setStatus(error.message);
        return;
      }
      this.root.dataset.state = "deleted";
      this.onDeleted(created.token);
      this.$(".upload-result").hidden = true;
      this.setStatus("Deleted. The link no longer works.");
      this.$(".upload-status").tabIndex = -1;
      this.$(".upload-status").focus();
      this.announce(`The link to ${this.file.name} is deleted`);
    });
  }
}
