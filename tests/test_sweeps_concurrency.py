"""Sweeps under concurrency and crashes (SPEC 3: race-safe, crash-safe, idempotent).

* several `chatctl sweep run` processes at once, with and without shards, with
  the lock bypassed: each eligible chat changes exactly once, one audit row each;
* a customer message holding the chat row while the sweep runs keeps it live;
* a message landing between claim and update is caught by the re-checked predicate;
* a run killed with SIGKILL leaves no change without its audit row and no lock;
  the next run finishes the work and a second one at the same as_of changes nothing.
"""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest
from sqlalchemy import func, select, text, update
from sweep_helpers import T0, add_agent, add_chat, bulk_chats, chat, chatctl, minutes, wait_for_audit

from chatctl.storage.models import AuditEvent, Chat

AS_OF = T0.isoformat()


# The named subset run through PgBouncer: ``pytest -m pgbouncer_concurrency`` (docs/scaling.md, section 4).
THROUGH_PGBOUNCER = pytest.param("pgbouncer", marks=pytest.mark.pgbouncer_concurrency)
# Advisory locks held in this test's database (the server is shared with other tests).
ADVISORY_LOCKS_HERE = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def chat_audit_counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(
            select(AuditEvent.entity_id, func.count()).where(AuditEvent.entity_type == "chat",
                                                             AuditEvent.action.like("sweep.%"))
            .group_by(AuditEvent.entity_id)).all())


def statuses(engine) -> dict[int, tuple]:
    with engine.connect() as connection:
        return {row.id: row for row in connection.execute(select(Chat.id, Chat.status, Chat.agent_id,
                                                                 Chat.closed_at, Chat.assigned_at))}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("shards", [None, 2], ids=["unsharded", "sharded"])
@pytest.mark.parametrize("route", ["direct", THROUGH_PGBOUNCER])
def test_parallel_sweeps_change_each_chat_exactly_once(cli, engine, shards, route, request):
    """Directly, every run bypasses the lock: only the claims keep them apart.  Through PgBouncer in
    transaction pooling mode, half of them take the run lock (a lease there) with --skip-if-locked."""
    alice, bob, carol = add_agent(engine, "alice"), add_agent(engine, "bob"), add_agent(engine, "carol")
    bulk_chats(engine, 1500, agent=alice)
    bulk_chats(engine, 300, agent=bob, waiting=True)
    chats_before = statuses(engine)
    url = cli.url if route == "direct" else request.getfixturevalue("pgbouncer").route(cli.url)
    processes = []
    for index in range(4):
        shard = ["--shard", f"{index % shards + 1}/{shards}"] if shards else []
        locked = route == "pgbouncer" and index < 2
        env = {"CHATCTL_SWEEP_NO_LOCK": "0" if locked else "1"}
        if route == "pgbouncer":
            env["CHATCTL_POOLER"] = "transaction"
        processes.append(chatctl(url, "sweep", "run", "--as-of", AS_OF, "--batch-size", "50", *shard,
                                 *(["--skip-if-locked"] if locked else []), "-o", "json", env=env))
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    assert not any("prepared statement" in err or "Traceback" in err for _, err in outputs), outputs
    after = statuses(engine)
    audited = chat_audit_counts(engine)
    assert set(audited.values()) == {1}, "a chat was changed twice"
    changed = {chat_id for chat_id, row in after.items() if row != chats_before[chat_id]}
    assert {int(key) for key in audited} == changed, "a change without its audit row, or the reverse"
    idle = [chat_id for chat_id, row in chats_before.items() if row.agent_id == alice]
    waiting = [chat_id for chat_id, row in chats_before.items() if row.agent_id == bob]
    assert all(after[chat_id].status == "closed" for chat_id in idle)
    assert all(after[chat_id].agent_id in (alice, carol) and after[chat_id].assigned_at == T0 for chat_id in waiting)
    with engine.connect() as connection:  # every lease released, no advisory lock left on a pooled session
        assert connection.execute(text("SELECT count(*) FROM sweep_leases")).scalar() == 0
        assert connection.execute(text(ADVISORY_LOCKS_HERE)).scalar() == 0
    reports = [__import__("json").loads(out) for out, _ in outputs if out.strip()]  # a skipped run prints none
    assert sum(r["jobs"]["inactivity"]["changed"] for r in reports) == len(idle)
    assert sum(r["jobs"]["agent-timeout"]["changed"] for r in reports) == len(waiting)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_r5_parallel_reassignment_on_sqlite_changes_each_chat_once(cli, engine):
    """SQLite has no row locks to skip: four agent-timeout sweeps with the lock bypassed still hand
    each waiting chat to another agent exactly once (the re-checked predicate and one writer at a time)."""
    alice, bob, carol = add_agent(engine, "alice"), add_agent(engine, "bob"), add_agent(engine, "carol")
    bulk_chats(engine, 300, agent=bob, waiting=True)
    before = statuses(engine)
    processes = [chatctl(cli.url, "sweep", "run", "agent-timeout", "--as-of", AS_OF, "--batch-size", "25",
                         "-o", "json", env={"CHATCTL_SWEEP_NO_LOCK": "1"}) for _ in range(4)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    assert not any("locked" in err or "Traceback" in err for _, err in outputs), outputs
    after = statuses(engine)
    audited = chat_audit_counts(engine)
    assert set(audited.values()) == {1}, "a chat was reassigned twice"
    assert {int(key) for key in audited} == {chat_id for chat_id, row in after.items() if row != before[chat_id]}
    assert len(audited) == 300
    assert all(row.agent_id in (alice, carol) and row.assigned_at == T0 for row in after.values())
    reports = [__import__("json").loads(out) for out, _ in outputs]
    assert sum(report["jobs"]["agent-timeout"]["changed"] for report in reports) == 300


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("job", ["inactivity", "agent-timeout"])
def test_customer_message_holding_the_row_keeps_the_chat_live(cli, engine, job):
    """Connection A writes a customer message and holds the chat row; the sweep skips it; A commits."""
    alice, _ = add_agent(engine, "alice"), add_agent(engine, "bob")
    if job == "inactivity":
        target = add_chat(engine, agent=alice, created=T0 - minutes(90), agent_at=T0 - minutes(60))
        other = add_chat(engine, agent=alice, created=T0 - minutes(90), agent_at=T0 - minutes(60))
    else:
        target = add_chat(engine, agent=alice, created=T0 - minutes(10))
        other = add_chat(engine, agent=alice, created=T0 - minutes(10))
    connection_a = engine.connect()
    try:
        connection_a.execute(text("INSERT INTO messages (chat_id, direction, kind, body, created_at) "
                                  "VALUES (:chat, 'inbound', 'text', 'still there?', :at)"),
                             {"chat": target, "at": T0 - minutes(0.5)})
        connection_a.execute(update(Chat).where(Chat.id == target).values(
            last_customer_message_at=T0 - minutes(0.5), last_activity_at=T0 - minutes(0.5)))
        result = cli("sweep", "run", job, "--as-of", AS_OF, "-o", "json")
        assert result.exit_code == 0, result
        assert result.json()["jobs"][job] == {"matched": 1, "changed": 1, "skipped": 0}
        connection_a.commit()
    finally:
        connection_a.close()
    assert chat(engine, target).status == "live" and chat(engine, target).agent_id == alice
    assert chat(engine, target).last_activity_at == T0 - minutes(0.5)
    moved = chat(engine, other)
    assert moved.status == "closed" if job == "inactivity" else moved.agent_id != alice
    again = cli("sweep", "run", job, "--as-of", AS_OF, "-o", "json").json()
    assert again["jobs"][job]["changed"] == 0
    assert chat(engine, target).status == "live" and chat(engine, target).agent_id == alice


@pytest.mark.parametrize("job", ["inactivity", "agent-timeout", "pending"])
def test_message_between_claim_and_update_keeps_the_chat_live(engine, job):
    """The eligibility is re-checked inside the UPDATE: stale claimed rows change nothing."""
    from chatctl.domain.prefs import get_preferences
    from chatctl.domain.sweeps.jobs import JOBS, SweepContext

    alice = add_agent(engine, "alice")
    add_agent(engine, "bob")
    if job == "pending":
        target = add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(days=2))
    else:
        target = add_chat(engine, agent=alice, created=T0 - minutes(90),
                          agent_at=T0 - minutes(60) if job == "inactivity" else None)
    with engine.begin() as connection:
        context = SweepContext(as_of=T0, prefs=get_preferences(connection), operation_id="RACE")
        rows = JOBS[job].claim(connection, context, 0, 100)
        assert [row["id"] for row in rows] == [target]
        # the customer writes: live again, fresh activity, unanswered no longer old
        connection.execute(update(Chat).where(Chat.id == target).values(
            status="live", pending_since=None, last_customer_message_at=T0, last_activity_at=T0))
        outcome = JOBS[job].apply(connection, context, rows)
    assert outcome.changed == 0
    assert chat(engine, target).status == "live" and chat(engine, target).agent_id == alice
    assert chat_audit_counts(engine) == {}


@pytest.mark.slow
def test_sigkill_mid_run_leaves_no_change_without_audit_and_no_lock(cli, engine):
    from chatctl.storage.engine import is_postgres
    from chatctl.storage.models import SweepLease

    alice = add_agent(engine, "alice")
    total = 12000
    bulk_chats(engine, total, agent=alice)
    process = chatctl(cli.url, "sweep", "run", "inactivity", "--as-of", AS_OF, "--batch-size", "20",
                      env={"CHATCTL_SWEEP_LEASE_SECONDS": "2"})
    wait_for_audit(engine, 40, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    closed = {chat_id for chat_id, row in statuses(engine).items() if row.status == "closed"}
    audited = chat_audit_counts(engine)
    assert 0 < len(closed) < total, "kill came too late to test anything"
    assert {int(key) for key in audited} == closed and set(audited.values()) == {1}
    assert len(closed) % 20 == 0, "a batch was applied in part"
    with engine.connect() as connection:
        if is_postgres(engine):
            assert connection.execute(text(ADVISORY_LOCKS_HERE)).scalar() == 0
        else:
            assert connection.execute(select(func.count()).select_from(SweepLease)).scalar_one() == 1
    if not is_postgres(engine):
        time.sleep(2.1)  # the dead holder's lease runs out
    finish = cli("sweep", "run", "inactivity", "--as-of", AS_OF, "--batch-size", "500", "-o", "json")
    assert finish.exit_code == 0, finish
    assert finish.json()["jobs"]["inactivity"]["changed"] == total - len(closed)
    audited = chat_audit_counts(engine)
    assert len(audited) == total and set(audited.values()) == {1}
    again = cli("sweep", "run", "--as-of", AS_OF, "-o", "json").json()
    assert all(job["changed"] == 0 for job in again["jobs"].values())
