"""Fixtures of the end-to-end tests: Sealdrop as real processes on loopback.

`STACK_MODES` lists the deployments every test here runs against: each entry of
`tests.support.shared_stacks.STACK_FACTORIES`. `stack` is the session's shared deployment
of the mode (tests on it must not depend on each other's leftovers); `make_stack(worker=…,
**env)` starts one of a test's own, with other settings, and stops it when the test ends.
A failing test's report ends with the last lines of every process's log.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.production import (
    production_backends_cleanup,  # noqa: F401 - a session fixture: stops the services
)
from tests.support.shared_stacks import STACK_FACTORIES, SharedStacks
from tests.support.stack import Stack, WorkerMode

STACK_MODES: list[str] = list(STACK_FACTORIES)


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


@pytest.fixture(scope="session", params=STACK_MODES)
def stack_mode(request: pytest.FixtureRequest) -> str:
    """The deployment mode under test."""
    mode: str = request.param
    return mode


@pytest.fixture(scope="module")
def stack(stack_mode: str, shared_stacks: SharedStacks) -> Stack:
    """The session's running stack of this mode (`SHARED_ENV`), shared by the e2e tests."""
    return shared_stacks.get(stack_mode)


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
