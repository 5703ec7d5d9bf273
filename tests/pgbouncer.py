"""A private PgBouncer in ``pool_mode = transaction`` in front of a test server.

Debian's ``pgbouncer`` package (1.18: no ``max_prepared_statements``), started
on loopback with an ordinary configuration -- in particular without
``ignore_startup_parameters = options`` -- so whatever chatctl sends that a
transaction pooler refuses fails here as it would in production.  Like the
server, it refuses to run as root: it runs as ``postgres`` through ``runuser``.
Any database name is passed through to the server (``* = ...``), so each
test's fresh database is reachable through it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pgserver import free_port

BINARY = os.environ.get("CHATCTL_TEST_PGBOUNCER", "/usr/sbin/pgbouncer")


class PgBouncer:
    def __init__(self, server_host: str, server_port: int, *, pool_size: int = 20) -> None:
        self.server_host = server_host
        self.server_port = server_port
        self.pool_size = pool_size
        self.root = Path(tempfile.mkdtemp(prefix="chatctl-pgbouncer-"))
        self.port = free_port()
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0

    def start(self) -> None:
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} not found: install Debian's pgbouncer package (.ci/run does)")
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self.pool_size}\nmax_client_conn = 1000\n"
            f"logfile = {self.root / 'pgbouncer.log'}\npidfile = {self.root / 'pgbouncer.pid'}\n"
            "admin_users = postgres\n")
        if self.as_root:
            for path in (self.root, *self.root.iterdir()):
                shutil.chown(path, "postgres")
        os.chmod(self.root, 0o755)
        command = [BINARY, "-d", str(self.root / "pgbouncer.ini")]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not self._listening(timeout=30):
            raise RuntimeError(f"PgBouncer did not start: {result.stderr}\n{self.log()[-2000:]}")

    def _listening(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        pidfile = self.root / "pgbouncer.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
            deadline = time.monotonic() + 10
            while pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def route(self, direct_url: str) -> str:
        """The same database as ``direct_url`` (a URL on the server), reached through PgBouncer."""
        return self.url(direct_url.rsplit("/", 1)[1])
