"""Who is really talking to us: the TCP peer, and the client behind a trusted proxy.

uvicorn's own forwarded-header handling replaces the client address with the one in
`X-Forwarded-For`, after which nothing can tell whether the connection itself came from a
trusted proxy; yet only such a connection may name its user in the auth proxy's header
(upload policy `proxy`). So the app does it: this middleware first records whether the
immediate peer is one of `SEALDROP_TRUSTED_PROXIES`, then applies `X-Forwarded-For` and
`X-Forwarded-Proto` exactly as uvicorn would, for those connections only. `sealdrop serve`
turns uvicorn's own handling off (`app.cli.proxy_options`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

# The scope key holding whether the connection's own peer is a trusted proxy.
TRUSTED_PEER = "sealdrop.trusted_peer"


class ForwardedPeer:
    """Pure ASGI middleware: mark trusted peers, then believe their forwarded headers."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self._forwarded = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
        self._any = bool(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the peer's trust, then pass the request on (rewritten if trusted)."""
        if scope["type"] not in ("http", "websocket"):
            await self._forwarded.app(scope, receive, send)  # type: ignore[arg-type]
            return
        client = scope.get("client")
        trusted = self._any and client is not None and client[0] in self._forwarded.trusted_hosts
        scope[TRUSTED_PEER] = trusted
        await self._forwarded(scope, receive, send)  # type: ignore[arg-type]


def peer_is_trusted(request: Request) -> bool:
    """Whether the request's connection came from one of `SEALDROP_TRUSTED_PROXIES`."""
    return bool(request.scope.get(TRUSTED_PEER, False))
