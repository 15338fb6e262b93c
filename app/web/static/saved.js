// "Your links" on the upload page: the links this browser made, kept in its localStorage
// (never on the server), each with its state, time left, and Edit and Delete by its
// manage token. Ended links are marked, can be removed, and drop off after a day.

import { humanDuration, localDateTime } from "./format.js";
import { UploadError, deleteLink, editLink, linkStatus } from "./transfer.js";

const STORAGE_KEY = "sealdrop.links";
const FORGET_ENDED_AFTER_MS = 24 * 3600 * 1000;
const LIVE_STATES = new Set(["ready", "pending"]);
let nextId = 0;

function load() {
  try {
    const entries = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(entries) ? entries.filter((entry) => entry && entry.token) : [];
  } catch {
    return []; // unreadable (another version, or edited by hand): start afresh
  }
}

function store(entries) {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(entries));
  } catch {
    // Storage full or refused (private mode): the list lasts as long as the page.
  }
}

/** When an entry ended (expired, deleted, used up), in ms since the epoch; null if live. */
function endedAt(entry) {
  if (entry.ended_at) return entry.ended_at;
  const expires = Date.parse(entry.expires_at);
  return Number.isFinite(expires) && expires <= Date.now() ? expires : null;
}

export class SavedLinks {
  /** The list in `section`, drawn from `template`; `announce` speaks to screen readers. */
  constructor(section, template, lifetimes, announce) {
    this.section = section;
    this.list = section.querySelector("#saved-links");
    this.template = template;
    this.lifetimes = lifetimes;
    this.announce = announce;
    this.items = new Map();
    const now = Date.now();
    this.entries = load().filter((entry) => {
      const ended = endedAt(entry);
      return ended === null || now - ended < FORGET_ENDED_AFTER_MS;
    });
    store(this.entries);
    for (const entry of this.entries) this.draw(entry);
    this.show();
    setInterval(() => this.tick(), 1000);
  }

  /** Remember a link just made (what its upload answered) and list it first. */
  remember(created, filename) {
    const entry = {
      token: created.token,
      url: created.url,
      download_url: created.download_url,
      manage_token: created.manage_token,
      filename,
      expires_at: created.expires_at,
    };
    this.entries = [entry, ...this.entries.filter((known) => known.token !== entry.token)];
    store(this.entries);
    this.draw(entry, { first: true });
    this.show();
  }

  /** A link was deleted elsewhere on the page (its upload card). */
  deleted(token) {
    const entry = this.entries.find((known) => known.token === token);
    if (entry) this.end(entry, "deleted", "Deleted");
  }

  show() {
    this.section.hidden = this.entries.length === 0;
  }

  save() {
    store(this.entries);
  }

  draw(entry, { first = false } = {}) {
    this.items.get(entry.token)?.root.remove();
    const item = new SavedItem(this, entry);
    this.items.set(entry.token, item);
    if (first) this.list.prepend(item.root);
    else this.list.append(item.root);
    item.refresh();
  }

  forget(entry) {
    this.entries = this.entries.filter((known) => known !== entry);
    this.items.get(entry.token)?.root.remove();
    this.items.delete(entry.token);
    this.save();
    this.show();
  }

  end(entry, state, text) {
    entry.state = state;
    entry.ended_at = entry.ended_at || Date.now();
    this.save();
    this.items.get(entry.token)?.showState(text);
  }

  tick() {
    for (const item of this.items.values()) item.showTimeLeft();
  }
}

class SavedItem {
  constructor(owner, entry) {
    this.owner = owner;
    this.entry = entry;
    this.root = owner.template.content.firstElementChild.cloneNode(true);
    const id = ++nextId;
    const name = entry.filename || "file";
    const link = this.$(".saved-url");
    link.href = entry.url;
    link.textContent = name;
    this.label("expires", id, ".edit-expires-label", ".edit-expires");
    this.label("limit", id, ".edit-limit-label", ".edit-limit");
    this.label("password", id, ".edit-password-label", ".edit-password");
    const select = this.$(".edit-expires");
    for (const [value, text] of owner.lifetimes) select.append(new Option(text, value));
    for (const [selector, verb] of [[".edit", "Edit"], [".delete", "Delete"], [".forget", "Remove from the list"]]) {
      this.$(selector).setAttribute("aria-label", `${verb}: ${name}`);
    }
    this.wire();
  }

  $(selector) {
    return this.root.querySelector(selector);
  }

  label(name, id, labelSelector, inputSelector) {
    const input = this.$(inputSelector);
    input.id = `saved-${name}-${id}`;
    this.$(labelSelector).htmlFor = input.id;
  }

  /** Ask the server how the link is. */
  async refresh() {
    if (endedAt(this.entry) !== null) {
      this.showState(this.entry.state === "deleted" ? "Deleted" : "Ended");
      return;
    }
    try {
      this.apply(await linkStatus(this.entry.token));
    } catch (error) {
      if (error.status === 404 || error.status === 410) {
        this.owner.end(this.entry, "gone", "Ended (expired, used up or deleted)");
      } else {
        this.setStatus(error.message);
      }
    }
  }

  /** Show a status answer of the API (GET or PATCH). */
  apply(status) {
    this.entry.expires_at = status.expires_at;
    this.entry.state = status.state;
    this.entry.max_downloads = status.max_downloads;
    this.owner.save();
    this.root.dataset.state = status.state;
    this.$(".saved-state").textContent = status.state === "ready" ? "Ready" : "Sealing…";
    const limits = [];
    if (status.downloads_left !== null) {
      limits.push(`${status.downloads_left} download${status.downloads_left === 1 ? "" : "s"} left`);
    }
    if (status.password_required) limits.push("password");
    this.$(".saved-limits").textContent = limits.map((text) => ` · ${text}`).join("");
    this.showTimeLeft();
  }

  showState(text) {
    this.root.dataset.state = "ended";
    this.$(".saved-state").textContent = text;
    this.$(".saved-left").textContent = "";
    this.$(".saved-limits").textContent = "";
    this.$(".edit").hidden = true;
    this.$(".delete").hidden = true;
    this.$(".edit-form").hidden = true;
    this.$(".confirm").hidden = true;
    this.$(".forget").hidden = false;
  }

  showTimeLeft() {
    if (!LIVE_STATES.has(this.root.dataset.state)) return;
    const expires = new Date(this.entry.expires_at);
    const left = Math.floor((expires - Date.now()) / 1000);
    if (left <= 0) {
      this.owner.end(this.entry, "expired", "Expired");
      return;
    }
    const time = this.$(".saved-left");
    time.textContent = `${humanDuration(left)} left`;
    time.title = localDateTime(expires);
  }

  setStatus(text) {
    this.$(".saved-status").textContent = text;
  }

  wire() {
    const form = this.$(".edit-form");
    this.$(".edit").addEventListener("click", () => (form.hidden ? this.openEdit() : this.closeEdit()));
    this.$(".cancel-edit").addEventListener("click", () => this.closeEdit());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitEdit();
    });
    this.$(".edit-no-password").addEventListener("change", (event) => {
      this.$(".edit-password").disabled = event.target.checked;
    });
    this.$(".delete").addEventListener("click", () => {
      this.$(".confirm").hidden = false;
      this.$(".confirm-delete").focus();
    });
    this.$(".keep").addEventListener("click", () => {
      this.$(".confirm").hidden = true;
      this.$(".delete").focus();
    });
    this.$(".confirm-delete").addEventListener("click", () => this.delete());
    this.$(".forget").addEventListener("click", () => {
      this.owner.forget(this.entry);
      this.owner.announce(`${this.entry.filename} removed from the list`);
    });
  }

  openEdit() {
    const form = this.$(".edit-form");
    form.reset();
    this.$(".edit-password").disabled = false;
    this.$(".edit-limit").value = this.entry.max_downloads ?? "";
    this.$(".edit-error").hidden = true;
    form.hidden = false;
    this.$(".edit").setAttribute("aria-expanded", "true");
    this.$(".edit-expires").focus();
  }

  closeEdit() {
    this.$(".edit-form").hidden = true;
    this.$(".edit").setAttribute("aria-expanded", "false");
    this.$(".edit").focus();
  }

  /** The PATCH body: only what the person changed; null when the form is not right. */
  changes() {
    const body = {};
    const expires = this.$(".edit-expires").value;
    if (expires) body.expires_in = Number(expires);
    const limit = this.$(".edit-limit").value.trim();
    if (limit !== String(this.entry.max_downloads ?? "")) {
      if (limit === "") body.max_downloads = null;
      else if (/^\d+$/.test(limit) && Number(limit) >= 1 && Number(limit) <= 1000000) {
        body.max_downloads = Number(limit);
      } else {
        this.showEditError("The download limit must be a whole number from 1 to 1,000,000.");
        return null;
      }
    }
    if (this.$(".edit-no-password").checked) body.password = null;
    else if (this.$(".edit-password").value) body.password = this.$(".edit-password").value;
    if (Object.keys(body).length === 0) {
      this.showEditError("Nothing to change: choose a new expiry, limit or password.");
      return null;
    }
    return body;
  }

  showEditError(text) {
    const error = this.$(".edit-error");
    error.textContent = text;
    error.hidden = false;
  }

  async submitEdit() {
    const body = this.changes();
    if (body === null) return;
    const button = this.$(".save");
    button.disabled = true;
    try {
      this.apply(await editLink(this.entry.token, this.entry.manage_token, body));
    } catch (error) {
      if (error.status === 410) this.owner.end(this.entry, "gone", "Ended (expired, used up or deleted)");
      else this.showEditError(error instanceof UploadError ? error.message : "Something went wrong. Please try again.");
      return;
    } finally {
      button.disabled = false;
    }
    this.closeEdit();
    this.setStatus("Saved.");
    this.owner.announce(`${this.entry.filename}: changes saved`);
  }

  async delete() {
    const button = this.$(".confirm-delete");
    button.disabled = true;
    try {
      await deleteLink(this.entry.token, this.entry.manage_token);
    } catch (error) {
      button.disabled = false;
      this.setStatus(error.message);
      return;
    }
    this.owner.end(this.entry, "deleted", "Deleted");
    this.setStatus("Deleted. The link no longer works.");
    this.$(".forget").focus();
    this.owner.announce(`The link to ${this.entry.filename} is deleted`);
  }
}
