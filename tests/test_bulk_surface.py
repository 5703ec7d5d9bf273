"""One bulk surface (SPEC D14): every bulk action on chats and tickets takes ids, -
and --where (with --yes), a progress bar with a total on a terminal, -o on every
command that prints data, CSV that is CSV, and the edges where that surface was
uneven (a mistyped agent in a filter, a deactivated agent in a listing, a
downgrade without a prompt, a read-only database, ingest's generated ids)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from chat_rows import Rows
from test_demo import run_on_a_terminal

from chatctl.storage.models import AuditEvent, Chat, Ticket

H = dt.timedelta(hours=1)


@pytest.fixture
def rows(engine):
    desk = Rows(engine)
    desk.agent("alice")
    desk.agent("bob")
    desk.agent("gone", active=False)
    return desk


def _selected(rows):
    """Three live webchat chats the filter selects, and one whatsapp chat it leaves alone."""
    chosen = [rows.chat(channel="webchat", agent="alice") for _ in range(3)]
    other = rows.chat(channel="whatsapp", agent="alice")
    return chosen, other


ACTIONS = {
    "flag": [], "pending": [], "close": [], "convert": [], "assign": ["--agent", "bob"],
}


@pytest.mark.parametrize("action", ACTIONS)
def test_d14_every_chat_bulk_action_takes_where_with_yes(cli, rows, action):
    chosen, other = _selected(rows)
    result = cli("chats", action, *ACTIONS[action], "--where", "channel=webchat", "status=live", "--yes",
                 "-o", "json")
    assert result.exit_code == 0, result
    document = result.json()
    assert {item["id"]: item["result"] for item in document["results"]} == dict.fromkeys(chosen, "changed")
    audited = {int(event.entity_id) for event in rows.audit(AuditEvent.operation_id == document["operation"],
                                                            AuditEvent.entity_type == "chat")}
    assert audited == set(chosen) and other not in audited


def test_d14_unflag_and_reopen_take_where_too(cli, rows):
    flagged = [rows.chat(flagged=True) for _ in range(2)]
    closed = [rows.chat(status="closed", closed=H) for _ in range(2)]
    unflag = cli("chats", "unflag", "--where", "flagged=yes", "--yes", "-o", "json")
    assert unflag.exit_code == 0 and {i["id"] for i in unflag.json()["results"]} == set(flagged), unflag
    reopen = cli("chats", "reopen", "--agent", "alice", "--where", "status=closed", "--yes", "-o", "json")
    assert reopen.exit_code == 0 and {i["id"] for i in reopen.json()["results"]} == set(closed), reopen
    assert all(rows.get(chat).status == "live" for chat in closed)


def test_d14_where_needs_yes_without_a_terminal_and_a_dry_run_does_not(cli, rows):
    chosen, _ = _selected(rows)
    refused = cli("chats", "close", "--where", "channel=webchat")
    assert refused.exit_code == 2 and "--yes" in refused.stderr and "close the" in refused.stderr, refused
    dry = cli("chats", "close", "--where", "channel=webchat", "--dry-run", "-o", "json")
    assert dry.exit_code == 0 and dry.json()["summary"]["would_change"] == 3, dry
    assert all(rows.get(chat).status == "live" for chat in chosen)
    assert rows.count(AuditEvent) == 0
    both = cli("chats", "close", "-", "--where", "channel=webchat", "--yes", input="1\n")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_d14_where_rechecks_the_filter_under_the_lock(engine, rows):
    """A chat that stops matching between the selection and its batch is skipped, not acted on."""
    from chatctl.domain.batches import NO_LONGER_MATCHES, ItemResult, Selection

    chosen, _ = _selected(rows)
    selection = Selection(engine, Chat.id, Chat.channel == "webchat")
    (batch,) = list(selection.batches(10))
    with engine.begin() as connection:
        connection.execute(Chat.__table__.update().where(Chat.id == chosen[1]).values(channel="sms"))
    apply = selection.still_matching(lambda connection, ids: [ItemResult(i, "changed") for i in ids])
    with engine.begin() as connection:
        results = apply(connection, batch)
    assert [(item.id, item.result, item.reason) for item in results] == [
        (chosen[0], "changed", None), (chosen[1], "skipped", NO_LONGER_MATCHES), (chosen[2], "changed", None)]
    assert selection.counted() == 2


def test_d14_progress_bars_have_a_total_on_a_terminal(cli, rows):
    for _ in range(30):
        rows.chat(agent="alice", ago=3 * H, customer_wrote=2 * H, agent_wrote=2 * H)
    code, screen = run_on_a_terminal(["--database-url", cli.url, "sweep", "run", "inactivity", "--batch-size", "1"])
    assert code == 0, screen
    # Counted before the first batch: never "15/?" (a bar starts at 0 while it counts).
    assert "30/30" in screen and not re.search(r"[1-9][0-9]*/\?", screen), screen
    code, screen = run_on_a_terminal(["--database-url", cli.url, "chats", "reopen", "--agent", "alice", "--where",
                                      "status=closed", "--yes", "--batch-size", "1"])
    assert code == 0, screen
    assert "30/30" in screen and not re.search(r"[1-9][0-9]*/\?", screen), screen


def test_d14_every_command_that_prints_data_takes_o():
    from typer.main import get_command

    from chatctl.cli import app

    # These write only a note on stderr, never data on stdout.
    quiet = {"db init", "db upgrade", "db downgrade", "agents add", "agents set-status", "agents deactivate",
             "prefs set", "prefs unset"}
    root = get_command(app)
    missing = []
    for name in root.list_commands(None):
        node = root.get_command(None, name)
        subs = node.list_commands(None) if hasattr(node, "list_commands") else [None]
        for sub in subs:
            command = node.get_command(None, sub) if sub else node
            path = f"{name} {sub}" if sub else name
            if path not in quiet and "--output" not in {opt for p in command.params for opt in p.opts}:
                missing.append(path)
    assert missing == []


def test_d14_prefs_get_and_db_status_speak_every_format(cli):
    assert cli("prefs", "get", "timezone").stdout == "UTC\n"
    record = cli("prefs", "get", "timezone", "-o", "json").json()
    assert record["key"] == "timezone" and record["value"] == "UTC" and record["default"] == "UTC"
    assert cli("prefs", "get", "timezone", "-o", "ids").stdout == "timezone\n"
    status = cli("db", "status", "-o", "ids")
    assert status.exit_code == 0 and status.stdout.strip() == cli("db", "status", "-o", "json").json()["database"]


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_d14_show_as_csv_is_one_kind_of_row(cli, rows):
    chat = rows.chat(agent="alice", agent_wrote=10 * dt.timedelta(minutes=1))
    rows.comment(chat, "alice", "@bob see this", ("bob",))
    (record,) = _csv(cli("chats", "show", str(chat), "-o", "csv").stdout)
    assert record["id"] == str(chat) and record["status"] == "live"
    messages = _csv(cli("chats", "show", str(chat), "-o", "csv", "--part", "messages").stdout)
    assert len(messages) == 2 and {m["author"] for m in messages} >= {"alice"}
    (comment,) = _csv(cli("chats", "show", str(chat), "-o", "csv", "--part", "comments").stdout)
    assert comment["mentions"] == "bob"
    assert _csv(cli("chats", "show", str(chat), "-o", "csv", "--part", "history").stdout) == []
    assert cli("chats", "show", str(chat), "-o", "json", "--part", "comments").json()[0]["mentions"] == ["bob"]

    converted = cli("chats", "convert", str(chat), "-o", "json")
    ticket = rows.count(Ticket)
    assert converted.exit_code == 0 and ticket == 1
    with rows.engine.connect() as connection:
        ticket_id = connection.execute(Ticket.__table__.select()).first().id
    (one,) = _csv(cli("tickets", "show", str(ticket_id), "-o", "csv").stdout)
    assert one["id"] == str(ticket_id) and one["chat_id"] == str(chat)
    (event,) = _csv(cli("tickets", "show", str(ticket_id), "-o", "csv", "--part", "history").stdout)
    assert event["action"] == "chats.convert"


@pytest.mark.parametrize("expression", ["agent=alicee", "agent!=alicee"])
def test_d14_a_mistyped_agent_in_a_filter_is_a_usage_error_with_a_did_you_mean(cli, rows, expression):
    rows.chat(agent="alice")
    result = cli("chats", "filter", expression, "--count")
    assert result.exit_code == 2 and "unknown agent 'alicee' (did you mean 'alice'?)" in result.stderr, result
    listed = cli("chats", "list", "--agent", "alicee")
    assert listed.exit_code == 2 and "did you mean 'alice'" in listed.stderr
    where = cli("tickets", "close", "--where", expression, "--yes")
    assert where.exit_code == 2 and "did you mean 'alice'" in where.stderr


def test_d14_tickets_list_accepts_a_deactivated_agent(cli, rows, engine):
    chat = rows.chat(status="converted")
    gone = rows.agent_id("gone")
    with engine.begin() as connection:
        connection.execute(Ticket.__table__.insert().values(chat_id=chat, status="open", reason="manual",
                                                            agent_id=gone, created_at=dt.datetime.now(dt.timezone.utc)))
    result = cli("tickets", "list", "--agent", "gone", "-o", "json")
    assert result.exit_code == 0, result
    assert [ticket["agent"] for ticket in result.json()] == ["gone"]


def test_d14_db_downgrade_needs_yes_or_a_prompt(cli, engine):
    refused = cli("db", "downgrade", "base")
    assert refused.exit_code == 2 and "--yes" in refused.stderr, refused
    assert cli("db", "status").exit_code == 0, "the schema was dropped without a confirmation"
    declined = cli("db", "downgrade", "base", tty=True, input="n\n")
    assert declined.exit_code == 2 and cli("db", "status").exit_code == 0


def test_d14_a_write_to_a_read_only_sqlite_database_is_one_error_without_a_summary(bare_cli, tmp_path):
    path = tmp_path / "desk.db"
    url = f"sqlite:///{path}"
    assert bare_cli(["--database-url", url, "db", "init"]).exit_code == 0
    assert bare_cli(["--database-url", url, "demo", "load", "--chats", "50"]).exit_code == 0
    live = bare_cli(["--database-url", url, "chats", "filter", "status=live", "-o", "ids"]).stdout.split()
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"  # root writes through file modes: ask SQLite instead
    for output in ("tsv", "json"):
        result = bare_cli(["--database-url", read_only, "chats", "close", *live, "--include-flagged", "-o", output])
        assert result.exit_code == 3, result
        assert result.stdout == "" and "changed" not in result.stderr, result
        assert result.stderr.count("\n") == 1 and "readonly" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "plain", "tsv", "csv", "markdown", "json", "jsonl", "ids"])
def test_d14_ingest_reports_a_generated_chat_id_in_every_format(cli, fmt):
    event = {"type": "chat_started", "customer": "+27820000001", "channel": "webchat", "at": "2026-11-25T10:00:00Z"}
    result = cli("events", "ingest", "-", "-o", fmt, input=json.dumps(event) + "\n")
    assert result.exit_code == 0, result
    created = cli("audit", "list", "-o", "json").json()
    (new_chat,) = {event["entity_id"] for event in created if event["entity"] == "chat"}
    assert new_chat in re.findall(r"\d+", result.stdout), result.stdout


def _tickets(rows, engine, *values):
    """One ticket per dict of column values, each on a converted chat of its own."""
    made = []
    chats = [rows.chat(status="converted") for _ in values]
    with engine.begin() as connection:
        for chat, extra in zip(chats, values):
            row = {"chat_id": chat, "status": "open", "reason": "manual",
                   "created_at": dt.datetime.now(dt.timezone.utc), **extra}
            made.append(connection.execute(Ticket.__table__.insert().values(**row)).inserted_primary_key[0])
    return made


def test_d14_every_ticket_bulk_action_takes_where_among_the_tickets_it_can_change(cli, rows, engine):
    now = dt.datetime.now(dt.timezone.utc)
    open_one, closed_one, archived_one = _tickets(rows, engine, {}, {"status": "closed", "closed_at": now},
                                                  {"status": "closed", "closed_at": now, "archived_at": now})

    def selected(*argv):
        result = cli("tickets", *argv, "--yes", "-o", "json")
        assert result.exit_code == 0, result
        return {item["id"]: item["result"] for item in result.json()["results"]}

    assert selected("reopen", "--where", "reason=manual") == {closed_one: "changed"}
    assert selected("unarchive", "--where", "reason=manual") == {archived_one: "changed"}
    assert selected("assign", "--agent", "bob", "--where", "reason=manual") == dict.fromkeys(
        (open_one, closed_one, archived_one), "changed")
    assert selected("archive", "--where", "status=open") == dict.fromkeys((open_one, closed_one), "changed")
    events = rows.audit(AuditEvent.action == "tickets.archive")
    assert {int(e.entity_id) for e in events} == {open_one, closed_one}
    assert all(e.reason == "selected by --where status=open" for e in events)


def test_d14_where_refused_without_yes_changes_no_ticket(cli, rows, engine):
    (ticket,) = _tickets(rows, engine, {})
    refused = cli("tickets", "archive", "--where", "status=open")
    assert refused.exit_code == 2 and "--yes" in refused.stderr and "archive the" in refused.stderr, refused
    assert rows.count(AuditEvent) == 0
    nothing = cli("tickets", "reopen")
    assert nothing.exit_code == 2 and "--where" in nothing.stderr and "Traceback" not in nothing.stderr


@pytest.mark.parametrize("command", [["chats", "close"], ["tickets", "close"]])
def test_d14_a_chat_or_ticket_that_stops_matching_mid_run_is_skipped(engine, rows, command):
    """Batches re-check the filter: a row changed by someone else after the selection was read is left alone."""
    from chatctl.domain.batches import NO_LONGER_MATCHES, ItemResult, Selection
    from chatctl.domain.tickets.actions import tickets_matching

    if command[0] == "chats":
        ids = [rows.chat(channel="webchat") for _ in range(3)]
        selection, table, change = Selection(engine, Chat.id, Chat.channel == "webchat"), Chat, {"channel": "sms"}
    else:
        ids = _tickets(rows, engine, {}, {}, {})
        selection, _ = tickets_matching(engine, Ticket.reason == "manual", "close")
        table, change = Ticket, {"reason": "no_agents"}
    seen = []
    apply = selection.still_matching(lambda connection, batch: [ItemResult(i, "changed") for i in batch])
    for batch in selection.batches(1):
        if not seen:  # someone else changes the last row while the first batch runs
            with engine.begin() as connection:
                connection.execute(table.__table__.update().where(table.id == ids[2]).values(**change))
        with engine.begin() as connection:
            seen.extend(apply(connection, batch))
    assert [(item.id, item.result) for item in seen] == [(ids[0], "changed"), (ids[1], "changed")]
    # And a row read in a batch that stopped matching before its lock: skipped with the reason.
    with engine.begin() as connection:
        (late,) = apply(connection, [ids[2]])
    assert (late.result, late.reason) == ("skipped", NO_LONGER_MATCHES)
