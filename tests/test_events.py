"""events ingest (SPEC 2.5): each event type, R12 at arrival, revivals, bad lines, ids, chunking."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from chatctl.storage.models import AuditEvent, Chat, Customer, Message, Ticket

UTC = dt.timezone.utc
# Monday 30 November 2026: within the default business hours (mon-fri 08:00-17:00 UTC).
MONDAY_10 = "2026-11-30T10:00:00Z"


def lines(*events) -> str:
    return "".join((event if isinstance(event, str) else json.dumps(event)) + "\n" for event in events)


def started(chat=None, at=MONDAY_10, customer="+27820000001", **extra):
    event = {"type": "chat_started", "customer": customer, "channel": "whatsapp", "at": at, **extra}
    if chat is not None:
        event["chat"] = chat
    return event


def at(text_value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_value.replace("Z", "+00:00"))


@pytest.fixture
def desk(cli):
    """A desk with alice online and bob offline."""
    assert cli("agents", "add", "alice", "--name", "Alice", "--online").exit_code == 0
    assert cli("agents", "add", "bob", "--name", "Bob").exit_code == 0
    return cli


def ingest(cli, *events, expect=0):
    result = cli("events", "ingest", "-", "-o", "json", input=lines(*events))
    assert result.exit_code == expect, result
    return result


def chat_row(engine, chat_id):
    with engine.connect() as connection:
        return connection.execute(select(Chat.__table__).where(Chat.id == chat_id)).one()


def test_chat_started_creates_chat_customer_and_first_message(desk, engine):
    result = ingest(desk, started(101, agent="alice", text="Hi", name="Thandi"))
    summary = result.json()
    assert summary["events"]["chat_started"] == 1 and summary["chats_created"] == 1
    assert summary["tickets_created"] == 0 and summary["bad_lines"] == 0
    chat = chat_row(engine, 101)
    assert chat.status == "live" and chat.channel == "whatsapp"
    assert chat.created_at == chat.assigned_at == chat.last_customer_message_at == chat.last_activity_at \
        == at(MONDAY_10)
    assert chat.last_agent_message_at is None and chat.agent_seen_at is None
    with engine.connect() as connection:
        customer = connection.execute(select(Customer.__table__)).one()
        messages = connection.execute(select(Message.__table__)).all()
        agent_id = connection.execute(text("SELECT id FROM agents WHERE handle = 'alice'")).scalar_one()
    assert chat.agent_id == agent_id
    assert (customer.address, customer.display_name, customer.created_at) == ("+27820000001", "Thandi",
                                                                              at(MONDAY_10))
    assert [(m.chat_id, m.direction, m.body, m.created_at) for m in messages] == [
        (101, "inbound", "Hi", at(MONDAY_10))]


def test_chat_started_reuses_the_customer_on_second_sight(desk, engine):
    ingest(desk, started(1), started(2, at="2026-11-30T11:00:00Z"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM customers")).scalar_one() == 1
        assert len(set(connection.execute(text("SELECT customer_id FROM chats")).scalars())) == 1


def test_chat_started_without_id_gets_a_new_one_reported(desk, engine):
    summary = ingest(desk, started(None), started(None, customer="+2782000002")).json()
    generated = summary["generated_chats"]
    assert [item["line"] for item in generated] == [1, 2]
    ids = [item["chat"] for item in generated]
    assert len(set(ids)) == 2
    for chat_id in ids:
        assert chat_row(engine, chat_id).status == "live"


def test_explicit_ids_never_collide_with_generated_ones(desk, engine):
    ingest(desk, started(500))
    # A later run generates ids: they lie beyond the explicit one, on both backends.
    generated = [item["chat"] for item in ingest(desk, started(None), started(None)).json()["generated_chats"]]
    assert all(chat_id > 500 for chat_id in generated)
    # An explicit id higher than the sequence, then generated ids in the same chunk.
    summary = ingest(desk, started(None), started(900), started(None)).json()
    generated = [item["chat"] for item in summary["generated_chats"]]
    assert 900 not in generated and len(set(generated)) == 2
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM chats")).scalar_one() == 6
    # An explicit id that exists is a bad line.
    result = ingest(desk, started(500), expect=1)
    assert "line 1: chat 500 already exists" in result.stderr


def test_customer_message_on_live_chat_is_activity_without_audit(desk, engine):
    ingest(desk, started(7, text="Hi"))
    ingest(desk, {"type": "customer_message", "chat": 7, "text": "hello?", "at": "2026-11-30T10:05:00Z"})
    chat = chat_row(engine, 7)
    assert chat.status == "live"
    assert chat.last_customer_message_at == chat.last_activity_at == at("2026-11-30T10:05:00Z")
    with engine.connect() as connection:
        actions = connection.execute(select(AuditEvent.action)).scalars().all()
    assert "events.revive" not in actions


def test_agent_message_answers_and_moves_the_seen_mark(desk, engine):
    ingest(desk, started(7, agent="alice", text="Hi"),
           {"type": "agent_message", "chat": 7, "agent": "alice", "text": "Hello!", "at": "2026-11-30T10:02:00Z"})
    chat = chat_row(engine, 7)
    reply = at("2026-11-30T10:02:00Z")
    assert chat.last_agent_message_at == chat.agent_seen_at == chat.last_activity_at == reply
    assert chat.last_customer_message_at == at(MONDAY_10)
    with engine.connect() as connection:
        directions = connection.execute(
            select(Message.direction, Message.agent_id).order_by(Message.created_at)).all()
    assert [d for d, _ in directions] == ["inbound", "outbound"] and directions[1][1] is not None


def test_presence_sets_online_and_offline_and_is_audited(desk, engine):
    ingest(desk, {"type": "presence", "agent": "bob", "status": "online", "at": "2026-11-30T08:00:00Z"},
           {"type": "presence", "agent": "alice", "status": "offline", "at": "2026-11-30T08:01:00Z"})
    agents = {a["handle"]: a["presence"] for a in desk("agents", "list", "-o", "json").json()}
    assert agents == {"alice": "offline", "bob": "online"}
    with engine.connect() as connection:
        rows = connection.execute(text(
            "SELECT entity_id, presence_changed_at FROM audit_events JOIN agents ON handle = entity_id "
            "WHERE action = 'events.presence' ORDER BY audit_events.id")).all()
    assert [row.entity_id for row in rows] == ["bob", "alice"]


def test_r12_chat_out_of_hours_becomes_ticket(desk, engine):
    saturday = "2026-12-05T10:00:00Z"
    summary = ingest(desk, started(1, at=saturday, text="anyone?")).json()
    assert summary["tickets_by_reason"] == {"out_of_hours": 1}
    chat = chat_row(engine, 1)
    assert chat.status == "converted"
    with engine.connect() as connection:
        ticket = connection.execute(select(Ticket.__table__)).one()
        actions = connection.execute(select(AuditEvent.action, AuditEvent.entity_id)).all()
    assert (ticket.chat_id, ticket.reason, ticket.status, ticket.created_at) == (1, "out_of_hours", "open",
                                                                                 at(saturday))
    assert ("events.chat_started", "1") in actions and ("events.ticket_created", str(ticket.id)) in actions


def test_r12_no_agent_online_becomes_ticket(desk, engine):
    summary = ingest(
        desk,
        {"type": "presence", "agent": "alice", "status": "offline", "at": "2026-11-30T09:59:00Z"},
        started(1),
        {"type": "presence", "agent": "bob", "status": "online", "at": "2026-11-30T10:01:00Z"},
        started(2, at="2026-11-30T10:02:00Z"),
    ).json()
    assert summary["tickets_by_reason"] == {"no_agents": 1}
    assert chat_row(engine, 1).status == "converted"
    assert chat_row(engine, 2).status == "live"


def test_r12_out_of_hours_wins_over_no_agents(desk, engine):
    desk("agents", "set-status", "alice", "offline")
    summary = ingest(desk, started(1, at="2026-11-30T20:00:00Z")).json()
    assert summary["tickets_by_reason"] == {"out_of_hours": 1}


def test_r12_business_hours_follow_desk_timezone_across_dst(desk, engine):
    assert desk("prefs", "set", "timezone", "Europe/Berlin").exit_code == 0
    assert desk("prefs", "set", "business_hours", "mon-fri 08:00-17:00").exit_code == 0
    # 07:30 UTC is 08:30 in Berlin in winter (UTC+1; open) but 09:30 in summer;
    # 06:30 UTC is 07:30 in winter (closed) and 08:30 in summer (UTC+2; open).
    summary = ingest(
        desk,
        started(1, at="2026-11-30T07:30:00Z"),   # winter, 08:30 local: open
        started(2, at="2026-11-30T06:30:00Z"),   # winter, 07:30 local: closed
        started(3, at="2026-07-06T06:30:00Z"),   # summer, 08:30 local: open
        started(4, at="2026-03-30T06:30:00+00:00"),  # the Monday after the spring change: 08:30 local, open
        started(5, at="2026-03-27T06:30:00Z"),   # the Friday before it: 07:30 local, closed
    ).json()
    assert summary["tickets_by_reason"] == {"out_of_hours": 2}
    assert [chat_row(engine, n).status for n in (1, 2, 3, 4, 5)] == [
        "live", "converted", "live", "live", "converted"]


def test_r12_holiday_is_closed_all_day(desk, engine):
    assert desk("prefs", "set", "holidays", "2026-12-01").exit_code == 0
    ingest(desk, started(1, at="2026-12-01T10:00:00Z"), started(2, at="2026-12-02T10:00:00Z"))
    assert chat_row(engine, 1).status == "converted" and chat_row(engine, 2).status == "live"


def _set_chat(engine, chat_id, **values):
    from sqlalchemy import update

    with engine.begin() as connection:
        connection.execute(update(Chat).where(Chat.id == chat_id).values(**values))


def test_r6_customer_message_revives_pending_chat(desk, engine):
    ingest(desk, started(1, agent="alice", text="Hi"))
    _set_chat(engine, 1, status="pending", pending_since=at("2026-11-30T10:10:00Z"))
    summary = ingest(desk, {"type": "customer_message", "chat": 1, "text": "still there?",
                            "at": "2026-11-30T11:00:00Z"}).json()
    assert summary["revived"] == 1
    chat = chat_row(engine, 1)
    assert chat.status == "live" and chat.pending_since is None
    assert chat.last_customer_message_at == chat.last_activity_at == at("2026-11-30T11:00:00Z")
    with engine.connect() as connection:
        event = connection.execute(select(AuditEvent.__table__).where(AuditEvent.action == "events.revive")).one()
    assert event.before["status"] == "pending" and event.after == {"status": "live", "pending_since": None}
    assert event.at == at("2026-11-30T11:00:00Z")


def test_r11_customer_message_revives_closed_chat_keeping_its_agent(desk, engine):
    ingest(desk, started(1, agent="alice", text="Hi"))
    _set_chat(engine, 1, status="closed", closed_at=at("2026-11-30T10:30:00Z"), closed_by="system",
              close_reason="inactivity", reassign_count=2)
    agent_before = chat_row(engine, 1).agent_id
    ingest(desk, {"type": "customer_message", "chat": 1, "text": "back again", "at": "2026-12-01T09:00:00Z"})
    chat = chat_row(engine, 1)
    assert (chat.status, chat.closed_at, chat.closed_by, chat.close_reason, chat.reassign_count) == (
        "live", None, None, None, 0)
    assert chat.agent_id == agent_before
    assert chat.last_activity_at == at("2026-12-01T09:00:00Z")


def test_r11_agent_message_leaves_closed_chat_closed(desk, engine):
    ingest(desk, started(1, agent="alice", text="Hi"))
    _set_chat(engine, 1, status="closed", closed_at=at("2026-11-30T10:30:00Z"), closed_by="agent")
    ingest(desk, {"type": "agent_message", "chat": 1, "agent": "alice", "text": "follow-up",
                  "at": "2026-11-30T11:00:00Z"})
    assert chat_row(engine, 1).status == "closed"


def test_customer_message_on_converted_chat_is_stored_and_chat_stays_converted(desk, engine):
    ingest(desk, started(1, at="2026-12-05T10:00:00Z"),
           {"type": "customer_message", "chat": 1, "text": "hello?", "at": "2026-12-05T10:05:00Z"})
    chat = chat_row(engine, 1)
    assert chat.status == "converted"
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM messages WHERE chat_id = 1")).scalar_one() == 1


def test_messages_to_a_chat_started_in_the_same_chunk(desk, engine):
    result = desk("events", "ingest", "-", "-o", "json", input=lines(
        started(None, text="Hi", agent="alice"),
    ))
    chat_id = result.json()["generated_chats"][0]["chat"]
    # Started and messaged within one chunk, then the pending -> revive in a later one.
    ingest(desk, started(42, text="Hi"),
           {"type": "customer_message", "chat": 42, "text": "more", "at": "2026-11-30T10:01:00Z"},
           {"type": "agent_message", "chat": 42, "agent": "alice", "text": "yes", "at": "2026-11-30T10:02:00Z"},
           {"type": "customer_message", "chat": chat_id, "text": "x", "at": "2026-11-30T10:03:00Z"})
    chat = chat_row(engine, 42)
    assert chat.last_customer_message_at == at("2026-11-30T10:01:00Z")
    assert chat.last_agent_message_at == chat.last_activity_at == at("2026-11-30T10:02:00Z")
    assert chat_row(engine, chat_id).last_customer_message_at == at("2026-11-30T10:03:00Z")


def test_bad_lines_reported_with_line_numbers_good_lines_applied(desk, engine):
    result = desk("events", "ingest", "-", "-o", "json", input=lines(
        started(1),                                                           # 1 good
        "{not json",                                                          # 2
        {"type": "chat_ended", "chat": 1, "at": MONDAY_10},                   # 3 unknown type
        {"type": "customer_message", "chat": 99, "text": "x", "at": MONDAY_10},  # 4 unknown chat
        {"type": "agent_message", "chat": 1, "agent": "zed", "text": "x", "at": MONDAY_10},  # 5 unknown agent
        {"type": "customer_message", "chat": 1, "at": MONDAY_10},             # 6 missing text
        {"type": "customer_message", "chat": 1, "text": "x", "at": "yesterday"},  # 7 bad time
        "",                                                                   # 8 blank: ignored
        {"type": "customer_message", "chat": 1, "text": "fine", "at": "2026-11-30T10:09:00Z"},  # 9 good
        {"type": "presence", "agent": "bob", "status": "away", "at": MONDAY_10},  # 10 bad status
        {"type": "customer_message", "text": "x", "at": MONDAY_10},           # 11 missing chat
    ))
    assert result.exit_code == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("chatctl: line")]
    assert [int(line.split()[2].rstrip(":")) for line in errors] == [2, 3, 4, 5, 6, 7, 10, 11]
    assert "unknown type 'chat_ended'" in errors[1]
    assert "unknown chat 99" in errors[2] and "unknown agent 'zed'" in errors[3]
    assert "'text'" in errors[4] and "'chat'" in errors[7]
    summary = result.json()
    assert summary["bad_lines"] == 8 and summary["events"]["customer_message"] == 1
    assert chat_row(engine, 1).last_customer_message_at == at("2026-11-30T10:09:00Z")


def test_d6_an_event_time_without_an_offset_is_a_bad_line_never_guessed(desk, engine):
    result = desk("events", "ingest", "-", "-o", "json", input=lines(
        started(1),                                                                       # 1 good
        {"type": "customer_message", "chat": 1, "text": "x", "at": "2026-11-30T10:05:00"},  # 2 no offset
        {"type": "customer_message", "chat": 1, "text": "x", "at": "2026-11-30"},           # 3 a date
        {"type": "customer_message", "chat": 1, "text": "y", "at": "2026-11-30T12:06+02:00"},  # 4 good
    ))
    assert result.exit_code == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("chatctl: line")]
    assert [int(line.split()[2].rstrip(":")) for line in errors] == [2, 3]
    assert all("has no offset" in line for line in errors)
    assert result.json()["bad_lines"] == 2 and result.json()["events"]["customer_message"] == 1
    assert chat_row(engine, 1).last_customer_message_at == at("2026-11-30T10:06:00Z")


def test_a_nul_character_is_a_bad_line_on_every_database(desk, engine):
    """PostgreSQL cannot store U+0000 in text: the line is reported and skipped, never a failed chunk."""
    result = desk("events", "ingest", "-", "-o", "json", input=lines(
        started(1, text="Hi"),                                                             # 1 good
        {"type": "customer_message", "chat": 1, "text": "a\u0000b", "at": MONDAY_10},      # 2
        started(2, customer="+2782\u00000002"),                                           # 3
        {"type": "customer_message", "chat": 1, "text": "fine", "at": "2026-11-30T10:04:00Z"},  # 4 good
    ))
    assert result.exit_code == 1, result
    errors = [line for line in result.stderr.splitlines() if line.startswith("chatctl: line")]
    assert errors == ["chatctl: line 2: 'text' must not contain a NUL character (\\u0000)",
                      "chatctl: line 3: 'customer' must not contain a NUL character (\\u0000)"]
    assert result.json()["chats_created"] == 1
    with engine.connect() as connection:
        bodies = connection.execute(select(Message.body).order_by(Message.id)).scalars().all()
    assert bodies == ["Hi", "fine"]


def test_bad_lines_across_chunks_keep_their_line_numbers(desk, engine):
    from chatctl.domain.events import ingest as ingest_events

    events = [json.dumps(started(n, customer=f"c{n}")) for n in range(1, 8)]
    events[4] = "oops"
    bad = []
    summary = ingest_events(engine, iter(events), actor="ops:tester", operation_id="OP",
                            report_bad_line=lambda line, message: bad.append(line), chunk_lines=2)
    assert bad == [5] and summary.chats_created == 6 and summary.lines == 7


SATURDAY = "2026-12-05T10:00:00Z"  # out of the default business hours


@pytest.mark.parametrize("chunk_lines", [1, 2, 3, 1000])
def test_chunk_boundaries_change_nothing_the_events_do(desk, engine, chunk_lines, monkeypatch):
    """Whether a chat is started and messaged in one chunk or in several, whether a bad line
    falls in the middle of a chunk or alone in one, the desk ends the same."""
    from chatctl.domain import events as ingest_module
    from chatctl.domain.events import ingest as ingest_events

    # Chats and customers looked up two at a time: a chunk's lookups span several statements.
    monkeypatch.setattr(ingest_module, "LOOKUP", 2)

    # Addresses with the characters an array literal or a list of ids would trip on.
    first, second = "+27 82,000 0001", 'web:"b" {c}\\d'
    events = [
        started(1, customer=first, agent="alice", text="Hi"),                                    # 1
        started(2, customer=second, text="Hello", at="2026-11-30T10:00:30Z"),                    # 2
        {"type": "customer_message", "chat": 1, "text": "more", "at": "2026-11-30T10:01:00Z"},   # 3
        {"type": "customer_message", "chat": 77, "text": "who?", "at": "2026-11-30T10:01:30Z"},  # 4 unknown chat
        {"type": "agent_message", "chat": 1, "agent": "alice", "text": "yes", "at": "2026-11-30T10:02:00Z"},
        started(1, customer=first, at="2026-11-30T10:02:30Z"),                                   # 6 exists
        {"type": "customer_message", "chat": 2, "text": "x", "at": "2026-11-30T10:03:00Z"},      # 7
        started(3, customer=first, at="2026-11-30T10:04:00Z"),                                   # 8 same customer
        started(4, customer="+27820000004", at=SATURDAY, text="anyone?"),                        # 9 a ticket
        started(5, customer=second, at=SATURDAY),                                                # 10 a ticket
        {"type": "customer_message", "chat": 4, "text": "hello?", "at": "2026-12-05T10:05:00Z"},  # 11
        "{broken",                                                                               # 12
        started(6, customer="+27820000006", at=SATURDAY),                                        # 13 a ticket
    ]
    bad = []
    summary = ingest_events(engine, (json.dumps(event) if isinstance(event, dict) else event for event in events),
                            actor="ops:tester", operation_id="OP", chunk_lines=chunk_lines,
                            report_bad_line=lambda line, message: bad.append((line, message)))

    assert [line for line, _ in bad] == [4, 6, 12]
    assert "unknown chat 77" in bad[0][1] and "chat 1 already exists" in bad[1][1]
    assert (summary.chats_created, sum(summary.tickets_created.values()), summary.messages) == (6, 3, 7)
    one, two, three = chat_row(engine, 1), chat_row(engine, 2), chat_row(engine, 3)
    assert (one.status, one.created_at, one.last_customer_message_at) == ("live", at(MONDAY_10),
                                                                         at("2026-11-30T10:01:00Z"))
    assert one.last_agent_message_at == one.agent_seen_at == one.last_activity_at == at("2026-11-30T10:02:00Z")
    assert two.last_customer_message_at == two.last_activity_at == at("2026-11-30T10:03:00Z")
    assert two.last_agent_message_at is None and three.last_customer_message_at is None
    assert chat_row(engine, 4).last_customer_message_at == at("2026-12-05T10:05:00Z")
    with engine.connect() as connection:
        customers = dict(connection.execute(select(Customer.address, Customer.id)).all())
        messages = connection.execute(select(Message.chat_id, Message.direction, Message.body,
                                             Message.created_at).order_by(Message.id)).all()
        tickets = connection.execute(select(Ticket.id, Ticket.chat_id, Ticket.status, Ticket.reason,
                                            Ticket.created_at).order_by(Ticket.id)).all()
        ticket_events = connection.execute(select(AuditEvent.entity_id, AuditEvent.after).where(
            AuditEvent.action == "events.ticket_created").order_by(AuditEvent.id)).all()
    assert len(customers) == 4
    assert one.customer_id == three.customer_id == customers[first]
    assert two.customer_id == chat_row(engine, 5).customer_id == customers[second]
    assert [(row.chat_id, row.direction, row.body) for row in messages] == [
        (1, "inbound", "Hi"), (2, "inbound", "Hello"), (1, "inbound", "more"), (1, "outbound", "yes"),
        (2, "inbound", "x"), (4, "inbound", "anyone?"), (4, "inbound", "hello?")]
    assert [row.created_at for row in messages][:2] == [at(MONDAY_10), at("2026-11-30T10:00:30Z")]
    assert [(row.chat_id, row.status, row.reason, row.created_at) for row in tickets] == [
        (4, "open", "out_of_hours", at(SATURDAY)), (5, "open", "out_of_hours", at(SATURDAY)),
        (6, "open", "out_of_hours", at(SATURDAY))]
    # Each ticket's audit event names that ticket, and the chat it came from.
    assert [(event.entity_id, event.after["chat_id"]) for event in ticket_events] == [
        (str(row.id), row.chat_id) for row in tickets]
    assert all(chat_row(engine, chat).status == "converted" for chat in (4, 5, 6))

    # A later run whose one chunk names more existing chats and customers than one lookup takes.
    later = [{"type": "customer_message", "chat": chat, "text": "later", "at": f"2026-11-30T11:0{chat}:00Z"}
             for chat in (3, 2, 1)]
    later += [started(7, customer=first, at="2026-11-30T11:05:00Z"),
              started(8, customer=second, at="2026-11-30T11:06:00Z"),
              started(9, customer="+27820000004", at="2026-11-30T11:07:00Z")]
    summary = ingest_events(engine, (json.dumps(event) for event in later), actor="ops:tester",
                            operation_id="OP2", report_bad_line=lambda line, message: bad.append((line, message)))
    assert len(bad) == 3 and (summary.chats_created, summary.messages) == (3, 3)
    assert [chat_row(engine, chat).last_customer_message_at for chat in (1, 2, 3)] == [
        at("2026-11-30T11:01:00Z"), at("2026-11-30T11:02:00Z"), at("2026-11-30T11:03:00Z")]
    assert [chat_row(engine, chat).customer_id for chat in (7, 8, 9)] == [
        customers[first], customers[second], customers["+27820000004"]]


def test_timestamps_are_the_event_at_not_the_ingest_time(desk, engine):
    ingest(desk, started(1, at="2020-02-03T10:00:00+02:00", text="old"))
    chat = chat_row(engine, 1)
    assert chat.created_at == dt.datetime(2020, 2, 3, 8, tzinfo=UTC)
    with engine.connect() as connection:
        audit_at = connection.execute(select(AuditEvent.at).where(AuditEvent.action == "events.chat_started"))
        assert audit_at.scalar_one() == dt.datetime(2020, 2, 3, 8, tzinfo=UTC)


def test_missing_file_is_a_usage_error(desk, tmp_path):
    result = desk("events", "ingest", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_ingest_from_file_with_text_summary(desk, tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(lines(started(1), started(2, customer="+1")))
    result = desk("events", "ingest", str(path), "-o", "tsv")
    assert result.exit_code == 0, result
    fields = dict(line.split("\t") for line in result.stdout.splitlines()[1:])
    assert fields["chat_started"] == "2" and fields["chats_created"] == "2"
    assert "2 chats created" in result.stderr


def test_deactivated_agent_cannot_act_but_can_go_offline(desk, engine):
    assert desk("agents", "deactivate", "bob").exit_code == 0
    result = ingest(desk, started(1, agent="bob"),
                    {"type": "presence", "agent": "bob", "status": "online", "at": MONDAY_10},
                    {"type": "presence", "agent": "bob", "status": "offline", "at": MONDAY_10}, expect=1)
    assert "line 1: agent 'bob' is deactivated" in result.stderr
    assert "line 2: agent 'bob' is deactivated" in result.stderr
    assert result.json()["bad_lines"] == 2 and result.json()["events"]["presence"] == 1


def test_ids_output_lists_generated_chats(desk):
    result = desk("events", "ingest", "-", "-o", "ids", input=lines(started(None), started(5), started(None)))
    assert result.exit_code == 0, result
    ids = [int(line) for line in result.stdout.split()]
    assert len(ids) == 2 and 5 not in ids


def test_ingest_streams_and_commits_chunk_by_chunk(desk, engine):
    from chatctl.domain.events import ingest as ingest_events

    seen_in_database = []

    def stream():
        for n in range(1, 8):
            if n == 4:
                # The first chunk (3 lines) is committed before line 4 is even read.
                with engine.connect() as connection:
                    seen_in_database.append(connection.execute(text("SELECT count(*) FROM chats")).scalar_one())
            yield json.dumps(started(n, customer=f"c{n}"))

    summary = ingest_events(engine, stream(), actor="ops:tester", operation_id="OP",
                            report_bad_line=lambda *_: None, chunk_lines=3)
    assert seen_in_database == [3] and summary.chats_created == 7


def test_a_customer_created_meanwhile_by_another_ingest_is_reused(desk, engine):
    """Two ingests meeting a new customer at once: the second waits, then reuses the row."""
    import threading

    other = engine.connect()
    transaction = other.begin()
    other.execute(Customer.__table__.insert().values(
        display_name="Racer", address="+27820009999", created_at=at("2026-11-30T09:00:00Z")))
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=desk(
        "events", "ingest", "-", input=lines(started(chat=901, customer="+27820009999")))))
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive(), "the ingest should wait for the other transaction's customer row"
    transaction.commit()
    other.close()
    worker.join(timeout=30)
    assert outcome["result"].exit_code == 0, outcome["result"]
    with engine.connect() as connection:
        customers = connection.execute(
            select(Customer.id).where(Customer.address == "+27820009999")).scalars().all()
        chat_customer = connection.execute(select(Chat.customer_id).where(Chat.id == 901)).scalar_one()
    assert customers == [chat_customer]
