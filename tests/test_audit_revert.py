"""`audit revert` (SPEC 3 "Undo", D9, D17) and readable audit rows, on SQLite and PostgreSQL.

Most desks here are built the way an ops person builds one -- agents added,
traffic ingested, commands run -- so the events reverted are exactly what
the commands write.  A few tests write events with ``audit.record`` to pin a
rule independently of the commands.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import sqlalchemy as sa

from chatctl.domain.audit import operations
from chatctl.domain.audit import writer as audit
from chatctl.storage.models import (AuditEvent, Chat, Comment, CommentMention, Customer, Message, Notification,
                                    Preference, Ticket)

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # a Monday, inside the default business hours
LATER = "2026-11-30T12:00:00Z"  # three hours on: every chat is idle and unanswered customers waited


def ingest(cli, *events) -> None:
    result = cli("events", "ingest", "-", input="\n".join(json.dumps(event) for event in events))
    assert result.exit_code == 0, result


def desk(cli, chats=(1, 2), *, answered=True, channel="webchat") -> None:
    """alice and bob online; each chat started by its customer at 09:00 and answered by alice at 09:01."""
    for handle in ("alice", "bob"):
        assert cli("agents", "add", handle, "--name", handle.title(), "--role", "agent", "--online").exit_code == 0
    events = []
    for chat_id in chats:
        events.append({"type": "chat_started", "chat": chat_id, "customer": f"+2782000000{chat_id}",
                       "channel": channel, "agent": "alice", "text": "Hi", "at": "2026-11-30T09:00:00Z"})
        if answered:
            events.append({"type": "agent_message", "chat": chat_id, "agent": "alice", "text": "Hello!",
                           "at": "2026-11-30T09:01:00Z"})
    ingest(cli, *events)


def chat(engine, chat_id):
    with engine.connect() as connection:
        return connection.execute(sa.select(Chat.__table__).where(Chat.id == chat_id)).mappings().one()


def tickets(engine, chat_id=None):
    with engine.connect() as connection:
        query = sa.select(Ticket.__table__).order_by(Ticket.id)
        if chat_id is not None:
            query = query.where(Ticket.chat_id == chat_id)
        return connection.execute(query).mappings().all()


def count(engine, model, *where) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()


def revert(cli, operation, *args):
    return cli("audit", "revert", operation, "--yes", "-o", "json", *args)


def by_id(result) -> dict:
    return {item["id"]: item for item in result.json()["results"]}


def check_clean(cli) -> None:
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 0, result
    assert all(row["ok"] for row in result.json()), result.stdout


# -- the observations ------------------------------------------------------------------
def test_d9_reverting_an_inactivity_ticket_leaves_no_open_ticket_on_a_live_chat(cli, engine):
    desk(cli, chats=(1,))
    assert cli("prefs", "set", "inactivity_action", "ticket").exit_code == 0
    run = cli("sweep", "run", "--as-of", LATER, "-o", "json")
    assert run.json()["jobs"]["inactivity"]["changed"] == 1, run
    [ticket] = tickets(engine, 1)

    undone = revert(cli, run.json()["run_id"])
    assert undone.exit_code == 0, undone
    assert by_id(undone)["chat:1"]["result"] == "changed"
    assert by_id(undone)[f"ticket:{ticket['id']}"]["result"] == "changed"
    assert chat(engine, 1)["status"] == "live"
    assert tickets(engine, 1) == []
    check_clean(cli)

    # Everything downstream agrees the chat is an ordinary idle live chat again.
    explain = cli("sweep", "explain", "1", "--as-of", LATER, "-o", "json")
    assert explain.json()["job"] == "inactivity" and "convert" in explain.json()["action"], explain
    dry = cli("sweep", "run", "inactivity", "--dry-run", "--as-of", LATER, "-o", "json")
    assert dry.json()["jobs"]["inactivity"]["would_change"] == 1
    assert cli("sweep", "run", "inactivity", "--max-changes", "0", "--as-of", LATER).exit_code == 5
    converted = cli("chats", "convert", "1", "-o", "json")
    assert by_id(converted)[1]["result"] == "changed", converted
    assert chat(engine, 1)["status"] == "converted" and len(tickets(engine, 1)) == 1
    check_clean(cli)


def test_d9_after_reverting_an_inactivity_ticket_the_next_sweep_changes_what_it_claims(cli, engine):
    desk(cli, chats=(1, 2))
    assert cli("prefs", "set", "inactivity_action", "ticket").exit_code == 0
    run = cli("sweep", "run", "inactivity", "--as-of", LATER, "-o", "json")
    assert revert(cli, run.json()["run_id"]).exit_code == 0
    again = cli("sweep", "run", "inactivity", "--as-of", LATER, "-o", "json").json()["jobs"]["inactivity"]
    assert (again["matched"], again["changed"], again["skipped"]) == (2, 2, 0)
    after = cli("sweep", "run", "inactivity", "--as-of", LATER, "-o", "json").json()["jobs"]["inactivity"]
    assert (after["matched"], after["changed"]) == (0, 0)
    check_clean(cli)


def test_d9_reverting_a_reply_is_irreversible_and_keeps_last_agent_message_at(cli, engine):
    desk(cli, chats=(1,))
    replied = cli("chats", "reply", "1", "--as", "alice", "--text", "Still there?", "-o", "json")
    assert replied.exit_code == 0, replied
    sent = chat(engine, 1)
    undone = revert(cli, replied.json()["operation"])
    assert undone.exit_code == 0, undone
    [item] = undone.json()["results"]
    assert (item["id"], item["result"]) == ("chat:1", "skipped")
    assert item["reason"].startswith("irreversible")
    assert undone.json()["summary"]["changed"] == 0
    assert chat(engine, 1) == sent
    with engine.connect() as connection:
        last = connection.execute(sa.select(sa.func.max(Message.created_at))
                                  .where(Message.chat_id == 1, Message.direction == "outbound")).scalar_one()
    assert chat(engine, 1)["last_agent_message_at"] == last
    assert count(engine, AuditEvent, AuditEvent.operation_id == undone.json()["operation"]) == 0


def test_d9_reverting_a_comment_removes_it_with_its_tags_and_notification(cli, engine):
    desk(cli, chats=(1,))
    before = chat(engine, 1)
    commented = cli("chats", "comment", "1", "--as", "alice", "--text", "@bob can you look?", "-o", "json")
    assert commented.exit_code == 0, commented
    assert count(engine, Comment) == count(engine, CommentMention) == count(engine, Notification) == 1
    with engine.connect() as connection:
        comment_id = connection.execute(sa.select(Comment.id)).scalar_one()
        notification_id = connection.execute(sa.select(Notification.id)).scalar_one()

    undone = revert(cli, commented.json()["operation"])
    assert undone.exit_code == 0, undone
    [item] = undone.json()["results"]
    assert item["result"] == "changed" and f"removed comment {comment_id}" in item["reason"]
    assert count(engine, Comment) == count(engine, CommentMention) == count(engine, Notification) == 0
    assert chat(engine, 1) == before
    assert cli("chats", "list", "tagged", "--agent", "bob", "-o", "json").json() == []
    check_clean(cli)

    # Reverting the revert puts the comment, its tag and notification back with their ids.
    redone = revert(cli, undone.json()["operation"])
    assert redone.exit_code == 0, redone
    with engine.connect() as connection:
        assert connection.execute(sa.select(Comment.id)).scalars().all() == [comment_id]
        assert connection.execute(sa.select(Notification.id, Notification.read_at)).all() == [(notification_id, None)]
    assert count(engine, CommentMention) == 1
    assert [row["id"] for row in cli("chats", "list", "tagged", "--agent", "bob", "-o", "json").json()] == [1]


def test_d9_a_comment_whose_notification_was_read_since_is_a_conflict(cli, engine):
    desk(cli, chats=(1,))
    commented = cli("chats", "comment", "1", "--as", "alice", "--text", "@bob look", "-o", "json")
    assert cli("notifications", "read", "--agent", "bob", "--all").exit_code == 0
    undone = revert(cli, commented.json()["operation"])
    assert undone.exit_code == 1, undone
    [item] = undone.json()["results"]
    assert item["result"] == "refused" and item["reason"].startswith("conflict")
    assert count(engine, Comment) == 1


def test_d9_a_close_that_purged_comments_restores_the_chat_and_reports_each_comment(cli, engine):
    desk(cli, chats=(1,))
    for text in ("@bob first", "@bob second"):
        assert cli("chats", "comment", "1", "--as", "alice", "--text", text).exit_code == 0
    with engine.connect() as connection:
        comment_ids = connection.execute(sa.select(Comment.id).order_by(Comment.id)).scalars().all()
    closed = cli("chats", "close", "1", "-o", "json")
    assert closed.exit_code == 0, closed
    undone = revert(cli, closed.json()["operation"])
    assert undone.exit_code == 0, undone
    results = by_id(undone)
    assert results["chat:1"]["result"] == "changed"
    purged = {key: item for key, item in results.items() if key != "chat:1"}
    assert purged and all(item["result"] == "skipped" and item["reason"].startswith("irreversible")
                          for item in purged.values())
    assert set(purged) == {f"comment:{i}" for i in comment_ids} or set(purged) == {"chat:1:comments"}
    assert chat(engine, 1)["status"] == "live" and chat(engine, 1)["closed_at"] is None
    assert count(engine, Comment) == 0
    check_clean(cli)


def test_d9_a_conversion_whose_ticket_changed_since_is_left_whole(cli, engine):
    desk(cli, chats=(1,))
    converted = cli("chats", "convert", "1", "-o", "json")
    [ticket] = tickets(engine, 1)
    assert cli("tickets", "close", str(ticket["id"])).exit_code == 0
    undone = revert(cli, converted.json()["operation"])
    assert undone.exit_code == 1, undone
    assert {item["result"] for item in undone.json()["results"]} == {"refused"}
    assert all("conflict" in item["reason"] for item in undone.json()["results"])
    assert chat(engine, 1)["status"] == "converted"
    assert tickets(engine, 1)[0]["status"] == "closed"
    check_clean(cli)


def test_d9_reverting_a_revert_restores_the_original_with_the_original_ids(cli, engine):
    desk(cli, chats=(1, 2))
    converted = cli("chats", "convert", "1", "2", "-o", "json")
    original = {row["chat_id"]: dict(row) for row in tickets(engine)}
    undone = revert(cli, converted.json()["operation"])
    assert undone.exit_code == 0 and tickets(engine) == [], undone
    redone = revert(cli, undone.json()["operation"])
    assert redone.exit_code == 0, redone
    assert {row["chat_id"]: dict(row) for row in tickets(engine)} == original
    assert {chat(engine, i)["status"] for i in (1, 2)} == {"converted"}
    check_clean(cli)
    # and once more: the third revert removes them again
    third = revert(cli, redone.json()["operation"])
    assert third.exit_code == 0 and tickets(engine) == [], third
    check_clean(cli)


def test_d9_ingested_traffic_is_irreversible_but_presence_is_restored(cli, engine):
    for handle in ("alice", "bob"):
        assert cli("agents", "add", handle, "--name", handle.title()).exit_code == 0
    result = cli("events", "ingest", "-", "-o", "json", input="\n".join(json.dumps(e) for e in [
        {"type": "presence", "agent": "alice", "status": "online", "at": "2026-11-30T08:00:00Z"},
        {"type": "chat_started", "chat": 1, "customer": "+27820000001", "channel": "sms", "text": "Hi",
         "at": "2026-11-30T09:00:00Z"},
        {"type": "chat_started", "chat": 2, "customer": "+27820000002", "channel": "sms", "text": "Hi",
         "at": "2026-11-30T20:00:00Z"},  # out of hours: arrives as a ticket
    ]))
    operation = result.json()["operation"]
    undone = revert(cli, operation)
    assert undone.exit_code == 0, undone
    results = by_id(undone)
    assert results["agent:alice"]["result"] == "changed"
    assert results["chat:1"]["result"] == results["chat:2"]["result"] == "skipped"
    assert all(item["reason"].startswith("irreversible") for key, item in results.items() if key != "agent:alice")
    assert cli("agents", "list", "-o", "json").json()[0]["presence"] == "offline"
    assert chat(engine, 2)["status"] == "converted" and len(tickets(engine, 2)) == 1
    check_clean(cli)


def test_d17_reverting_a_pruned_operation_is_refused_with_reason_pruned(cli, engine):
    desk(cli, chats=(1,))
    flagged = cli("chats", "flag", "1", "-o", "json").json()["operation"]
    with engine.begin() as connection:
        operations.mark_pruned(connection, [flagged], pruned_by="01PRUNE0000000000000000000", now=T0)
    undone = cli("audit", "revert", flagged, "--yes")
    assert undone.exit_code == 1, undone
    assert "pruned" in undone.stderr and "Traceback" not in undone.stderr
    assert chat(engine, 1)["flagged"] is True


# -- the revert rules -----------------------------------------------------------------------------
def test_r15_revert_restores_before_values_and_audits_itself(cli, engine):
    desk(cli, chats=(1, 2, 3))
    closed = cli("chats", "close", "1", "2", "3", "--reason", "spam", "-o", "json")
    undone = revert(cli, closed.json()["operation"])
    assert undone.exit_code == 0, undone
    assert undone.json()["summary"] == {"changed": 3, "skipped": 0, "not_found": 0, "refused": 0}
    assert [item["id"] for item in undone.json()["results"]] == ["chat:3", "chat:2", "chat:1"]
    for chat_id in (1, 2, 3):
        row = chat(engine, chat_id)
        assert (row["status"], row["closed_at"], row["closed_by"], row["close_reason"]) == ("live", None, None, None)
    with engine.connect() as connection:
        events = connection.execute(sa.select(AuditEvent.__table__).where(
            AuditEvent.operation_id == undone.json()["operation"]).order_by(AuditEvent.id)).mappings().all()
    assert len(events) == 3 and {e["action"] for e in events} == {"audit.revert"}
    assert {e["actor"] for e in events} == {"ops:tester"}
    assert all(f"revert of operation {closed.json()['operation']}" in e["reason"] for e in events)
    assert events[0]["before"]["status"] == "closed" and events[0]["after"]["status"] == "live"
    assert "3 changed" in undone.stderr


def test_revert_conflict_when_the_entity_changed_since(cli, engine):
    desk(cli, chats=(1, 2))
    closed = cli("chats", "close", "1", "2", "-o", "json").json()["operation"]
    reopened = cli("chats", "reopen", "1", "--agent", "bob", "-o", "json").json()["operation"]
    undone = revert(cli, closed)
    assert undone.exit_code == 1, undone
    results = by_id(undone)
    assert results["chat:1"]["result"] == "refused"
    assert "conflict" in results["chat:1"]["reason"] and reopened in results["chat:1"]["reason"]
    assert results["chat:2"]["result"] == "changed"
    assert chat(engine, 1)["status"] == "live" and chat(engine, 1)["agent_id"] != chat(engine, 2)["agent_id"]


def test_revert_refuses_a_change_made_outside_the_audit_trail(cli, engine):
    desk(cli, chats=(1,))
    closed = cli("chats", "close", "1", "-o", "json").json()["operation"]
    with engine.begin() as connection:
        connection.execute(sa.update(Chat).where(Chat.id == 1).values(close_reason="hand edit"))
    undone = revert(cli, closed)
    assert undone.exit_code == 1
    [item] = undone.json()["results"]
    assert item["result"] == "refused" and "close_reason" in item["reason"] and "outside the audit trail" in item["reason"]
    assert chat(engine, 1)["status"] == "closed"


def test_revert_twice_skips_what_is_already_reverted(cli, engine):
    desk(cli, chats=(1, 2))
    closed = cli("chats", "close", "1", "2", "-o", "json").json()["operation"]
    assert revert(cli, closed).exit_code == 0
    events = count(engine, AuditEvent)
    again = revert(cli, closed)
    assert again.exit_code == 0, again
    assert again.json()["summary"] == {"changed": 0, "skipped": 2, "not_found": 0, "refused": 0}
    assert "already reverted" in again.json()["results"][0]["reason"]
    assert count(engine, AuditEvent) == events


def test_revert_dry_run_reports_exactly_and_changes_nothing(cli, engine):
    desk(cli, chats=(1, 2))
    closed = cli("chats", "close", "1", "2", "-o", "json").json()["operation"]
    assert cli("chats", "reopen", "2", "--agent", "alice").exit_code == 0
    events = count(engine, AuditEvent)
    dry = cli("audit", "revert", closed, "--dry-run", "-o", "json")  # no --yes needed: nothing changes
    assert dry.exit_code == 1, dry
    assert dry.json()["dry_run"] is True
    assert dry.json()["summary"] == {"would_change": 1, "skipped": 0, "not_found": 0, "refused": 1}
    assert chat(engine, 1)["status"] == "closed"
    assert count(engine, AuditEvent) == events
    assert "dry run, nothing changed" in dry.stderr


def test_revert_needs_yes_without_a_terminal(cli, engine):
    desk(cli, chats=(1,))
    closed = cli("chats", "close", "1", "-o", "json").json()["operation"]
    refused = cli("audit", "revert", closed, tty=False)
    assert refused.exit_code == 2, refused
    assert "--yes" in refused.stderr
    assert chat(engine, 1)["status"] == "closed"


def test_revert_unknown_and_malformed_operation_ids(cli):
    unknown = cli("audit", "revert", "01JDZ8Q3K4V7W2M5N6P8R9S0TA", "--yes")
    assert unknown.exit_code == 1 and "no audit events for operation" in unknown.stderr, unknown
    bad = cli("audit", "revert", "'; DROP TABLE chats; --", "--yes")
    assert bad.exit_code == 2 and "bad operation id" in bad.stderr, bad


def test_revert_tickets_agents_and_preferences(cli, engine):
    desk(cli, chats=(1,))
    assert cli("chats", "convert", "1").exit_code == 0
    [ticket] = tickets(engine, 1)
    closed = cli("tickets", "close", str(ticket["id"]), "-o", "json").json()["operation"]
    assert revert(cli, closed).exit_code == 0
    assert (tickets(engine, 1)[0]["status"], tickets(engine, 1)[0]["closed_at"]) == ("open", None)

    assert cli("prefs", "set", "inactivity_timeout", "45m").exit_code == 0
    [first] = cli("audit", "list", "--entity", "preference:inactivity_timeout", "-o", "json").json()
    assert cli("prefs", "set", "pending_timeout", "2d").exit_code == 0
    assert cli("prefs", "set", "pending_timeout", "3d").exit_code == 0
    second = cli("audit", "list", "--entity", "preference:pending_timeout", "--limit", "1", "-o", "json").json()[0]
    assert revert(cli, first["operation"]).exit_code == 0
    assert revert(cli, second["operation"]).exit_code == 0
    assert cli("prefs", "get", "inactivity_timeout").stdout.strip() == "30m"
    assert cli("prefs", "get", "pending_timeout").stdout.strip() == "2d"
    with engine.connect() as connection:
        assert connection.execute(sa.select(Preference.key)).scalars().all() == ["pending_timeout"]

    offline = cli("agents", "set-status", "alice", "offline")
    [event] = cli("audit", "list", "--entity", "agent:alice", "--limit", "1", "-o", "json").json()
    assert offline.exit_code == 0 and event["action"] == "agents.set-status"
    assert revert(cli, event["operation"]).exit_code == 0
    assert {a["handle"]: a["presence"] for a in cli("agents", "list", "-o", "json").json()}["alice"] == "online"


def test_revert_an_agent_added_removes_it_unless_it_is_in_use(cli, engine):
    added = cli("agents", "add", "carol", "--name", "Carol").stderr
    [event] = cli("audit", "list", "--entity", "agent:carol", "-o", "json").json()
    assert revert(cli, event["operation"]).exit_code == 0, added
    assert cli("agents", "list", "--all", "-o", "json").json() == []
    desk(cli, chats=(1,))  # alice now has a chat
    [event] = cli("audit", "list", "--entity", "agent:alice", "-o", "json").json()[-1:]
    in_use = revert(cli, event["operation"])
    assert in_use.exit_code == 1 and "conflict" in in_use.json()["results"][0]["reason"], in_use


def test_revert_runs_in_batches_over_the_whole_operation(cli, engine):
    desk(cli, chats=range(1, 10))
    closed = cli("chats", "close", *map(str, range(1, 10)), "-o", "json").json()["operation"]
    undone = cli("audit", "revert", closed, "--yes", "--batch-size", "4", "-o", "jsonl")
    assert undone.exit_code == 0, undone
    assert [item["id"] for item in undone.jsonl()] == [f"chat:{i}" for i in range(9, 0, -1)]
    assert count(engine, Chat, Chat.status == "live") == 9


def test_revert_a_conversion_split_across_batches_stays_whole(cli, engine):
    """The ticket events come after all the chat events of a batch: a page boundary between them
    must not revert a chat without its ticket."""
    desk(cli, chats=range(1, 6))
    converted = cli("chats", "convert", *map(str, range(1, 6)), "-o", "json").json()["operation"]
    undone = cli("audit", "revert", converted, "--yes", "--batch-size", "3", "-o", "json")
    assert undone.exit_code == 0, undone
    assert len(undone.json()["results"]) == 10
    assert tickets(engine) == [] and count(engine, Chat, Chat.status == "live") == 5
    check_clean(cli)


def test_revert_same_entity_twice_in_one_operation_restores_the_earliest(cli, engine):
    desk(cli, chats=(1,))
    before = chat(engine, 1)
    with engine.begin() as connection:  # one operation touching chat 1 twice
        for old, new in (("live", "pending"), ("pending", "live")):
            connection.execute(sa.update(Chat).where(Chat.id == 1).values(status=new))
            audit.record(connection, [audit.event(at=T0, actor="ops:x", action="chats.test", entity_type="chat",
                                                  entity_id=1, operation_id="OPTWICE", before={"status": old},
                                                  after={"status": new})])
    undone = revert(cli, "OPTWICE")
    assert undone.exit_code == 0, undone
    assert undone.json()["summary"]["changed"] == 2
    assert chat(engine, 1) == before


def test_revert_by_an_agent_role_is_refused(cli, engine):
    desk(cli, chats=(1,))
    closed = cli("chats", "close", "1", "-o", "json").json()["operation"]
    refused = cli("--actor", "alice", "audit", "revert", closed, "--yes")
    assert refused.exit_code == 1 and "supervisor" in refused.stderr, refused
    assert chat(engine, 1)["status"] == "closed"


def test_revert_a_sweep_run_restores_the_chats_it_closed(cli, engine):
    desk(cli, chats=(1, 2, 3))
    run = cli("sweep", "run", "inactivity", "--as-of", LATER, "-o", "json")
    assert run.json()["jobs"]["inactivity"]["changed"] == 3, run
    assert cli("chats", "reopen", "3", "--agent", "bob").exit_code == 0  # someone reopened chat 3 since
    undone = revert(cli, run.json()["run_id"])
    assert undone.exit_code == 1, undone
    results = by_id(undone)
    assert [results[f"chat:{i}"]["result"] for i in (1, 2)] == ["changed"] * 2
    assert results["chat:3"]["result"] == "refused"
    assert {chat(engine, i)["status"] for i in (1, 2)} == {"live"}
    check_clean(cli)
    again = cli("sweep", "run", "inactivity", "--as-of", LATER, "-o", "json")
    assert again.json()["jobs"]["inactivity"]["changed"] == 2


# -- readable rows ----------------------------------------------------------------------------------
def test_audit_rows_name_agents_beside_their_ids(cli, engine):
    desk(cli, chats=(1,))
    moved = cli("chats", "assign", "1", "--agent", "bob", "-o", "json").json()["operation"]
    [event] = cli("audit", "list", "--operation", moved, "-o", "json").json()
    with engine.connect() as connection:
        ids = dict(connection.execute(sa.text("SELECT handle, id FROM agents")).all())
    assert event["before"]["agent_id"] == ids["alice"] and event["before"]["agent"] == "alice"
    assert event["after"]["agent_id"] == ids["bob"] and event["after"]["agent"] == "bob"
    table = cli("audit", "list", "--operation", moved, "-o", "plain").stdout
    assert "agent: alice → bob" in table and "agent_id" not in table
    # a revert of it reads the same way, and still restores by id
    undone = revert(cli, moved)
    assert undone.exit_code == 0 and chat(engine, 1)["agent_id"] == ids["alice"]
    assert "agent: bob → alice" in cli("audit", "list", "--operation", undone.json()["operation"], "-o", "plain").stdout


def test_audit_list_tsv_and_csv_are_valid_without_escaped_json(cli, engine):
    desk(cli, chats=(1, 2))
    assert cli("chats", "close", "1", "--reason", 'said "bye", left \\ gone').exit_code == 0
    assert cli("chats", "assign", "2", "--agent", "bob").exit_code == 0
    tsv = cli("audit", "list", "-o", "tsv").stdout.splitlines()
    header = tsv[0].split("\t")
    assert header == ["id", "at", "actor", "action", "entity", "entity_id", "operation", "changes", "reason"]
    assert all(len(line.split("\t")) == len(header) for line in tsv)
    assert '\\"' not in "\n".join(tsv) and '{"' not in "\n".join(tsv)
    assert any('close_reason: (none) → said "bye", left \\ gone' in line for line in tsv)
    parsed = list(csv.DictReader(io.StringIO(cli("audit", "list", "-o", "csv").stdout)))
    assert [row["changes"] for row in parsed if row["entity_id"] == "2"][0].startswith("agent: alice → bob; ")
    assert any(row["changes"].startswith("status: live → closed") for row in parsed)


def test_audit_rows_written_before_handles_were_stored_still_read_by_handle(cli, engine):
    desk(cli, chats=(1,))
    with engine.connect() as connection:
        ids = dict(connection.execute(sa.text("SELECT handle, id FROM agents")).all())
    with engine.begin() as connection:
        connection.execute(sa.insert(AuditEvent).values(
            at=T0, actor="system", action="sweep.agent-timeout", entity_type="chat", entity_id="1",
            before={"agent_id": ids["alice"]}, after={"agent_id": ids["bob"]}, operation_id="OPOLD", reason=None))
    assert "agent: alice → bob" in cli("audit", "list", "--operation", "OPOLD", "-o", "tsv").stdout


def test_db_check_reports_a_live_chat_holding_an_open_ticket(cli, engine):
    desk(cli, chats=(1,))
    with engine.begin() as connection:
        connection.execute(sa.insert(Ticket).values(chat_id=1, status="open", reason="manual", created_at=T0))
    checked = cli("db", "check", "-o", "json")
    assert checked.exit_code == 1
    [row] = [row for row in checked.json() if not row["ok"]]
    assert row["check"] == "live or pending chats with an open ticket" and row["examples"] == [1]
    assert count(engine, Customer) == 1


def revert_both_ways(engine, operation: str):
    """The outcome of reverting ``operation`` by the general path and by the dialect's one-statement
    form, each in a transaction rolled back: (results, rows, revert events, events the form took)."""
    from chatctl.domain.audit.revert import Revert

    with engine.connect() as connection:
        ids = connection.execute(sa.select(AuditEvent.id).where(AuditEvent.operation_id == operation)
                                 .order_by(AuditEvent.id.desc())).scalars().all()

    def outcome(plain: bool):
        with engine.connect() as connection:
            transaction = connection.begin()
            step = Revert(operation, revert_operation_id="01REVERTCOMPARED000000000", actor="ops:tester", now=T0,
                          plain_statements=plain)
            results = [item.as_json() for item in step(connection, list(ids))]
            taken = step.strategy.handled
            rows = {model.__table__.name: [dict(row) for row in connection.execute(
                sa.select(model.__table__).order_by(model.id)).mappings()] for model in (Chat, Ticket)}
            events = [dict(row) for row in connection.execute(
                sa.select(AuditEvent.entity_type, AuditEvent.entity_id, AuditEvent.action, AuditEvent.actor,
                          AuditEvent.at, AuditEvent.before, AuditEvent.after, AuditEvent.reason)
                .where(AuditEvent.operation_id == "01REVERTCOMPARED000000000")
                .order_by(AuditEvent.entity_type, AuditEvent.entity_id)).mappings()]  # one statement per table
            transaction.rollback()
        return results, rows, events, taken

    return outcome(False), outcome(True), len(ids)


def test_revert_postgres_statements_and_the_general_path_leave_identical_rows_and_events(cli, engine):
    """The one-statement-per-table form of the plain changes is a strategy of the same revert."""
    desk(cli, chats=(1, 2, 3, 4, 5))
    assert cli("chats", "convert", "4").exit_code == 0
    assert cli("chats", "flag", "2").exit_code == 0
    run = cli("sweep", "run", "--as-of", "2027-03-30T12:00:00Z", "-o", "json").json()["run_id"]
    assert cli("chats", "reopen", "3", "--agent", "bob").exit_code == 0          # a later change: conflict
    with engine.begin() as connection:                                             # a change outside the trail
        connection.execute(sa.update(Chat).where(Chat.id == 1).values(close_reason="hand edit"))

    general, plain, events = revert_both_ways(engine, run)
    assert general[3] == 0
    assert plain[3] == (events if engine.dialect.name == "postgresql" else 0)
    assert {item["result"] for item in general[0]} == {"changed", "refused"}
    assert general[0] == plain[0]
    assert general[1] == plain[1]
    assert general[2] == plain[2] and general[2]
    assert {event["entity_type"] for event in general[2]} == {"chat", "ticket"}


def test_revert_postgres_statements_find_every_shape_of_a_batch(cli, engine):
    """One close of two live chats and a pending one: the events record two sets of columns (the
    pending chat also loses its pending_since), and the one-statement form finds both shapes in the
    batch and restores every chat as the general path does."""
    desk(cli, chats=(1, 2, 3))
    assert cli("chats", "pending", "2").exit_code == 0
    closed = cli("chats", "close", "1", "2", "3", "-o", "json").json()["operation"]
    with engine.connect() as connection:
        befores = connection.execute(sa.select(AuditEvent.before).where(AuditEvent.operation_id == closed)).all()
    assert len({tuple(sorted(before)) for (before,) in befores}) == 2

    general, plain, events = revert_both_ways(engine, closed)
    assert events == 3 and general[3] == 0
    assert plain[3] == (3 if engine.dialect.name == "postgresql" else 0)
    assert [item["result"] for item in general[0]] == ["changed"] * 3
    assert general[0] == plain[0]
    assert general[1] == plain[1]
    assert general[2] == plain[2] and len(general[2]) == 3


def test_revert_of_an_operation_still_running_is_refused(cli, engine):
    import os
    import socket

    from chatctl.storage.models import Operation

    desk(cli, chats=(1,))
    flagged = cli("chats", "flag", "1", "-o", "json").json()["operation"]
    with engine.begin() as connection:  # as if it were still at work in this very process
        connection.execute(sa.update(Operation).where(Operation.id == flagged).values(
            status="running", host=socket.gethostname(), pid=os.getpid(),
            lease_expires_at=dt.datetime.now(UTC) + dt.timedelta(hours=1)))
    refused = cli("audit", "revert", flagged, "--yes")
    assert refused.exit_code == 1 and "still running" in refused.stderr, refused
    assert chat(engine, 1)["flagged"] is True


def _age_events(engine, operation: str, days: int) -> None:
    with engine.begin() as connection:
        connection.execute(sa.update(AuditEvent).where(AuditEvent.operation_id == operation)
                           .values(at=dt.datetime.now(UTC) - dt.timedelta(days=days)))


def test_d17_an_operation_whose_events_a_prune_removed_is_refused_pruned(cli, engine):
    desk(cli, chats=(1,))
    flagged = cli("chats", "flag", "1", "-o", "json").json()["operation"]
    _age_events(engine, flagged, 200)
    pruned = cli("audit", "prune", "--before", "30d", "--yes", "-o", "json")
    assert pruned.exit_code == 0 and pruned.json()["removed"] >= 1, pruned
    listed = {row["id"]: row for row in cli("audit", "operations", "-o", "json").json()}
    assert listed[flagged]["pruned_at"] is not None
    refused = cli("audit", "revert", flagged, "--yes")
    assert refused.exit_code == 1 and "pruned" in refused.stderr and pruned.json()["operation"] in refused.stderr
    assert chat(engine, 1)["flagged"] is True


def test_d17_a_prune_keeps_the_events_of_a_recorded_operation_still_running(cli, engine):
    import os
    import socket

    from chatctl.storage.models import Operation

    desk(cli, chats=(1,))
    flagged = cli("chats", "flag", "1", "-o", "json").json()["operation"]
    _age_events(engine, flagged, 200)
    with engine.begin() as connection:  # as if it were still at work in this very process
        connection.execute(sa.update(Operation).where(Operation.id == flagged).values(
            status="running", host=socket.gethostname(), pid=os.getpid(),
            lease_expires_at=dt.datetime.now(UTC) + dt.timedelta(hours=1)))
    pruned = cli("audit", "prune", "--before", "30d", "--yes", "-o", "json")
    assert pruned.exit_code == 0 and pruned.json()["kept_running"] == 1, pruned
    assert count(engine, AuditEvent, AuditEvent.operation_id == flagged) == 1
