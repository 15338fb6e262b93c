"""One running stack per deployment mode for the whole test session, started on first use.

Starting a production stack (storage init, migrations, an API and two worker processes)
costs seconds; tests that only need "a Sealdrop that works" share one per mode instead of
one per module: the end-to-end suite (both modes) and `tests/production_stack`'s storage-init
checks. Tests on a shared stack must not depend on each other's leftovers. A test that
kills, stops or reconfigures processes starts a stack of its own.

The hostile suite keeps its own session stack: its per-address limits are tight on
purpose (six wrong passwords per client address), and the end-to-end tests, all from
127.0.0.1, would spend that budget for each other.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.support.production import ProductionStack
from tests.support.stack import EmbeddedStack, Stack

SMALL_UPLOAD_LIMIT = 8 * 1024 * 1024
PASSWORD_MAX_FAILURES = 3
# 64 KiB segments so that small files have many, a small upload limit for the 413 tests,
# and a quick password lock for the 429 test.
SHARED_ENV = {
    "SEALDROP_SEGMENT_LOG2": "16",
    "SEALDROP_MAX_UPLOAD_BYTES": str(SMALL_UPLOAD_LIMIT),
    "SEALDROP_PASSWORD_MAX_FAILURES": str(PASSWORD_MAX_FAILURES),
}
STACK_FACTORIES: dict[str, Callable[..., Stack]] = {
    "embedded": EmbeddedStack,
    "production": ProductionStack,
}


class SharedStacks:
    """The session's stacks with `SHARED_ENV`, one per mode, each started when first asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._running: dict[str, Stack] = {}

    def get(self, mode: str) -> Stack:
        """The running stack of `mode` (`embedded` or `production`)."""
        if mode not in self._running:
            stack = STACK_FACTORIES[mode](self.root / mode, worker="embedded", env=SHARED_ENV)
            self._running[mode] = stack
            stack.start()
        return self._running[mode]

    def production(self) -> ProductionStack:
        """The running production stack."""
        stack = self.get("production")
        assert isinstance(stack, ProductionStack)
        return stack

    def stop_all(self) -> None:
        """Stop every stack started here."""
        for stack in self._running.values():
            stack.stop()
        self._running.clear()
