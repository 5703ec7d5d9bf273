"""sweep explain: which job would touch a chat and when, or why none would."""

from __future__ import annotations

import datetime as dt

from freezegun import freeze_time
from sweep_helpers import T0, add_agent, add_chat, add_comment, add_ticket, audit_rows, minutes

AS_OF = T0.isoformat()


def explain(cli, chat_id: int, *extra: str) -> dict:
    result = cli("sweep", "explain", str(chat_id), "--as-of", AS_OF, *extra, "-o", "json")
    assert result.exit_code == 0, result
    return result.json()


def verdict(document: dict, job: str) -> dict:
    return next(item for item in document["jobs"] if item["job"] == job)


def test_r4_explain_idle_chat_would_be_closed(cli, engine):
    alice = add_agent(engine, "alice")
    idle = add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(45))
    document = explain(cli, idle)
    assert document["job"] == "inactivity" and "close" in document["action"]


def test_r4_explain_not_idle_long_enough_says_time_left(cli, engine):
    alice = add_agent(engine, "alice")
    recent = add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(20))
    document = explain(cli, recent)
    assert document["job"] is None
    inactivity = verdict(document, "inactivity")
    assert inactivity["time_left"] == "10m" and inactivity["due_after"] == "2026-11-25T10:10:00+00:00"
    assert document["next"] == {"job": "inactivity", "due_after": "2026-11-25T10:10:00+00:00"}
    human = cli("sweep", "explain", str(recent), "--as-of", AS_OF)
    assert "10m left" in human.stdout and "inactivity becomes due" in human.stdout


def test_r3_explain_flagged(cli, engine):
    alice = add_agent(engine, "alice")
    flagged = add_chat(engine, agent=alice, flagged=True, created=T0 - dt.timedelta(days=1))
    document = explain(cli, flagged)
    assert document["job"] is None and document["flagged"] is True
    assert "flagged" in verdict(document, "inactivity")["reason"]
    assert "flagged" in verdict(document, "agent-timeout")["reason"]


def test_r6_explain_pending_and_when_it_times_out(cli, engine):
    alice = add_agent(engine, "alice")
    pending = add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(hours=20))
    document = explain(cli, pending)
    assert verdict(document, "pending")["time_left"] == "4h"
    with freeze_time(T0 + dt.timedelta(hours=5)):
        later = cli("sweep", "explain", str(pending), "-o", "json").json()
    assert later["job"] == "pending"


def test_r5_explain_reassignment_and_bounded_bouncing(cli, engine):
    alice = add_agent(engine, "alice")
    add_agent(engine, "bob")
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(6))
    bounced = add_chat(engine, agent=alice, created=T0 - minutes(6), reassign_count=3)
    assert explain(cli, waiting)["job"] == "agent-timeout"
    assert "reassign" in explain(cli, waiting)["action"]
    assert "no_agents" in explain(cli, bounced)["action"]


def test_d1_explain_a_chat_waiting_for_room_says_it_waits_and_until_when(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    assert cli("prefs", "set", "agent_max_chats", "1").exit_code == 0
    alices = add_chat(engine, agent=alice, created=T0 - minutes(20), agent_at=T0 - minutes(1))
    add_chat(engine, agent=bob, created=T0 - minutes(20), agent_at=T0 - minutes(1))
    waiting = add_chat(engine, created=T0 - minutes(2))
    waited_long = add_chat(engine, created=T0 - minutes(6))     # past agent_chat_timeout (5m)
    document = explain(cli, waiting)
    unattended = verdict(document, "unattended")
    assert document["job"] is None and unattended["would_change"] is False
    assert "agent_max_chats (1)" in unattended["reason"] and unattended["time_left"] == "3m"
    assert document["next"] == {"job": "unattended", "due_after": "2026-11-25T10:03:00+00:00"}
    assert explain(cli, waited_long)["job"] == "unattended"
    assert "every online agent has agent_max_chats (1)" in explain(cli, waited_long)["action"]
    # Room again: the same chat would be assigned, as the job would do.
    assert cli("chats", "close", str(alices)).exit_code == 0
    assert explain(cli, waiting)["action"] == "assign to the least-loaded online agent"
    assert cli("sweep", "run", "unattended", "--as-of", AS_OF, "-o", "json").json()["jobs"]["unattended"]["changed"] == 2


def test_r13_explain_closed_chat_with_old_ticket(cli, engine):
    alice = add_agent(engine, "alice")
    converted = add_chat(engine, agent=alice)
    add_ticket(engine, converted, created=T0 - dt.timedelta(days=100))
    document = explain(cli, converted)
    assert document["job"] == "archive" and verdict(document, "inactivity")["reason"] == "not live"


def test_explain_unknown_chat(cli):
    assert cli("sweep", "explain", "999999", "--as-of", AS_OF).exit_code == 1


def test_explain_agrees_with_what_the_run_does(cli, engine):
    """One definition of eligibility: explain's job for each chat is the job whose audit event the run writes."""
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    chats = [
        add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(45)),
        add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(20)),
        add_chat(engine, agent=alice, created=T0 - minutes(45)),
        add_chat(engine, created=T0 - minutes(2)),
        add_chat(engine, agent=alice, flagged=True, created=T0 - dt.timedelta(days=1)),
        add_chat(engine, status="pending", agent=bob, pending_since=T0 - dt.timedelta(days=2)),
        add_chat(engine, status="pending", agent=bob, pending_since=T0 - dt.timedelta(hours=2)),
        add_chat(engine, status="closed", agent=bob, closed_at=T0 - minutes(5)),
    ]
    add_comment(engine, chats[-1], alice, bob)
    expected = {chat_id: explain(cli, chat_id)["job"] for chat_id in chats}
    run = cli("sweep", "run", "--as-of", AS_OF, "-o", "json").json()
    actual = {chat_id: None for chat_id in chats}
    for event in audit_rows(engine, run["run_id"], entity_type="chat"):
        actual[int(event.entity_id)] = event.action.removeprefix("sweep.")
    assert actual == expected
    assert sorted(job for job in expected.values() if job) == \
        ["agent-timeout", "cleanup", "inactivity", "pending", "unattended"]
