"""Each desk change exists once: the transitions of ``chats.transitions`` and
``tickets.transitions``, and their forms.

On PostgreSQL a transition runs as one statement (``changes.OneStatement``);
on SQLite its audit events are written by SQL before the UPDATE
(``changes.AuditFirst``); both stand beside the few set-based statements and
Python of ``changes.Portable``.  The tests here run the fast form and the
portable one of every transition on two copies of the same desk, on each
database, and compare every row they leave - chats, tickets, comments, tags,
notifications, messages - and every audit event (on SQLite, the very text
stored), so a fast form can never drift from the portable one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil

import pytest
import sqlalchemy
from sqlalchemy import insert, text

from chatctl.domain import changes
from chatctl.domain.audit import writer
from chatctl.domain.audit.writer import Stamp, jsonable
from chatctl.domain.changes import Guard, Ids
from chatctl.domain.chats import transitions as chats
from chatctl.domain.tickets import transitions as tickets
from chatctl.storage.dialects import dialect
from chatctl.storage.engine import create_engine
from chatctl.storage.models import Preference
from chatctl.storage.sql import execute
from conftest import on_postgres

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ODD = dt.timedelta(microseconds=123456)  # timestamps with microseconds: ISO text must match Python's
_names = itertools.count()

DESK = """
INSERT INTO agents (id, handle, name, role, presence, active, created_at) VALUES
  (1, 'alice', 'Alice', 'agent', 'online', true, :long_ago), (2, 'bob', 'Bob', 'supervisor', 'online', true, :long_ago),
  (3, 'carol', 'Carol', 'agent', 'offline', true, :long_ago), (4, 'dave', 'Dave', 'admin', 'online', true, :long_ago),
  (5, 'zoë', 'Zoë', 'agent', 'online', true, :long_ago);
INSERT INTO customers (id, display_name, address, created_at) VALUES
  (1, 'Customer 1', '+27820000001', :long_ago), (2, 'Customer 2', '+27820000002', :long_ago),
  (3, 'Customer 3', '+27820000003', :long_ago), (4, 'Customer 4', '+27820000004', :long_ago),
  (5, 'Customer 5', '+27820000005', :long_ago), (6, 'Customer 6', '+27820000006', :long_ago),
  (7, 'Customer 7', '+27820000007', :long_ago), (8, 'Customer 8', '+27820000008', :long_ago),
  (9, 'Customer 9', '+27820000009', :long_ago);
INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged, flagged_by,
                   flagged_at, flag_note, created_at, last_customer_message_at, last_agent_message_at,
                   last_activity_at, agent_seen_at, pending_since, closed_at, closed_by, close_reason) VALUES
  (1, 1, 'whatsapp', 'live', 1, :h3, 0, false, NULL, NULL, NULL, :h3, :h2, NULL, :h2, NULL, NULL, NULL, NULL, NULL),
  (2, 2, 'webchat', 'live', NULL, NULL, 0, true, 'ops:x', :h2, 'call back', :h3, :h3, NULL, :h3, NULL, NULL,
   NULL, NULL, NULL),
  (3, 3, 'sms', 'pending', 2, :h3, 1, false, NULL, NULL, NULL, :h3, :h3, :h2, :h2, :h2, :h2, NULL, NULL, NULL),
  (4, 4, 'whatsapp', 'closed', 1, :h3, 0, false, NULL, NULL, NULL, :h3, :h3, :h2, :h2, :h2, NULL, :h1, 'agent',
   'manual'),
  (5, 5, 'messenger', 'converted', NULL, NULL, 0, false, NULL, NULL, NULL, :h3, :h3, NULL, :h3, NULL, NULL, NULL,
   NULL, NULL),
  (6, 6, 'whatsapp', 'live', 2, :h3, 2, false, NULL, NULL, NULL, :h3, :h3, :h2, :h3, :h2, NULL, NULL, NULL, NULL),
  (7, 7, 'webchat', 'live', 1, :h3, 0, false, NULL, NULL, NULL, :h3, :h3, NULL, :h1, NULL, NULL, NULL, NULL, NULL),
  (8, 8, 'sms', 'closed', 2, :h3, 0, false, NULL, NULL, NULL, :h3, :h3, :h2, :h2, :h2, NULL, :h1, 'system',
   'inactivity'),
  (9, 9, 'whatsapp', 'pending', NULL, NULL, 0, true, 'ops:x', :h2, NULL, :h3, :h3, NULL, :h3, NULL, :h3, NULL,
   NULL, NULL);
INSERT INTO comments (id, chat_id, agent_id, body, created_at) VALUES
  (1, 1, 1, '@bob look', :h2), (2, 1, 2, 'on it', :h1), (3, 6, 2, '@alice @carol hm', :h2), (4, 8, 1, 'left', :h2),
  (5, 3, 2, 'pending note', :h2);
INSERT INTO comment_mentions (comment_id, agent_id, chat_id) VALUES (1, 2, 1), (3, 1, 6), (3, 3, 6), (4, 2, 8);
INSERT INTO notifications (id, agent_id, kind, chat_id, comment_id, created_at, read_at) VALUES
  (1, 2, 'tagged', 1, 1, :h2, NULL), (2, 1, 'tagged', 6, 3, :h2, :h1), (3, 3, 'tagged', 6, 3, :h2, NULL),
  (4, 2, 'tagged', 8, 4, :h2, NULL);
INSERT INTO tickets (id, chat_id, status, reason, agent_id, created_at, closed_at, archived_at) VALUES
  (1, 5, 'open', 'no_agents', NULL, :d100, NULL, NULL), (2, 7, 'closed', 'manual', 1, :d100, :d50, NULL),
  (3, 4, 'closed', 'manual', 2, :d100, :d50, :d10)
"""
# PostgreSQL's serial ids go on after the explicit ones (SQLite's do by themselves).
SEQUENCES = """
SELECT setval(pg_get_serial_sequence('comments', 'id'), 5);
SELECT setval(pg_get_serial_sequence('notifications', 'id'), 4);
SELECT setval(pg_get_serial_sequence('tickets', 'id'), 3)
"""


def _admin(server: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(server + "/postgres", autocommit=True) as connection:
        connection.execute(statement)


def _load_desk(url: str) -> None:
    engine = create_engine(url)
    hours = {f"h{n}": T0 - dt.timedelta(hours=n) + ODD for n in (1, 2, 3)}
    days = {f"d{n}": T0 - dt.timedelta(days=n) for n in (10, 50, 100)}
    statements = DESK.split(";\n") + (SEQUENCES.split(";\n") if engine.dialect.name == "postgresql" else [])
    with engine.begin() as connection:
        for statement in statements:
            execute(connection, statement, {"long_ago": T0 - dt.timedelta(days=400), **hours, **days})
    engine.dispose()


@pytest.fixture(scope="module")
def pg_desk(pg_server, pg_template):
    """A small desk in every state a transition meets, as a template database."""
    name = f"transitions_{os.getpid()}"
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name}")
    _admin(pg_server, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    _load_desk(f"{pg_server}/{name}")
    yield name
    _admin(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def sqlite_desk(sqlite_template, tmp_path_factory):
    """The same desk as a SQLite file."""
    path = tmp_path_factory.mktemp("transitions") / "desk.db"
    shutil.copy(sqlite_template, path)
    _load_desk(f"sqlite:///{path}")
    return path


@pytest.fixture
def two_desks(backend, request, tmp_path):
    """Two engines on two fresh copies of the desk, on the parametrised database."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_desk")
        engines = []
        for copy in range(2):
            shutil.copy(template, tmp_path / f"desk{copy}.db")
            engines.append(create_engine(f"sqlite:///{tmp_path / f'desk{copy}.db'}"))
        yield engines
        for engine in engines:
            engine.dispose()
        return
    on_postgres(request)
    server, template = request.getfixturevalue("pg_server"), request.getfixturevalue("pg_desk")
    engines = []
    names = []
    for _ in range(2):
        name = f"transitions_copy_{os.getpid()}_{next(_names)}"
        _admin(server, f"CREATE DATABASE {name} TEMPLATE {template}")
        names.append(name)
        engines.append(create_engine(f"{server}/{name}"))
    yield engines
    for engine, name in zip(engines, names):
        engine.dispose()
        _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


STAMP = Stamp("ops:tester", T0 + ODD, "01TESTOPERATION0000000000A", "test.change")
ROUND = Stamp("system", T0, "01TESTOPERATION0000000000B", "sweep.test")  # no microseconds
EVERY_CHAT = Ids(list(range(1, 11)))  # 10 does not exist
EVERY_TICKET = Ids([1, 2, 3, 4])
IDLE = Guard("chats.last_activity_at < :idle_cutoff", {"idle_cutoff": T0 - dt.timedelta(minutes=90)})

CASES = {
    "close by ids": lambda c, form: chats.end(c, EVERY_CHAT, STAMP, chats.Close("agent", "manual"), form=form,
                                              guard=Guard("chats.flagged = false")),
    "close flagged too": lambda c, form: chats.end(c, EVERY_CHAT, ROUND, chats.Close("agent", "stale"), form=form,
                                                   reason="stale"),
    "close a sweep's claim": lambda c, form: chats.end(c, IDLE.claim(0, 4), ROUND, chats.Close("system", "inactivity"),
                                                       guard=IDLE, reason="inactivity", form=form),
    "close the claim after id 3": lambda c, form: chats.end(c, IDLE.claim(3, 3), ROUND,
                                                            chats.Close("system", "inactivity"), guard=IDLE,
                                                            form=form),
    "convert for the agent": lambda c, form: chats.end(c, EVERY_CHAT, STAMP, chats.Convert("manual", keep_agent=True),
                                                       form=form),
    "convert for nobody": lambda c, form: chats.end(c, IDLE.claim(0, 10), ROUND,
                                                    chats.Convert("no_agents", keep_agent=False), guard=IDLE,
                                                    reason="no_agents", form=form),
    "purge ended chats": lambda c, form: chats.purge(c, EVERY_CHAT, ROUND, reason="clean-up of a closed or converted chat", form=form),
    "reopen": lambda c, form: chats.reopen(c, EVERY_CHAT, STAMP, agent_id=3, reason="reopened for carol", form=form),
    "pending": lambda c, form: chats.mark_pending(c, EVERY_CHAT, STAMP, form=form),
    "flag": lambda c, form: chats.flag(c, EVERY_CHAT, STAMP, note="VIP", form=form),
    "flag a claim, with a note to escape": lambda c, form: chats.flag(
        c, IDLE.claim(1, 5), ROUND, note='café "VIP"\n\t\\ ☕ 𝄞', form=form),
    "unflag": lambda c, form: chats.unflag(c, EVERY_CHAT, STAMP, form=form),
    "assign by plan, counting": lambda c, form: chats.assign(c, {1: 2, 2: 1, 3: 4, 4: 1, 6: 2, 10: 1}, ROUND,
                                                             reassign_counts={1: 1, 2: 0, 3: 2, 4: 1, 6: 3, 10: 0},
                                                             reason="least-loaded", form=form),
    "assign one agent": lambda c, form: chats.assign(c, dict.fromkeys(range(1, 11), 1), STAMP,
                                                     reason="assigned to alice", form=form),
    "seen": lambda c, form: chats.mark_seen(c, EVERY_CHAT, STAMP, agent_id=1, form=form),
    "reply with a template": lambda c, form: chats.reply(c, EVERY_CHAT, STAMP, agent_id=2, kind="template", body="",
                                                         template="hello", template_params={"name": "Sam"},
                                                         reason="template hello sent by bob", form=form),
    "comment with tags": lambda c, form: chats.comment(c, EVERY_CHAT, STAMP, author_id=1, body="@bob @dave see",
                                                       tagged=[2, 4], reason="comment by alice", form=form),
    "comment without tags": lambda c, form: chats.comment(c, Ids([7]), ROUND, author_id=2, body="quiet", tagged=[],
                                                          form=form),
    "ticket close": lambda c, form: tickets.close(c, EVERY_TICKET, STAMP, reason="by hand", form=form),
    "ticket reopen": lambda c, form: tickets.reopen(c, EVERY_TICKET, STAMP, form=form),
    "ticket archive claim": lambda c, form: tickets.archive(
        c, Guard("tickets.created_at < :cutoff", {"cutoff": T0}).claim(0, 5), ROUND,
        guard=Guard("tickets.created_at < :cutoff", {"cutoff": T0}), reason="ticket_archive_after", form=form),
    "ticket unarchive": lambda c, form: tickets.unarchive(c, EVERY_TICKET, STAMP, form=form),
    "ticket assign": lambda c, form: tickets.assign(c, EVERY_TICKET, STAMP, agent_id=1, form=form),
    "ticket take": lambda c, form: tickets.assign(c, EVERY_TICKET, STAMP, agent_id=3, only_unassigned=True,
                                                  form=form),
    "ticket assign to zoë, a claim": lambda c, form: tickets.assign(
        c, Guard("tickets.status = 'closed'").claim(0, 3), ROUND, agent_id=5, form=form),
}
# The transitions with a step that exists as Python and PostgreSQL SQL only (tickets, messages,
# comments), or with nothing to set but steps (the clean-up's purge): on SQLite they run in the
# portable form.  The closes' R9 purge has SQLite's form too.
WITH_STEPS = {"convert for the agent", "convert for nobody", "purge ended chats", "reply with a template",
              "comment with tags", "comment without tags"}
FAST = {"postgresql": changes.OneStatement(), "sqlite": changes.AuditFirst()}

TABLES = {
    "chats": "SELECT * FROM chats ORDER BY id",
    "tickets": "SELECT chat_id, status, reason, agent_id, created_at, closed_at, archived_at FROM tickets "
               "ORDER BY chat_id",
    "comments": "SELECT chat_id, agent_id, body, created_at FROM comments ORDER BY chat_id, body",
    "tags": "SELECT c.chat_id, c.body, m.agent_id, m.chat_id AS tag_chat FROM comment_mentions m "
            "JOIN comments c ON c.id = m.comment_id ORDER BY 1, 2, 3",
    "notifications": "SELECT n.agent_id, n.kind, n.chat_id, c.body, n.created_at, n.read_at FROM notifications n "
                     "LEFT JOIN comments c ON c.id = n.comment_id ORDER BY n.chat_id, n.agent_id, c.body, n.id",
    "messages": "SELECT chat_id, direction, agent_id, kind, template_name, template_params, body, created_at "
                "FROM messages ORDER BY chat_id",
}


def _snapshot(engine) -> dict:
    """Every row a transition can touch, with serial ids of new rows replaced by what they belong to.

    On SQLite each audit event also keeps its before and after as stored (``before_text``), so the
    forms are compared byte for byte.
    """
    with engine.connect() as connection:
        state = {name: [tuple(row) for row in connection.execute(text(sql))] for name, sql in TABLES.items()}
        ticket_chat = dict(connection.execute(text("SELECT id, chat_id FROM tickets")).all())
        comment_chat = dict(connection.execute(text("SELECT id, chat_id FROM comments")).all())
        events = []
        for row in connection.execute(text("SELECT at, actor, action, entity_type, entity_id, before, after, "
                                           "operation_id, reason FROM audit_events ORDER BY id")).mappings():
            event = dict(row)
            if event["entity_type"] == "ticket":
                event["entity_id"] = f"ticket of chat {ticket_chat[int(event['entity_id'])]}"
            for side in ("before", "after"):
                stored = event[side]
                if isinstance(stored, str):  # SQLite: the text itself
                    event[f"{side}_text"] = stored
                    stored = json.loads(stored)
                values = dict(stored) if stored is not None else None
                if values and "ticket_id" in values:
                    values["ticket_id"] = f"ticket of chat {ticket_chat[values['ticket_id']]}"
                if values and "comment_id" in values:
                    values["comment_id"] = f"comment on chat {comment_chat[values['comment_id']]}"
                event[side] = values
            events.append(event)
        state["audit"] = events  # in the order they were written: audit revert walks them by id
    return state


@pytest.mark.parametrize("case", list(CASES))
def test_r15_fast_and_portable_forms_leave_identical_rows_and_audit(two_desks, backend, case, monkeypatch):
    fast_engine, portable_engine = two_desks
    recorded = []
    record = writer.record
    monkeypatch.setattr(writer, "record", lambda connection, events: recorded.append(1) or record(connection, events))
    outcomes = []
    for engine, form in ((fast_engine, FAST[backend]), (portable_engine, changes.Portable())):
        with engine.begin() as connection:
            outcome = CASES[case](connection, form)
        outcomes.append((outcome.claimed, outcome.last_id, outcome.changed,
                         {name: sorted(made) for name, made in outcome.made.items()}))
        if form is FAST[backend]:
            fast_recorded, recorded[:] = len(recorded), []
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][2], f"{case}: the desk should give the transition something to change"
    # The fast form writes the audit events in SQL, not row by row in Python (SQLite: unless there are steps).
    assert fast_recorded == (1 if backend == "sqlite" and case in WITH_STEPS else 0)
    fast, portable = _snapshot(fast_engine), _snapshot(portable_engine)
    for table in (*TABLES, "audit"):
        assert fast[table] == portable[table], table
    assert len(fast["audit"]) >= len(outcomes[0][2])


def test_r9_both_forms_record_the_purge_counts_in_after(two_desks, backend):
    """The close of chat 1 (two comments, one tag, one unread tag notification) in both forms,
    on both databases: the purge's counts join the close's audit event."""
    for engine, form in zip(two_desks, (FAST[backend], changes.Portable())):
        with engine.begin() as connection:
            chats.end(connection, Ids([1]), STAMP, chats.Close("agent", "manual"), form=form)
        (event,) = _snapshot(engine)["audit"]
        assert event["after"] == {"status": "closed", "closed_at": "2026-11-25T10:00:00.123456+00:00",
                                  "closed_by": "agent", "close_reason": "manual", "comments_removed": 2,
                                  "tags_removed": 1, "notifications_read": 1}
        assert event["before"] == {"status": "live", "closed_at": None, "closed_by": None, "close_reason": None}


def test_the_fast_form_is_chosen_by_dialect(engine, backend):
    with engine.connect() as connection:
        form = changes.FORMS(connection)
    assert type(form) is type(FAST[backend])


@pytest.mark.parametrize("instant", [T0, T0 + ODD, T0 + dt.timedelta(microseconds=1),
                                     T0 + dt.timedelta(microseconds=500000),
                                     dt.datetime(2026, 3, 29, 1, 30, 5, 10, tzinfo=dt.timezone(dt.timedelta(hours=2)))])
def test_iso_utc_sql_renders_a_stored_timestamp_as_python_does(engine, instant):
    """A timestamp as the desk stores it (naive UTC text on SQLite, timestamptz on PostgreSQL)."""
    with engine.begin() as connection:
        connection.execute(insert(Preference).values(key="instant", value="", updated_at=instant, updated_by="test"))
        rendered = connection.execute(text(
            f"SELECT {dialect(connection).iso_utc('preferences.updated_at')} FROM preferences "
            "WHERE key = 'instant'")).scalar_one()
    assert rendered == jsonable(instant)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_r15_the_sqlite_form_fails_a_batch_whose_changed_rows_are_not_those_audited(two_desks, backend):
    """The audit events are written before the UPDATE: should it change other rows than those audited
    (here a trigger skips one), the batch fails whole and nothing is left changed or audited."""
    engine = two_desks[0]
    with engine.begin() as connection:
        connection.execute(text("CREATE TRIGGER skip_two BEFORE UPDATE ON tickets WHEN OLD.id = 2 "
                                "BEGIN SELECT RAISE(IGNORE); END"))
    before = _snapshot(engine)
    with pytest.raises(RuntimeError, match="2 tickets to change: 1 changed, 2 audit events written"):
        with engine.begin() as connection:
            tickets.archive(connection, Ids([1, 2]), STAMP, form=changes.AuditFirst())
    assert _snapshot(engine) == before


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("form", [changes.AuditFirst(), changes.Portable()], ids=lambda form: type(form).__name__)
def test_sqlite_reads_an_assignment_plan_once_per_statement(two_desks, backend, form):
    """The plan (a JSON document) is never re-read for each chat a statement joins it to: that
    made an assignment sweep's batch quadratic, minutes for 15,000 chats."""
    engine = two_desks[0]
    sent = []
    listen = sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    listen(lambda connection, cursor, statement, parameters, context, many: sent.append((statement, parameters)))
    with engine.begin() as connection:
        chats.assign(connection, {1: 2, 2: 1, 3: 4, 6: 2}, ROUND, reassign_counts={1: 1, 2: 0, 3: 2, 6: 3},
                     form=form)
    planned = [(statement, parameters) for statement, parameters in sent if "json_each(?)" in statement]
    assert planned
    with engine.connect() as connection:
        for statement, parameters in planned:
            loops = [detail for _id, parent, _unused, detail in
                     connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters) if parent == 0]
            tables = [index for index, detail in enumerate(loops)
                      if detail.startswith(("SCAN ", "SEARCH ")) and "json_each" not in detail]
            rereads = [index for index, detail in enumerate(loops) if detail.startswith("SCAN json_each")]
            assert not tables or not rereads or max(rereads) < min(tables), (statement, loops)
