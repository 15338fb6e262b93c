"""Running the API under uvicorn with a drain: on SIGTERM, readiness fails before the exit.

Kubernetes sends SIGTERM and, at about the same moment, starts taking the pod out of its
Service's endpoints; until every node has caught up, new requests still arrive. So on the
first SIGTERM (or SIGINT) the server keeps serving for `SEALDROP_DRAIN_SECONDS` with
`/readyz` answering 503 ("draining"), and only then begins uvicorn's own graceful shutdown:
it stops accepting, lets requests in flight finish within the grace period (`sealdrop
serve --grace`), and runs the lifespan's shutdown. A second signal skips what is left of
the drain; a third (SIGINT) forces the exit, as uvicorn does.
"""

from __future__ import annotations

import logging
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("sealdrop")


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose exit signal first marks the app as draining for a while."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_seconds = drain_seconds
        self.drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: start draining (readiness 503). Later ones: uvicorn's own exit."""
        # Runs in a signal handler: only set flags here, the main loop's tick acts on them.
        self.app.state.draining = True
        if self.drain_until is None and self.drain_seconds > 0:
            self.drain_until = time.monotonic() + self.drain_seconds
            log.info("draining for %.0f s before shutting down", self.drain_seconds)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        """Exit once the drain is over (uvicorn checks this every 0.1 s)."""
        if self.drain_until is not None and time.monotonic() >= self.drain_until:
            return True
        return await super().on_tick(counter)


def run(app: FastAPI, config: uvicorn.Config, drain_seconds: float) -> None:
    """Serve `app` until a signal, draining for `drain_seconds` first."""
    DrainingServer(config, app, drain_seconds).run()
