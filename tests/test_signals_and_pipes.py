"""Signals and pipes (SPEC D11): a real ``chatctl`` process stopped mid-sweep and
mid-bulk by SIGINT or SIGTERM, without a terminal and at one, and its output
cut short by a reader that leaves (``| head``).

Deterministic without tuned sleeps: a desk big enough that the work cannot
finish before the signal, ``--batch-size 1``, and the signal sent only once
the first audit rows are committed.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, insert, select as sql_select, text
from sweep_helpers import T0, add_agent, bulk_chats, chatctl, count, wait_for_audit

from chatctl.storage.models import AuditEvent, Chat, Operation, SweepLease, SweepRun

AS_OF = T0.isoformat()
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}
# The signal must end the process within this many seconds, on a loaded machine.
PROMPT = 20


def _locks_held(engine) -> int:
    from chatctl.storage.engine import is_postgres

    with engine.connect() as connection:
        if is_postgres(engine):
            return connection.execute(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")).scalar()
        return connection.execute(sql_select(func.count()).select_from(SweepLease)).scalar_one()


def _closed_and_audited(engine, operation: str | None = None) -> tuple[set[int], set[int]]:
    with engine.connect() as connection:
        closed = set(connection.execute(sql_select(Chat.id).where(Chat.status == "closed")).scalars())
        query = sql_select(AuditEvent.entity_id).where(AuditEvent.entity_type == "chat")
        if operation is not None:
            query = query.where(AuditEvent.operation_id == operation)
        audited = [int(entity) for entity in connection.execute(query).scalars()]
    assert len(audited) == len(set(audited)), "a chat was audited twice"
    return closed, set(audited)


def _assert_operation_interrupted(engine, operation: str, code: int, changed: int) -> None:
    """The operations record says ``interrupted`` (not ``failed``), with the exit code and its lease let go."""
    with engine.connect() as connection:
        row = connection.execute(sql_select(Operation).where(Operation.id == operation)).mappings().one()
    assert row["status"] == "interrupted", row
    assert row["finished_at"] is not None and row["lease_expires_at"] is None, row
    assert row["counts"]["exit_code"] == code and row["counts"]["audit_events"] == changed, row


def _stopped(process: subprocess.Popen, signum: int) -> tuple[int, str, str, float]:
    began = time.monotonic()
    process.send_signal(signum)
    try:
        out, err = process.communicate(timeout=PROMPT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"still running {PROMPT}s after the signal: {err[-2000:]}") from None
    return process.returncode, out, err, time.monotonic() - began


@pytest.mark.parametrize("name", SIGNALS)
def test_d11_signal_mid_sweep_without_a_terminal_interrupts_the_run_cleanly(cli, engine, name, tmp_path):
    signum, code = SIGNALS[name]
    alice = add_agent(engine, "alice")
    total = 5000
    bulk_chats(engine, total, agent=alice)
    metrics = tmp_path / "chatctl.prom"
    process = chatctl(cli.url, "sweep", "run", "inactivity", "--as-of", AS_OF, "--batch-size", "1",
                      "--metrics-file", str(metrics))
    wait_for_audit(engine, 3, process)
    returncode, out, err, took = _stopped(process, signum)

    assert returncode == code, err
    assert "Traceback" not in err and "(interrupted)" in err, err
    closed, audited = _closed_and_audited(engine)
    assert 0 < len(closed) < total, "the signal came too late to test anything"
    assert audited == closed, "a change without its audit row, or the reverse"
    runs = cli("sweep", "history", "-o", "json").json()
    assert [run["status"] for run in runs] == ["interrupted"]
    assert runs[0]["changed"] == len(closed)
    _assert_operation_interrupted(engine, runs[0]["run_id"], code, len(closed))
    assert _locks_held(engine) == 0, "the lock or lease outlived the run"
    # D13: the metrics file says so too.
    assert f'chatctl_sweep_success{{shard="all",exit_code="{code}"}} 0' in metrics.read_text()
    assert f'chatctl_sweep_rows{{job="inactivity",result="changed",shard="all"}} {len(closed)}' in metrics.read_text()

    # The next run proceeds at once (no 5-minute lease to wait out: it would exit 4) and finishes the work.
    finish = cli("sweep", "run", "inactivity", "--as-of", AS_OF, "--batch-size", "1000", "-o", "json")
    assert finish.exit_code == 0, finish
    assert finish.json()["jobs"]["inactivity"]["changed"] == total - len(closed)
    closed, audited = _closed_and_audited(engine)
    assert len(closed) == total and audited == closed


@pytest.mark.parametrize("name", SIGNALS)
def test_d11_signal_mid_bulk_close_without_a_terminal_keeps_whole_batches(cli, engine, name):
    signum, code = SIGNALS[name]
    bulk_chats(engine, 3000, agent=None)
    with engine.connect() as connection:
        ids = list(connection.execute(sql_select(Chat.id).order_by(Chat.id)).scalars())
    process = chatctl(cli.url, "chats", "close", "-", "--batch-size", "1", "-o", "jsonl",
                      input="".join(f"{chat_id}\n" for chat_id in ids))
    wait_for_audit(engine, 3, process)
    returncode, out, err, took = _stopped(process, signum)

    assert returncode == code, err
    assert "Traceback" not in err, err
    summary = re.search(r"close: (\d+) changed, .* \(interrupted\) \(operation (\w+)\)", err)
    assert summary, err
    changed, operation = int(summary.group(1)), summary.group(2)
    closed, audited = _closed_and_audited(engine, operation)
    assert 0 < len(closed) < len(ids), "the signal came too late to test anything"
    assert len(closed) == changed and audited == closed
    _assert_operation_interrupted(engine, operation, code, changed)
    reported = [json.loads(line) for line in out.splitlines()]
    assert {item["id"] for item in reported if item["result"] == "changed"} == closed


def test_d11_ctrl_c_at_a_terminal_interrupts_the_sweep(cli, engine):
    """A real Ctrl-C: the terminal's line discipline sends SIGINT to chatctl's process group."""
    import pty

    alice = add_agent(engine, "alice")
    bulk_chats(engine, 5000, agent=alice)
    pid, terminal = pty.fork()
    if pid == 0:  # the child: chatctl at a terminal, progress bar and all
        os.execv(sys.executable, [sys.executable, "-m", "chatctl", "--database-url", cli.url, "sweep", "run",
                                  "inactivity", "--as-of", AS_OF, "--batch-size", "1"])
    screen = bytearray()

    def read_screen(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([terminal], [], [], 0.05)
            if ready:
                try:
                    screen.extend(os.read(terminal, 65536))
                except OSError:  # the child closed the terminal
                    return

    status = None
    reader = _reader(engine)
    try:
        deadline = time.monotonic() + 60
        while _audit_count(reader) < 3:
            assert time.monotonic() < deadline, bytes(screen)
            read_screen(0.05)
        os.write(terminal, b"\x03")  # Ctrl-C
        deadline = time.monotonic() + PROMPT
        while status is None and time.monotonic() < deadline:
            read_screen(0.1)
            waited, raw = os.waitpid(pid, os.WNOHANG)
            status = raw if waited else None
        assert status is not None, f"still running {PROMPT}s after Ctrl-C: {bytes(screen)[-2000:]!r}"
        read_screen(0.2)
    finally:
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)
        reader.dispose()
    assert os.waitstatus_to_exitcode(status) == 130, bytes(screen)
    assert b"(interrupted)" in screen and b"Traceback" not in screen
    assert [run["status"] for run in cli("sweep", "history", "-o", "json").json()] == ["interrupted"]
    assert _locks_held(engine) == 0
    closed, audited = _closed_and_audited(engine)
    assert closed and audited == closed


def _reader(engine):
    from chatctl.storage.engine import create_engine

    return create_engine(engine.url.render_as_string(hide_password=False), for_writes=False)


def _audit_count(reader) -> int:
    with reader.connect() as connection:
        return connection.execute(sql_select(func.count()).select_from(AuditEvent)).scalar_one()


# -- leases and runs left by a process that died --------------------------------------------
def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_d11_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(engine):
    import datetime as dt

    from chatctl.domain.sweeps.locking import LeaseLocks
    from chatctl.errors import LockedError

    far = T0 + dt.timedelta(hours=1)
    with engine.begin() as connection:
        connection.execute(insert(SweepLease).values(
            name="inactivity:all", holder=f"{socket.gethostname()}:{_dead_pid()}:DEAD", acquired_at=T0,
            expires_at=far))
        connection.execute(insert(SweepLease).values(
            name="pending:all", holder=f"{socket.gethostname()}:{os.getpid()}:ALIVE", acquired_at=T0,
            expires_at=far))
        connection.execute(insert(SweepLease).values(
            name="archive:all", holder=f"elsewhere.example:{_dead_pid()}:OTHER", acquired_at=T0, expires_at=far))
    locks = LeaseLocks(engine, holder=f"{socket.gethostname()}:{os.getpid()}:NEXT", clock=lambda: T0)
    locks.acquire(["inactivity:all"])
    locks.release()
    for alive in ("pending:all", "archive:all"):  # a live holder, or one on another host: still theirs
        with pytest.raises(LockedError):
            LeaseLocks(engine, holder=f"{socket.gethostname()}:{os.getpid()}:NEXT", clock=lambda: T0).acquire([alive])


def _running_run(engine, run_id: str, *, host: str, pid: int, jobs: str = "inactivity,pending") -> None:
    with engine.begin() as connection:
        connection.execute(insert(SweepRun).values(
            id=run_id, jobs=jobs, as_of=T0, dry_run=False, started_at=T0, finished_at=None, status="running",
            counts=None, host=host, pid=pid, shard="all", actor="system"))


def test_d11_sweep_run_left_running_by_a_dead_process_is_marked_failed(cli, engine):
    _running_run(engine, "01DEADRUN0000000000000000", host=socket.gethostname(), pid=_dead_pid())
    with engine.begin() as connection:
        connection.execute(insert(SweepLease).values(
            name="inactivity:all", holder=f"{socket.gethostname()}:{_dead_pid()}:01DEADRUN0000000000000000",
            acquired_at=T0, expires_at=T0.replace(year=2100)))
    result = cli("sweep", "run", "inactivity", "--as-of", AS_OF)
    assert result.exit_code == 0, result
    dead = cli("sweep", "show", "01DEADRUN0000000000000000", "-o", "json").json()
    assert dead["status"] == "failed" and "ended without recording an outcome" in dead["error"]


def test_d11_run_of_another_host_whose_lock_was_taken_over_is_marked_failed(cli, engine):
    """Its lease expired (or its session died): the next run holds the lock, so it cannot be running."""
    _running_run(engine, "01ELSEWHERE00000000000000", host="elsewhere.example", pid=1)
    _running_run(engine, "01OTHERJOB000000000000000", host="elsewhere.example", pid=1, jobs="archive")
    result = cli("sweep", "run", "inactivity", "--as-of", AS_OF)
    assert result.exit_code == 0, result
    taken = cli("sweep", "show", "01ELSEWHERE00000000000000", "-o", "json").json()
    assert taken["status"] == "failed" and "took over its lock" in taken["error"]
    other = cli("sweep", "show", "01OTHERJOB000000000000000", "-o", "json").json()
    assert other["status"] == "running", "a run of another job may still be running"


# -- pipes ------------------------------------------------------------------------------------
def _first_line_then_leave(process: subprocess.Popen) -> tuple[str, int, str]:
    first = process.stdout.readline()
    process.stdout.close()  # the reader leaves, like `| head -1`
    process.stdout = None
    _, err = process.communicate(timeout=120)
    return first, process.returncode, err


def test_d11_read_command_whose_reader_leaves_exits_0_quietly(cli, engine):
    bulk_chats(engine, 3000, agent=None)
    for args in (("chats", "list", "live", "--all"), ("chats", "list", "live", "--all", "-o", "json"),
                 ("chats", "filter", "status=live", "-o", "jsonl"), ("tickets", "list", "--all"),
                 ("audit", "list", "--all"), ("--help",)):
        first, returncode, err = _first_line_then_leave(chatctl(cli.url, *args))
        assert first and returncode == 0 and err == "", (args, returncode, err)


def test_d11_mutation_whose_reader_leaves_finishes_and_reports_on_stderr(cli, engine):
    bulk_chats(engine, 600, agent=None)
    with engine.connect() as connection:
        ids = "".join(f"{chat_id}\n" for chat_id in connection.execute(sql_select(Chat.id)).scalars())
    first, returncode, err = _first_line_then_leave(
        chatctl(cli.url, "chats", "close", "-", "--batch-size", "10", input=ids))
    assert first.startswith("id")
    assert returncode == 0 and "Traceback" not in err, err
    assert re.search(r"close: 600 changed, 0 skipped, 0 not found, 0 refused", err), err
    assert count(engine, Chat, Chat.status == "closed") == 600
    closed, audited = _closed_and_audited(engine)
    assert audited == closed



def test_d11_mutation_whose_output_and_errors_share_a_pipe_that_closes_still_finishes_and_records(cli, engine):
    """`chatctl chats close - 2>&1 | head -1`: both streams closed under it; the work and its operation
    record still end as if they had been read."""
    from chatctl.storage.models import Operation

    bulk_chats(engine, 600, agent=None)
    with engine.connect() as connection:
        ids = "".join(f"{chat_id}\n" for chat_id in connection.execute(sql_select(Chat.id)).scalars())
    process = subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", cli.url, "chats", "close", "-",
                                "--batch-size", "10"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    process.stdin.write(ids)
    process.stdin.close()
    first = process.stdout.readline()
    process.stdout.close()  # the reader of both streams leaves
    assert first.startswith("id")
    assert process.wait(timeout=120) == 0
    assert count(engine, Chat, Chat.status == "closed") == 600
    with engine.connect() as connection:
        [(status, changes)] = connection.execute(sql_select(Operation.status, Operation.counts)).all()
    assert status == "done" and changes["changed"] == 600

def _started_line(number: int) -> str:
    return json.dumps({"type": "chat_started", "at": "2026-11-25T10:00:00+00:00", "chat": 100_000 + number,
                       "customer": f"+2783{number:07d}", "channel": "webchat"}) + "\n"


@pytest.mark.parametrize("name", SIGNALS)
def test_d11_signal_mid_ingest_keeps_whole_chunks_and_says_where_to_resume(cli, engine, name):
    """events ingest stopped while it waits for more lines on a pipe: the chunks it committed stay,
    the lines read since are not applied, the operation says interrupted, and stderr names the
    last line applied, so the rest of the file can be fed again from there."""
    from chatctl.batch_sizes import INGEST

    signum, code = SIGNALS[name]
    process = subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", cli.url, "events", "ingest", "-",
                                "-o", "json"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    first = INGEST + INGEST // 2  # one whole chunk and half of the next
    process.stdin.write("".join(_started_line(number) for number in range(1, first + 1)))
    process.stdin.flush()
    wait_for_audit(engine, INGEST, process)
    returncode, out, err, took = _stopped(process, signum)

    assert returncode == code, err
    assert "Traceback" not in err, err
    with engine.connect() as connection:
        chats = connection.execute(sql_select(func.count()).select_from(Chat)).scalar_one()
        operation = connection.execute(sql_select(Operation.id).where(Operation.command.like("%ingest%"))).scalar_one()
        audited = connection.execute(sql_select(func.count()).select_from(AuditEvent)
                                     .where(AuditEvent.operation_id == operation)).scalar_one()
    assert chats == INGEST, "only whole chunks are applied"
    _assert_operation_interrupted(engine, operation, code, audited)
    assert "(interrupted)" in err and f"lines 1-{INGEST} applied" in err, err
    assert f"tail -n +{INGEST + 1} FILE | chatctl events ingest -" in err, err
    assert json.loads(out)["lines"] == INGEST

    # Fed again from there, the rest is applied once.
    rest = cli("events", "ingest", "-", "-o", "json",
               input="".join(_started_line(number) for number in range(INGEST + 1, first + 1)))
    assert rest.exit_code == 0, rest
    with engine.connect() as connection:
        assert connection.execute(sql_select(func.count()).select_from(Chat)).scalar_one() == first
