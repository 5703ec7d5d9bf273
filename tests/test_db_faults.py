"""Faults: the database goes away in the middle of a long command (PostgreSQL).

A private server is started for this module (the shared one must not be
stopped).  Each test starts a long batched command as a subprocess - ``chats
close -``, ``tickets close --where ... --yes`` or ``sweep run`` with a small
batch size - waits until some batches have committed, then either

(a) stops the server with ``pg_ctl stop -m immediate`` (a crash), or
(b) kills the command's connection with ``pg_terminate_backend``,

and checks: exit 3 with one clean ``chatctl:`` line (the summary of the
finished batches may precede it), no traceback, no password; every committed
batch is consistent with its audit rows (each changed row has exactly one
audit row of the operation, and no audit row lacks its change); a rerun
completes the work.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest
from conftest import on_postgres
from pgserver import PostgresServer, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PASSWORD = "Sw0rdfish-never-shown"
NOW = "2026-11-30T10:00:00Z"
DEMO_CHATS = 1500


@pytest.fixture(scope="module")
def server():
    server = PostgresServer()
    try:
        server.start()
        # The rig's server trades durability for speed (synchronous_commit=off): a crash may
        # then lose acknowledged commits and even set sequences back, which is the server
        # misconfigured, not chatctl.  This module crashes its server on purpose, so it runs
        # with commits durable on acknowledgement, as a production server does.
        server._run(str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop")
        restart(server)
    except Exception as error:
        server.stop()
        pytest.fail(f"cannot start PostgreSQL: {error}", pytrace=False)
    yield server
    server.stop()


def restart(server: PostgresServer) -> None:
    """Start the stopped server again on the same data directory, port and sockets."""
    # fsync stays off: the machine does not crash, only the server, and the WAL of every
    # acknowledged commit is already in the kernel with synchronous_commit=on.
    options = (f"-p {server.port} -k {server.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=on -c max_connections=200")
    result = server._run(str(server.bindir / "pg_ctl"), "-D", str(server.data), "-o", options,
                         "-l", str(server.root / "server.log"), "-w", "-t", "60", "start", check=False)
    assert result.returncode == 0, result.stderr


def is_up(server: PostgresServer) -> bool:
    try:
        with psycopg.connect(server.url("postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def chatctl(url: str, *args: str, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *args], input=input,
                          capture_output=True, text=True, timeout=timeout)


def start(url: str, *args: str, input: str | None = None, tmp_path=None) -> subprocess.Popen:
    """The command in the background; stdout and stderr go to files (read by ``finish``)."""
    import tempfile

    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    source = tempfile.TemporaryFile(mode="w+")
    source.write(input or "")
    source.seek(0)
    process = subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", url, *args],
                               stdin=source, stdout=out, stderr=err, text=True)
    process.files = (out, err)
    return process


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[str, str]:
    process.wait(timeout=timeout)
    out, err = process.files
    out.seek(0)
    err.seek(0)
    return out.read(), err.read()


@pytest.fixture(scope="module")
def template(server):
    """A demo desk, loaded once and cloned for each test."""
    name = f"fault_template_{os.getpid()}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = server.url(name)
    assert chatctl(url, "db", "init").returncode == 0
    result = chatctl(url, "demo", "load", "--chats", str(DEMO_CHATS), "--now", NOW)
    assert result.returncode == 0, result.stderr
    return name


@pytest.fixture
def desk(server, template, request):
    """A fresh copy of the demo desk; the URL carries a password the server does not need (trust)."""
    on_postgres(request)
    name = f"fault_{abs(hash(request.node.name)) % 10**8}_{os.getpid()}"
    with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        # A database copied from a template inherits its sequences' "already WAL-logged ahead"
        # counters without the WAL records behind them: crash before a checkpoint and the
        # audit id sequence restarts below rows that exist (PostgreSQL 15, WAL_LOG strategy).
        # A checkpoint makes the next nextval() log itself.  Production desks are not clones.
        admin.execute("CHECKPOINT")
    return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{server.port}/{name}"


def state(url: str) -> dict[str, dict[int, str]]:
    with psycopg.connect(url.replace(f":{PASSWORD}", "")) as pg:
        return {
            "chat": dict(pg.execute("SELECT id, status FROM chats").fetchall()),
            "ticket": dict(pg.execute("SELECT id, status FROM tickets").fetchall()),
        }


def audit_rows(url: str, actions: tuple[str, ...]) -> list[tuple[str, str, str]]:
    with psycopg.connect(url.replace(f":{PASSWORD}", "")) as pg:
        return pg.execute("SELECT entity_type, entity_id, operation_id FROM audit_events WHERE action = ANY(%s)",
                          (list(actions),)).fetchall()


def assert_consistent(before, after, rows, entity: str) -> set[int]:
    """Each changed ``entity`` has exactly one audit row; each audit row has its change."""
    changed = {key for key, status in after[entity].items() if before[entity].get(key) != status}
    audited: dict[int, int] = {}
    for entity_type, entity_id, _operation in rows:
        if entity_type == entity:
            audited[int(entity_id)] = audited.get(int(entity_id), 0) + 1
    assert {key for key, n in audited.items() if n != 1} == set(), "an entity has more than one audit row"
    assert set(audited) - changed == set(), "audit rows without their change"
    assert changed - set(audited) == set(), "changes without their audit row"
    return changed


def wait_for_progress(url: str, actions: tuple[str, ...], process: subprocess.Popen, at_least: int = 20) -> int:
    """Block until ``at_least`` audit rows of the command are committed (the command must still run)."""
    seen = 0

    def progressed() -> bool:
        nonlocal seen
        seen = len(audit_rows(url, actions))
        return seen >= at_least or process.poll() is not None

    assert wait_until(progressed, timeout=120, interval=0.02)
    assert process.poll() is None, f"the command finished before the fault: {finish(process)}"
    return seen


def terminate_backends(url: str) -> int:
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(url.replace(f":{PASSWORD}", ""), autocommit=True) as pg:
        return pg.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'chatctl' AND pid <> pg_backend_pid()",
            (database,)).fetchone()[0]


def assert_clean_exit_3(process: subprocess.Popen) -> str:
    stdout, stderr = finish(process)
    assert process.returncode == 3, (process.returncode, stderr[-3000:])
    assert "Traceback" not in stderr and "unexpected error" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("chatctl: ")]
    assert len(errors) == 1, stderr
    assert "database" in errors[0], stderr
    others = [line for line in stderr.splitlines() if not line.startswith("chatctl: ")]
    # At most the summary of the batches that finished before the fault.
    assert len(others) <= 1, stderr
    assert PASSWORD not in stderr and PASSWORD not in stdout
    return errors[0]


def live_and_pending(url: str) -> list[int]:
    before = state(url)
    return sorted(key for key, status in before["chat"].items() if status in ("live", "pending"))


# -- the three long commands ---------------------------------------------------------------
def _chats_close(url):
    ids = "\n".join(map(str, live_and_pending(url))) + "\n"
    args = ("-q", "chats", "close", "-", "--reason", "fault-test", "--batch-size", "5", "-o", "jsonl")
    return args, ids, ("chats.close",), "chat"


def _tickets_close(url):
    args = ("-q", "tickets", "close", "--where", "status=open", "--yes", "--batch-size", "5", "-o", "jsonl")
    return args, None, ("tickets.close",), "ticket"


def _sweep(url):
    args = ("-q", "sweep", "run", "inactivity", "--as-of", "2027-01-01T00:00Z", "--batch-size", "5")
    return args, None, ("sweep.inactivity",), "chat"


COMMANDS = {"chats close -": _chats_close, "tickets close --where": _tickets_close, "sweep run": _sweep}


@pytest.mark.parametrize("command", COMMANDS)
def test_server_stopped_mid_command_exits_3_and_a_rerun_completes(server, desk, command):
    args, stdin, actions, entity = COMMANDS[command](desk)
    before = state(desk)
    process = start(desk, *args, input=stdin)
    wait_for_progress(desk, actions, process)
    server._run(str(server.bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop")
    try:
        message = assert_clean_exit_3(process)
        assert "127.0.0.1" in message
    finally:
        restart(server)
        assert wait_until(lambda: is_up(server), timeout=60)
    middle = state(desk)
    first = assert_consistent(before, middle, audit_rows(desk, actions), entity)
    assert first, "no batch committed before the crash"

    rerun = chatctl(desk, *args, input=stdin)
    assert rerun.returncode == 0, rerun.stderr
    after = state(desk)
    done = assert_consistent(before, after, audit_rows(desk, actions), entity)
    assert first < done
    _assert_complete(desk, command, after, entity)


@pytest.mark.parametrize("command", COMMANDS)
def test_connection_killed_mid_command_exits_3_and_a_rerun_completes(server, desk, command):
    args, stdin, actions, entity = COMMANDS[command](desk)
    before = state(desk)
    process = start(desk, *args, input=stdin)
    wait_for_progress(desk, actions, process)
    killed = 0
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        killed += terminate_backends(desk)
        time.sleep(0.01)
    assert killed >= 1
    assert_clean_exit_3(process)
    middle = state(desk)
    first = assert_consistent(before, middle, audit_rows(desk, actions), entity)
    assert first

    rerun = chatctl(desk, *args, input=stdin)
    assert rerun.returncode == 0, rerun.stderr
    after = state(desk)
    done = assert_consistent(before, after, audit_rows(desk, actions), entity)
    assert first < done
    _assert_complete(desk, command, after, entity)


def _assert_complete(url, command, after, entity) -> None:
    """Nothing is left for the command to do."""
    if command == "chats close -":
        # Flagged chats are skipped (close them with --include-flagged); every other one is closed.
        with psycopg.connect(url.replace(f":{PASSWORD}", "")) as pg:
            left = pg.execute("SELECT count(*) FROM chats WHERE status IN ('live', 'pending') AND NOT flagged")
            assert left.fetchone()[0] == 0
    elif command == "tickets close --where":
        with psycopg.connect(url.replace(f":{PASSWORD}", "")) as pg:
            left = pg.execute("SELECT count(*) FROM tickets WHERE status = 'open' AND archived_at IS NULL")
            assert left.fetchone()[0] == 0
    else:
        dry = chatctl(url, "sweep", "run", "inactivity", "--as-of", "2027-01-01T00:00Z", "--dry-run", "-o", "json")
        assert dry.returncode == 0, dry.stderr
        import json

        assert json.loads(dry.stdout)["jobs"]["inactivity"]["matched"] == 0, dry.stdout
