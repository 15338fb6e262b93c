"""Fixtures of the end-to-end tests: Sealdrop as real processes on loopback.

`STACK_MODES` lists the deployments every test here runs against, and `STACK_FACTORIES`
builds each (a `Stack` subclass from `tests.support.stack`); another mode is one more
entry in both. `stack` is one deployment shared by a test module (tests on it must not
depend on each other's leftovers); `make_stack(worker=…, **env)` starts one of a test's
own, with other settings. Both stop everything they started, even when a test fails, and
a failing test's report ends with the last lines of every process's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.production import (
    ProductionStack,
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
)
from tests.support.stack import EmbeddedStack, Stack, WorkerMode

STACK_MODES: list[str] = ["embedded", "production"]
STACK_FACTORIES: dict[str, Callable[..., Stack]] = {
    "embedded": EmbeddedStack,
    "production": ProductionStack,
}

SMALL_UPLOAD_LIMIT = 8 * 1024 * 1024
PASSWORD_MAX_FAILURES = 3
# The shared stack: 64 KiB segments so that small files have many, a small upload limit
# for the 413 tests, and a quick password lock for the 429 test.
SHARED_ENV = {
    "SEALDROP_SEGMENT_LOG2": "16",
    "SEALDROP_MAX_UPLOAD_BYTES": str(SMALL_UPLOAD_LIMIT),
    "SEALDROP_PASSWORD_MAX_FAILURES": str(PASSWORD_MAX_FAILURES),
}


class StackFactory:
    """Starts stacks of one mode for one test and remembers them, to stop them after."""

    def __init__(self, mode: str, root: Path) -> None:
        self.mode = mode
        self.root = root
        self.started: list[Stack] = []

    def __call__(self, *, worker: WorkerMode = "embedded", **env: str) -> Stack:
        """Start a stack with `SEALDROP_*` settings `env` (its worker in-process by default)."""
        return self.start(env, worker=worker)

    def start(self, env: Mapping[str, str], *, worker: WorkerMode = "embedded") -> Stack:
        """Start a stack with the `SEALDROP_*` settings `env`."""
        stack = STACK_FACTORIES[self.mode](
            self.root / f"stack-{len(self.started) + 1}", worker=worker, env=env
        )
        self.started.append(stack)
        stack.start()
        return stack

    def stop_all(self) -> None:
        """Stop every stack this factory started, the newest first."""
        for stack in reversed(self.started):
            stack.stop()


@pytest.fixture(scope="module", params=STACK_MODES)
def stack_mode(request: pytest.FixtureRequest) -> str:
    """The deployment mode under test."""
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def stack(stack_mode: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One running stack (`SHARED_ENV`) shared by the tests of a module."""
    factory = StackFactory(stack_mode, tmp_path_factory.mktemp(f"{stack_mode}-shared"))
    try:
        yield factory.start(SHARED_ENV)
    finally:
        factory.stop_all()


@pytest.fixture
def make_stack(stack_mode: str, tmp_path: Path) -> Iterator[StackFactory]:
    """Start stacks of the test's own; all are stopped when the test ends."""
    factory = StackFactory(stack_mode, tmp_path)
    try:
        yield factory
    finally:
        factory.stop_all()


def _stacks_of(item: pytest.Item) -> list[Stack]:
    stacks: list[Stack] = []
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Stack):
            stacks.append(value)
        elif isinstance(value, StackFactory):
            stacks.extend(value.started)
    return stacks


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    """Append the stacks' log tails to a failing test's report."""
    report = yield
    if report.failed:
        for stack in _stacks_of(item):
            report.sections.append((f"sealdrop {stack.mode} logs", stack.log_tails()))
    return report
