"""Tickets: the view, show, and the bulk actions under R13, R14 and R15."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from freezegun import freeze_time

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TICKET_FIELDS = ["id", "chat_id", "status", "reason", "agent", "created_at", "closed_at", "archived_at"]
_addresses = itertools.count(1)


# -- test data: plain inserts, so these tests depend on nothing but the schema ------------------
def add_agent(engine, handle: str, role: str = "agent") -> int:
    from sqlalchemy import insert

    from chatctl.storage.models import Agent

    with engine.begin() as connection:
        return connection.execute(insert(Agent).values(
            handle=handle, name=handle.title(), role=role, presence="online", active=True,
            created_at=NOW - dt.timedelta(days=400)).returning(Agent.id)).scalar_one()


def add_tickets(engine, *specs: dict) -> list[int]:
    """One converted chat and one ticket per spec; keys: age, status, reason, agent_id, closed_at, archived_at."""
    from sqlalchemy import insert

    from chatctl.storage.models import Chat, Customer, Ticket

    ids = []
    with engine.begin() as connection:
        for spec in specs:
            created = NOW - spec.get("age", dt.timedelta(days=1))
            number = next(_addresses)
            customer = connection.execute(insert(Customer).values(
                display_name=f"Customer {number}", address=f"+2782{number:07d}", created_at=created,
            ).returning(Customer.id)).scalar_one()
            chat = connection.execute(insert(Chat).values(
                customer_id=customer, channel="whatsapp", status="converted", agent_id=spec.get("agent_id"),
                created_at=created, last_activity_at=created, last_customer_message_at=created,
            ).returning(Chat.id)).scalar_one()
            ids.append(connection.execute(insert(Ticket).values(
                chat_id=chat, status=spec.get("status", "open"), reason=spec.get("reason", "out_of_hours"),
                agent_id=spec.get("agent_id"), created_at=created, closed_at=spec.get("closed_at"),
                archived_at=spec.get("archived_at"),
            ).returning(Ticket.id)).scalar_one())
    return ids


def tickets(engine) -> dict[int, dict]:
    from sqlalchemy import select

    from chatctl.storage.models import Ticket

    with engine.connect() as connection:
        return {row.id: dict(row._mapping) for row in connection.execute(select(Ticket.__table__))}


def audit_rows(engine) -> list:
    from sqlalchemy import select

    from chatctl.storage.models import AuditEvent

    with engine.connect() as connection:
        return connection.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).all()


def days(n: float) -> dt.timedelta:
    return dt.timedelta(days=n)


def results(result) -> dict[int, tuple[str, str | None]]:
    return {item["id"]: (item["result"], item["reason"]) for item in result.json()["results"]}


# -- list and show ---------------------------------------------------------------------------
def test_tickets_list_json_fields_exact_and_archived_hidden(cli, engine):
    alice = add_agent(engine, "alice")
    open_id, closed_id, archived_id = add_tickets(
        engine, {"age": days(3), "agent_id": alice, "reason": "no_agents"},
        {"age": days(2), "status": "closed", "closed_at": NOW - days(1)},
        {"age": days(100), "archived_at": NOW - days(10)},
    )
    with freeze_time(NOW):
        listed = cli("tickets", "list", "-o", "json")
    assert listed.exit_code == 0, listed
    rows = listed.json()
    assert [row["id"] for row in rows] == [closed_id, open_id]  # newest first, archived hidden (R1)
    assert all(list(row) == TICKET_FIELDS for row in rows)
    first = next(row for row in rows if row["id"] == open_id)
    assert first["agent"] == "alice" and first["reason"] == "no_agents" and first["status"] == "open"
    assert dt.datetime.fromisoformat(first["created_at"]) == NOW - days(3)
    assert first["closed_at"] is None and first["archived_at"] is None
    only = cli("tickets", "list", "--archived", "-o", "json").json()
    assert [row["id"] for row in only] == [archived_id]
    assert dt.datetime.fromisoformat(only[0]["archived_at"]) == NOW - days(10)
    everything = cli("tickets", "list", "--include-archived", "-o", "jsonl").jsonl()
    assert [row["id"] for row in everything] == [closed_id, open_id, archived_id]
    both = cli("tickets", "list", "--archived", "--include-archived")
    assert both.exit_code == 2


def test_tickets_list_filters(cli, engine):
    alice = add_agent(engine, "alice")
    young, middle, old = add_tickets(
        engine, {"age": days(1), "agent_id": alice}, {"age": days(10), "reason": "manual"},
        {"age": days(40), "status": "closed", "closed_at": NOW - days(5), "agent_id": alice},
    )

    def ids(*args):
        with freeze_time(NOW):
            result = cli("tickets", "list", *args, "-o", "json")
        assert result.exit_code == 0, result
        return [row["id"] for row in result.json()]

    assert ids("--status", "open") == [young, middle]
    assert ids("--status", "closed") == [old]
    assert ids("--agent", "alice") == [young, old]
    assert ids("--reason", "manual") == [middle]
    assert ids("--older-than", "5d") == [middle, old]
    assert ids("--older-than", "30d") == [old]
    assert ids("--created-before", "-5d", "--created-after", "2026-10-25") == [middle]
    assert ids("--created-after", (NOW - days(10)).isoformat()) == [young, middle]
    assert cli("tickets", "list", "--agent", "nobody").exit_code == 2
    assert cli("tickets", "list", "--older-than", "soon").exit_code == 2


def test_tickets_list_pages_by_cursor(cli, engine):
    created = add_tickets(engine, *({"age": days(n)} for n in range(1, 6)))  # newest first = created order
    first = cli("tickets", "list", "--limit", "2", "-o", "json")
    assert [row["id"] for row in first.json()] == created[:2]
    cursor = first.stderr.split("--after ")[1].split()[0]
    second = cli("tickets", "list", "--limit", "2", "--after", cursor, "-o", "json")
    assert [row["id"] for row in second.json()] == created[2:4]
    cursor = second.stderr.split("--after ")[1].split()[0]
    last = cli("tickets", "list", "--limit", "2", "--after", cursor, "-o", "json")
    assert [row["id"] for row in last.json()] == created[4:]
    assert "--after" not in last.stderr  # the last page is not full
    streamed = cli("tickets", "list", "--all", "-o", "ids")
    assert streamed.stdout.split() == [str(i) for i in created] and "--after" not in streamed.stderr
    assert cli("tickets", "list", "--after", "garbage!").exit_code == 2


def test_tickets_show_ticket_chat_and_history(cli, engine):
    (ticket,) = add_tickets(engine, {"age": days(2)})
    assert cli("tickets", "close", ticket).exit_code == 0
    shown = cli("tickets", "show", ticket, "-o", "json")
    assert shown.exit_code == 0, shown
    record = shown.json()
    assert record["id"] == ticket and record["status"] == "closed"
    assert record["chat"]["status"] == "converted" and record["chat"]["id"] == record["chat_id"]
    assert [event["action"] for event in record["history"]] == ["tickets.close"]
    assert record["history"][0]["entity"] == "ticket" and record["history"][0]["entity_id"] == str(ticket)
    table = cli("tickets", "show", ticket, "-o", "plain")
    assert table.exit_code == 0 and "tickets.close" in table.stdout and "chat_status" in table.stdout
    missing = cli("tickets", "show", "999999")
    assert missing.exit_code == 1 and "no ticket 999999" in missing.stderr


# -- close, idempotency, audit ------------------------------------------------------------------
def test_r15_close_by_ids_is_audited_with_the_operation_id(cli, engine):
    first, second, untouched = add_tickets(engine, {}, {}, {})
    with freeze_time(NOW):
        result = cli("tickets", "close", first, second, "-o", "json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["summary"] == {"changed": 2, "skipped": 0, "not_found": 0, "refused": 0}
    rows = tickets(engine)
    assert rows[first]["status"] == rows[second]["status"] == "closed"
    assert rows[first]["closed_at"] == NOW and rows[untouched]["status"] == "open"
    events = audit_rows(engine)
    assert [(e.action, e.entity_type, e.entity_id) for e in events] == [
        ("tickets.close", "ticket", str(first)), ("tickets.close", "ticket", str(second))]
    assert {e.operation_id for e in events} == {document["operation"]}
    assert events[0].before == {"status": "open", "closed_at": None}
    assert events[0].after == {"status": "closed", "closed_at": NOW.isoformat()}
    assert events[0].actor == "ops:tester"


def test_close_of_a_closed_ticket_is_skipped_exit_0(cli, engine):
    (ticket,) = add_tickets(engine, {"status": "closed", "closed_at": NOW - days(1)})
    result = cli("tickets", "close", ticket, "-o", "json")
    assert result.exit_code == 0, result
    assert results(result) == {ticket: ("skipped", "already closed")}
    assert tickets(engine)[ticket]["closed_at"] == NOW - days(1)
    assert audit_rows(engine) == []
    again = cli("tickets", "reopen", ticket)
    assert again.exit_code == 0 and cli("tickets", "reopen", ticket, "-o", "json").json()["summary"]["skipped"] == 1


def test_close_unknown_id_is_not_found_exit_1_others_done(cli, engine):
    (ticket,) = add_tickets(engine, {})
    result = cli("tickets", "close", ticket, "987654", "-o", "json")
    assert result.exit_code == 1
    assert results(result) == {ticket: ("changed", None), 987654: ("not_found", "no such ticket")}
    assert tickets(engine)[ticket]["status"] == "closed"


def test_close_reads_ids_from_stdin_in_batches(cli, engine):
    created = add_tickets(engine, *({} for _ in range(7)))
    lines = "# cleanup\n" + "\n".join(str(i) for i in created) + "\n\n"
    result = cli("tickets", "close", "-", "--batch-size", "3", "-o", "jsonl", input=lines)
    assert result.exit_code == 0, result
    assert [item["result"] for item in result.jsonl()] == ["changed"] * 7
    assert all(row["status"] == "closed" for row in tickets(engine).values())
    assert len(audit_rows(engine)) == 7
    assert cli("tickets", "close", "-", input="12\nnot-an-id\n").exit_code == 2


def test_dry_run_reports_exactly_and_changes_nothing(cli, engine):
    open_id, closed_id = add_tickets(engine, {}, {"status": "closed", "closed_at": NOW})
    before = tickets(engine)
    result = cli("tickets", "close", open_id, closed_id, "--dry-run", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json()["dry_run"] is True
    assert results(result) == {open_id: ("would_change", None), closed_id: ("skipped", "already closed")}
    assert "dry run, nothing changed" in result.stderr
    for command in (["archive", open_id], ["assign", open_id, "--agent", "bob"], ["reopen", closed_id]):
        if command[0] == "assign":
            add_agent(engine, "bob")
        assert cli("tickets", *command, "--dry-run").exit_code == 0
    where = cli("tickets", "close", "--where", "age>0s", "--dry-run", "-o", "json")
    assert where.exit_code == 0 and results(where) == {open_id: ("would_change", None)}
    assert tickets(engine) == before
    assert audit_rows(engine) == []


# -- R13 ------------------------------------------------------------------------------------
def test_r13_archived_ticket_is_read_only_until_unarchived(cli, engine):
    add_agent(engine, "bob")
    archived_open, archived_closed = add_tickets(
        engine, {"age": days(100), "archived_at": NOW - days(10)},
        {"age": days(100), "status": "closed", "closed_at": NOW - days(50), "archived_at": NOW - days(10)})
    for command in (["close", archived_open], ["reopen", archived_closed], ["assign", archived_open, "--agent", "bob"]):
        refused = cli("tickets", *command, "-o", "json")
        assert refused.exit_code == 1, refused
        ((result, reason),) = results(refused).values()
        assert result == "refused" and "read-only until unarchived" in reason and "archived" in reason
    assert tickets(engine)[archived_open]["status"] == "open"
    assert tickets(engine)[archived_open]["agent_id"] is None
    assert audit_rows(engine) == []

    unarchived = cli("tickets", "unarchive", archived_open, "-o", "json")
    assert unarchived.exit_code == 0 and results(unarchived) == {archived_open: ("changed", None)}
    assert cli("tickets", "close", archived_open).exit_code == 0
    assert tickets(engine)[archived_open]["status"] == "closed"
    assert [e.action for e in audit_rows(engine)] == ["tickets.unarchive", "tickets.close"]
    assert audit_rows(engine)[0].before == {"archived_at": (NOW - days(10)).isoformat(), "unarchived_at": None}
    unarchive = audit_rows(engine)[0]
    assert unarchive.after == {"archived_at": None, "unarchived_at": unarchive.at.isoformat()}


def test_r13_archive_hides_ticket_and_twice_is_skipped(cli, engine):
    (ticket,) = add_tickets(engine, {})
    with freeze_time(NOW):
        assert cli("tickets", "archive", ticket).exit_code == 0
    assert tickets(engine)[ticket]["archived_at"] == NOW
    assert cli("tickets", "list", "-o", "ids").stdout == ""
    assert cli("tickets", "list", "--archived", "-o", "ids").stdout.split() == [str(ticket)]
    again = cli("tickets", "archive", ticket, "-o", "json")
    assert again.exit_code == 0 and results(again) == {ticket: ("skipped", "already archived")}
    not_archived = add_tickets(engine, {})[0]
    assert results(cli("tickets", "unarchive", not_archived, "-o", "json")) == {
        not_archived: ("skipped", "not archived")}


def test_r13_reopen_while_not_archived(cli, engine):
    precise = NOW - days(2) + dt.timedelta(microseconds=120034)
    ticket, other = add_tickets(engine, {"status": "closed", "closed_at": NOW - days(1)},
                                {"status": "closed", "closed_at": precise})
    assert cli("tickets", "reopen", ticket, other).exit_code == 0
    row = tickets(engine)[ticket]
    assert row["status"] == "open" and row["closed_at"] is None
    event, other_event = audit_rows(engine)
    # The audit keeps timestamps as ISO 8601 in UTC, exactly as written, so a revert restores them.
    assert event.before == {"status": "closed", "closed_at": (NOW - days(1)).isoformat()}
    assert event.after == {"status": "open", "closed_at": None}
    assert other_event.before["closed_at"] == precise.isoformat()
    assert dt.datetime.fromisoformat(other_event.before["closed_at"]) == precise


def test_r13_tickets_never_expire_no_sweep_closes_them(cli, engine):
    # Ancient open tickets stay open whatever the sweeps do as days pass: only people close tickets.
    # (Archiving after ticket_archive_after is not expiry: an archived ticket keeps its status.)
    old, older = add_tickets(engine, {"age": days(45)}, {"age": days(80)})
    for moment in (NOW, NOW + days(1), NOW + days(30)):
        swept = cli("sweep", "run", "--as-of", moment.isoformat(), "-o", "json")
        assert swept.exit_code == 0, swept
    rows = tickets(engine)
    assert [(rows[i]["status"], rows[i]["closed_at"]) for i in (old, older)] == [("open", None), ("open", None)]
    assert rows[older]["archived_at"] == NOW + days(30)  # the sweeps did run over these tickets
    assert {event.action for event in audit_rows(engine)} == {"sweep.archive"}


# -- R14 ------------------------------------------------------------------------------------
def test_r14_agent_cannot_assign_ticket_to_another_agent(cli, engine):
    alice = add_agent(engine, "alice")
    add_agent(engine, "bob")
    unassigned, alices = add_tickets(engine, {}, {"agent_id": alice})
    result = cli("--actor", "alice", "tickets", "assign", unassigned, alices, "--agent", "bob", "-o", "json")
    assert result.exit_code == 1, result
    assert results(result) == {unassigned: ("refused", "agents cannot transfer tickets"),
                               alices: ("refused", "agents cannot transfer tickets")}
    rows = tickets(engine)
    assert rows[unassigned]["agent_id"] is None and rows[alices]["agent_id"] == alice
    assert audit_rows(engine) == []


def test_r14_supervisor_and_admin_can_assign_audited(cli, engine):
    alice = add_agent(engine, "alice")
    bob = add_agent(engine, "bob")
    add_agent(engine, "sam", role="supervisor")
    first, second = add_tickets(engine, {"agent_id": alice}, {})
    by_supervisor = cli("--actor", "sam", "tickets", "assign", first, "--agent", "bob", "-o", "json")
    assert by_supervisor.exit_code == 0 and results(by_supervisor) == {first: ("changed", None)}
    by_admin = cli("tickets", "assign", second, first, "--agent", "bob", "-o", "json")  # ops: acts as admin
    assert results(by_admin) == {second: ("changed", None), first: ("skipped", "already assigned to bob")}
    assert {row["agent_id"] for row in tickets(engine).values()} == {bob}
    events = audit_rows(engine)
    assert [(e.actor, e.action, e.before, e.after) for e in events] == [
        ("sam", "tickets.assign", {"agent_id": alice, "agent": "alice"}, {"agent_id": bob, "agent": "bob"}),
        ("ops:tester", "tickets.assign", {"agent_id": None, "agent": None}, {"agent_id": bob, "agent": "bob"}),
    ]


def test_r14_agent_may_take_an_unassigned_ticket_not_anothers(cli, engine):
    alice = add_agent(engine, "alice")
    bob = add_agent(engine, "bob")
    unassigned, bobs = add_tickets(engine, {}, {"agent_id": bob})
    result = cli("--actor", "alice", "tickets", "assign", unassigned, bobs, "--agent", "alice", "-o", "json")
    assert result.exit_code == 1
    outcome = results(result)
    assert outcome[unassigned] == ("changed", None)
    assert outcome[bobs][0] == "refused" and "agents cannot transfer tickets" in outcome[bobs][1]
    rows = tickets(engine)
    assert rows[unassigned]["agent_id"] == alice and rows[bobs]["agent_id"] == bob


def test_assign_to_unknown_agent_is_a_usage_error(cli, engine):
    (ticket,) = add_tickets(engine, {})
    result = cli("tickets", "assign", ticket, "--agent", "nobody")
    assert result.exit_code == 2 and "unknown agent" in result.stderr


# -- close --where ----------------------------------------------------------------------------
def test_close_where_without_yes_off_a_terminal_exits_2_and_changes_nothing(cli, engine):
    add_tickets(engine, {"age": days(40)}, {"age": days(50)})
    before = tickets(engine)
    result = cli("tickets", "close", "--where", "age>30d", tty=False)
    assert result.exit_code == 2, result
    assert "--yes" in result.stderr
    assert tickets(engine) == before and audit_rows(engine) == []


def test_close_where_age_selects_exactly_the_right_tickets(cli, engine):
    alice = add_agent(engine, "alice")
    young, edge_young, edge_old, old, closed, archived, alices = add_tickets(
        engine,
        {"age": days(10)},
        {"age": days(30) - dt.timedelta(minutes=1)},
        {"age": days(30) + dt.timedelta(minutes=1)},
        {"age": days(45), "reason": "no_agents"},
        {"age": days(45), "status": "closed", "closed_at": NOW - days(20)},
        {"age": days(95), "archived_at": NOW - days(5)},
        {"age": days(60), "agent_id": alice},
    )
    with freeze_time(NOW):
        result = cli("tickets", "close", "--where", "age>30d", "--yes", "--batch-size", "2", "-o", "json")
    assert result.exit_code == 0, result
    assert results(result) == {edge_old: ("changed", None), old: ("changed", None), alices: ("changed", None)}
    rows = tickets(engine)
    assert {i for i, row in rows.items() if row["status"] == "closed"} == {edge_old, old, alices, closed}
    assert rows[archived]["status"] == "open"  # read-only (R13): not selected
    assert rows[closed]["closed_at"] == NOW - days(20)
    events = audit_rows(engine)
    assert sorted(int(e.entity_id) for e in events) == sorted([edge_old, old, alices])
    assert {e.operation_id for e in events} == {result.json()["operation"]}
    assert all(e.reason == "selected by --where age>30d" for e in events)
    assert (rows[young]["status"], rows[edge_young]["status"]) == ("open", "open")

    # Several expressions AND together; a second run finds nothing left.
    reopened = cli("tickets", "reopen", old, alices)
    assert reopened.exit_code == 0
    with freeze_time(NOW):
        narrower = cli("tickets", "close", "--where", "age>30d", "agent=alice", "--yes", "-o", "json")
    assert results(narrower) == {alices: ("changed", None)}
    with freeze_time(NOW):
        again = cli("tickets", "close", "--where", "age>30d", "--where", "agent=alice", "--yes", "-o", "json")
    assert again.exit_code == 0 and again.json()["results"] == []


def test_close_where_bad_expression_is_a_usage_error(cli, engine):
    add_tickets(engine, {})
    for words in (["--where", "colour=red"], ["--where", "age>soon"], ["--where", "age>1d", "-"]):
        result = cli("tickets", "close", *words, "--yes")
        assert result.exit_code == 2, (words, result)
    assert {row["status"] for row in tickets(engine).values()} == {"open"}


def test_close_where_in_a_pipe_prints_no_progress(cli, engine):
    add_tickets(engine, *({"age": days(40)} for _ in range(5)))
    result = cli("tickets", "close", "--where", "age>30d", "--yes", "-o", "ids", tty=False)
    assert result.exit_code == 0
    assert len(result.stdout.split()) == 5
    assert result.stderr.count("\n") == 1 and "tickets close: 5 changed" in result.stderr


def test_close_where_ctrl_c_keeps_finished_batches_with_audit(cli, engine, monkeypatch):
    import chatctl.domain.tickets.actions as domain

    created = add_tickets(engine, *({"age": days(40)} for _ in range(6)))
    real = domain.apply_action
    calls = []

    def interrupted_on_second_batch(connection, ids, action, **kwargs):
        calls.append(ids)
        if len(calls) == 2:
            real(connection, ids, action, **kwargs)  # the statements ran, then Ctrl-C before commit
            raise KeyboardInterrupt
        return real(connection, ids, action, **kwargs)

    monkeypatch.setattr(domain, "apply_action", interrupted_on_second_batch)
    result = cli("tickets", "close", "--where", "age>30d", "--yes", "--batch-size", "2", "-o", "jsonl")
    assert result.exit_code == 130, result
    assert "2 changed" in result.stderr and "(interrupted)" in result.stderr
    rows = tickets(engine)
    assert [i for i in created if rows[i]["status"] == "closed"] == created[:2]
    assert sorted(int(e.entity_id) for e in audit_rows(engine)) == created[:2]
    assert [item["id"] for item in result.jsonl()] == created[:2]


@pytest.mark.parametrize("command", ["reopen", "archive", "unarchive", "assign"])
def test_mutations_need_ids(cli, command):
    extra = ["--agent", "x"] if command == "assign" else []
    assert cli("tickets", command, *extra).exit_code == 2


def test_close_where_at_a_terminal_asks_with_the_count(cli, engine, monkeypatch):
    import typer

    add_tickets(engine, {"age": days(40)}, {"age": days(50)}, {"age": days(2)})
    asked = []

    def answer(reply):
        def confirm(question, **kwargs):
            asked.append(question)
            return reply
        return confirm

    monkeypatch.setattr(typer, "confirm", answer(False))
    declined = cli("tickets", "close", "--where", "age>30d", tty=True)
    assert declined.exit_code == 2 and "nothing changed" in declined.stderr
    assert asked == ["close the 2 open tickets matching age>30d"]
    assert {row["status"] for row in tickets(engine).values()} == {"open"}

    monkeypatch.setattr(typer, "confirm", answer(True))
    confirmed = cli("tickets", "close", "--where", "age>30d", "-o", "json", tty=True)
    assert confirmed.exit_code == 0, confirmed
    assert confirmed.json()["summary"]["changed"] == 2
    assert sorted(row["status"] for row in tickets(engine).values()) == ["closed", "closed", "open"]
