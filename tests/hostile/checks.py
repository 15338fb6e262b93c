"""What the hostile tests check behind the API: nothing kept, memory, liveness, addresses.

`Ledger` remembers the link and job rows that existed before a hostile request, so that
`assert_nothing_kept` can say that the request left no row, no staged object and no
unfinished multipart upload. `HealthWatch` polls `/healthz` from a thread while a test
attacks, to show the server kept answering. `fresh_address` hands out client addresses
that no other test uses, so per-client counters never cross tests.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from types import TracebackType

from app.storage.object_keys import STAGING_PREFIX
from tests.support.production import ProductionStack
from tests.support.stack import wait_until

SETTLE_SECONDS = 15.0
_addresses = itertools.count(1)


def fresh_address() -> str:
    """A client address (TEST-NET and private ranges) that no other request of the run uses."""
    n = next(_addresses)
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


@dataclass(frozen=True)
class Ledger:
    """The link and job rows that existed at one moment."""

    links: frozenset[str]
    jobs: frozenset[str]


def ledger(stack: ProductionStack) -> Ledger:
    """The rows that exist now."""
    return Ledger(
        frozenset(row.id for row in stack.sql("SELECT id FROM links")),
        frozenset(row.id for row in stack.sql("SELECT id FROM jobs")),
    )


def leftovers(stack: ProductionStack, before: Ledger) -> list[str]:
    """Rows made since `before`, and every staged object or unfinished upload in staging."""
    now = ledger(stack)
    return [
        *(f"links row {row}" for row in now.links - before.links),
        *(f"jobs row {row}" for row in now.jobs - before.jobs),
        *(f"object {key}" for key in stack.list_objects(STAGING_PREFIX)),
        *(f"multipart upload {key}" for key in stack.list_pending_writes(STAGING_PREFIX)),
    ]


def assert_nothing_kept(stack: ProductionStack, before: Ledger) -> None:
    """No row, staged object or unfinished upload is left (given a moment to clean up)."""
    try:
        wait_until(lambda: not leftovers(stack, before), timeout=SETTLE_SECONDS, interval=0.2)
    except TimeoutError:
        raise AssertionError(f"left behind: {leftovers(stack, before)}") from None


def links_since(stack: ProductionStack, before: Ledger) -> list[dict[str, object]]:
    """The link rows made since `before` (name, size, state)."""
    rows = stack.sql("SELECT id, filename, size, state FROM links")
    return [row._asdict() for row in rows if row.id not in before.links]


@dataclass
class HealthWatch:
    """Polls `<base_url>/healthz` from a thread; the slowest answer and any failure."""

    base_url: str
    interval: float = 0.05
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> HealthWatch:
        self._thread = threading.Thread(target=self._run, name="healthz-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def worst(self) -> float:
        """The slowest answer in seconds (infinity if none came)."""
        return max(self.latencies, default=float("inf"))

    def _run(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with opener.open(f"{self.base_url}/healthz", timeout=10) as answer:
                    answer.read()
                    if answer.status != 200:
                        self.failures.append(f"status {answer.status}")
            except OSError as error:
                self.failures.append(repr(error))
            self.latencies.append(time.monotonic() - started)
            self._stop.wait(self.interval)
