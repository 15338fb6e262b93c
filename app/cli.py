"""The `sealdrop` command: serve, worker, migrate, purge, keys, links, storage, uploaders;
and the client's send and get (`app.client`, docs/client.md).

Each subcommand reads the same settings (`SEALDROP_*`) and exits non-zero with one clear
line on a configuration error, never a traceback with secrets in it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.settings import Settings

log = logging.getLogger("sealdrop")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        lines = [
            f"  SEALDROP_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors()
        ]
        sys.exit("sealdrop: invalid settings:\n" + "\n".join(lines))


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's forwarded-header options: off. The app itself believes X-Forwarded-For
    only from `SEALDROP_TRUSTED_PROXIES` (`app.http.proxies`), having first noted whether
    the connection's own peer is one of them, which uvicorn's rewrite would hide."""
    return {"proxy_headers": False}


def serve(args: argparse.Namespace) -> None:
    """Run the API (and, unless SEALDROP_WORKER=off, the worker) under uvicorn.

    On SIGTERM it drains first (`SEALDROP_DRAIN_SECONDS`, readiness 503), then stops
    accepting and gives requests in flight `--grace` seconds to finish.
    """
    import uvicorn

    from app.http import server
    from app.http.protocol import ReadLimits, guarded_protocol
    from app.main import create_app

    settings = _settings()
    _logging(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=args.host or settings.host,
        port=args.port or settings.port,
        **proxy_options(settings),
        timeout_keep_alive=30,
        # Slow clients (slow-loris) are let go: uvicorn alone waits for a head forever.
        http=guarded_protocol(ReadLimits.from_settings(settings)),
        timeout_graceful_shutdown=int(args.grace),
        log_level=settings.log_level,
        access_log=False,
    )
    server.run(app, config, settings.drain_seconds)


async def _with_services(action: Callable[..., Awaitable[None]], *extra: object) -> None:
    from app.services import open_services

    settings = _settings()
    _logging(settings)
    services = await open_services(settings)
    try:
        await action(services, *extra)
    finally:
        await services.close()


HEARTBEAT_SECONDS = 10.0


async def _heartbeat(path: Path) -> None:
    """Touch `path` every few seconds from the event loop: a stale file means a hung loop
    (a container's liveness probe reads its age; docker/healthcheck.py)."""
    while True:
        await asyncio.to_thread(path.touch)
        await asyncio.sleep(HEARTBEAT_SECONDS)


async def _run_worker(
    services: object,
    concurrency: int,
    metrics_port: int | None,
    heartbeat_file: Path | None,
    grace: float,
) -> None:
    from app.infra import metrics
    from app.services import Services
    from worker.runner import Worker

    assert isinstance(services, Services)
    if services.settings.is_sqlite:
        from app import migrate

        await migrate.upgrade(services.engine)
    worker = Worker(services, concurrency=concurrency)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    stop_metrics = (
        metrics.serve_in_thread(services.settings.host, metrics_port) if metrics_port else None
    )
    beat = asyncio.create_task(_heartbeat(heartbeat_file)) if heartbeat_file else None
    log.info("worker %s started (concurrency %d)", worker.name, concurrency)
    try:
        await worker.run(grace_seconds=grace)
    finally:
        if beat is not None:
            beat.cancel()
        if stop_metrics is not None:
            stop_metrics()
    log.info("worker %s stopped", worker.name)


def run_worker(args: argparse.Namespace) -> None:
    """Run a standalone worker until SIGTERM."""
    asyncio.run(
        _with_services(
            _run_worker, args.concurrency, args.metrics_port, args.heartbeat_file, args.grace
        )
    )


async def _migrate(services: object) -> None:
    from app import migrate
    from app.services import Services

    assert isinstance(services, Services)
    await migrate.upgrade(services.engine)
    print("database schema is up to date")


def run_migrate(_args: argparse.Namespace) -> None:
    """Apply the schema migrations."""
    asyncio.run(_with_services(_migrate))


async def _purge(services: object) -> None:
    from app.services import Services
    from worker import janitor

    assert isinstance(services, Services)
    report = await janitor.run_once(services)
    print(
        f"purged {report.links_purged} links, failed {report.jobs_failed} dead jobs, "
        f"removed {report.tombstones_removed} tombstones, swept {len(report.objects_swept)} "
        f"objects, aborted {report.uploads_aborted} unfinished uploads, released "
        f"{report.reservations_released} abandoned reservations, expired "
        f"{report.resumable_expired} unfinished resumable uploads"
    )


def run_purge(_args: argparse.Namespace) -> None:
    """Run one janitor pass now."""
    asyncio.run(_with_services(_purge))


def keys_new(args: argparse.Namespace) -> None:
    """Print a new master key entry (`id:base64url`) to add to the key ring."""
    from app.crypto.keys import new_key_entry

    print(new_key_entry(args.key_id))


async def _rewrap(services: object) -> None:
    from app.domain.rotation import rewrap_all
    from app.services import Services

    assert isinstance(services, Services)
    count = await rewrap_all(services)
    print(f"re-wrapped {count} data keys under {services.keys.active_id}")


def keys_rewrap(_args: argparse.Namespace) -> None:
    """Re-wrap every data key under the active master key."""
    asyncio.run(_with_services(_rewrap))


async def _embedded_schema(services: object) -> None:
    """Migrate an embedded (SQLite) database first: `serve` may not have run yet."""
    from app import migrate
    from app.services import Services

    assert isinstance(services, Services)
    if services.settings.is_sqlite:
        await migrate.upgrade(services.engine)


async def _uploaders_add(services: object, args: argparse.Namespace) -> None:
    from app.domain import uploaders
    from app.errors import BadRequest
    from app.services import Services

    assert isinstance(services, Services)
    await _embedded_schema(services)
    limits = uploaders.Limits(
        args.max_bytes_per_day, args.max_file_size, args.max_ttl, args.max_live_links
    )
    try:
        key = await uploaders.add_uploader(services, args.name, limits, proxy=args.proxy)
    except BadRequest as error:
        sys.exit(f"sealdrop: {error.message}")
    if key is None:
        print(f"uploader {args.name} added; the sign-in proxy names it, it has no key")
        return
    print(f"uploader {args.name} added; its upload key, shown only this once:")
    print(key)


def uploaders_add(args: argparse.Namespace) -> None:
    """Add an uploader and print its key, once (none with --proxy)."""
    asyncio.run(_with_services(_uploaders_add, args))


def _limit(value: int | None, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


async def _uploaders_list(services: object) -> None:
    from app.domain.uploaders import list_uploaders
    from app.services import Services

    assert isinstance(services, Services)
    await _embedded_schema(services)
    print("name\tkind\tbytes/day\tfile size\tttl\tlive links\ttoday\tlive\trevoked")
    for one in await list_uploaders(services):
        limits = one.limits
        revoked = "-" if one.revoked_at is None else one.revoked_at.isoformat(timespec="seconds")
        print(
            f"{one.name}\t{one.kind}\t{_limit(limits.max_bytes_per_day)}\t"
            f"{_limit(limits.max_file_size)}\t{_limit(limits.max_ttl_seconds, 's')}\t"
            f"{_limit(limits.max_live_links)}\t{one.bytes_today}\t{one.live_links}\t{revoked}"
        )


def uploaders_list(_args: argparse.Namespace) -> None:
    """List the uploaders: limits, today's bytes, live links, revocation."""
    asyncio.run(_with_services(_uploaders_list))


async def _uploaders_revoke(services: object, name: str) -> None:
    from app.domain.uploaders import revoke_uploader
    from app.errors import BadRequest
    from app.services import Services

    assert isinstance(services, Services)
    await _embedded_schema(services)
    try:
        revoked = await revoke_uploader(services, name)
    except BadRequest as error:
        sys.exit(f"sealdrop: {error.message}")
    print(f"uploader {name} revoked" if revoked else f"uploader {name} was already revoked")


def uploaders_revoke(args: argparse.Namespace) -> None:
    """Revoke an uploader: refused from its next upload on, on every process."""
    asyncio.run(_with_services(_uploaders_revoke, args.name))


def _size_arg(text: str) -> int:
    from app.settings import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _duration_arg(text: str) -> int:
    from app.settings import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _count_arg(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1_000_000_000:
        raise argparse.ArgumentTypeError(f"not a count from 1: {text!r}")
    return int(text)


def _add_uploader_commands(sub: Any) -> None:
    uploaders = sub.add_parser("uploaders", help="who may upload (SEALDROP_UPLOAD_POLICY)")
    commands = uploaders.add_subparsers(dest="uploaders", required=True)
    p = commands.add_parser("add", help="add an uploader and print its upload key once")
    p.add_argument("name", help="1 to 64 of A-Z a-z 0-9 . _ @ -")
    p.add_argument("--max-bytes-per-day", type=_size_arg, metavar="SIZE")
    p.add_argument("--max-file-size", type=_size_arg, metavar="SIZE")
    p.add_argument("--max-ttl", type=_duration_arg, metavar="DURATION")
    p.add_argument("--max-live-links", type=_count_arg, metavar="N")
    p.add_argument(
        "--proxy", action="store_true", help="a name the sign-in proxy sends: no key is made"
    )
    p.set_defaults(func=uploaders_add)
    commands.add_parser("list", help="list uploaders and their usage").set_defaults(
        func=uploaders_list
    )
    p = commands.add_parser("revoke", help="refuse an uploader from now on")
    p.add_argument("name")
    p.set_defaults(func=uploaders_revoke)


async def _links_list(services: object, args: argparse.Namespace) -> None:
    from app.domain.operator_links import list_links
    from app.services import Services

    assert isinstance(services, Services)
    found = await list_links(services, uploader=args.uploader, larger_than=args.larger_than)
    if args.json:
        print(json.dumps([_link_json(link) for link in found], indent=2))
        return
    print(_LINK_LINE.format("HASH", "STATE", "SIZE", "CREATED", "EXPIRES", "DOWNLOADS", "UPLOADER"))
    for link in found:
        downloads = f"{link.downloads}/{link.max_downloads or '-'}"
        print(
            _LINK_LINE.format(
                link.hash_prefix,
                link.state,
                link.size,
                _when(link.created_at),
                _when(link.expires_at),
                downloads,
                link.uploader or "-",
            )
        )


_LINK_LINE = "{:<12}  {:<7}  {:>13}  {:<20}  {:<20}  {:>11}  {}"


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _link_json(link: Any) -> dict[str, Any]:
    return {
        "hash": link.hash_prefix,
        "state": str(link.state),
        "size": link.size,
        "created_at": _when(link.created_at),
        "expires_at": _when(link.expires_at),
        "downloads": link.downloads,
        "max_downloads": link.max_downloads,
        "uploader": link.uploader,
        "protected": link.protected,
    }


def links_list(args: argparse.Namespace) -> None:
    """List live and pending links (hash prefix, never a token or a file name)."""
    _operator_command(_links_list, args)


async def _links_revoke(services: object, args: argparse.Namespace) -> None:
    from app.domain.operator_links import revoke
    from app.services import Services

    assert isinstance(services, Services)
    revoked = await revoke(services, args.ref)
    print(f"revoked link {revoked.hash_prefix} (was {revoked.was}); it answers 410 from now on")


def links_revoke(args: argparse.Namespace) -> None:
    """Revoke one link by URL, token or hash prefix: 410 at once, purged by the janitor."""
    _operator_command(_links_revoke, args)


def _operator_command(action: Callable[..., Awaitable[None]], args: argparse.Namespace) -> None:
    """Run `action`; a refusal of the domain is one line on stderr and exit status 1."""
    from app.errors import SealdropError

    try:
        asyncio.run(_with_services(action, args))
    except SealdropError as error:
        sys.exit(f"sealdrop: {error.message}")


def storage_init(_args: argparse.Namespace) -> None:
    """Create the buckets and set their public-access block and lifecycle rules."""
    from app.storage.s3 import init_buckets

    settings = _settings()
    _logging(settings)
    for line in asyncio.run(
        init_buckets(
            settings.resolved_storage_url,
            settings.resolved_staging_url,
            public_url=settings.public_url,
        )
    ):
        print(line)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sealdrop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the API (and the embedded worker)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--grace", type=float, default=25.0, help="seconds to finish requests on stop")
    p.set_defaults(func=serve)
    p = sub.add_parser("worker", help="run a sealing worker")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on this port (SEALDROP_HOST)"
    )
    p.add_argument(
        "--heartbeat-file", type=Path, help="touch this file every 10 s (for a liveness probe)"
    )
    p.add_argument(
        "--grace",
        type=float,
        default=20.0,
        help="seconds jobs in hand get to finish on stop before they are released",
    )
    p.set_defaults(func=run_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=run_migrate)
    sub.add_parser("purge", help="run one janitor pass").set_defaults(func=run_purge)
    keys = sub.add_parser("keys", help="master keys").add_subparsers(dest="keys", required=True)
    p = keys.add_parser("new", help="print a new key ring entry")
    p.add_argument("key_id", nargs="?", default="k2")
    p.set_defaults(func=keys_new)
    keys.add_parser("rewrap", help="re-wrap data keys under the active key").set_defaults(
        func=keys_rewrap
    )
    _link_commands(sub)
    storage = sub.add_parser("storage", help="object storage").add_subparsers(
        dest="storage", required=True
    )
    storage.add_parser("init", help="create and configure the buckets").set_defaults(
        func=storage_init
    )
    _add_uploader_commands(sub)
    _client_commands(sub)
    return parser


def client_send(args: argparse.Namespace) -> None:
    """Upload files and print their links (`app.client`)."""
    from app.client.commands import UPLOAD_KEY_ENV, SendRequest, ask_password, run, send
    from app.client.put import SendOptions

    def go() -> int:
        options = SendOptions(
            expires=args.expires,
            max_downloads=args.max_downloads,
            password=ask_password() if args.password_prompt else None,
            upload_key=os.environ.get(UPLOAD_KEY_ENV) or None,
        )
        files = [Path(name) for name in args.files]
        request = SendRequest(
            files, args.server, args.via, options, args.json, args.quiet, args.chunk_size
        )
        return send(request)

    run(go)


def client_get(args: argparse.Namespace) -> None:
    """Download a link's file, verified against its digest (`app.client`)."""
    from app.client.commands import get, run

    run(get, args.url, args.output, args.password_prompt, args.quiet)


def _client_commands(sub: Any) -> None:
    p = sub.add_parser("send", help="upload files and print their share links")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--expires", metavar="DURATION", help="link lifetime: 30m, 2h, 7d")
    p.add_argument("--max-downloads", type=_count_arg, metavar="N")
    p.add_argument("--password-prompt", action="store_true", help="ask for a link password")
    p.add_argument("--server", metavar="URL", help="the Sealdrop server (or SEALDROP_SERVER)")
    p.add_argument(
        "--via",
        choices=["auto", "put", "tus", "direct"],
        default="auto",
        help="upload path (auto: resumable tus when offered, else one PUT)",
    )
    p.add_argument(
        "--chunk-size", type=_size_arg, metavar="SIZE", help="bytes per tus PATCH (8M, 50M)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=client_send)
    p = sub.add_parser("get", help="download a link's file, verified and resumable")
    p.add_argument("url", metavar="URL", help="a share (/s/) or download (/d/) link")
    p.add_argument("-o", "--output", metavar="PATH", help="file or folder to write; - for stdout")
    p.add_argument("--password-prompt", action="store_true", help="ask for the link's password")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no path printed")
    p.set_defaults(func=client_get)


def _link_commands(sub: Any) -> None:
    links = sub.add_parser("links", help="the operator's view of links").add_subparsers(
        dest="links", required=True
    )
    p = links.add_parser("list", help="live and pending links, by token-hash prefix")
    p.add_argument("--uploader", metavar="NAME", help="only this uploader's links")
    p.add_argument(
        "--larger-than", metavar="SIZE", type=_size_arg, help="only files larger than SIZE (500M)"
    )
    p.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    p.set_defaults(func=links_list)
    p = links.add_parser("revoke", help="revoke a link: 410 at once, its file purged")
    p.add_argument("ref", metavar="REF", help="share URL, token, or 8+ hex digits of its hash")
    p.set_defaults(func=links_revoke)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `sealdrop` console script."""
    args = _parser().parse_args(argv)
    args.func(args)
