"""R15 "in the same transaction", proved by breaking the audit: one failing audit insert and the
whole batch it belongs to is gone, on every write path (bulk action, sweep batch, revert, ingest).

The test puts a trigger on ``audit_events`` that refuses the audit row of one chosen entity.
Batches before it are committed whole (change and audit), the batch that holds it leaves
nothing behind - not the change, not the R9 purge, not any other chat's audit row - and the
command stops with the database's error on stderr, never a traceback.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from freezegun import freeze_time
from sweep_helpers import T0, add_agent, add_chat, add_comment, count, minutes

from chatctl.storage.models import AuditEvent, Chat, Comment, CommentMention, Customer, Message, Notification


def refuse_audit_of(engine, entity_id: int | str, action: str) -> None:
    """From now on, inserting the audit row of ``action`` on entity ``entity_id`` fails."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(sa.text(
                "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$"))
            connection.execute(sa.text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW "
                f"WHEN (NEW.entity_id = '{entity_id}' AND NEW.action = '{action}') "
                "EXECUTE FUNCTION refuse_audit()"))
        else:
            connection.execute(sa.text(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events "
                f"WHEN NEW.entity_id = '{entity_id}' AND NEW.action = '{action}' "
                "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END"))


def statuses(engine, ids) -> dict[int, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(Chat.id, Chat.status).where(Chat.id.in_(ids))).all())


def audited(engine, action: str) -> set[int]:
    with engine.connect() as connection:
        return {int(entity) for entity in connection.execute(
            sa.select(AuditEvent.entity_id).where(AuditEvent.action == action)).scalars()}


def assert_failed_cleanly(result) -> None:
    """A database failure, reported without a traceback (exit 70 today, as an unexpected error)."""
    assert result.exit_code in (3, 70), result
    assert "Traceback" not in result.stderr
    assert "chatctl: " in result.stderr and "audit refused by the test" in result.stderr, result


def six_chats_with_comments(engine) -> list[int]:
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    chats = [add_chat(engine, agent=alice, created=T0 - minutes(120), agent_at=T0 - minutes(100))
             for _ in range(6)]
    for chat_id in chats:
        add_comment(engine, chat_id, alice, bob)
    return chats


def assert_batches(engine, chats, committed, failed, *, action: str, done: str, untouched: str) -> None:
    """The batch before the refused row committed whole; the batch holding it left nothing; the rest
    were never reached.  Every changed chat has its audit row and every audit row its change."""
    status = statuses(engine, chats)
    assert [status[c] for c in committed] == [done] * len(committed)
    assert [status[c] for c in chats if c not in committed] == [untouched] * (len(chats) - len(committed))
    assert failed and not set(failed) & audited(engine, action)
    assert audited(engine, action) & set(chats) == set(committed)


def test_r15_bulk_close_batch_rolls_back_with_its_audit(cli, engine):
    chats = six_chats_with_comments(engine)
    refuse_audit_of(engine, chats[3], "chats.close")
    result = cli("chats", "close", *map(str, chats), "--batch-size", "2", "-o", "json")
    assert_failed_cleanly(result)
    assert_batches(engine, chats, chats[:2], chats[2:4], action="chats.close", done="closed", untouched="live")
    second = chats[2:4]  # R9's purge belongs to the batch too
    assert count(engine, Comment, Comment.chat_id.in_(second)) == 2
    assert count(engine, CommentMention, CommentMention.chat_id.in_(second)) == 2
    assert count(engine, Notification, Notification.chat_id.in_(second), Notification.read_at.is_(None)) == 2


def test_r15_sweep_batch_rolls_back_with_its_audit(cli, engine):
    chats = six_chats_with_comments(engine)
    refuse_audit_of(engine, chats[3], "sweep.inactivity")
    result = cli("sweep", "run", "inactivity", "--as-of", T0.isoformat(), "--batch-size", "2", "-o", "json")
    assert_failed_cleanly(result)
    assert_batches(engine, chats, chats[:2], chats[2:4], action="sweep.inactivity", done="closed",
                   untouched="live")
    second = chats[2:4]
    assert count(engine, Comment, Comment.chat_id.in_(second)) == 2
    assert count(engine, Notification, Notification.chat_id.in_(second), Notification.read_at.is_(None)) == 2


def test_r15_revert_batch_rolls_back_with_its_audit(cli, engine):
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice, created=T0 - minutes(120)) for _ in range(6)]
    closed = cli("chats", "close", *map(str, chats), "-o", "json")
    assert closed.exit_code == 0, closed
    refuse_audit_of(engine, chats[3], "audit.revert")
    result = cli("audit", "revert", closed.json()["operation"], "--yes", "--batch-size", "2", "-o", "json")
    assert_failed_cleanly(result)
    # Which batches come before the refused row depends on the order a revert walks the operation
    # (newest first today); whatever it is, the batch holding chat 4 is gone whole, chat 3 with it.
    status = statuses(engine, chats)
    reverted = {c for c in chats if status[c] == "live"}
    assert reverted == audited(engine, "audit.revert") & set(chats)
    assert not reverted & set(chats[2:4]) and len(reverted) in (0, 2, 4)


@pytest.mark.parametrize("refused", ["chat_started", "presence"])
def test_r15_ingest_chunk_rolls_back_with_its_audit(cli, engine, refused):
    add_agent(engine, "alice", online=False)
    with engine.connect() as connection:
        customers = connection.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one()
    events = [{"type": "presence", "agent": "alice", "status": "online", "at": "2026-11-30T08:00:00Z"}]
    events += [{"type": "chat_started", "chat": 700 + n, "customer": f"+2782555000{n}", "channel": "webchat",
                "at": f"2026-11-30T09:0{n}:00Z", "text": "hello", "agent": "alice"} for n in range(3)]
    events += [{"type": "customer_message", "chat": 701, "text": "anyone?", "at": "2026-11-30T09:05:00Z"}]
    if refused == "chat_started":
        refuse_audit_of(engine, 702, "events.chat_started")
    else:
        refuse_audit_of(engine, "alice", "events.presence")  # agents are audited by handle
    with freeze_time("2026-11-30T10:00:00Z"):
        result = cli("events", "ingest", "-", input="".join(json.dumps(event) + "\n" for event in events))
    assert_failed_cleanly(result)
    # One chunk: not one of its chats, customers, messages, presence changes or audit rows remains.
    assert statuses(engine, [700, 701, 702]) == {}
    assert count(engine, Message, Message.chat_id.in_([700, 701, 702])) == 0
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(Customer)).scalar_one() == customers
        assert connection.execute(sa.text("SELECT presence FROM agents WHERE handle = 'alice'")).scalar_one() == \
            "offline"  # the chunk's presence change is gone with it
    assert count(engine, AuditEvent, AuditEvent.action.like("events.%")) == 0
