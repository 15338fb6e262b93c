"""Counting the SQL statements an engine sends, to prove a request never reached the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


class QueryCount:
    """Statements seen since the counter was opened (or last reset)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __len__(self) -> int:
        return len(self.statements)

    def reset(self) -> None:
        """Forget what was counted so far."""
        self.statements.clear()


@contextmanager
def counting_queries(engine: AsyncEngine) -> Iterator[QueryCount]:
    """Count every statement `engine` executes inside the block."""
    count = QueryCount()

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        count.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        yield count
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
