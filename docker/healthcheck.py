"""Container health checks for Sealdrop's image, standard library only (no shell, no curl).

    python healthcheck.py http [--port N]          the API answers GET /healthz on loopback
    python healthcheck.py heartbeat FILE [--max-age S]   a worker touched FILE recently

Exit status 0 means healthy, 1 unhealthy; one line on stderr says why. The image's
HEALTHCHECK runs the first; compose and Kubernetes run the second for workers, which have
no HTTP server but touch their heartbeat file from their event loop
(`sealdrop worker --heartbeat-file FILE`), so a hung loop shows as a stale file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_PORT = 8000
DEFAULT_MAX_AGE_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 4.0


def check_http(port: int) -> str | None:
    """None if GET http://127.0.0.1:<port>/healthz answers 200, else the reason."""
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            status: int = response.status
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {error}"
    return None if status == 200 else f"{url}: HTTP {status}"


def check_heartbeat(path: str, max_age: float) -> str | None:
    """None if `path` was modified less than `max_age` seconds ago, else the reason."""
    try:
        age = time.time() - os.stat(path).st_mtime
    except OSError as error:
        return f"{path}: {error.strerror}"
    return None if age <= max_age else f"{path}: last beat {age:.0f} s ago (> {max_age:.0f} s)"


def main(argv: list[str] | None = None) -> int:
    """Run the check named on the command line; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    checks = parser.add_subparsers(dest="check", required=True)
    http = checks.add_parser("http", help="GET /healthz on loopback")
    http.add_argument(
        "--port", type=int, default=int(os.environ.get("SEALDROP_PORT", DEFAULT_PORT))
    )
    beat = checks.add_parser("heartbeat", help="a worker's heartbeat file is fresh")
    beat.add_argument("file")
    beat.add_argument("--max-age", type=float, default=DEFAULT_MAX_AGE_SECONDS)
    args = parser.parse_args(argv)
    if args.check == "http":
        problem = check_http(args.port)
    else:
        problem = check_heartbeat(args.file, args.max_age)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
