"""The reference server: nginx serving the same file with sendfile, and storing WebDAV PUTs.

It runs as one worker process (Sealdrop runs as one process), with its temporary body files
on the same tmpfs as the stored ones so that a PUT ends in a rename, as nginx intends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from bench.system import Probe, free_port, wait_for_http

_CONFIG = """
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 30;
    client_max_body_size 0;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200 "ok\\n"; }}
        location /files/ {{ alias {files}/; }}
        location /dav/ {{
            alias {dav}/;
            dav_methods PUT DELETE;
            create_full_put_path on;
        }}
    }}
}}
"""


class Nginx:
    """nginx on a free loopback port: GET /files/<name>, PUT and DELETE /dav/<name>."""

    def __init__(self, root: Path, files: Path) -> None:
        self.root = root
        self.files = files
        self.dav = root / "dav"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.probe: Probe | None = None

    def start(self) -> None:
        """Write the configuration and start nginx in the foreground."""
        self.dav.mkdir(parents=True, exist_ok=True)
        user = "user root root;" if os.geteuid() == 0 else ""
        config = self.root / "nginx.conf"
        config.write_text(
            _CONFIG.format(
                root=self.root, port=self.port, files=self.files, dav=self.dav, user=user
            )
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        log = (self.root / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(self.root)], stdout=log, stderr=log
        )
        wait_for_http(f"{self.base_url}/healthz", process=self.process)
        self.probe = Probe("nginx", self._worker_pid())

    def stop(self) -> None:
        """Stop nginx (quick shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def file_url(self, name: str) -> str:
        """Where nginx serves `files/<name>`."""
        return f"{self.base_url}/files/{name}"

    def dav_url(self, name: str) -> str:
        """Where a PUT stores `dav/<name>`."""
        return f"{self.base_url}/dav/{name}"

    def _worker_pid(self) -> int:
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for _ in range(50):
            pids = children.read_text().split()
            if pids:
                return int(pids[0])
            time.sleep(0.1)
        raise RuntimeError("nginx started no worker process")
