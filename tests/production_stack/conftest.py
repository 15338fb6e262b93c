"""Fixtures of the process-level tests of the production deployment (issue 3).

`make_stack(workers=…, concurrency=…, **env)` starts a `ProductionStack` of the test's own
(PostgreSQL database, Redis prefix, buckets, API and worker processes) and stops it, and
drops what it made, when the test ends. A failing test's report ends with the last lines
of every process's log.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.production import (
    DEFAULT_CONCURRENCY,
    DEFAULT_WORKERS,
    ProductionStack,
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
)


class ProductionStacks:
    """Starts production stacks for one test and stops them after it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ProductionStack] = []

    def __call__(
        self, *, workers: int = DEFAULT_WORKERS, concurrency: int = DEFAULT_CONCURRENCY, **env: str
    ) -> ProductionStack:
        """Start a stack with `workers` worker processes and `SEALDROP_*` settings `env`."""
        stack = ProductionStack(
            self.root / f"stack-{len(self.started) + 1}",
            worker="embedded" if workers else "off",
            workers=workers,
            concurrency=concurrency,
            env=env,
        )
        self.started.append(stack)
        stack.start()
        return stack

    def stop_all(self) -> None:
        """Stop every stack started here, the newest first."""
        for stack in reversed(self.started):
            stack.stop()


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[ProductionStacks]:
    """Start production stacks of the test's own; all are stopped when it ends."""
    stacks = ProductionStacks(tmp_path)
    try:
        yield stacks
    finally:
        stacks.stop_all()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Append the stacks' log tails to a failing test's report."""
    report = yield
    stacks = getattr(item, "funcargs", {}).get("make_stack")
    if report.failed and isinstance(stacks, ProductionStacks):
        for stack in stacks.started:
            report.sections.append(("sealdrop production logs", stack.log_tails()))
    return report
