"""Prometheus metrics: one registry for this process, shared by the API and its worker.

The metric objects live here and the code that knows an event records it with one call
(`RECEIVED_BYTES.inc(n)`, `@count_outcomes(UPLOADS, …)`). Labels only ever hold outcomes,
error codes, class names and uploader names (set by the operator, or by the trusted auth
proxy) — never a token, a key, a file name or anything an anonymous client chose — so a
scrape can never leak a link (DESIGN §6). `/metrics` serves `REGISTRY` in the API; a
standalone worker serves it on its own port (`sealdrop worker --metrics-port`).
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import SealdropError

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

# Seconds, from a few milliseconds (small files) to half an hour (5 GiB on slow storage).
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)

RECEIVED_BYTES = Counter(
    "sealdrop_received_bytes",
    "Plaintext bytes of upload bodies received (including uploads that failed)",
    registry=REGISTRY,
)
SENT_BYTES = Counter(
    "sealdrop_sent_bytes",
    "Plaintext bytes of files sent to downloaders",
    registry=REGISTRY,
)
UPLOADS = Counter(
    "sealdrop_uploads",
    "Uploads whose body was read, by outcome (created, or the error that ended them)",
    ["outcome"],
    registry=REGISTRY,
)
DOWNLOADS = Counter(
    "sealdrop_downloads",
    "File requests by outcome (complete, interrupted, head, not_modified, or the refusal)",
    ["outcome"],
    registry=REGISTRY,
)
SEALING_SECONDS = Histogram(
    "sealdrop_sealing_duration_seconds",
    "Time one worker attempt took to reseal a staged upload, by outcome",
    ["outcome"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "sealdrop_queue_wait_seconds",
    "Time a runnable job waited before a worker claimed it (database clock)",
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "sealdrop_queue_depth",
    "Jobs waiting to be sealed (refreshed by the worker every few seconds)",
    registry=REGISTRY,
)
STORED_BYTES = Gauge(
    "sealdrop_stored_bytes",
    "Bytes the stores hold, staged uploads and sealed blobs, as counted against the cap "
    "(refreshed by the worker every few seconds)",
    registry=REGISTRY,
)
STORED_BYTES_CAP = Gauge(
    "sealdrop_stored_bytes_cap",
    "SEALDROP_MAX_STORED_BYTES: the most the stores may hold (0: no cap)",
    registry=REGISTRY,
)
NEGATIVE_CACHE = Counter(
    "sealdrop_negative_cache_lookups",
    "Token lookups in the negative cache, by result (hit or miss)",
    ["result"],
    registry=REGISTRY,
)
PASSWORD_FAILURES = Counter(
    "sealdrop_password_failures",
    "Wrong passwords given for protected links",
    registry=REGISTRY,
)
S3_ERRORS = Counter(
    "sealdrop_s3_errors",
    "Failed S3 calls, by S3 error code or botocore error class",
    ["code"],
    registry=REGISTRY,
)
DATABASE_ERRORS = Counter(
    "sealdrop_database_errors",
    "Failed database statements and connections, by DB-API error class",
    ["error"],
    registry=REGISTRY,
)

UPLOADER_BYTES = Counter(
    "sealdrop_uploader_bytes",
    "Plaintext bytes of the links each uploader created (policies keys and proxy)",
    ["uploader"],
    registry=REGISTRY,
)
UPLOADER_LINKS = Counter(
    "sealdrop_uploader_links",
    "Links each uploader created (policies keys and proxy)",
    ["uploader"],
    registry=REGISTRY,
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_OWN_MODULES = ("app.", "worker.")


def outcome_of(error: BaseException) -> str:
    """A label for what ended an operation: our own exception's name in snake case.

    Only Sealdrop's exception classes name themselves (a bounded set); anything else is
    `error`, so a label can never carry a message or a value.
    """
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, SealdropError) or type(error).__module__.startswith(_OWN_MODULES):
        return _snake_case(type(error).__name__)
    return "error"


@functools.cache
def _snake_case(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


@contextmanager
def timed(histogram: Histogram, *, success: str) -> Iterator[None]:
    """Observe how long the block took, labelled `success` or with what ended it."""
    started = time.perf_counter()
    outcome = success
    try:
        yield
    except BaseException as error:
        outcome = outcome_of(error)
        raise
    finally:
        histogram.labels(outcome).observe(time.perf_counter() - started)


def count_outcomes(
    counter: Counter, *, success: str | None
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate a coroutine function to count each call under `success` or its error.

    With `success=None` only failures are counted (the caller counts its own successes).
    """

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(function)
        async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                result = await function(*args, **kwargs)
            except BaseException as error:
                counter.labels(outcome_of(error)).inc()
                raise
            if success:
                counter.labels(success).inc()
            return result

        return counted

    return decorate


def count_database_errors(engine: AsyncEngine) -> None:
    """Count every error the engine raises, by the DB-API exception's class name."""

    def on_error(context: ExceptionContext) -> None:
        error: Any = context.original_exception
        DATABASE_ERRORS.labels(type(error).__name__).inc()

    event.listen(engine.sync_engine, "handle_error", on_error)


def serve_in_thread(host: str, port: int) -> Callable[[], None]:
    """Serve `REGISTRY` over HTTP from a daemon thread (a standalone worker's endpoint).

    Returns a function that stops the server. The thread only formats counters; it never
    touches the event loop or the database.
    """
    server, thread = start_http_server(port, host, registry=REGISTRY)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
