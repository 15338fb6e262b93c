"""`sealdrop send` and `sealdrop get`: the command lines, run against a server.

Links (or `--json` objects) go to stdout, one per line; progress and errors to stderr.
Each returns the exit status of docs/client.md.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.client import download
from app.client.discovery import Via, choose, discover
from app.client.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ClientError
from app.client.http import open_client
from app.client.links import split_link
from app.client.progress import Bars, Meter, bars_wanted
from app.client.put import LINK_FIELDS, SendOptions, put_upload

SERVER_ENV = "SEALDROP_SERVER"
UPLOAD_KEY_ENV = "SEALDROP_UPLOAD_KEY"


@dataclass(frozen=True)
class SendRequest:
    """What `sealdrop send` was asked to do."""

    files: list[Path]
    server: str | None
    via: Via
    options: SendOptions
    as_json: bool
    quiet: bool
    chunk_size: int | None = None  # tus PATCH size; the server's advice by default


def ask_password(prompt: str = "Link password: ") -> str:
    """A password typed at the terminal, never echoed."""
    password = getpass.getpass(prompt)
    if not password:
        raise ClientError("an empty password", EXIT_USAGE)
    return password


def server_of(given: str | None) -> str:
    """`--server`, else `$SEALDROP_SERVER`."""
    server = given or os.environ.get(SERVER_ENV)
    if not server:
        raise ClientError(f"no server: pass --server URL or set {SERVER_ENV}", EXIT_USAGE)
    if not server.startswith(("http://", "https://")):
        raise ClientError(f"the server must be an http(s) URL, not {server!r}", EXIT_USAGE)
    return server.rstrip("/")


def _check_files(files: list[Path]) -> None:
    for path in files:
        if not path.is_file():
            raise ClientError(f"{path}: not a readable file", EXIT_USAGE)


def upload_one(request: SendRequest, server: str, path: Path, meter: Meter) -> dict[str, Any]:
    """Send one file by the path the server offers; its link-creation JSON."""
    with open_client() as client:
        offer = discover(client, server)
        path_kind = choose(offer, request.via)
        if path_kind == "tus":
            from app.client.tus import tus_upload

            return tus_upload(
                client, offer, server, path, request.options, meter, chunk_size=request.chunk_size
            )
        if path_kind == "direct":
            from app.client.direct import direct_upload

            assert offer.direct_url is not None
            return direct_upload(client, offer.direct_url, server, path, request.options, meter)
        return put_upload(client, offer.put_url, path, request.options, meter)


def send(request: SendRequest) -> int:
    """Upload every file; print each link as it is made. Stops at the first failure."""
    server = server_of(request.server)
    _check_files(request.files)
    with Bars(enabled=bars_wanted(request.quiet)) as bars:
        for path in request.files:
            meter = bars.meter(path.name, path.stat().st_size)
            link = upload_one(request, server, path, meter)
            if request.as_json:
                shown = {key: link.get(key) for key in (*LINK_FIELDS, "sha256")}
                print(json.dumps({"file": str(path), **shown}), flush=True)
            else:
                print(link["url"], flush=True)
    return EXIT_OK


def get(url: str, output: str | None, password_prompt: bool, quiet: bool) -> int:
    """Download the file of a share or download link, verified, resumable."""
    try:
        file_url, password = split_link(url)
    except ValueError as error:
        raise ClientError(f"bad link: {error}", EXIT_USAGE) from None
    if password_prompt:
        password = ask_password("Password: ")
    with open_client() as client:
        fetcher = download.Fetcher(client, file_url, password)
        info = fetcher.head()
        with Bars(enabled=bars_wanted(quiet)) as bars:
            if output == "-":
                download.get_to_stdout(fetcher, info, bars.meter(info.name, info.size))
                return EXIT_OK
            target, replace = download.target_path(output, info.name)
            meter = bars.meter(info.name, info.size)
            download.get_to_file(fetcher, info, target, replace, meter)
    if not quiet and output != "-":
        print(str(target), flush=True)
    return EXIT_OK


def run(action: Any, *args: Any) -> None:
    """Run a command; a `ClientError` is one line on stderr and its exit status."""
    try:
        status = action(*args)
    except ClientError as error:
        print(f"sealdrop: {error.message}", file=sys.stderr)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        print("sealdrop: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as error:
        print(f"sealdrop: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        sys.exit(EXIT_FAILURE)
    sys.exit(status)
