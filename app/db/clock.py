"""The database clock: SQL expressions for "now" and "now + N seconds".

Every expiry and lease decision is made in SQL against these, so pods with skewed clocks
agree (DESIGN §1, Time). PostgreSQL uses `statement_timestamp()` (not `now()`, which is fixed
for a whole transaction); SQLite formats its clock the way SQLAlchemy stores datetimes, so
comparisons with stored values are plain string comparisons in the same format.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

_SQLITE_NOW = "STRFTIME('%Y-%m-%d %H:%M:%f000', 'now'"


class db_now_plus(FunctionElement[datetime]):
    """The database's current time plus a number of seconds (which may be negative)."""

    type = DateTime(timezone=True)
    inherit_cache = True
    name = "db_now_plus"


def db_now() -> db_now_plus:
    """The database's current time."""
    return db_now_plus(literal(0.0))


def seconds(value: float) -> ColumnElement[Any]:
    """A seconds offset to pass to `db_now_plus`."""
    return literal(float(value))


@compiles(db_now_plus, "postgresql")
def _pg_now_plus(element: db_now_plus, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + make_interval(secs => CAST({offset} AS double precision)))"


@compiles(db_now_plus, "sqlite")
def _sqlite_now_plus(element: db_now_plus, compiler: SQLCompiler, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"{_SQLITE_NOW}, printf('%+.6f seconds', {offset}))"


def as_utc(value: datetime) -> datetime:
    """Attach UTC to a naive datetime read from SQLite; PostgreSQL's are already aware."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
