"""D9 as a property: for random sequences of commands and sweeps on a small desk, reverting the
last operation, then reverting that revert, leaves `db check` clean and every entity as it was
before (then after) that operation -- except the items the revert reports irreversible.

Seeded, with the same number of examples on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from chatctl.storage.models import (Agent, AuditEvent, Chat, Comment, CommentMention, Customer, Message,
                                    Notification, Operation, Preference, SweepLease, SweepRun, Ticket)

UTC = dt.timezone.utc
EXAMPLES = 20
CHATS = (1, 2, 3, 4)
HANDLES = ("alice", "bob", "sam")
# Compared entities: table -> its key columns.
ENTITIES = {Chat: ("id",), Ticket: ("id",), Comment: ("id",), CommentMention: ("comment_id", "agent_id"),
            Notification: ("id",), Message: ("id",), Agent: ("id",), Preference: ("key",)}

chat_id = st.sampled_from([str(i) for i in CHATS])
ticket_id = st.sampled_from(["1", "2", "3"])
handle = st.sampled_from(HANDLES)
command = st.one_of(
    st.tuples(st.sampled_from(["flag", "unflag", "pending", "close", "convert"]), chat_id)
    .map(lambda c: ["chats", c[0], c[1]]),
    st.tuples(st.sampled_from(["close", "convert", "flag"]), chat_id, chat_id)
    .map(lambda c: ["chats", c[0], c[1], c[2], "--batch-size", "1"]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "reopen", c[0], "--agent", c[1]]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "assign", c[0], "--agent", c[1]]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "comment", c[0], "--as", c[1], "--text", "@bob look"]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "reply", c[0], "--as", c[1], "--text", "hi"]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "seen", c[0], "--as", c[1]]),
    st.tuples(st.sampled_from(["close", "reopen", "archive", "unarchive"]), ticket_id)
    .map(lambda c: ["tickets", c[0], c[1]]),
    st.tuples(ticket_id, handle).map(lambda c: ["tickets", "assign", c[0], "--agent", c[1]]),
    st.sampled_from(["+10m", "+40m", "+3h", "+2d", "+100d"]).map(lambda at: ["sweep", "run", "--as-of", at]),
    st.sampled_from(["close", "ticket"]).map(lambda v: ["prefs", "set", "inactivity_action", v]),
    st.tuples(handle, st.sampled_from(["online", "offline"])).map(lambda c: ["agents", "set-status", c[0], c[1]]),
)

# The last command, the one reverted: mostly one that changes several things at once.
last_command = st.one_of(
    st.tuples(st.sampled_from(["close", "convert"]), chat_id, chat_id)
    .map(lambda c: ["chats", c[0], c[1], c[2], "--batch-size", "1"]),
    st.sampled_from(["+40m", "+3h", "+2d", "+100d"]).map(lambda at: ["sweep", "run", "--as-of", at]),
    st.tuples(chat_id, handle).map(lambda c: ["chats", "comment", c[0], "--as", c[1], "--text", "@bob look"]),
    command,
)


def reset(engine) -> None:
    """An empty desk, then three agents and four live chats waiting on their customers or answered."""
    now = dt.datetime.now(UTC)
    with engine.begin() as connection:
        for model in (Notification, CommentMention, Comment, Message, AuditEvent, Operation, SweepRun, SweepLease,
                      Ticket, Chat, Customer, Agent, Preference):
            connection.execute(sa.delete(model))
        for number, (name, role) in enumerate((("alice", "agent"), ("bob", "agent"), ("sam", "supervisor")), 1):
            connection.execute(sa.insert(Agent).values(id=number, handle=name, name=name.title(), role=role,
                                                       presence="online", active=True,
                                                       created_at=now - dt.timedelta(days=9)))
        for chat in CHATS:
            created = now - dt.timedelta(minutes=20 * chat)
            connection.execute(sa.insert(Customer).values(id=chat, display_name=f"C{chat}",
                                                          address=f"+2782000000{chat}", created_at=created))
            answered = created + dt.timedelta(minutes=1) if chat % 2 else None
            connection.execute(sa.insert(Chat).values(
                id=chat, customer_id=chat, channel="webchat", status="live", agent_id=1 + chat % 2,
                assigned_at=created, reassign_count=0, flagged=False, created_at=created,
                last_customer_message_at=created, last_agent_message_at=answered,
                last_activity_at=answered or created, agent_seen_at=answered))
            connection.execute(sa.insert(Message).values(chat_id=chat, direction="inbound", kind="text", body="hi",
                                                         created_at=created))


def state(engine) -> dict:
    """Every compared row, keyed by (table, key).  Preferences compare by value: their updated_at and
    updated_by name whoever wrote them last, which after a revert is the revert."""
    rows = {}
    with engine.connect() as connection:
        for model, keys in ENTITIES.items():
            for row in connection.execute(sa.select(model.__table__)).mappings():
                record = dict(row)
                if model is Preference:
                    record = {"key": record["key"], "value": record["value"]}
                rows[(model.__table__.name, tuple(record[k] for k in keys))] = record
    return rows


def irreversible_rows(before: dict, results: list[dict]) -> set:
    """The rows of the items a revert reported irreversible, and what hangs off them."""
    chats, comments = set(), set()
    for item in results:
        if item["result"] != "skipped" or not (item["reason"] or "").startswith("irreversible"):
            continue
        kind, _, rest = item["id"].partition(":")
        number, _, part = rest.partition(":")
        if kind == "comment":
            comments.add(int(number))
        elif kind == "chat" and part == "comments":
            comments |= {key[0] for (table, key), row in before.items()
                         if table == "comments" and row["chat_id"] == int(number)}
        elif kind == "chat":
            chats.add(int(number))
    excluded = set()
    for (table, key), row in before.items():
        if (table == "chats" and key[0] in chats) or (table == "messages" and row["chat_id"] in chats) \
                or (table == "comments" and key[0] in comments) \
                or (table in ("comment_mentions", "notifications") and row.get("comment_id") in comments):
            excluded.add((table, key))
    return excluded


def assert_same(expected: dict, actual: dict, excluded: set, what: str) -> None:
    keys = (set(expected) | set(actual)) - excluded
    differing = sorted((key for key in keys if expected.get(key) != actual.get(key)), key=str)
    assert not differing, (what, [(key, expected.get(key), actual.get(key)) for key in differing[:5]])


def operation_ids(engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(Operation.id)).scalars())


def db_check_clean(cli) -> None:
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 0, result


@pytest.mark.slow
def test_d9_reverting_the_last_operation_and_its_revert_restores_every_entity(cli, engine):
    @seed(20261130)
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(prefix=st.lists(command, max_size=4), last=last_command, batch_size=st.integers(1, 4))
    def scenario(prefix, last, batch_size):
        reset(engine)
        for words in prefix:
            cli(*words)
        before, known = state(engine), operation_ids(engine)
        cli(*last)
        after = state(engine)
        new = operation_ids(engine) - known
        if not new:  # refused as bad input before anything was written
            assert_same(before, after, set(), "a command without an operation changed the desk")
            return
        (operation,) = new
        with engine.connect() as connection:
            written = connection.execute(sa.select(sa.func.count()).select_from(AuditEvent)
                                         .where(AuditEvent.operation_id == operation)).scalar_one()
        if not written:
            assert_same(before, after, set(), "nothing changes without its audit event (R15)")
            return
        undone = cli("audit", "revert", operation, "--yes", "--batch-size", str(batch_size), "-o", "json")
        assert undone.exit_code == 0, (last, undone)
        db_check_clean(cli)
        assert_same(before, state(engine), irreversible_rows(before, undone.json()["results"]),
                    f"revert of {last}")
        if not undone.json()["summary"]["changed"]:
            return
        redone = cli("audit", "revert", undone.json()["operation"], "--yes", "--batch-size", str(batch_size),
                     "-o", "json")
        assert redone.exit_code == 0, (last, redone)
        db_check_clean(cli)
        assert_same(after, state(engine), set(), f"revert of the revert of {last}")

    scenario()
