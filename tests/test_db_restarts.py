"""The server restarts, or drops chatctl's connection, in the middle of a long command.

Each test starts a private PostgreSQL cluster of its own (``pgcluster.py``;
never the suite's shared server), a desk of idle chats on it, and a long
batched command as a subprocess with ``--batch-size 1`` -- ``sweep run`` or a
bulk ``chats close -`` -- waits until some batches have committed (polling the
audit table, no sleeps tuned to a machine), then, for real:

* ``pg_ctl restart -m fast`` (what a planned restart or a failover does to
  the sessions), or
* ``pg_terminate_backend`` on every chatctl session.

Then: exit 3 with one ``chatctl:`` line naming the database (redacted: the
URL's password never shows); every batch whole or absent (each changed chat
has exactly one audit row, no audit row without its change); the command's
operation (``operations``, and for a sweep its ``sweep_runs`` row) marked
``failed`` -- by the command itself when the server is still up, else by the
next command, which finds its process gone; and a second run, started at
once with leases that would otherwise last an hour, finishes the work
without waiting for any of them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time

import psycopg
import pytest
from pgcluster import ConfiguredServer
from pgserver import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "Restart-pa55word-never-shown"
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
AS_OF = (T0 + dt.timedelta(hours=3)).isoformat()
CHATS = 3000


@pytest.fixture
def cluster():
    server = ConfiguredServer()
    try:
        server.start()
    except Exception as error:
        server.stop()
        pytest.fail(f"cannot start a private PostgreSQL: {error}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def desk(cluster):
    """A desk of CHATS idle live chats; the URL carries a password the (trust) server ignores."""
    cluster.execute("CREATE DATABASE desk")
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{cluster.port}/desk"
    assert chatctl(url, "db", "init").returncode == 0
    cluster.execute(
        "INSERT INTO customers (id, display_name, address, created_at) VALUES (1, 'C', '+27820000001', "
        f"'{T0.isoformat()}');"
        "INSERT INTO chats (customer_id, channel, status, created_at, last_customer_message_at, "
        "last_agent_message_at, last_activity_at, flagged, reassign_count) "
        f"SELECT 1, 'webchat', 'live', '{T0.isoformat()}', '{T0.isoformat()}', '{T0.isoformat()}', "
        f"'{T0.isoformat()}', false, 0 FROM generate_series(1, {CHATS})", "desk")
    return url


def chatctl(url: str, *args: str, env: dict | None = None, input: str | None = None):
    return subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *args], input=input,
                          capture_output=True, text=True, timeout=600, env=environment(env))


def environment(extra: dict | None) -> dict:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHATCTL_") or k.startswith("CHATCTL_TEST_")}
    return {**base, "CHATCTL_ACTOR": "ops:tester", **(extra or {})}


def start(url: str, *args: str, env: dict | None = None, input: str = "") -> subprocess.Popen:
    out, err, source = (tempfile.TemporaryFile(mode="w+") for _ in range(3))
    source.write(input)
    source.seek(0)
    process = subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", url, *args], stdin=source,
                               stdout=out, stderr=err, text=True, env=environment(env))
    process.files = (out, err)
    return process


def query(cluster: ConfiguredServer, sql: str):
    return cluster.execute(sql, "desk")


def wait_for_batches(cluster: ConfiguredServer, process: subprocess.Popen, at_least: int = 30) -> None:
    def progressed() -> bool:
        try:
            return query(cluster, "SELECT count(*) FROM audit_events")[0][0] >= at_least or process.poll() is not None
        except psycopg.OperationalError:
            return False

    assert wait_until(progressed, timeout=300, interval=0.02)
    assert process.poll() is None, "the command finished before the fault"


def restart(cluster: ConfiguredServer) -> None:
    result = cluster._run(str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-o", cluster.options(),
                          "-l", str(cluster.root / "server.log"), "-m", "fast", "-w", "-t", "60", "restart",
                          check=False)
    assert result.returncode == 0, result.stderr


def terminate(cluster: ConfiguredServer) -> int:
    return query(cluster, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = 'desk' AND application_name = 'chatctl'")[0][0]


def assert_exit_3_naming_the_database(process: subprocess.Popen, cluster: ConfiguredServer) -> None:
    process.wait(timeout=300)
    out, err = process.files
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
    assert process.returncode == 3, (process.returncode, stderr[-3000:])
    assert "Traceback" not in stderr and "unexpected error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("chatctl: ")]
    assert len(errors) == 1, stderr
    assert f"postgresql+psycopg://postgres:***@127.0.0.1:{cluster.port}/desk" in errors[0], stderr
    assert PASSWORD not in stderr and PASSWORD not in stdout


def assert_batches_whole(cluster: ConfiguredServer, action: str) -> int:
    """Each closed chat has exactly one audit row of ``action``, and each such row its closed chat."""
    closed = {row[0] for row in query(cluster, "SELECT id FROM chats WHERE status = 'closed'")}
    audited = query(cluster, f"SELECT entity_id::bigint, count(*) FROM audit_events WHERE action = '{action}' "
                             "GROUP BY entity_id")
    assert {count for _, count in audited} <= {1}, "a chat with two audit rows"
    assert {chat_id for chat_id, _ in audited} == closed, "a change without its audit row, or the reverse"
    return len(closed)


def run_status(cluster: ConfiguredServer, run_id: str | None = None) -> dict[str, str]:
    return dict(query(cluster, "SELECT id, status FROM sweep_runs"))


def operation_status(cluster: ConfiguredServer) -> dict[str, str]:
    """The operations record (D10/D11): id -> status."""
    return dict(query(cluster, "SELECT id, status FROM operations"))


def the_operation(cluster: ConfiguredServer) -> str:
    [(operation_id,)] = query(cluster, "SELECT id FROM operations")
    return operation_id


def assert_first_failed_rerun_done(cluster: ConfiguredServer, first: str) -> None:
    """The interrupted command's operation is ``failed`` (marked by itself, or by the next command because
    its process is gone); the rerun's is ``done``; nothing is left ``running``."""
    statuses = operation_status(cluster)
    assert statuses[first] == "failed", statuses
    assert sorted(statuses.values()) == ["done", "failed"], statuses


SWEEP = ("sweep", "run", "inactivity", "--as-of", AS_OF, "--batch-size", "1")
LONG_LEASE = {"CHATCTL_SWEEP_LEASE_SECONDS": "3600"}


def finish_sweep(url: str, cluster: ConfiguredServer, lock: str, first_run: str) -> None:
    """The next run, at once: no wait for a lease, the work finished, the first run marked failed."""
    started = time.monotonic()
    rerun = chatctl(url, *SWEEP[:-1], "500", "-o", "json", env={**LONG_LEASE, "CHATCTL_SWEEP_LOCK": lock})
    assert rerun.returncode == 0, rerun.stderr
    assert time.monotonic() - started < 120
    assert assert_batches_whole(cluster, "sweep.inactivity") == CHATS
    statuses = run_status(cluster)
    assert statuses[first_run] == "failed", statuses
    assert sorted(statuses.values()) == ["failed", "ok"], statuses
    assert_first_failed_rerun_done(cluster, first_run)


def the_run(cluster: ConfiguredServer) -> str:
    [(run_id,)] = query(cluster, "SELECT id FROM sweep_runs")
    return run_id


@pytest.mark.parametrize("lock", ["advisory", "lease"])
def test_restart_mid_sweep_exits_3_and_the_next_run_finishes(cluster, desk, lock):
    process = start(desk, *SWEEP, env={**LONG_LEASE, "CHATCTL_SWEEP_LOCK": lock})
    wait_for_batches(cluster, process)
    restart(cluster)
    assert_exit_3_naming_the_database(process, cluster)
    assert wait_until(lambda: _up(cluster), timeout=60)
    assert 0 < assert_batches_whole(cluster, "sweep.inactivity") < CHATS
    finish_sweep(desk, cluster, lock, the_run(cluster))


@pytest.mark.parametrize("lock", ["advisory", "lease"])
def test_terminated_connection_mid_sweep_exits_3_and_the_next_run_finishes(cluster, desk, lock):
    process = start(desk, *SWEEP, env={**LONG_LEASE, "CHATCTL_SWEEP_LOCK": lock})
    wait_for_batches(cluster, process)
    assert terminate(cluster) >= 1
    assert_exit_3_naming_the_database(process, cluster)
    assert 0 < assert_batches_whole(cluster, "sweep.inactivity") < CHATS
    run_id = the_run(cluster)
    # The server stayed up: the run recorded its own failure on the way out, in both records.
    assert run_status(cluster)[run_id] == "failed"
    assert operation_status(cluster) == {run_id: "failed"}
    finish_sweep(desk, cluster, lock, run_id)


@pytest.mark.parametrize("fault", ["restart", "terminate"])
def test_fault_mid_bulk_close_exits_3_and_a_rerun_finishes(cluster, desk, fault):
    ids = "".join(f"{chat_id}\n" for chat_id in range(1, CHATS + 1))
    process = start(desk, "-q", "chats", "close", "-", "--batch-size", "1", input=ids)
    wait_for_batches(cluster, process)
    if fault == "restart":
        restart(cluster)
    else:
        assert terminate(cluster) >= 1
    assert_exit_3_naming_the_database(process, cluster)
    assert wait_until(lambda: _up(cluster), timeout=60)
    assert 0 < assert_batches_whole(cluster, "chats.close") < CHATS
    first = the_operation(cluster)
    if fault == "terminate":  # the server stayed up: the command recorded its own failure
        assert operation_status(cluster) == {first: "failed"}
    started = time.monotonic()
    rerun = chatctl(desk, "-q", "chats", "close", "-", "--batch-size", "500", input=ids)
    assert rerun.returncode == 0, rerun.stderr
    assert time.monotonic() - started < 120, "the rerun waited for the dead command's lease"
    assert assert_batches_whole(cluster, "chats.close") == CHATS
    assert_first_failed_rerun_done(cluster, first)


def _up(cluster: ConfiguredServer) -> bool:
    try:
        query(cluster, "SELECT 1")
        return True
    except psycopg.OperationalError:
        return False
