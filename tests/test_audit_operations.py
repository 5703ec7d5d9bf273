"""The operations record and `audit operations` (D10, D11), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys

import sqlalchemy as sa

from chatctl.domain.audit import operations
from chatctl.storage.models import Operation

UTC = dt.timezone.utc
EVENTS = [
    {"type": "presence", "agent": "alice", "status": "online", "at": "2026-11-30T08:00:00Z"},
    {"type": "chat_started", "chat": 1, "customer": "+27820000001", "channel": "whatsapp", "agent": "alice",
     "text": "Hi", "at": "2026-11-30T09:00:00Z"},
    {"type": "chat_started", "chat": 2, "customer": "+27820000002", "channel": "webchat", "agent": "alice",
     "text": "Hello", "at": "2026-11-30T09:05:00Z"},
]


def desk(cli) -> None:
    assert cli("agents", "add", "alice", "--name", "Alice", "--role", "agent").exit_code == 0
    assert cli("events", "ingest", "-", input="\n".join(json.dumps(e) for e in EVENTS)).exit_code == 0


def rows(engine):
    with engine.connect() as connection:
        return connection.execute(sa.select(Operation.__table__).order_by(Operation.started_at)).mappings().all()


def test_d10_every_change_records_one_operation_with_its_outcome(cli, engine):
    desk(cli)
    assert cli("prefs", "set", "inactivity_timeout", "45m").exit_code == 0
    closed = cli("chats", "close", "1", "-o", "json")
    assert closed.exit_code == 0, closed
    swept = cli("sweep", "run", "--as-of", "2026-12-01T09:00Z", "-o", "json")
    assert swept.exit_code == 0, swept
    reverted = cli("audit", "revert", closed.json()["operation"], "--yes", "-o", "json")
    recorded = rows(engine)
    assert [row["command"].split(" ", 3)[3] for row in recorded] == [
        "agents add alice --name Alice --role agent", "events ingest -", "prefs set inactivity_timeout 45m",
        "chats close 1 -o json", "sweep run --as-of 2026-12-01T09:00Z -o json",
        f"audit revert {closed.json()['operation']} --yes -o json"]
    assert {row["status"] for row in recorded} == {"done"}
    assert {row["actor"] for row in recorded} == {"ops:tester"}
    assert {row["host"] for row in recorded} == {socket.gethostname()}
    by_id = {row["id"]: row for row in recorded}
    assert by_id[closed.json()["operation"]]["counts"]["changed"] == 1
    assert by_id[closed.json()["operation"]]["counts"]["audit_events"] == 1
    assert by_id[swept.json()["run_id"]]["counts"]["exit_code"] == 0
    assert by_id[reverted.json()["operation"]]["finished_at"] is not None


def test_d10_dry_runs_reads_and_bad_input_record_no_operation(cli, engine):
    desk(cli)
    before = len(rows(engine))
    assert cli("chats", "close", "1", "--dry-run").exit_code == 0
    assert cli("sweep", "run", "--dry-run").exit_code == 0
    assert cli("chats", "list", "live").exit_code == 0
    assert cli("audit", "list").exit_code == 0
    assert cli("prefs", "set", "inactivity_timeout", "soon").exit_code == 2
    assert cli("chats", "assign", "1", "--agent", "nobody").exit_code == 2
    assert len(rows(engine)) == before


def test_d10_refusals_and_the_safety_breaker_are_recorded_with_their_outcome(cli, engine):
    desk(cli)
    refused = cli("chats", "pending", "1", "3", "-o", "json")  # 3 does not exist: exit 1, still done
    assert refused.exit_code == 1
    stopped = cli("sweep", "run", "--as-of", "2026-12-01T09:00Z", "--max-changes", "0", "-o", "json")
    assert stopped.exit_code == 5
    recorded = {row["command"].split(" ", 3)[3]: row for row in rows(engine)}
    assert recorded["chats pending 1 3 -o json"]["status"] == "done"
    assert recorded["chats pending 1 3 -o json"]["counts"]["not_found"] == 1
    breaker = recorded["sweep run --as-of 2026-12-01T09:00Z --max-changes 0 -o json"]
    assert (breaker["status"], breaker["counts"]["exit_code"], breaker["counts"]["audit_events"]) == ("failed", 5, 0)


def test_d10_the_command_line_is_recorded_without_passwords(cli, engine):
    desk(cli)
    secret_url = "postgresql://reader:s3cret-pw@replica.invalid/desk"
    assert cli("--read-url", secret_url, "prefs", "set", "pending_timeout", "2h").exit_code == 0
    listed = cli("audit", "operations", "-o", "json")
    assert listed.exit_code == 0, listed
    assert "s3cret-pw" not in listed.stdout
    assert "reader:***@replica.invalid" in listed.json()[0]["command"]
    assert all("s3cret-pw" not in row["command"] for row in rows(engine))


def test_d10_interrupted_operation_is_marked_interrupted(cli, engine, monkeypatch):
    from chatctl.domain import batches

    desk(cli)
    real = batches.run_batches

    def interrupted_after_one_batch(engine_, batches_, apply, on_results, **kwargs):
        def one_then_stop():
            iterator = iter(batches_)
            yield next(iterator)
            raise KeyboardInterrupt

        real(engine_, one_then_stop(), apply, on_results, **kwargs)

    monkeypatch.setattr(batches, "run_batches", interrupted_after_one_batch)
    result = cli("chats", "flag", "1", "2", "--batch-size", "1")
    assert result.exit_code == 130, result
    (row,) = [row for row in rows(engine) if "chats flag" in row["command"]]
    assert row["status"] == "interrupted"
    assert row["counts"]["changed"] == 1 and row["counts"]["audit_events"] == 1


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _running(engine, operation_id: str, *, host: str, pid: int, lease: dt.datetime) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(Operation).values(
            id=operation_id, command="chatctl chats close -", actor="ops:gone", host=host, pid=pid,
            started_at=lease - operations.LEASE, lease_expires_at=lease, status="running"))


def test_d11_an_operation_whose_process_died_is_marked_failed_by_the_next_command(cli, engine):
    desk(cli)
    future = dt.datetime.now(UTC) + dt.timedelta(hours=1)
    _running(engine, "01DEADPROCESSONTHISHOST000", host=socket.gethostname(), pid=_dead_pid(), lease=future)
    _running(engine, "01LEASEEXPIREDELSEWHERE000", host="far.away", pid=1, lease=dt.datetime.now(UTC)
             - dt.timedelta(minutes=1))
    _running(engine, "01STILLRUNNINGELSEWHERE000", host="far.away", pid=1, lease=future)
    assert cli("chats", "flag", "1").exit_code == 0
    status = {row["id"]: row["status"] for row in rows(engine)}
    assert status["01DEADPROCESSONTHISHOST000"] == "failed"
    assert status["01LEASEEXPIREDELSEWHERE000"] == "failed"
    assert status["01STILLRUNNINGELSEWHERE000"] == "running"


def test_d11_audit_operations_marks_dead_operations_before_listing(cli, engine):
    _running(engine, "01DEADPROCESSONTHISHOST000", host=socket.gethostname(), pid=_dead_pid(),
             lease=dt.datetime.now(UTC) + dt.timedelta(hours=1))
    listed = cli("audit", "operations", "-o", "json")
    assert listed.exit_code == 0, listed
    assert [(row["id"], row["status"]) for row in listed.json()] == [("01DEADPROCESSONTHISHOST000", "failed")]


def test_d10_a_running_operation_renews_its_lease(engine):
    start = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    with engine.begin() as connection:
        operations.start(connection, "01RENEWED00000000000000000", command="chatctl sweep run", actor="system",
                         now=start, process=operations.Process.current())
        operations.renew(connection, "01RENEWED00000000000000000", now=start + dt.timedelta(minutes=7))
        row = operations.find(connection, "01RENEWED00000000000000000")
    assert row["lease_expires_at"] == start + dt.timedelta(minutes=7) + operations.LEASE


def test_d10_audit_operations_lists_newest_first_with_ids_in_full(cli, engine):
    desk(cli)
    for key, value in (("pending_timeout", "2h"), ("inactivity_timeout", "40m"), ("agent_chat_timeout", "9m")):
        assert cli("prefs", "set", key, value).exit_code == 0
    ids = [row["id"] for row in rows(engine)][::-1]
    assert all(len(i) == 26 for i in ids)
    as_json = cli("audit", "operations", "-o", "json").json()
    assert [row["id"] for row in as_json] == ids
    assert as_json[0]["command"].endswith("prefs set agent_chat_timeout 9m")
    for fmt in ("tsv", "csv", "plain", "markdown", "ids"):
        out = cli("audit", "operations", "-o", fmt).stdout
        assert all(i in out for i in ids), fmt
    # A narrow terminal squeezes the other columns, never the id.
    narrow = cli("audit", "operations", tty=True, env={"COLUMNS": "40"})
    assert narrow.exit_code == 0, narrow
    assert all(i in narrow.stdout for i in ids), narrow.stdout
    assert "…" not in "".join(line[:27] for line in narrow.stdout.splitlines())


def test_d10_audit_operations_limit_since_and_actor(cli, engine):
    desk(cli)
    assert cli("--actor", "alice", "chats", "seen", "1", "--as", "alice").exit_code == 0
    by_alice = cli("audit", "operations", "--actor", "alice", "-o", "json").json()
    assert [row["command"].split(" ", 5)[5] for row in by_alice] == ["chats seen 1 --as alice"]
    assert len(cli("audit", "operations", "--limit", "1", "-o", "json").json()) == 1
    with engine.begin() as connection:
        connection.execute(sa.update(Operation).where(Operation.actor != "alice")
                           .values(started_at=dt.datetime(2020, 1, 1, tzinfo=UTC)))
    recent = cli("audit", "operations", "--since", "-1d", "-o", "json").json()
    assert [row["actor"] for row in recent] == ["alice"]
    assert cli("audit", "operations", "--since", "yesterday-ish").exit_code == 2
