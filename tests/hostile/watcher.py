"""A loopback web server that an uploaded payload would call if a browser ever ran it.

`LoopbackWatch` listens on 127.0.0.1 (another origin than Sealdrop's) and records the
path of every request it gets. Payloads call `<url>/hit/<label>`; a test asserts that no
such request ever came. `embedding_page(url)` is a page of this other origin that pulls an
upload in every way a hostile page could (frame, script, style, object, embed, image).
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


class LoopbackWatch:
    """Records every request; serves the embedding page at `/embed?url=…`."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def hits(self) -> list[str]:
        """Paths of the payload calls received so far (`/hit/…`)."""
        return [path for path in self.paths if path.startswith("/hit/")]

    def embedding_page_url(self, target: str) -> str:
        """The URL of a page (of this origin) that embeds `target` in every way."""
        return f"{self.url}/embed?url={target}"

    def __enter__(self) -> LoopbackWatch:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        watch = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                watch.paths.append(self.path)
                parts = urlsplit(self.path)
                body = b""
                if parts.path == "/embed":
                    body = embedding_page(parse_qs(parts.query)["url"][0]).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads `paths`."""

        return Handler


def embedding_page(target: str) -> str:
    """HTML that loads `target` as a frame, script, stylesheet, object, embed and image."""
    url = html.escape(target, quote=True)
    return (
        "<!doctype html><title>embedder</title>"
        f'<iframe src="{url}"></iframe>'
        f'<script src="{url}"></script>'
        f'<link rel="stylesheet" href="{url}">'
        f'<object data="{url}"></object>'
        f'<embed src="{url}">'
        f'<img src="{url}">'
    )
