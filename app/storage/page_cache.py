"""Reading a file in the event loop when no disk is involved, in a worker thread when one is.

A thread hand-off per chunk is most of a download's cost on hosts where waking a thread is
dear, while copying 1 MiB out of memory takes tens of microseconds. So a chunk is read
in the loop when the kernel can promise not to wait for a disk: `preadv(RWF_NOWAIT)`
returns what the page cache holds and refuses the rest (`EAGAIN`). File systems that do
not support the flag (tmpfs among them) answer `EOPNOTSUPP`; a file on a memory file
system (tmpfs, ramfs) is still read in the loop, any other in a thread.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

MEMORY_FILE_SYSTEMS = frozenset({"tmpfs", "ramfs"})


def memory_backed(path: Path) -> bool:
    """Whether `path` lies on a memory file system, by the mount table of this process."""
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    target = str(path.resolve())
    best, best_type = "", ""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        # The table escapes spaces and the like as octal (`\040`).
        point = fields[1].encode().decode("unicode_escape")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type in MEMORY_FILE_SYSTEMS


def read_cached(fd: int, view: memoryview, offset: int, *, in_memory: bool) -> tuple[int, bool]:
    """Read into `view` from `offset` what can be read without waiting for a disk.

    Returns the bytes read and whether the read is done: it is unless the rest is not in
    memory, which the caller then reads in a thread (`read_full`).
    """
    got = 0
    while got < len(view):
        try:
            if in_memory:
                n = os.preadv(fd, [view[got:]], offset + got)
            else:
                n = os.preadv(fd, [view[got:]], offset + got, os.RWF_NOWAIT)
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.EOPNOTSUPP):
                return got, False
            raise
        if n == 0:
            return got, True  # the end of the file
        got += n
    return got, True


def read_full(fd: int, view: memoryview, offset: int) -> int:
    """Read into `view` from `offset` until it is full or the file ends (may block)."""
    got = 0
    while got < len(view) and (n := os.preadv(fd, [view[got:]], offset + got)):
        got += n
    return got
