"""Private PostgreSQL servers with a particular setup, for the tests that need
more than the shared trust-auth server of ``pgserver.py``:

* ``ConfiguredServer(auth="scram-sha-256", password=...)``: password
  authentication over TCP, for the ``.pgpass`` / ``PGSERVICE`` tests;
* ``ConfiguredServer(replication=True)`` plus ``Standby.from_primary(primary)``:
  a streaming-replication primary and a hot standby cloned from it with
  ``pg_basebackup -R``, both on loopback with private ports and directories.

Like ``pgserver.PostgresServer`` they run as the ``postgres`` user when the
suite runs as root.
"""

from __future__ import annotations

import os
import shutil
import time

from pgserver import PostgresServer

# Commits are flushed (synchronous_commit on) so a committed change is in the WAL the standby streams.
BASE_OPTIONS = ("-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
                "-c max_connections=50 -c shared_buffers=32MB")


class ConfiguredServer(PostgresServer):
    def __init__(self, *, auth: str = "trust", password: str | None = None, replication: bool = False) -> None:
        super().__init__()
        self.auth = auth
        self.password = password
        self.replication = replication

    def options(self) -> str:
        extra = " -c wal_level=replica -c max_wal_senders=5 -c hot_standby=on" if self.replication else ""
        return f"-p {self.port} -k {self.sockets} {BASE_OPTIONS}{extra}"

    def _prepare_dirs(self) -> None:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self.as_root:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        os.chmod(self.root, 0o755)

    def start(self) -> None:
        self._prepare_dirs()
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--encoding=UTF8",
                  "--no-sync", "--no-instructions", f"--auth-host={self.auth}", "--auth-local=trust"]
        if self.password is not None:
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if self.as_root:
                shutil.chown(pwfile, "postgres")
            initdb.append(f"--pwfile={pwfile}")
        self._run(*initdb)
        if self.password is not None:
            (self.root / "pwfile").unlink()
        hba = self.data / "pg_hba.conf"
        lines = ["local all all trust", f"host all all 127.0.0.1/32 {self.auth}"]
        if self.replication:
            lines.append(f"host replication postgres 127.0.0.1/32 {self.auth}")
        hba.write_text("\n".join(lines) + "\n")
        self.launch()

    def launch(self) -> None:
        result = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", self.options(),
                           "-l", str(self.root / "server.log"), "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            log = (self.root / "server.log").read_text() if (self.root / "server.log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log[-2000:]}")

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        userinfo = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{userinfo}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres"):
        """Run SQL over the private unix socket (trust), as the superuser."""
        import psycopg

        with psycopg.connect(host=str(self.sockets), port=self.port, user="postgres", dbname=database,
                             autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else None


class Standby(ConfiguredServer):
    """A hot standby made with ``pg_basebackup -R`` from a running primary."""

    @classmethod
    def from_primary(cls, primary: ConfiguredServer) -> Standby:
        standby = cls(replication=True)
        standby._prepare_dirs()
        standby._run(str(standby.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                     "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "--no-sync",
                     "-c", "fast")
        standby.launch()
        return standby


def wait_for_replay(primary: ConfiguredServer, standby: Standby, database: str = "postgres",
                    timeout: float = 30.0) -> None:
    """Until the standby has replayed everything the primary has written so far."""
    [(target,)] = primary.execute("SELECT pg_current_wal_insert_lsn()::text")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(caught_up,)] = standby.execute(
            f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", database)
        if caught_up:
            return
        time.sleep(0.05)
    raise TimeoutError(f"standby did not replay up to {target} in {timeout}s")
