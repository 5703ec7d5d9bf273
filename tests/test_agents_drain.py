"""agents drain: end of shift, the agent's open chats go to online agents as R5 would."""

from __future__ import annotations

from sweep_helpers import T0, add_agent, add_chat, audit_rows, chat, minutes, set_pref, ticket_of


def test_r5_drain_hands_chats_to_least_loaded_online_agents(cli, engine):
    carol, bob, dave = add_agent(engine, "carol"), add_agent(engine, "bob"), add_agent(engine, "dave")
    add_agent(engine, "erin", online=False)
    add_chat(engine, agent=dave, created=T0 - minutes(3))
    mine = [add_chat(engine, agent=carol, created=T0 - minutes(n)) for n in (5, 4, 3)]
    pending = add_chat(engine, status="pending", agent=carol, pending_since=T0 - minutes(2))
    closed = add_chat(engine, status="closed", agent=carol, closed_at=T0 - minutes(1))
    result = cli("agents", "drain", "carol", "-o", "json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["summary"]["changed"] == 4 and document["dry_run"] is False
    owners = [chat(engine, chat_id).agent_id for chat_id in [*mine, pending]]
    assert carol not in owners
    assert owners == [bob, bob, dave, bob]  # loads bob 0, dave 1; ties go to the lower id
    assert chat(engine, closed).agent_id == carol
    events = audit_rows(engine, document["operation"])
    assert {e.action for e in events} == {"agents.drain"} and len(events) == 4
    assert all(e.before["agent_id"] == carol for e in events)
    assert chat(engine, mine[0]).reassign_count == 0


def test_r5_drain_tickets_when_nobody_can_take_them(cli, engine):
    carol, bob = add_agent(engine, "carol"), add_agent(engine, "bob")
    set_pref(cli, "agent_max_chats", "1")
    first, second = add_chat(engine, agent=carol), add_chat(engine, agent=carol)
    result = cli("agents", "drain", "carol", "-o", "json")
    assert result.exit_code == 0, result
    reasons = {item["id"]: item["reason"] for item in result.json()["results"]}
    assert chat(engine, first).agent_id == bob and reasons[first] == "to bob"
    assert chat(engine, second).status == "converted"
    assert ticket_of(engine, second).reason == "no_agents" and "ticket" in reasons[second]


def test_drain_dry_run_changes_nothing(cli, engine):
    carol = add_agent(engine, "carol")
    add_agent(engine, "bob")
    chats = [add_chat(engine, agent=carol) for _ in range(3)]
    result = cli("agents", "drain", "carol", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json()["summary"]["would_change"] == 3 and result.json()["dry_run"] is True
    assert result.json()["operation"] is None  # D8: a dry run records no operation
    assert all(chat(engine, chat_id).agent_id == carol for chat_id in chats)
    assert audit_rows(engine) == []


def test_drain_unknown_agent_and_nothing_to_drain(cli, engine):
    add_agent(engine, "carol")
    assert cli("agents", "drain", "nobody").exit_code == 1
    empty = cli("agents", "drain", "carol", "-o", "json")
    assert empty.exit_code == 0 and empty.json()["results"] == []
