// The share page: a live countdown to the link's expiry, a page that refreshes by itself
// while the file is being sealed, and a download button whose ticket runs out.

import { humanDuration, localDateTime } from "./format.js";

const share = document.getElementById("share");
const expires = document.getElementById("expires");
const timeLeft = document.getElementById("time-left");
const download = document.getElementById("download");
const started = performance.now();

function secondsSince(seconds) {
  // Counted on this page's monotonic clock: a wrong clock on the viewer's computer
  // does not shorten or stretch the countdown.
  return seconds - (performance.now() - started) / 1000;
}

function tickExpiry() {
  const left = secondsSince(Number(expires.dataset.secondsLeft));
  if (left <= 0) {
    timeLeft.textContent = "(expired)";
    if (download) expireButton("This link has expired.");
    return false;
  }
  timeLeft.textContent = `(${humanDuration(left)} left)`;
  return true;
}

function expireButton(message) {
  const note = document.getElementById("ticket-note");
  if (note) note.hidden = true;
  download.removeAttribute("href");
  download.setAttribute("aria-disabled", "true");
  download.classList.add("disabled");
  document.getElementById("download-status").textContent = message;
}

function watchTicket() {
  const seconds = Number(download.dataset.ticketSeconds);
  const again = document.createElement("a");
  again.href = `/s/${share.dataset.token}`;
  again.textContent = "Enter the password again";
  const retire = (message) => {
    expireButton(message);
    document.getElementById("download-status").append(" ", again);
  };
  const timer = setTimeout(() => retire("This download button has run out."), seconds * 1000);
  download.addEventListener("click", () => {
    clearTimeout(timer);
    // The browser keeps the download going; the used ticket cannot start another one.
    setTimeout(() => retire("Your download has started."), 500);
  });
}

async function waitForSeal() {
  const token = share.dataset.token;
  for (let wait = 1000; ; wait = Math.min(wait * 1.5, 5000)) {
    await new Promise((resolve) => setTimeout(resolve, wait));
    try {
      const answer = await fetch(`/api/v1/links/${token}`, { headers: { Accept: "application/json" } });
      if (!answer.ok || (await answer.json()).state !== "pending") break;
    } catch {
      // The network blinked: look again at the next turn.
    }
  }
  window.location.reload();
}

expires.textContent = localDateTime(new Date(expires.dateTime));
if (tickExpiry()) {
  const timer = setInterval(() => tickExpiry() || clearInterval(timer), 1000);
}
if (download?.dataset.ticketSeconds) watchTicket();
if (share.dataset.sealing === "yes" && share.dataset.protected === "no") waitForSeal();
