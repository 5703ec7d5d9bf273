"""demo load: every state present, consistent, reproducible, refused on a busy desk."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select, text

from chatctl.storage.models import Chat, Comment, Message, Notification, Ticket

NOW = "2026-11-30T10:00:00Z"
NOW_AT = dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc)
TABLES = ("notifications", "comment_mentions", "comments", "messages", "tickets", "chats", "customers",
          "audit_events")


def scalar(engine, sql: str):
    with engine.connect() as connection:
        return connection.execute(text(sql)).scalar_one()


def fingerprint(engine):
    with engine.connect() as connection:
        return {
            "chats": connection.execute(text(
                "SELECT id, customer_id, channel, status, agent_id, flagged, closed_by, created_at, "
                "last_activity_at FROM chats ORDER BY id")).all(),
            "messages": connection.execute(text("SELECT chat_id, direction, body, created_at FROM messages "
                                                "ORDER BY id")).all(),
            "tickets": connection.execute(text("SELECT chat_id, status, reason, created_at, archived_at "
                                               "FROM tickets ORDER BY id")).all(),
        }


def test_demo_load_has_every_state(cli, engine):
    result = cli("demo", "load", "--chats", "300", "--agents", "9", "--now", NOW, "-o", "json")
    assert result.exit_code == 0, result
    summary = result.json()
    assert summary["chats"] == 300 and summary["agents_added"] == 9
    with engine.connect() as connection:
        statuses = dict(connection.execute(text("SELECT status, count(*) FROM chats GROUP BY status")).all())
        closed_by = set(connection.execute(text("SELECT closed_by FROM chats WHERE status = 'closed'")).scalars())
        live = connection.execute(text(
            "SELECT last_agent_message_at IS NULL AS new, "
            "last_customer_message_at IS NOT NULL AND (agent_seen_at IS NULL OR last_customer_message_at > "
            "agent_seen_at) AS unread FROM chats WHERE status = 'live'")).all()
        channels = set(connection.execute(text("SELECT channel FROM chats")).scalars())
        presence = dict(connection.execute(text("SELECT presence, count(*) FROM agents GROUP BY presence")).all())
        tickets = connection.execute(select(Ticket.status, Ticket.created_at, Ticket.archived_at)).all()
        reasons = set(connection.execute(text("SELECT reason FROM tickets")).scalars())
    assert set(statuses) == {"live", "pending", "closed", "converted"}
    assert sum(statuses.values()) == 300
    assert closed_by == {"customer", "agent", "system"}
    assert any(row.new for row in live) and any(row.unread and not row.new for row in live)
    assert any(not row.new and not row.unread for row in live)  # answered
    assert len(channels) >= 3
    assert presence.get("online", 0) >= 1 and presence.get("offline", 0) >= 1
    assert scalar(engine, "SELECT count(*) FROM chats WHERE flagged") >= 1
    assert scalar(engine, "SELECT count(*) FROM comments") >= 1
    assert scalar(engine, "SELECT count(*) FROM comment_mentions") == summary["tags"] >= 1
    assert scalar(engine, "SELECT count(*) FROM notifications WHERE read_at IS NULL") >= 1
    assert scalar(engine, "SELECT count(*) FROM messages") == summary["messages"]
    assert {t.status for t in tickets} == {"open", "closed"}
    assert any(t.archived_at for t in tickets)
    assert any(NOW_AT - t.created_at > dt.timedelta(days=90) and not t.archived_at for t in tickets)
    assert any(NOW_AT - t.created_at < dt.timedelta(days=90) for t in tickets)
    assert reasons == {"out_of_hours", "no_agents", "inactivity", "manual"}
    # Nothing lies in the future, and the desk's invariants hold.
    with engine.connect() as connection:
        latest = [connection.execute(select(func.max(column))).scalar_one() for column in (
            Message.created_at, Chat.closed_at, Chat.last_activity_at, Chat.agent_seen_at, Ticket.closed_at,
            Notification.read_at, Comment.created_at)]
    assert all(value <= NOW_AT for value in latest)
    check = cli("db", "check")
    assert check.exit_code == 0, check
    with engine.connect() as connection:
        audit = connection.execute(text("SELECT action, entity_type, after FROM audit_events")).all()
    assert [(row.action, row.entity_type) for row in audit] == [("demo.load", "desk")]


def test_demo_load_is_reproducible_with_the_same_seed(cli, engine):
    first = cli("demo", "load", "--chats", "200", "--seed", "7", "--now", NOW, "-o", "json")
    assert first.exit_code == 0, first
    before = fingerprint(engine)
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
    second = cli("demo", "load", "--chats", "200", "--seed", "7", "--now", NOW, "-o", "json")
    assert second.exit_code == 0, second
    assert fingerprint(engine) == before
    drop = {"operation", "agents_added"}
    assert {k: v for k, v in first.json().items() if k not in drop} == \
        {k: v for k, v in second.json().items() if k not in drop}


def test_demo_load_another_seed_gives_another_desk(cli, engine):
    assert cli("demo", "load", "--chats", "100", "--seed", "1", "--now", NOW).exit_code == 0
    one = fingerprint(engine)
    with engine.begin() as connection:
        for table in TABLES:
            connection.execute(text(f"DELETE FROM {table}"))
    assert cli("demo", "load", "--chats", "100", "--seed", "2", "--now", NOW).exit_code == 0
    assert fingerprint(engine) != one


def test_demo_load_refuses_a_desk_with_chats_unless_append(cli, engine):
    assert cli("demo", "load", "--chats", "50", "--now", NOW).exit_code == 0
    refused = cli("demo", "load", "--chats", "50", "--now", NOW)
    assert refused.exit_code == 2 and "--append" in refused.stderr
    assert scalar(engine, "SELECT count(*) FROM chats") == 50
    appended = cli("demo", "load", "--chats", "50", "--now", NOW, "--append", "-o", "json")
    assert appended.exit_code == 0, appended
    assert appended.json()["agents_added"] == 0
    assert scalar(engine, "SELECT count(*) FROM chats") == 100
    # Ids continue; events ingest's generated ids continue after them on both backends.
    ingest = cli("events", "ingest", "-", "-o", "json", input='{"type": "chat_started", "customer": "new", '
                 '"channel": "sms", "at": "2026-11-30T10:00:00Z"}\n')
    assert ingest.exit_code == 0, ingest
    assert ingest.json()["generated_chats"][0]["chat"] == 101


def test_demo_load_without_now_uses_the_clock(cli, engine):
    with freeze_time("2026-06-15 12:00:00"):
        result = cli("demo", "load", "--chats", "60", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json()["now"] == "2026-06-15T12:00:00+00:00"
    with engine.connect() as connection:
        latest = connection.execute(select(func.max(Chat.last_activity_at))).scalar_one()
        earliest = connection.execute(select(func.min(Chat.created_at))).scalar_one()
    frozen = dt.datetime(2026, 6, 15, 12, tzinfo=dt.timezone.utc)
    assert frozen - dt.timedelta(hours=5) < latest <= frozen
    assert earliest < frozen - dt.timedelta(days=90)

def run_on_a_terminal(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    """Run chatctl with stdin, stdout and stderr on a real pseudo-terminal; return its exit code and screen."""
    import os
    import pty
    import subprocess
    import sys
    import time

    controller, terminal = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
    process = subprocess.Popen([sys.executable, "-m", "chatctl", *argv], stdin=terminal, stdout=terminal,
                               stderr=terminal, env=env, close_fds=True)
    os.close(terminal)
    screen = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the child closed its side: everything has been read
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    return process.wait(timeout=timeout), screen.decode(errors="replace")


def test_demo_load_shows_progress_only_on_a_terminal(cli):
    on_terminal, screen = run_on_a_terminal(["--database-url", cli.url, "demo", "load", "--chats", "3000",
                                             "--now", NOW])
    assert on_terminal == 0, screen
    assert "loading demo chats" in screen and "3000" in screen, screen  # the bar, with its total
    piped = cli("demo", "load", "--chats", "20", "--now", NOW, "--append")
    assert piped.exit_code == 0, piped
    assert "loading demo chats" not in piped.stderr


def schema_snapshot(engine):
    from sqlalchemy import inspect

    def plain(item) -> str:  # a partial index's condition is a clause: compare its SQL, not its address
        return json.dumps(item, sort_keys=True, default=str)

    inspector = inspect(engine)
    return {table: (sorted(map(plain, inspector.get_indexes(table))), sorted(map(plain, inspector.get_foreign_keys(
        table)))) for table in inspector.get_table_names()}


def test_big_load_into_empty_desk_restores_indexes_and_foreign_keys(cli, engine, monkeypatch):
    from chatctl.domain import demo

    before = schema_snapshot(engine)
    monkeypatch.setattr(demo, "DEFER_INDEXES_FROM", 1)  # the path a million-chat load takes
    result = cli("demo", "load", "--chats", "120", "--now", NOW)
    assert result.exit_code == 0, result
    assert schema_snapshot(engine) == before
    assert cli("db", "check").exit_code == 0
    # The foreign keys are back and enforced.
    import sqlalchemy

    with pytest.raises(sqlalchemy.exc.IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO messages (chat_id, direction, kind, body, created_at) "
                                "VALUES (999999, 'inbound', 'text', 'x', '2026-01-01 00:00:00')"))
