"""`audit list` (R15), on SQLite and PostgreSQL; `audit revert` is in test_audit_revert.py.

Changes are made with plain SQL plus ``audit.record`` -- exactly what every
command writes -- so these tests pin the listing independently of the
commands that produce the events.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from chatctl.domain.audit import writer as audit
from chatctl.storage.models import Agent, AuditEvent, Chat, Customer

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
    (["--entity", "chats:1"], "chat:ID, ticket:ID, comment:ID, notification:ID, agent:HANDLE or preference:KEY"),
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
    cursor = r.stderr.split("next page: --after ")[1].split()[0]
    second = cli("audit", "list", "--limit", "3", "--after", cursor, "-o", "json").json()
    assert [e["entity_id"] for e in second] == ["4", "3", "2"]
    last = cli("audit", "list", "--limit", "1", "--after", cursor, "--operation", "OP1", "-o", "json")
    assert [e["entity_id"] for e in last.json()] == ["4"]
    # a page that ends exactly at the last event says nothing more
    tail = cli("audit", "list", "--limit", "7", "-o", "json")
    assert len(tail.json()) == 7 and "next page" not in tail.stderr
    assert cli("audit", "list", "--after", "not-a-cursor").exit_code == 2
    every = cli("audit", "list", "--all", "-o", "ids")
    assert every.stdout.split() == [str(e.id) for e in reversed(audit_rows(engine))]
    assert "--after" not in every.stderr
    tsv = cli("audit", "list", "--limit", "1")
    assert tsv.stdout.splitlines()[0].split("\t") == ["id", "at", "actor", "action", "entity", "entity_id",
                                                      "operation", "changes", "reason"]


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


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_r15_sqlite_stores_an_event_as_sqlites_own_json_text(engine, backend):
    """Stored before/after text is what SQLite's json() writes for it (compact, characters as they
    are), so events built in SQL with json_quote are the same bytes as events written from Python."""
    seed(engine, chats=1)
    note = 'café "VIP"\n\t\\ ☕'
    with engine.begin() as connection:
        audit.record(connection, [audit.event(
            at=CLOSED_AT, actor="ops:x", action="chats.flag", entity_type="chat", entity_id=1, operation_id="OP1",
            before={"flagged": False, "flag_note": None}, after={"flagged": True, "flag_note": note})])
        stored, canonical, quoted = connection.execute(
            sa.text("SELECT after, json(after), json_quote(:note) FROM audit_events"), {"note": note}).one()
    assert stored == canonical == '{"flagged":true,"flag_note":' + quoted + "}"
    assert audit_rows(engine)[0].after == {"flagged": True, "flag_note": note}
