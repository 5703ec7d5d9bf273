"""`audit list` and `audit revert` (R15, SPEC 3 "Undo"), on SQLite and PostgreSQL.

Changes are made with plain SQL plus ``audit.record`` -- exactly what every
command writes -- so these tests pin the revert rules independently of the
commands that produce the events.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from chatctl.domain.audit import writer as audit
from chatctl.storage.models import Agent, AuditEvent, Chat, Customer, Preference, Ticket

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
CLOSED_AT = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)


def seed(engine, chats: int = 3) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(Agent).values(handle="alice", name="Alice", role="agent", presence="online",
                                                   active=True, created_at=T0))
        connection.execute(sa.insert(Agent).values(handle="sam", name="Sam", role="supervisor", presence="online",
                                                   active=True, created_at=T0))
        connection.execute(sa.insert(Customer).values(id=1, display_name="C", address="+27820000001", created_at=T0))
        connection.execute(sa.insert(Chat), [
            {"id": i, "customer_id": 1, "channel": "whatsapp", "status": "live", "created_at": T0,
             "last_customer_message_at": T0, "last_activity_at": T0, "flagged": False, "reassign_count": 0}
            for i in range(1, chats + 1)])


CLOSE_BEFORE = {"status": "live", "closed_at": None, "closed_by": None, "close_reason": None}


def close_chats(engine, ids, operation, *, at=CLOSED_AT, actor="system", action="sweep.inactivity"):
    """What a sweep's inactivity close writes: the columns, the R9 counter, one audit event per chat."""
    after = {"status": "closed", "closed_at": at, "closed_by": "system", "close_reason": "inactivity"}
    with engine.begin() as connection:
        connection.execute(sa.update(Chat).where(Chat.id.in_(ids)).values(**after))
        audit.record(connection, [audit.event(
            at=at, actor=actor, action=action, entity_type="chat", entity_id=i, operation_id=operation,
            before=CLOSE_BEFORE, after={**after, "comments_removed": 2}, reason="idle 30m") for i in ids])


def reopen_chat(engine, chat_id, operation, *, at):
    with engine.begin() as connection:
        before = dict(connection.execute(sa.select(Chat.status, Chat.closed_at, Chat.closed_by, Chat.close_reason,
                                                   Chat.last_activity_at)
                                         .where(Chat.id == chat_id)).mappings().one())
        # A reopen counts as activity (R10).
        after = {"status": "live", "closed_at": None, "closed_by": None, "close_reason": None, "last_activity_at": at}
        connection.execute(sa.update(Chat).where(Chat.id == chat_id).values(**after))
        audit.record(connection, [audit.event(at=at, actor="ops:someone", action="chats.reopen", entity_type="chat",
                                              entity_id=chat_id, operation_id=operation, before=before, after=after)])


def chat(engine, chat_id):
    with engine.connect() as connection:
        return connection.execute(sa.select(Chat.__table__).where(Chat.id == chat_id)).one()


def audit_rows(engine, **where):
    with engine.connect() as connection:
        query = sa.select(AuditEvent.__table__).order_by(AuditEvent.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEvent, key) == value)
        return connection.execute(query).all()


# -- audit list ------------------------------------------------------------------------
def test_audit_list_newest_first_in_the_spec_json_shape(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2], "OP1")
    reopen_chat(engine, 1, "OP2", at=CLOSED_AT + dt.timedelta(hours=1))
    r = cli("audit", "list", "-o", "json")
    assert r.exit_code == 0, r
    events = r.json()
    assert [(e["operation"], e["entity_id"]) for e in events] == [("OP2", "1"), ("OP1", "2"), ("OP1", "1")]
    assert list(events[0]) == ["id", "at", "actor", "action", "entity", "entity_id", "operation", "before",
                               "after", "reason"]
    assert events[1]["entity"] == "chat" and events[1]["action"] == "sweep.inactivity"
    assert events[1]["before"]["status"] == "live" and events[1]["after"]["comments_removed"] == 2
    assert dt.datetime.fromisoformat(events[1]["at"]) == CLOSED_AT


def test_audit_list_filters(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2], "OP1")
    reopen_chat(engine, 1, "OP2", at=CLOSED_AT + dt.timedelta(hours=1))
    assert [e["operation"] for e in cli("audit", "list", "--entity", "chat:1", "-o", "json").json()] == ["OP2", "OP1"]
    assert [e["entity_id"] for e in cli("audit", "list", "--operation", "OP1", "-o", "json").json()] == ["2", "1"]
    assert [e["operation"] for e in cli("audit", "list", "--actor", "ops:someone", "-o", "json").json()] == ["OP2"]
    since = (CLOSED_AT + dt.timedelta(minutes=30)).isoformat()
    assert [e["operation"] for e in cli("audit", "list", "--since", since, "-o", "json").json()] == ["OP2"]
    assert cli("audit", "list", "--entity", "ticket:1", "-o", "json").json() == []
    assert cli("audit", "list", "--entity", "chat:1", "--operation", "OP1", "-o", "jsonl").jsonl()[0]["entity_id"] == "1"


def test_audit_list_preference_and_agent_entities(cli):
    assert cli("prefs", "set", "inactivity_timeout", "45m").exit_code == 0
    assert cli("agents", "add", "bob", "--name", "Bob").exit_code == 0
    [pref] = cli("audit", "list", "--entity", "preference:inactivity_timeout", "-o", "json").json()
    assert pref["after"] == {"value": "45m"}
    [agent] = cli("audit", "list", "--entity", "agent:bob", "-o", "json").json()
    assert agent["action"] == "agents.add" and agent["before"] is None


@pytest.mark.parametrize("args, fragment", [
    (["--entity", "chats:1"], "chat:ID, ticket:ID, agent:HANDLE or preference:KEY"),
    (["--entity", "chat:abc"], "positive whole number"),
    (["--entity", "chat"], "chat:ID"),
    (["--since", "yesterday-ish"], "bad time"),
    (["--operation", "x' OR '1'='1"], "bad operation id"),
    (["--limit", "5", "--all"], "--limit or --all"),
])
def test_audit_list_bad_input_is_exit_2_naming_the_forms(cli, args, fragment):
    r = cli("audit", "list", *args)
    assert r.exit_code == 2, r
    assert fragment in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_audit_list_limit_after_and_all(cli, engine):
    seed(engine, chats=7)
    close_chats(engine, list(range(1, 8)), "OP1")
    r = cli("audit", "list", "--limit", "3", "-o", "json")
    first = r.json()
    assert [e["entity_id"] for e in first] == ["7", "6", "5"]
    assert f"--after {first[-1]['id']}" in r.stderr
    second = cli("audit", "list", "--limit", "3", "--after", first[-1]["id"], "-o", "json").json()
    assert [e["entity_id"] for e in second] == ["4", "3", "2"]
    every = cli("audit", "list", "--all", "-o", "ids")
    assert every.stdout.split() == [str(e.id) for e in reversed(audit_rows(engine))]
    assert "--after" not in every.stderr
    tsv = cli("audit", "list", "--limit", "1")
    assert tsv.stdout.splitlines()[0].split("\t") == ["id", "at", "actor", "action", "entity", "entity_id",
                                                      "operation", "after", "reason"]


def test_audit_list_reads_the_read_engine(cli, engine, tmp_path):
    """--read-url is where lists come from: an empty replica lists nothing."""
    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    seed(engine)
    close_chats(engine, [1], "OP1")
    replica = create_engine(f"sqlite:///{tmp_path / 'replica.db'}")
    schema.upgrade(replica)
    replica.dispose()
    r = cli("--read-url", f"sqlite:///{tmp_path / 'replica.db'}", "audit", "list", "-o", "json")
    assert r.exit_code == 0, r
    assert r.json() == []


# -- audit revert -------------------------------------------------------------------------
def test_r15_revert_restores_before_values_and_audits_itself(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2, 3], "OP1")
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 0, r
    document = r.json()
    assert document["summary"] == {"changed": 3, "skipped": 0, "not_found": 0, "refused": 0}
    assert [item["id"] for item in document["results"]] == ["chat:3", "chat:2", "chat:1"]
    assert "not restorable: comments_removed" in document["results"][0]["reason"]
    for chat_id in (1, 2, 3):
        restored = chat(engine, chat_id)
        assert (restored.status, restored.closed_at, restored.closed_by, restored.close_reason) == (
            "live", None, None, None)
    reverts = audit_rows(engine, operation_id=document["operation"])
    assert len(reverts) == 3
    assert {e.action for e in reverts} == {"audit.revert"} and {e.actor for e in reverts} == {"ops:tester"}
    assert all("revert of operation OP1" in e.reason for e in reverts)
    assert reverts[0].before == {"status": "closed", "closed_at": CLOSED_AT.isoformat(), "closed_by": "system",
                                 "close_reason": "inactivity"}
    assert reverts[0].after == CLOSE_BEFORE
    assert "3 changed" in r.stderr


def test_revert_parses_timestamps_back(cli, engine):
    """A reopen's before holds closed_at as ISO text: reverting it writes a real timestamp again."""
    seed(engine)
    close_chats(engine, [1], "OP1")
    reopen_chat(engine, 1, "OP2", at=CLOSED_AT + dt.timedelta(hours=1))
    r = cli("audit", "revert", "OP2", "--yes")
    assert r.exit_code == 0, r
    restored = chat(engine, 1)
    assert restored.status == "closed" and restored.closed_at == CLOSED_AT and restored.closed_by == "system"


def test_revert_conflict_when_the_entity_changed_since(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2], "OP1")
    reopen_chat(engine, 1, "OP2", at=CLOSED_AT + dt.timedelta(hours=1))
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 1, r
    results = {item["id"]: item for item in r.json()["results"]}
    assert results["chat:1"]["result"] == "refused"
    assert "conflict" in results["chat:1"]["reason"] and "OP2" in results["chat:1"]["reason"]
    assert results["chat:2"]["result"] == "changed"
    assert chat(engine, 1).status == "live" and chat(engine, 1).closed_at is None  # the reopen stands
    assert chat(engine, 2).status == "live"
    assert r.json()["summary"]["refused"] == 1


def test_revert_refuses_a_change_made_outside_the_audit_trail(cli, engine):
    seed(engine)
    close_chats(engine, [1], "OP1")
    with engine.begin() as connection:
        connection.execute(sa.update(Chat).where(Chat.id == 1).values(close_reason="hand edit"))
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 1
    [item] = r.json()["results"]
    assert item["result"] == "refused" and "close_reason changed outside the audit trail" in item["reason"]
    assert chat(engine, 1).status == "closed"


def test_revert_twice_skips_what_is_already_reverted(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2], "OP1")
    assert cli("audit", "revert", "OP1", "--yes").exit_code == 0
    events = len(audit_rows(engine))
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 0, r
    assert r.json()["summary"] == {"changed": 0, "skipped": 2, "not_found": 0, "refused": 0}
    assert "already reverted" in r.json()["results"][0]["reason"]
    assert len(audit_rows(engine)) == events


def test_revert_of_a_revert_redoes_the_change(cli, engine):
    seed(engine)
    close_chats(engine, [1], "OP1")
    undo = cli("audit", "revert", "OP1", "--yes", "-o", "json").json()["operation"]
    r = cli("audit", "revert", undo, "--yes", "-o", "json")
    assert r.exit_code == 0, r
    closed = chat(engine, 1)
    assert closed.status == "closed" and closed.closed_at == CLOSED_AT and closed.close_reason == "inactivity"


def test_revert_dry_run_reports_exactly_and_changes_nothing(cli, engine):
    seed(engine)
    close_chats(engine, [1, 2], "OP1")
    reopen_chat(engine, 2, "OP2", at=CLOSED_AT + dt.timedelta(hours=1))
    events = len(audit_rows(engine))
    r = cli("audit", "revert", "OP1", "--dry-run", "-o", "json")  # no --yes needed: nothing changes
    assert r.exit_code == 1, r
    assert r.json()["dry_run"] is True
    assert r.json()["summary"] == {"changed": 1, "skipped": 0, "not_found": 0, "refused": 1}
    assert chat(engine, 1).status == "closed"
    assert len(audit_rows(engine)) == events
    assert "dry run, nothing changed" in r.stderr


def test_revert_needs_yes_without_a_terminal(cli, engine):
    seed(engine)
    close_chats(engine, [1], "OP1")
    r = cli("audit", "revert", "OP1", tty=False)
    assert r.exit_code == 2, r
    assert "--yes" in r.stderr
    assert chat(engine, 1).status == "closed"
    assert len(audit_rows(engine)) == 1


def test_revert_unknown_and_malformed_operation_ids(cli, engine):
    r = cli("audit", "revert", "01JDZ8Q3K4V7W2M5N6P8R9S0TA", "--yes")
    assert r.exit_code == 1 and "no audit events for operation" in r.stderr, r
    r = cli("audit", "revert", "'; DROP TABLE chats; --", "--yes")
    assert r.exit_code == 2 and "bad operation id" in r.stderr, r


def test_revert_creation_is_not_revertible(cli, engine):
    """A conversion: the chat goes back to live, the ticket it created stays (a revert never deletes)."""
    seed(engine)
    with engine.begin() as connection:
        connection.execute(sa.update(Chat).where(Chat.id == 1).values(status="converted"))
        ticket_id = connection.execute(sa.insert(Ticket).values(chat_id=1, status="open", reason="manual",
                                                                created_at=CLOSED_AT).returning(Ticket.id)).scalar()
        audit.record(connection, [
            audit.event(at=CLOSED_AT, actor="ops:x", action="chats.convert", entity_type="chat", entity_id=1,
                        operation_id="OP1", before={"status": "live"}, after={"status": "converted"}),
            audit.event(at=CLOSED_AT, actor="ops:x", action="chats.convert", entity_type="ticket",
                        entity_id=ticket_id, operation_id="OP1", before=None, after={"status": "open"}),
        ])
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 1, r
    results = {item["id"]: item for item in r.json()["results"]}
    assert results[f"ticket:{ticket_id}"]["result"] == "refused"
    assert "created the ticket" in results[f"ticket:{ticket_id}"]["reason"]
    assert results["chat:1"]["result"] == "changed"
    assert chat(engine, 1).status == "live"
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(Ticket)).scalar() == 1


def test_revert_tickets_agents_and_preferences(cli, engine):
    seed(engine)
    with engine.begin() as connection:
        ticket_id = connection.execute(sa.insert(Ticket).values(chat_id=1, status="open", reason="manual",
                                                                created_at=T0).returning(Ticket.id)).scalar()
        connection.execute(sa.update(Ticket).where(Ticket.id == ticket_id)
                           .values(status="closed", closed_at=CLOSED_AT, archived_at=CLOSED_AT))
        audit.record(connection, [audit.event(
            at=CLOSED_AT, actor="ops:x", action="tickets.close", entity_type="ticket", entity_id=ticket_id,
            operation_id="OPT", before={"status": "open", "closed_at": None, "archived_at": None},
            after={"status": "closed", "closed_at": CLOSED_AT, "archived_at": CLOSED_AT})])
    assert cli("audit", "revert", "OPT", "--yes").exit_code == 0
    with engine.connect() as connection:
        ticket = connection.execute(sa.select(Ticket.__table__).where(Ticket.id == ticket_id)).one()
    assert (ticket.status, ticket.closed_at, ticket.archived_at) == ("open", None, None)

    # preferences: a set over a default, then a change of an existing value
    assert cli("prefs", "set", "inactivity_timeout", "45m").exit_code == 0
    [first] = cli("audit", "list", "--entity", "preference:inactivity_timeout", "-o", "json").json()
    assert cli("prefs", "set", "pending_timeout", "2d").exit_code == 0
    assert cli("prefs", "set", "pending_timeout", "3d").exit_code == 0
    second = cli("audit", "list", "--entity", "preference:pending_timeout", "--limit", "1", "-o", "json").json()[0]
    assert cli("audit", "revert", first["operation"], "--yes").exit_code == 0
    assert cli("audit", "revert", second["operation"], "--yes").exit_code == 0
    assert cli("prefs", "get", "inactivity_timeout").stdout.strip() == "30m"
    assert cli("prefs", "get", "pending_timeout").stdout.strip() == "2d"
    with engine.connect() as connection:
        assert connection.execute(sa.select(Preference.key)).scalars().all() == ["pending_timeout"]

    # agents: presence back to what it was
    assert cli("agents", "set-status", "alice", "offline").exit_code == 0
    [event] = cli("audit", "list", "--entity", "agent:alice", "-o", "json").json()
    assert cli("audit", "revert", event["operation"], "--yes").exit_code == 0
    assert {a["handle"]: a["presence"] for a in cli("agents", "list", "-o", "json").json()}["alice"] == "online"


def test_revert_runs_in_batches_over_the_whole_operation(cli, engine):
    seed(engine, chats=25)
    close_chats(engine, list(range(1, 26)), "OP1")
    r = cli("audit", "revert", "OP1", "--yes", "--batch-size", "4", "-o", "jsonl")
    assert r.exit_code == 0, r
    assert [item["id"] for item in r.jsonl()] == [f"chat:{i}" for i in range(25, 0, -1)]
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(Chat)
                                  .where(Chat.status == "live")).scalar() == 25
    assert len(audit_rows(engine, action="audit.revert")) == 25


def test_revert_same_entity_twice_in_one_operation_restores_the_earliest(cli, engine):
    seed(engine)
    close_chats(engine, [1], "OP1")
    reopen_chat(engine, 1, "OP1", at=CLOSED_AT + dt.timedelta(hours=1))  # same operation touches chat 1 again
    r = cli("audit", "revert", "OP1", "--yes", "-o", "json")
    assert r.exit_code == 0, r
    assert r.json()["summary"]["changed"] == 2
    assert chat(engine, 1).status == "live" and chat(engine, 1).closed_at is None


def test_revert_by_an_agent_role_is_refused(cli, engine):
    seed(engine)
    close_chats(engine, [1], "OP1")
    r = cli("--actor", "alice", "audit", "revert", "OP1", "--yes")
    assert r.exit_code == 1 and "supervisor" in r.stderr, r
    assert chat(engine, 1).status == "closed"
    r = cli("--actor", "sam", "audit", "revert", "OP1", "--yes")
    assert r.exit_code == 0, r
    assert audit_rows(engine, action="audit.revert")[0].actor == "sam"


# -- end to end, with the commands that write the events ---------------------------------------
def test_revert_a_sweep_run_restores_the_chats_it_closed(cli, engine):
    seed(engine, chats=4)
    as_of = (T0 + dt.timedelta(hours=3)).isoformat()
    run = cli("sweep", "run", "inactivity", "--as-of", as_of, "-o", "json")
    assert run.exit_code == 0, run
    assert run.json()["jobs"]["inactivity"]["changed"] == 4
    reopen_chat(engine, 4, "LATER", at=T0 + dt.timedelta(hours=4))   # someone reopened chat 4 since
    r = cli("audit", "revert", run.json()["run_id"], "--yes", "-o", "json")
    assert r.exit_code == 1, r
    results = {item["id"]: item for item in r.json()["results"]}
    assert [results[f"chat:{i}"]["result"] for i in (1, 2, 3)] == ["changed"] * 3
    assert results["chat:4"]["result"] == "refused" and "LATER" in results["chat:4"]["reason"]
    for chat_id in (1, 2, 3):
        restored = chat(engine, chat_id)
        assert (restored.status, restored.closed_at, restored.closed_by) == ("live", None, None)
    assert cli("db", "check").exit_code == 0
    # the next sweep at the same instant closes them again: a revert is not an exemption
    again = cli("sweep", "run", "inactivity", "--as-of", as_of, "-o", "json")
    assert again.json()["jobs"]["inactivity"]["changed"] == 3


def test_revert_a_bulk_close_by_ids(cli, engine):
    seed(engine, chats=3)
    closed = cli("chats", "close", "1", "2", "--reason", "spam", "-o", "json")
    assert closed.exit_code == 0, closed
    r = cli("audit", "revert", closed.json()["operation"], "--yes", "-o", "json")
    assert r.exit_code == 0, r
    assert r.json()["summary"]["changed"] == 2
    assert {chat(engine, i).status for i in (1, 2, 3)} == {"live"}
    assert chat(engine, 1).close_reason is None
