// How the pages say sizes, speeds, durations and times (in the viewer's own locale and zone).

const UNITS = ["KiB", "MiB", "GiB", "TiB"];

/** "1.5 MiB", "512 bytes": binary units, one decimal, like the server's pages. */
export function humanSize(bytes) {
  if (bytes < 1024) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  let value = bytes;
  for (const unit of UNITS) {
    value /= 1024;
    if (value < 1024 || unit === UNITS[UNITS.length - 1]) return `${value.toFixed(1)} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** "3.5 MiB", always in MiB (how much of a resumed upload is already there). */
export function mebibytes(bytes) {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** "3 seconds", "4 minutes 10 seconds", "1 day": the two largest units, zeros left out. */
export function humanDuration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  const parts = [
    [Math.floor(s / 86400), "day"],
    [Math.floor((s % 86400) / 3600), "hour"],
    [Math.floor((s % 3600) / 60), "minute"],
    [s % 60, "second"],
  ];
  const first = parts.findIndex(([count]) => count > 0);
  if (first === -1) return "0 seconds";
  return parts
    .slice(first, first + 2)
    .filter(([count]) => count > 0)
    .map(([count, unit]) => `${count} ${unit}${count === 1 ? "" : "s"}`)
    .join(" ");
}

/** A date and time in the viewer's locale and time zone, with the zone's name. */
export function localDateTime(date) {
  // dateStyle and timeStyle cannot be combined with timeZoneName: spelled out instead.
  return new Intl.DateTimeFormat(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    timeZoneName: "short",
  }).format(date);
}
