"""The page's static files (scripts, styles, the vendored tus client), served never sniffed."""

from __future__ import annotations

import os

from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


class StaticAssets(StaticFiles):
    """StaticFiles whose answers carry `X-Content-Type-Options: nosniff`.

    The scripts run under `script-src 'self'`; nosniff makes the browser refuse any of
    them that is not served with a script type, as every other answer of ours already says.
    """

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        """The file's answer, with nosniff added."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
