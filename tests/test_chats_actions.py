"""Chat actions and the rules they enforce (R2-R11, R15), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from chat_rows import Rows
from freezegun import freeze_time
from sqlalchemy import event
from sqlalchemy.engine import Engine

from chatctl.storage.models import AuditEvent, Comment, CommentMention, Message, Notification, Ticket

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.fixture
def rows(engine):
    desk = Rows(engine)
    desk.agent("alice")
    desk.agent("bob", presence="offline")
    desk.agent("sue", role="supervisor")
    desk.agent("gone", active=False)
    return desk


def results(result):
    return {item["id"]: (item["result"], item["reason"]) for item in result.json()["results"]}


# -- mutation output and bulk semantics --------------------------------------------------
def test_mutation_json_shape(cli, rows):
    chat = rows.chat(agent="alice")
    result = cli("chats", "close", str(chat), "-o", "json")
    assert result.exit_code == 0, result
    document = result.json()
    assert list(document) == ["operation", "dry_run", "results", "summary"]
    assert document["dry_run"] is False
    assert document["results"] == [{"id": chat, "result": "changed", "reason": None}]
    assert document["summary"] == {"changed": 1, "skipped": 0, "not_found": 0, "refused": 0}
    assert "1 changed" in result.stderr


def test_bulk_ids_from_stdin_with_comments_and_blank_lines(cli, rows):
    first, second, third = rows.chat(), rows.chat(), rows.chat(status="closed", closed=H)
    stdin = f"# stale chats\n{first}\n\n  {second}   # the second\n{third}\n999999\n"
    result = cli("chats", "close", "-", "-o", "json", input=stdin)
    assert result.exit_code == 1, result  # one not found
    assert results(result) == {first: ("changed", None), second: ("changed", None),
                               third: ("skipped", "already closed"), 999999: ("not_found", "no such chat")}
    assert rows.get(first).status == "closed" and rows.get(second).status == "closed"


def test_bad_id_on_stdin_changes_nothing(cli, rows):
    chat = rows.chat()
    result = cli("chats", "close", "-", input=f"{chat}\nabc\n")
    assert result.exit_code == 2 and "line 2" in result.stderr
    assert rows.get(chat).status == "live"


def test_dry_run_reports_the_same_and_changes_nothing(cli, rows, engine):
    chats = [rows.chat() for _ in range(3)] + [rows.chat(status="closed", closed=H), rows.chat(flagged=True)]
    stdin = "\n".join(map(str, chats)) + "\n424242\n"
    dry = cli("chats", "close", "-", "--dry-run", "-o", "json", input=stdin)
    assert dry.exit_code == 1 and dry.json()["dry_run"] is True
    assert "dry run" in dry.stderr
    assert [rows.get(c).status for c in chats] == ["live"] * 3 + ["closed", "live"]
    assert rows.count(AuditEvent) == 0
    real = cli("chats", "close", "-", "-o", "json", input=stdin)
    # D8: the same items, said as "would change" by the dry run.
    would = {"would_change": "changed"}
    assert real.json()["results"] == [{**item, "result": would.get(item["result"], item["result"])}
                                      for item in dry.json()["results"]]
    assert real.json()["summary"] == {"changed": 3, "skipped": 2, "not_found": 1, "refused": 0}
    assert dry.json()["summary"] == {"would_change": 3, "skipped": 2, "not_found": 1, "refused": 0}


def test_exit_codes(cli, rows):
    live = rows.chat()
    assert cli("chats", "flag", str(live)).exit_code == 0
    assert cli("chats", "flag", str(live)).exit_code == 0  # skipped is not a failure
    assert cli("chats", "pending", "999999").exit_code == 1
    assert cli("chats", "flag", "x1").exit_code == 2
    assert cli("chats", "flag").exit_code == 2
    assert cli("chats", "assign", str(live), "--agent", "nobody").exit_code == 2


def test_bulk_batches_are_set_based(cli, rows, backend):
    """The number of statements per batch does not grow with the batch."""
    def statements_for(count):
        ids = [rows.chat() for _ in range(count)]
        for chat in ids:
            rows.comment(chat, "alice", "@bob", ("bob",))
        seen = []

        def listener(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        event.listen(Engine, "before_cursor_execute", listener)
        try:
            result = cli("chats", "close", "-", input="\n".join(map(str, ids)))
        finally:
            event.remove(Engine, "before_cursor_execute", listener)
        assert result.exit_code == 0, result
        return len(seen)

    small, large = statements_for(3), statements_for(40)
    assert small == large, (small, large)


def test_r15_every_change_is_audited_with_the_operation_id(cli, rows):
    chats = [rows.chat(agent="alice") for _ in range(3)]
    result = cli("chats", "close", *map(str, chats), "--reason", "end of campaign", "-o", "json")
    operation = result.json()["operation"]
    events = rows.audit(AuditEvent.operation_id == operation)
    assert sorted(int(e.entity_id) for e in events) == sorted(chats)
    assert {e.action for e in events} == {"chats.close"}
    assert {e.actor for e in events} == {"ops:tester"}
    first = events[0]
    assert first.before["status"] == "live"
    assert first.after["status"] == "closed" and first.after["close_reason"] == "end of campaign"
    assert first.after["closed_by"] == "agent"


# -- R3 flag ------------------------------------------------------------------------------
def test_r3_flag_and_unflag(cli, rows):
    chat = rows.chat(agent="alice")
    result = cli("--actor", "alice", "chats", "flag", str(chat), "--note", "call back Monday", "-o", "json")
    assert results(result) == {chat: ("changed", None)}
    stored = rows.get(chat)
    assert stored.flagged and stored.flagged_by == "alice" and stored.flag_note == "call back Monday"
    again = cli("chats", "flag", str(chat), "-o", "json")
    assert results(again) == {chat: ("skipped", "already flagged")}
    unflagged = cli("chats", "unflag", str(chat), "-o", "json")
    assert results(unflagged) == {chat: ("changed", None)}
    assert not rows.get(chat).flagged and rows.get(chat).flag_note is None
    assert results(cli("chats", "unflag", str(chat), "-o", "json")) == {chat: ("skipped", "not flagged")}
    assert [e.action for e in rows.audit()] == ["chats.flag", "chats.unflag"]


def test_r3_flagged_chats_are_not_closed_by_a_bulk_close(cli, rows):
    flagged, plain = rows.chat(flagged=True), rows.chat()
    result = cli("chats", "close", str(flagged), str(plain), "-o", "json")
    assert result.exit_code == 0
    assert results(result)[flagged][0] == "skipped" and "flagged" in results(result)[flagged][1]
    assert rows.get(flagged).status == "live"
    forced = cli("chats", "close", str(flagged), "--include-flagged", "-o", "json")
    assert results(forced) == {flagged: ("changed", None)}


def test_d7_flag_unflag_and_pending_on_a_closed_chat_are_refused_not_skipped(cli, rows):
    closed = rows.chat(status="closed", closed=H)
    converted = rows.chat(status="converted")
    for action in ("flag", "unflag", "pending"):
        result = cli("chats", action, str(closed), "-o", "json")
        assert result.exit_code == 1, result
        assert results(result)[closed][0] == "refused" and "closed" in results(result)[closed][1], result
    close = cli("chats", "close", str(converted), "-o", "json")
    assert close.exit_code == 1 and results(close)[converted][0] == "refused", close
    assert "ticket" in results(close)[converted][1]
    assert rows.audit() == []


# -- R4 / R5: what the sweeps read ------------------------------------------------------------
def test_r4_replies_and_comments_count_as_activity(cli, rows):
    chat = rows.chat(agent="alice", ago=3 * H, customer_wrote=2 * H)
    before = rows.get(chat).last_activity_at
    assert cli("chats", "comment", str(chat), "--as", "alice", "--text", "note to self").exit_code == 0
    after_comment = rows.get(chat).last_activity_at
    assert after_comment > before
    assert cli("chats", "reply", str(chat), "--as", "alice", "--text", "still there?").exit_code == 0
    stored = rows.get(chat)
    assert stored.last_activity_at >= after_comment
    assert stored.last_agent_message_at == stored.last_activity_at == stored.agent_seen_at


def test_r5_assign_restarts_the_agent_timer(cli, rows):
    chat = rows.chat(agent="alice", ago=3 * H)
    old = rows.get(chat).assigned_at
    result = cli("chats", "assign", str(chat), "--agent", "bob", "-o", "json")
    assert results(result) == {chat: ("changed", None)}
    stored = rows.get(chat)
    assert stored.agent_id == rows.agent_id("bob") and stored.assigned_at > old
    assert results(cli("chats", "assign", str(chat), "--agent", "bob", "-o", "json")) == {
        chat: ("skipped", "already assigned to bob")}
    closed = rows.chat(status="closed", closed=H)
    refused = cli("chats", "assign", str(closed), "--agent", "bob", "-o", "json")
    assert refused.exit_code == 1 and results(refused)[closed][0] == "refused"
    assert cli("chats", "assign", str(chat), "--agent", "gone").exit_code == 2


# -- R6 pending ------------------------------------------------------------------------------
def test_r6_only_a_live_chat_can_be_marked_pending(cli, rows):
    live, closed = rows.chat(), rows.chat(status="closed", closed=H)
    converted = rows.chat(status="converted")
    result = cli("chats", "pending", str(live), str(closed), str(converted), "-o", "json")
    assert result.exit_code == 1
    outcome = results(result)
    assert outcome[live] == ("changed", None)
    assert outcome[closed][0] == "refused" and outcome[closed][1].startswith("only a live chat can be marked pending")
    assert outcome[converted][0] == "refused"
    stored = rows.get(live)
    assert stored.status == "pending" and stored.pending_since is not None
    assert results(cli("chats", "pending", str(live), "-o", "json")) == {live: ("skipped", "already pending")}


# -- R7 comments -----------------------------------------------------------------------------
def test_r7_comment_tags_notify_and_fill_the_tagged_view(cli, rows):
    chat = rows.chat(agent="alice")
    result = cli("chats", "comment", str(chat), "--as", "alice", "--text", "@bob and @Sue, refund? cc @bob.",
                 "-o", "json")
    assert result.exit_code == 0, result
    assert rows.count(Comment) == 1
    assert rows.count(CommentMention) == 2
    assert rows.count(Notification, Notification.agent_id == rows.agent_id("bob")) == 1
    assert rows.count(Notification, Notification.agent_id == rows.agent_id("sue")) == 1
    tagged = cli("chats", "list", "tagged", "--agent", "bob", "-o", "json").json()
    assert [row["id"] for row in tagged] == [chat]
    assert {p["handle"] for p in tagged[0]["tagged"]} == {"bob", "sue"}
    shown = cli("chats", "show", str(chat), "-o", "json").json()
    assert shown["comments"][0]["mentions"] == ["bob", "sue"]
    assert [e.action for e in rows.audit()] == ["chats.comment"]


def test_r7_unknown_handle_writes_nothing(cli, rows):
    chat = rows.chat(agent="alice")
    result = cli("chats", "comment", str(chat), "--as", "alice", "--text", "@bob and @nobody")
    assert result.exit_code == 2
    assert "@nobody" in result.stderr and "nothing was written" in result.stderr
    assert rows.count(Comment) == rows.count(Notification) == rows.count(AuditEvent) == 0
    deactivated = cli("chats", "comment", str(chat), "--as", "alice", "--text", "@gone")
    assert deactivated.exit_code == 2 and rows.count(Comment) == 0


def test_r7_comments_exist_only_on_live_chats(cli, rows):
    for status, extra in (("pending", {"pending_since": M}), ("closed", {"closed": H}), ("converted", {})):
        chat = rows.chat(status=status, agent="alice", **extra)
        result = cli("chats", "comment", str(chat), "--as", "alice", "--text", "@bob")
        assert result.exit_code == 1, result
        assert "comments exist only on live chats" in result.stderr
    assert rows.count(Comment) == rows.count(Notification) == 0


def test_r7_the_author_must_be_an_active_desk_user(cli, rows):
    chat = rows.chat(agent="alice")
    assert cli("chats", "comment", str(chat), "--as", "nobody", "--text", "hi").exit_code == 2
    assert cli("chats", "comment", str(chat), "--as", "gone", "--text", "hi").exit_code == 2
    # a supervisor who is not assigned may comment
    assert cli("chats", "comment", str(chat), "--as", "sue", "--text", "@alice ok").exit_code == 0


# -- R8 tagged people do not talk to the customer ----------------------------------------------
def test_r8_tagged_agents_cannot_message_the_customer(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob @sue", ("bob", "sue"))
    for person in ("bob", "sue"):
        result = cli("chats", "reply", str(chat), "--as", person, "--text", "hello from me")
        assert result.exit_code == 1, result
        assert "tagged agents cannot message the customer" in result.stderr
    assert rows.count(Message, Message.direction == "outbound") == 0
    # they can still comment
    assert cli("chats", "comment", str(chat), "--as", "bob", "--text", "looked at it").exit_code == 0
    # and the assigned agent can reply
    assert cli("chats", "reply", str(chat), "--as", "alice", "--text", "hello").exit_code == 0
    assert rows.count(Message, Message.direction == "outbound") == 1


def test_r8_only_the_assigned_agent_replies(cli, rows):
    unassigned = rows.chat()
    result = cli("chats", "reply", str(unassigned), "--as", "alice", "--text", "hi")
    assert result.exit_code == 1 and "only the assigned agent messages the customer" in result.stderr and "assign" in result.stderr


# -- R9 comments are ephemeral -----------------------------------------------------------------
def test_r9_close_removes_comments_and_tags(cli, rows):
    chat, other = rows.chat(agent="alice"), rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob look", ("bob",))
    rows.comment(chat, "sue", "@bob @alice", ("bob", "alice"))
    rows.comment(other, "alice", "@bob", ("bob",))
    result = cli("chats", "close", str(chat), "-o", "json")
    assert result.exit_code == 0
    assert rows.count(Comment, Comment.chat_id == chat) == 0
    assert rows.count(CommentMention, CommentMention.chat_id == chat) == 0
    assert rows.count(Comment, Comment.chat_id == other) == 1  # other chats keep theirs
    # the notifications stay, read
    assert rows.count(Notification, Notification.chat_id == chat) == 3
    assert rows.count(Notification, Notification.chat_id == chat, Notification.read_at.is_(None)) == 0
    tagged = cli("chats", "list", "tagged", "--agent", "bob", "-o", "json").json()
    assert [row["id"] for row in tagged] == [other]
    (audit_event,) = rows.audit(AuditEvent.entity_id == str(chat))
    assert audit_event.after["comments_removed"] == 2
    assert audit_event.after["tags_removed"] == 3
    assert audit_event.after["notifications_read"] == 3


def test_r9_convert_removes_comments_and_makes_a_manual_ticket(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob", ("bob",))
    result = cli("chats", "convert", str(chat), "-o", "json")
    assert result.exit_code == 0, result
    assert rows.get(chat).status == "converted"
    assert rows.count(Comment) == rows.count(CommentMention) == 0
    assert rows.count(Ticket, Ticket.chat_id == chat, Ticket.reason == "manual", Ticket.status == "open") == 1
    listed = cli("chats", "list", "tickets", "-o", "json").json()
    assert [t["chat_id"] for t in listed] == [chat] and listed[0]["agent"] == "alice"
    assert {e.entity_type for e in rows.audit()} == {"chat", "ticket"}
    again = cli("chats", "convert", str(chat), "-o", "json")
    assert results(again)[chat][0] == "skipped"
    closed = rows.chat(status="closed", closed=H)
    assert results(cli("chats", "convert", str(closed), "-o", "json"))[closed][0] == "refused"


# -- R10 closed chats ----------------------------------------------------------------------------
def test_r10_reopen_assigns_and_restarts_the_inactivity_clock(cli, rows):
    chat = rows.chat(status="closed", closed=3 * H, ago=5 * H, customer_wrote=4 * H, agent="bob",
                     reassign_count=2)
    result = cli("--actor", "alice", "chats", "reopen", str(chat), "-o", "json")
    assert results(result) == {chat: ("changed", None)}
    stored = rows.get(chat)
    assert stored.status == "live" and stored.agent_id == rows.agent_id("alice")
    assert stored.closed_at is None and stored.closed_by is None
    assert stored.reassign_count == 0
    assert dt.datetime.now(dt.timezone.utc) - stored.last_activity_at < 5 * M
    assert results(cli("chats", "reopen", str(chat), "--agent", "bob", "-o", "json")) == {
        chat: ("skipped", "already live")}


def test_r10_ops_reopen_needs_an_agent(cli, rows):
    chat = rows.chat(status="closed", closed=H)
    refused = cli("chats", "reopen", str(chat))
    assert refused.exit_code == 2 and "--agent" in refused.stderr
    assert rows.get(chat).status == "closed"
    assert cli("chats", "reopen", str(chat), "--agent", "bob").exit_code == 0
    assert rows.get(chat).agent_id == rows.agent_id("bob")
    converted = rows.chat(status="converted")
    assert results(cli("chats", "reopen", str(converted), "--agent", "bob", "-o", "json"))[converted][0] == "refused"


# -- R11 replying to a closed chat ------------------------------------------------------------------
@pytest.fixture
def frozen():
    with freeze_time("2026-11-30T12:00:00Z"):
        yield dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)


def test_r11_text_within_the_closed_reply_window_keeps_the_chat_closed(cli, rows, frozen):
    chat = rows.chat(status="closed", closed=23 * H, ago=25 * H, customer_wrote=23 * H, agent="alice",
                     channel="whatsapp")
    result = cli("chats", "reply", str(chat), "--as", "alice", "--text", "one more thing")
    assert result.exit_code == 0, result
    stored = rows.get(chat)
    assert stored.status == "closed" and stored.last_agent_message_at == frozen
    assert rows.count(Message, Message.chat_id == chat, Message.direction == "outbound") == 1


def test_r11_after_the_window_only_a_whatsapp_template(cli, rows, frozen):
    chat = rows.chat(status="closed", closed=30 * H, ago=40 * H, customer_wrote=30 * H, agent="alice",
                     channel="whatsapp")
    text = cli("chats", "reply", str(chat), "--as", "alice", "--text", "hello")
    assert text.exit_code == 1 and "window" in text.stderr and "template" in text.stderr
    template = cli("chats", "reply", str(chat), "--as", "alice", "--template", "followup", "--param", "name=Ann")
    assert template.exit_code == 0, template
    assert rows.get(chat).status == "closed"
    shown = cli("chats", "show", str(chat), "-o", "json").json()
    assert shown["messages"][-1]["template"] == "followup" and shown["messages"][-1]["params"] == {"name": "Ann"}


def test_r11_after_the_window_other_channels_are_refused_with_the_reason(cli, rows, frozen):
    chat = rows.chat(status="closed", closed=30 * H, ago=40 * H, customer_wrote=30 * H, agent="alice",
                     channel="webchat")
    for how in (("--text", "hello"), ("--template", "followup")):
        result = cli("chats", "reply", str(chat), "--as", "alice", *how)
        assert result.exit_code == 1
        assert "window" in result.stderr and "webchat" in result.stderr
    assert rows.count(Message, Message.direction == "outbound") == 0


def test_r11_closed_reply_window_is_a_preference(cli, rows, frozen):
    chat = rows.chat(status="closed", closed=3 * H, agent="alice", channel="webchat")
    assert cli("prefs", "set", "closed_reply_window", "2h").exit_code == 0
    result = cli("chats", "reply", str(chat), "--as", "alice", "--text", "hi")
    assert result.exit_code == 1 and "2h" in result.stderr


def test_r11_whatsapp_free_text_needs_the_customer_service_window(cli, rows, frozen):
    live = rows.chat(agent="alice", channel="whatsapp", ago=30 * H, customer_wrote=25 * H)
    text = cli("chats", "reply", str(live), "--as", "alice", "--text", "still there?")
    assert text.exit_code == 1
    assert "24-hour customer-service window" in text.stderr
    assert cli("chats", "reply", str(live), "--as", "alice", "--template", "reconnect").exit_code == 0
    recent = rows.chat(agent="alice", channel="whatsapp", customer_wrote=23 * H)
    assert cli("chats", "reply", str(recent), "--as", "alice", "--text", "yes").exit_code == 0
    sms = rows.chat(agent="alice", channel="sms", customer_wrote=30 * H)
    assert cli("chats", "reply", str(sms), "--as", "alice", "--text", "hi").exit_code == 0


def test_reply_needs_text_or_template(cli, rows):
    chat = rows.chat(agent="alice")
    assert cli("chats", "reply", str(chat), "--as", "alice").exit_code == 2
    assert cli("chats", "reply", str(chat), "--as", "alice", "--text", "a", "--template", "b").exit_code == 2
    assert cli("chats", "reply", str(chat), "--as", "alice", "--template", "b", "--param", "novalue").exit_code == 2


def test_reply_dry_run_sends_nothing(cli, rows):
    chat = rows.chat(agent="alice")
    result = cli("chats", "reply", str(chat), "--as", "alice", "--text", "hi", "--dry-run", "-o", "json")
    assert result.exit_code == 0 and results(result) == {chat: ("would_change", None)}
    assert rows.count(Message, Message.direction == "outbound") == 0


# -- R2 seen ------------------------------------------------------------------------------------
def test_r2_seen_belongs_to_the_assigned_agent(cli, rows):
    chat = rows.chat(agent="alice", customer_wrote=5 * M)
    refused = cli("chats", "seen", str(chat), "--as", "bob")
    assert refused.exit_code == 1 and "the seen mark belongs to the assigned agent" in refused.stderr
    assert rows.get(chat).agent_seen_at is None
    assert cli("chats", "seen", str(chat), "--as", "alice").exit_code == 0
    assert rows.get(chat).agent_seen_at is not None
