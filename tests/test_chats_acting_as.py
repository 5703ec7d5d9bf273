"""Agents act as themselves (SPEC D4): ``--as`` on reply, comment, seen and the
bell names only the acting agent, unless a supervisor, an admin or ops acts."""

from __future__ import annotations

import pytest
from chat_rows import alice_bob_and_sue

from chatctl.storage.models import AuditEvent, Comment, Message, Notification

ONLY_THEMSELVES = "agents act only as themselves"
ACTIONS = {
    "reply": ("--text", "hello from someone else"),
    "comment": ("--text", "a note in someone else's name"),
    "seen": (),
}


@pytest.fixture
def rows(engine):
    return alice_bob_and_sue(engine)


def _written(rows) -> tuple[int, int, int]:
    return rows.count(Message), rows.count(Comment), rows.count(AuditEvent)


@pytest.mark.parametrize("action", ACTIONS)
def test_d4_an_agent_naming_another_agent_in_as_is_refused(cli, rows, action):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob have a look", ("bob",))  # bob is tagged: he can read the chat
    before = _written(rows)
    result = cli("--actor", "bob", "chats", action, str(chat), "--as", "alice", *ACTIONS[action], "-o", "json")
    assert result.exit_code == 1, result
    assert result.json()["results"] == [{"id": chat, "result": "refused", "reason": ONLY_THEMSELVES}]
    assert f"chat {chat}: {ONLY_THEMSELVES}" in result.stderr
    assert _written(rows) == before, "something was written in alice's name"
    assert rows.get(chat).agent_seen_at is None


@pytest.mark.parametrize("acting", ["sue", "ops:tester"])
def test_d4_supervisors_and_ops_act_as_an_agent_and_the_audit_names_both(cli, rows, acting):
    chat = rows.chat(agent="alice")
    for action, extra in ACTIONS.items():
        result = cli("--actor", acting, "chats", action, str(chat), "--as", "alice", *extra, "-o", "json")
        assert result.exit_code == 0, result
        assert result.json()["results"][0]["result"] == "changed"
    events = rows.audit(AuditEvent.action.in_(["chats.reply", "chats.comment", "chats.seen"]))
    assert len(events) == 3
    for event in events:
        assert event.actor == acting and "alice" in event.reason, event


def test_d4_an_agent_still_acts_as_themselves(cli, rows):
    chat = rows.chat(agent="bob")
    for action, extra in ACTIONS.items():
        result = cli("--actor", "bob", "chats", action, str(chat), "--as", "bob", *extra)
        assert result.exit_code == 0, (action, result)


def test_d4_an_agent_cannot_mark_another_agents_notifications_read(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob look", ("bob",))
    refused = cli("--actor", "alice", "notifications", "read", "--agent", "bob", "--all")
    assert refused.exit_code == 1 and ONLY_THEMSELVES in refused.stderr
    assert rows.count(Notification, Notification.read_at.is_(None)) == 1
    assert cli("--actor", "sue", "notifications", "read", "--agent", "bob", "--all").exit_code == 0
    assert rows.count(Notification, Notification.read_at.is_(None)) == 0
