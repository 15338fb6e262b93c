"""How the pages say sizes and durations, and which lifetimes the upload page offers."""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB")
# Lifetimes offered on the upload page, in seconds; the server's maximum is always added.
_LIFETIMES = (3600, 6 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)


def human_size(size: int) -> str:
    """`1.5 MiB`, `512 bytes`: binary units, one decimal."""
    if size < 1024:
        return "1 byte" if size == 1 else f"{size} bytes"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def duration_label(seconds: int) -> str:
    """`1 hour`, `24 hours`, `3 days`, `90 minutes`: the largest whole unit."""
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        # Up to a day, hours read better than "1 day" next to "12 hours".
        if seconds % length == 0 and (unit != "day" or seconds > 86400):
            count = seconds // length
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def lifetime_choices(max_ttl: int) -> list[tuple[str, str]]:
    """(form value, label) for each lifetime the upload page offers, up to `max_ttl`."""
    chosen = [seconds for seconds in _LIFETIMES if seconds < max_ttl] + [max_ttl]
    return [(str(seconds), duration_label(seconds)) for seconds in chosen]
