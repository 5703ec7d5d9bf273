"""Every cutoff, pinned: one second before it, exactly on it, one second past it, on both backends.

The decision (docs/sweeps.md, "Exactly on a cutoff"): a timeout is reached when the
timestamp is strictly older than ``as_of - timeout`` - a chat idle for exactly
``inactivity_timeout`` is left alone, one idle a second longer is closed.  The same holds
for R5, R6, R13 and the ``age``/``idle`` filters (``age>30d`` is strictly older,
``age>=30d`` includes the instant).  The closed-reply window of R11 is the other way
round because it is a window, not a timeout: a reply exactly ``closed_reply_window``
after the close is still inside it.
"""

from __future__ import annotations

import datetime as dt

from freezegun import freeze_time
from sqlalchemy import update
from sweep_helpers import T0, add_agent, add_chat, add_ticket, chat, minutes, ticket

from chatctl.storage.models import Chat

SECOND = dt.timedelta(seconds=1)
# Name -> how far the timestamp sits from the cutoff: positive is younger (not reached yet).
AROUND = {"a second short": SECOND, "exactly on": dt.timedelta(0), "a second past": -SECOND}


def sweep(cli, job: str) -> dict:
    result = cli("sweep", "run", job, "--as-of", T0.isoformat(), "-o", "json")
    assert result.exit_code == 0, result
    return result.json()


def test_r4_inactivity_cutoff_is_strict(cli, engine):
    alice = add_agent(engine, "alice")
    cutoff = T0 - minutes(30)  # inactivity_timeout's default
    chats = {name: add_chat(engine, agent=alice, created=T0 - minutes(90), activity=cutoff + offset)
             for name, offset in AROUND.items()}
    sweep(cli, "inactivity")
    assert {name: chat(engine, chat_id).status for name, chat_id in chats.items()} == {
        "a second short": "live", "exactly on": "live", "a second past": "closed"}


def test_r5_agent_chat_timeout_cutoff_is_strict(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    cutoff = T0 - minutes(5)  # agent_chat_timeout's default
    chats = {name: add_chat(engine, agent=alice, created=T0 - minutes(60), assigned_at=T0 - minutes(60),
                            agent_at=T0 - minutes(50), customer_at=cutoff + offset)
             for name, offset in AROUND.items()}
    sweep(cli, "agent-timeout")
    assert {name: chat(engine, chat_id).agent_id for name, chat_id in chats.items()} == {
        "a second short": alice, "exactly on": alice, "a second past": bob}


def test_r5_the_wait_counts_from_the_assignment_too(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    cutoff = T0 - minutes(5)
    chats = {name: add_chat(engine, agent=alice, created=T0 - minutes(60), customer_at=T0 - minutes(40),
                            assigned_at=cutoff + offset)
             for name, offset in AROUND.items()}
    sweep(cli, "agent-timeout")
    assert {name: chat(engine, chat_id).agent_id for name, chat_id in chats.items()} == {
        "a second short": alice, "exactly on": alice, "a second past": bob}


def test_r6_pending_timeout_cutoff_is_strict(cli, engine):
    alice = add_agent(engine, "alice")
    cutoff = T0 - dt.timedelta(hours=24)  # pending_timeout's default
    chats = {name: add_chat(engine, status="pending", agent=alice, created=T0 - dt.timedelta(days=2),
                            pending_since=cutoff + offset)
             for name, offset in AROUND.items()}
    sweep(cli, "pending")
    assert {name: chat(engine, chat_id).close_reason for name, chat_id in chats.items()} == {
        "a second short": None, "exactly on": None, "a second past": "pending_timeout"}


def test_r11_closed_reply_window_includes_its_last_instant(cli, engine):
    ann = add_agent(engine, "ann")
    window_end = T0 - dt.timedelta(hours=24)  # closed_reply_window's default, counted from closed_at
    chats = {}
    for name, offset in AROUND.items():
        chat_id = add_chat(engine, status="closed", agent=ann, created=T0 - dt.timedelta(days=2),
                           closed_at=window_end + offset)
        with engine.begin() as connection:  # not WhatsApp: its own 24-hour window would decide instead
            connection.execute(update(Chat).where(Chat.id == chat_id).values(channel="webchat"))
        chats[name] = chat_id
    outcomes = {}
    with freeze_time(T0):
        for name, chat_id in chats.items():
            result = cli("chats", "reply", str(chat_id), "--as", "ann", "--text", "following up", "-o", "json")
            outcomes[name] = (result.exit_code, result.json()["results"][0]["result"])
    assert outcomes == {"a second short": (0, "changed"), "exactly on": (0, "changed"),
                        "a second past": (1, "refused")}
    assert {chat(engine, chat_id).status for chat_id in chats.values()} == {"closed"}


def test_r13_archive_cutoff_is_strict(cli, engine):
    cutoff = T0 - dt.timedelta(days=90)  # ticket_archive_after's default
    tickets = {name: add_ticket(engine, add_chat(engine, created=cutoff + offset), created=cutoff + offset)
               for name, offset in AROUND.items()}
    sweep(cli, "archive")
    assert {name: ticket(engine, ticket_id).archived_at for name, ticket_id in tickets.items()} == {
        "a second short": None, "exactly on": None, "a second past": T0}


def test_where_age_greater_is_strict_and_greater_or_equal_includes_the_instant(cli, engine):
    cutoff = T0 - dt.timedelta(days=30)
    tickets = {name: add_ticket(engine, add_chat(engine, created=cutoff + offset), created=cutoff + offset)
               for name, offset in AROUND.items()}
    names = {ticket_id: name for name, ticket_id in tickets.items()}
    with freeze_time(T0):
        strict = cli("tickets", "close", "--where", "age>30d", "--yes", "--dry-run", "-o", "json")
        inclusive = cli("tickets", "close", "--where", "age>=30d", "--yes", "--dry-run", "-o", "json")
        younger = cli("tickets", "close", "--where", "age<30d", "--yes", "--dry-run", "-o", "json")
    assert {names[item["id"]] for item in strict.json()["results"]} == {"a second past"}
    assert {names[item["id"]] for item in inclusive.json()["results"]} == {"exactly on", "a second past"}
    assert {names[item["id"]] for item in younger.json()["results"]} == {"a second short"}


def test_where_idle_and_age_on_chats(cli, engine):
    cutoff = T0 - dt.timedelta(hours=2)
    made = {}
    for name, offset in AROUND.items():
        made[add_chat(engine, created=T0 - dt.timedelta(days=1), activity=cutoff + offset)] = ("idle", name)
        made[add_chat(engine, created=cutoff + offset)] = ("age", name)  # its last activity is its creation

    def selected(*words) -> set[tuple[str, str]]:
        with freeze_time(T0):
            result = cli("chats", "filter", "status=live", *words, "--ids-only")
        assert result.exit_code == 0, result
        return {made[int(line)] for line in result.stdout.split()}

    every_idle = {("idle", name) for name in AROUND}
    assert selected("idle>2h") == {("idle", "a second past"), ("age", "a second past")}
    assert selected("idle>=2h") == {(kind, name) for kind in ("idle", "age")
                                    for name in ("exactly on", "a second past")}
    assert selected("age>2h") == every_idle | {("age", "a second past")}
    assert selected("age>=2h") == every_idle | {("age", "exactly on"), ("age", "a second past")}
