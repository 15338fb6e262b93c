"""The client's failures, each with the exit status documented in docs/client.md."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # anything else: a local file problem, an unexpected answer
EXIT_USAGE = 2  # argparse's own status for a bad command line
EXIT_NETWORK = 3  # the server could not be reached, or the connection kept breaking
EXIT_NOT_FOUND = 4  # 404 / 410: no such link, or expired, deleted, used up
EXIT_AUTH = 5  # 401 / 403: a password or an upload key is missing or wrong
EXIT_RATE_LIMITED = 6  # 429: too many requests or attempts; the server said when to retry
EXIT_UNAVAILABLE = 7  # 503 / 5xx, still so after retrying
EXIT_INTEGRITY = 8  # the download does not match the server's Repr-Digest: nothing kept
EXIT_REFUSED = 9  # any other 4xx: too large (413), bad option (400), storage full (507)


class ClientError(Exception):
    """One line for stderr and the exit status that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


_BY_STATUS = {
    401: EXIT_AUTH,
    403: EXIT_AUTH,
    404: EXIT_NOT_FOUND,
    410: EXIT_NOT_FOUND,
    429: EXIT_RATE_LIMITED,
}


def exit_code_for(status: int) -> int:
    """The exit status of an HTTP error status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500 and status != 507:
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED
