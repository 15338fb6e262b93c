"""The progress bar on stderr (bytes, rate, ETA), or nothing with -q or off a terminal.

Links and data go to stdout; the bar never mixes with them.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Meter(Protocol):
    """What a transfer reports its progress to."""

    def advance(self, count: int) -> None:
        """`count` more bytes went through."""

    def restart_at(self, done: int) -> None:
        """The transfer is at `done` bytes (a resume, or a retry that went back)."""


class _Silent:
    def advance(self, count: int) -> None:
        pass

    def restart_at(self, done: int) -> None:
        pass


class _Bar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)

    def restart_at(self, done: int) -> None:
        self._progress.update(self._task, completed=done)


class Bars:
    """One bar per file while the `with` block runs; silent when not `enabled`."""

    def __init__(self, *, enabled: bool) -> None:
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
                # Links go to stdout as they are made, never into the bar on stderr.
                redirect_stdout=False,
                redirect_stderr=False,
            )

    def __enter__(self) -> Bars:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def meter(self, name: str, total: int | None, done: int = 0) -> Meter:
        """A bar for one file of `total` bytes, `done` of them already through."""
        if self._progress is None:
            return _Silent()
        task = self._progress.add_task(name[:40], total=total, completed=done)
        return _Bar(self._progress, task)


def bars_wanted(quiet: bool) -> bool:
    """A bar unless -q, or stderr is not a terminal (a script, a pipe, a log file)."""
    return not quiet and sys.stderr.isatty()
