"""The chat views (R1, R2), filters and ``chats show``, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from chat_rows import Rows
from sqlalchemy import inspect

from chatctl.domain.chats.views import CHAT_KEYS
from chatctl.domain.tickets.views import TICKET_KEYS

H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


@pytest.fixture
def rows(engine):
    desk = Rows(engine)
    desk.agent("alice")
    desk.agent("bob", presence="offline")
    desk.agent("sue", role="supervisor")
    return desk


def ids(result):
    assert result.exit_code == 0, result
    return [row["id"] for row in result.json()]


def test_r1_each_view_holds_its_status(cli, rows, engine):
    live = rows.chat(agent="alice")
    pending = rows.chat(status="pending", pending_since=10 * M, agent="alice")
    closed = rows.chat(status="closed", closed=H, agent="alice")
    converted = rows.chat(status="converted", agent="alice")
    from sqlalchemy import insert

    from chatctl.storage.models import Ticket

    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as connection:
        connection.execute(insert(Ticket), [
            {"chat_id": converted, "status": "open", "reason": "manual", "created_at": now, "closed_at": None,
             "archived_at": None},
            {"chat_id": closed, "status": "closed", "reason": "no_agents", "created_at": now - H, "closed_at": now,
             "archived_at": None},
            {"chat_id": live, "status": "open", "reason": "manual", "created_at": now - 2 * H, "closed_at": None,
             "archived_at": now},
        ])
    assert ids(cli("chats", "list", "-o", "json")) == [live]
    assert ids(cli("chats", "list", "pending", "-o", "json")) == [pending]
    assert ids(cli("chats", "list", "closed", "-o", "json")) == [closed]
    tickets = cli("chats", "list", "tickets", "-o", "json").json()
    # open and closed tickets, newest first; the archived one is not in the view
    assert [t["chat_id"] for t in tickets] == [converted, closed]
    assert [t["status"] for t in tickets] == ["open", "closed"]
    assert all(list(t) == list(TICKET_KEYS) for t in tickets)


def test_r1_tagged_view_lists_open_chats_where_the_agent_is_tagged(cli, rows):
    tagged_live = rows.chat(agent="alice")
    tagged_pending = rows.chat(status="pending", pending_since=M, agent="alice")
    not_tagged = rows.chat(agent="alice")
    rows.comment(tagged_live, "alice", "@bob @sue look", ("bob", "sue"))
    rows.comment(tagged_pending, "alice", "@bob", ("bob",))
    rows.comment(not_tagged, "alice", "@sue", ("sue",))
    result = cli("chats", "list", "tagged", "--agent", "bob", "-o", "json")
    assert sorted(ids(result)) == sorted([tagged_live, tagged_pending])
    by_id = {row["id"]: row for row in result.json()}
    assert by_id[tagged_live]["tagged"] == [{"handle": "bob", "presence": "offline"},
                                            {"handle": "sue", "presence": "online"}]
    # the tagged view is per agent: acting as bob needs no --agent
    as_bob = cli("--actor", "bob", "chats", "list", "tagged", "-o", "json")
    assert sorted(ids(as_bob)) == sorted([tagged_live, tagged_pending])
    plain = cli("chats", "list", "tagged", "--agent", "bob", "-o", "tsv")
    assert "bob (offline), sue (online)" in plain.stdout


def test_r1_tagged_view_needs_an_agent(cli, rows):
    result = cli("chats", "list", "tagged")
    assert result.exit_code == 2
    assert "--agent" in result.stderr


def test_r2_new_marker_until_an_agent_replies(cli, rows):
    fresh = rows.chat(agent="alice", customer_wrote=5 * M)
    answered = rows.chat(agent="alice", customer_wrote=10 * M, agent_wrote=5 * M, seen=5 * M)
    listed = {row["id"]: row for row in cli("chats", "list", "-o", "json").json()}
    assert listed[fresh]["new"] is True
    assert listed[answered]["new"] is False
    assert ids(cli("chats", "list", "--new", "-o", "json")) == [fresh]


def test_r2_unread_marker_when_the_customer_wrote_after_the_agent_looked(cli, rows):
    never_seen = rows.chat(agent="alice", customer_wrote=5 * M)
    seen_before = rows.chat(agent="alice", customer_wrote=5 * M, seen=10 * M)
    seen_after = rows.chat(agent="alice", customer_wrote=10 * M, seen=5 * M)
    no_message = rows.chat(agent="alice", customer_wrote=None)
    listed = {row["id"]: row["unread"] for row in cli("chats", "list", "-o", "json").json()}
    assert listed == {never_seen: True, seen_before: True, seen_after: False, no_message: False}
    assert sorted(ids(cli("chats", "list", "--unread", "-o", "json"))) == sorted([never_seen, seen_before])
    # seen moves the mark: the dot goes
    assert cli("chats", "seen", str(never_seen), "--as", "alice").exit_code == 0
    after = {row["id"]: row["unread"] for row in cli("chats", "list", "-o", "json").json()}
    assert after[never_seen] is False


def test_r2_sorted_by_customer_activity_or_by_new_chat(cli, rows):
    old_chat_recent_message = rows.chat(ago=5 * H, customer_wrote=M)
    new_chat_older_message = rows.chat(ago=H, customer_wrote=30 * M)
    no_customer_message = rows.chat(ago=2 * H, customer_wrote=None)
    assert ids(cli("chats", "list", "--sort", "activity", "-o", "json")) == [
        old_chat_recent_message, new_chat_older_message, no_customer_message]
    assert ids(cli("chats", "list", "--sort", "new", "-o", "json")) == [
        new_chat_older_message, no_customer_message, old_chat_recent_message]


def test_r2_markers_in_colour_on_a_terminal(cli, rows):
    rows.chat(agent="alice", customer_wrote=5 * M)
    coloured = cli("chats", "list", tty=True)
    assert coloured.exit_code == 0, coloured
    assert "\x1b[" in coloured.stdout and "new" in coloured.stdout and "●" in coloured.stdout
    plain = cli("chats", "list", "-o", "tsv")
    assert "\x1b[" not in plain.stdout
    assert plain.stdout.splitlines()[1].split("\t")[1:3] == ["true", "true"]


def test_chat_json_has_exactly_the_spec_fields(cli, rows):
    rows.chat(agent="alice", flagged=True)
    listed = cli("chats", "list", "-o", "json").json()
    assert list(listed[0]) == list(CHAT_KEYS)
    assert list(CHAT_KEYS) == ["id", "status", "channel", "customer", "agent", "flagged", "new", "unread",
                                 "created_at", "last_activity_at", "last_customer_message_at",
                                 "last_agent_message_at", "pending_since", "closed_at", "closed_by",
                                 "close_reason", "ticket_id"]
    assert listed[0]["flagged"] is True
    assert listed[0]["created_at"].endswith("+00:00")
    # A row of the query is its JSON object once paired with the keys: same names, same order.
    from chatctl.domain.chats.views import chat_query

    assert [column.name for column in chat_query().selected_columns] == list(CHAT_KEYS)


def test_list_options_agent_channel_flagged(cli, rows):
    mine = rows.chat(agent="alice", channel="whatsapp", flagged=True)
    theirs = rows.chat(agent="bob", channel="webchat")
    assert ids(cli("chats", "list", "--agent", "alice", "-o", "json")) == [mine]
    assert ids(cli("chats", "list", "--channel", "webchat", "-o", "json")) == [theirs]
    assert ids(cli("chats", "list", "--flagged", "-o", "json")) == [mine]
    assert ids(cli("chats", "list", "--not-flagged", "-o", "json")) == [theirs]
    unknown = cli("chats", "list", "--agent", "nobody")
    assert unknown.exit_code == 2 and "nobody" in unknown.stderr
    pigeon = cli("chats", "list", "--channel", "pigeon", "-o", "json")  # a channel nobody used yet (D5)
    assert pigeon.exit_code == 0 and pigeon.json() == []
    bad_channel = cli("chats", "list", "--channel", "Pigeon Post")
    assert bad_channel.exit_code == 2 and "whatsapp" in bad_channel.stderr


def test_list_pages_with_an_opaque_cursor(cli, rows):
    made = [rows.chat(customer_wrote=(i + 1) * M) for i in range(7)]
    made.append(rows.chat(customer_wrote=None, ago=H))
    made.append(rows.chat(customer_wrote=None, ago=2 * H))
    seen, after, pages = [], [], 0
    while True:
        result = cli("chats", "list", "--limit", "2", "-o", "json", *after)
        seen += ids(result)
        pages += 1
        if "next page: --after " not in result.stderr:
            break
        cursor = result.stderr.split("next page: --after ", 1)[1].split()[0]
        after = ["--after", cursor]
    assert seen == made[:7] + [made[8], made[7]]
    assert pages == 5
    assert len(seen) == len(set(seen)) == 9
    everything = cli("chats", "list", "--all", "-o", "jsonl")
    assert [row["id"] for row in everything.jsonl()] == seen
    assert "next page" not in everything.stderr


def test_list_refuses_a_bad_cursor(cli, rows):
    result = cli("chats", "list", "--after", "not-a-cursor")
    assert result.exit_code == 2 and "cursor" in result.stderr
    rows.chat()
    rows.chat()
    page = cli("chats", "list", "--limit", "1")
    cursor = page.stderr.split("--after ", 1)[1].split()[0]
    other_view = cli("chats", "list", "pending", "--after", cursor)
    assert other_view.exit_code == 2 and "the live list" in other_view.stderr


def test_list_all_streams_each_segment_through_one_statement(cli, rows, monkeypatch):
    """--all reads each segment (chats with a customer message, then those without) with one
    statement, batch by batch through the cursor, in the order the pages give."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from chatctl.storage import paging

    monkeypatch.setattr(paging, "READ", 3)
    for i in range(10):
        rows.chat(customer_wrote=(i + 1) * M)
    for _ in range(2):
        rows.chat(customer_wrote=None)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(Engine, "before_cursor_execute", listener)
    try:
        result = cli("chats", "list", "--all", "-o", "ids")
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    selects = [s for s in statements if "FROM chats" in s]
    assert len(selects) == 2 and not any("LIMIT" in s for s in selects), selects
    paged = cli("chats", "list", "--limit", "100", "-o", "ids")
    assert result.stdout.split() == paged.stdout.split() and len(paged.stdout.split()) == 12


def test_list_uses_the_status_index(engine, rows, backend):
    """The live view's page is a range of the (status, last_customer_message_at, id) index."""
    from sqlalchemy import event

    from chatctl.domain.chats.views import ViewOptions, list_view

    for i in range(30):
        rows.chat(customer_wrote=(i + 1) * M)
    captured = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        captured.append((statement, parameters))

    with engine.connect() as connection:
        event.listen(connection, "before_cursor_execute", capture)
        page = list_view(connection, ViewOptions(limit=5))
        assert len(list(page.rows)) == 5
        event.remove(connection, "before_cursor_execute", capture)
        statement, parameters = next(item for item in captured if "FROM chats" in item[0])
        raw = connection.connection.dbapi_connection.cursor()
        if backend == "postgresql":
            raw.execute("SET enable_seqscan = off")
            raw.execute("EXPLAIN " + statement, parameters)
        else:
            raw.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = " ".join(str(line) for line in raw.fetchall())
    assert "ix_chats_open_last_customer" in plan, plan


def test_tickets_view_refuses_chat_only_options(cli, rows):
    result = cli("chats", "list", "tickets", "--unread")
    assert result.exit_code == 2 and "tickets" in result.stderr


# -- chats filter -----------------------------------------------------------------------
def test_filter_by_expressions(cli, rows):
    idle = rows.chat(agent="alice", ago=5 * H, customer_wrote=3 * H)
    busy = rows.chat(agent="alice", customer_wrote=M)
    rows.chat(status="closed", closed=H)
    assert ids(cli("chats", "filter", "status=live", "idle>2h", "-o", "json")) == [idle]
    assert ids(cli("chats", "filter", "status=live", "-o", "json")) == [idle, busy]
    counted = cli("chats", "filter", "status=live", "--count")
    assert counted.exit_code == 0 and counted.stdout.strip() == "2"
    only_ids = cli("chats", "filter", "agent=alice", "--ids-only")
    assert only_ids.stdout.split() == [str(idle), str(busy)]


def test_filter_injection_attempt_is_a_plain_value(cli, rows, engine):
    rows.chat(customer="+27820000001")
    result = cli("chats", "filter", "customer~\"'; drop table chats; --\"", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json() == []
    assert "chats" in inspect(engine).get_table_names()
    assert len(cli("chats", "list", "-o", "json").json()) == 1


def test_filter_unknown_field_or_bad_value_is_a_usage_error(cli, rows):
    unknown = cli("chats", "filter", "colour=red")
    assert unknown.exit_code == 2
    assert "status" in unknown.stderr and "idle" in unknown.stderr
    bad = cli("chats", "filter", "status=sleeping")
    assert bad.exit_code == 2 and "live" in bad.stderr
    bad_duration = cli("chats", "filter", "idle>soon")
    assert bad_duration.exit_code == 2


# -- chats show ---------------------------------------------------------------------------
def test_show_json_is_the_chat_with_messages_comments_ticket(cli, rows):
    chat = rows.chat(agent="alice", channel="whatsapp", customer_wrote=10 * M, agent_wrote=5 * M)
    rows.comment(chat, "alice", "@bob can you look", ("bob",))
    cli("chats", "flag", str(chat))
    result = cli("chats", "show", str(chat), "-o", "json")
    assert result.exit_code == 0, result
    shown = result.json()
    assert list(shown)[:len(CHAT_KEYS)] == list(CHAT_KEYS)
    assert {"messages", "comments", "ticket", "reply_window", "history"} <= set(shown)
    assert [m["direction"] for m in shown["messages"]] == ["inbound", "outbound"]
    assert shown["comments"][0]["mentions"] == ["bob"]
    assert shown["ticket"] is None
    assert shown["reply_window"]["text"] is True
    assert [event["action"] for event in shown["history"]] == ["chats.flag"]
    assert set(shown["history"][0]) == {"id", "at", "actor", "action", "entity", "entity_id", "operation",
                                        "before", "after", "reason"}
    human = cli("chats", "show", str(chat), "-o", "plain")
    assert human.exit_code == 0 and "can send" in human.stdout and "@bob can you look" in human.stdout


def test_show_tags_and_ticket_match_the_lists(cli, rows, engine):
    """Show reads mentions only for a chat with comments and its ticket only when the chat row has one:
    what it shows is what the views show."""
    tagged = rows.chat(agent="alice")
    rows.comment(tagged, "alice", "@sue @bob please", ("sue", "bob"))
    rows.comment(tagged, "alice", "@bob again", ("bob",))
    quiet = rows.chat(agent="alice")
    converted = rows.chat(status="converted", agent="alice")
    from sqlalchemy import insert

    from chatctl.storage.models import Ticket

    with engine.begin() as connection:
        connection.execute(insert(Ticket), [{"chat_id": converted, "status": "open", "reason": "manual",
                                             "created_at": dt.datetime.now(dt.timezone.utc), "closed_at": None,
                                             "archived_at": None}])
    shown = cli("chats", "show", str(tagged), "-o", "json").json()
    listed = {chat["id"]: chat for chat in cli("chats", "list", "tagged", "--agent", "bob", "-o", "json").json()}
    assert [person["handle"] for person in shown["tagged"]] == ["bob", "sue"]
    assert shown["tagged"] == listed[tagged]["tagged"]
    assert [comment["mentions"] for comment in shown["comments"]] == [["bob", "sue"], ["bob"]]
    assert shown["ticket"] is None
    plain = cli("chats", "show", str(quiet), "-o", "json").json()
    assert (plain["comments"], plain["tagged"], plain["ticket"]) == ([], [], None)
    ticketed = cli("chats", "show", str(converted), "-o", "json").json()
    ticket = cli("chats", "list", "tickets", "-o", "json").json()[0]
    assert ticketed["ticket_id"] == ticket["id"] and ticketed["ticket"] == ticket


def test_show_missing_chat_exits_1(cli, rows):
    result = cli("chats", "show", "424242")
    assert result.exit_code == 1 and "424242" in result.stderr


def test_r11_show_tells_what_can_be_sent_and_why(cli, rows):
    recent = rows.chat(status="closed", closed=2 * H, channel="webchat", agent="alice")
    old_whatsapp = rows.chat(status="closed", closed=30 * H, ago=40 * H, customer_wrote=31 * H,
                             channel="whatsapp", agent="alice")
    old_sms = rows.chat(status="closed", closed=30 * H, ago=40 * H, customer_wrote=31 * H, channel="sms")

    def window(chat):
        return cli("chats", "show", str(chat), "-o", "json").json()["reply_window"]

    assert window(recent)["can_send"] == "text" and "within the 1d closed-reply window" in window(recent)["reason"]
    assert window(old_whatsapp)["can_send"] == "template only"
    assert window(old_sms)["can_send"] == "nothing"
    assert "sms" in window(old_sms)["reason"]
