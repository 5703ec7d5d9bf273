"""Desk users: adding, listing, presence, deactivation, and who may act."""

from __future__ import annotations


def test_agents_add_list_presence_deactivate(cli):
    assert cli("agents", "add", "alice", "--name", "Alice", "--role", "supervisor").exit_code == 0
    assert cli("agents", "add", "bob", "--name", "Bob", "--online").exit_code == 0
    assert cli("agents", "set-status", "alice", "online").exit_code == 0
    agents = {a["handle"]: a for a in cli("agents", "list", "-o", "json").json()}
    assert agents["alice"]["presence"] == "online" and agents["alice"]["role"] == "supervisor"
    assert cli("agents", "deactivate", "bob").exit_code == 0
    assert [a["handle"] for a in cli("agents", "list", "-o", "json").json()] == ["alice"]
    everyone = cli("agents", "list", "--all", "-o", "json").json()
    assert {a["handle"]: a["active"] for a in everyone} == {"alice": True, "bob": False}


def test_agents_add_duplicate_and_bad_handle_are_usage_errors(cli):
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    duplicate = cli("agents", "add", "alice", "--name", "Alice")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.stderr
    bad = cli("agents", "add", "Bad Handle!", "--name", "x")
    assert bad.exit_code == 2 and "bad handle" in bad.stderr


def test_r15_agent_changes_are_audited(cli, engine):
    from sqlalchemy import select

    from chatctl.storage.models import AuditEvent

    cli("agents", "add", "alice", "--name", "Alice")
    cli("agents", "set-status", "alice", "online")
    with engine.connect() as connection:
        events = connection.execute(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [event.action for event in events] == ["agents.add", "agents.set-status"]
    assert events[1].before["presence"] == "offline"
    assert events[1].after["presence"] == "online"
    assert events[0].operation_id != events[1].operation_id
    assert all(event.actor == "ops:tester" for event in events)


def test_unknown_actor_is_refused(cli):
    result = cli("--actor", "ghost", "prefs", "set", "inactivity_timeout", "1h")
    assert result.exit_code == 2 and "unknown actor" in result.stderr
