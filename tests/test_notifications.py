"""The bell (R7 notifications, R9 marks them read), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from chat_rows import alice_bob_and_sue

from chatctl.domain.chats.notifications import NOTIFICATION_KEYS
from chatctl.storage.models import AuditEvent, Notification


@pytest.fixture
def rows(engine):
    return alice_bob_and_sue(engine)


def test_r7_each_tag_notifies_the_tagged_person(cli, rows):
    chat = rows.chat(agent="alice")
    assert cli("chats", "comment", str(chat), "--as", "alice", "--text", "@bob @sue have a look").exit_code == 0
    listed = cli("notifications", "list", "--agent", "bob", "-o", "json").json()
    assert len(listed) == 1
    assert list(listed[0]) == list(NOTIFICATION_KEYS) == ["id", "agent", "kind", "chat_id", "comment_id", "created_at",
                                               "read_at"]
    assert listed[0]["agent"] == "bob" and listed[0]["kind"] == "tagged" and listed[0]["chat_id"] == chat
    assert listed[0]["read_at"] is None
    assert cli("notifications", "list", "--agent", "alice", "-o", "json").json() == []


def test_notifications_list_pages_by_cursor(cli, rows):
    chat = rows.chat(agent="alice")
    for number in range(5):
        rows.comment(chat, "alice", f"@bob look {number}", ("bob",))
    newest_first = [n["id"] for n in cli("notifications", "list", "--agent", "bob", "--all", "-o", "json").json()]
    assert len(newest_first) == 5 and newest_first == sorted(newest_first, reverse=True)
    seen, after = [], []
    while True:
        page = cli("notifications", "list", "--agent", "bob", "--limit", "2", "-o", "json", *after)
        assert page.exit_code == 0, page
        seen += [n["id"] for n in page.json()]
        if "next page: --after " not in page.stderr:
            break
        after = ["--after", page.stderr.split("next page: --after ", 1)[1].split()[0]]
    assert seen == newest_first
    tickets_cursor = cli("tickets", "list", "--after", after[1])
    assert tickets_cursor.exit_code == 2 and "notifications list" in tickets_cursor.stderr


def test_notifications_read_by_id_and_all(cli, rows):
    chats = [rows.chat(agent="alice") for _ in range(3)]
    for chat in chats:
        rows.comment(chat, "alice", "@bob", ("bob",))
    rows.comment(chats[0], "alice", "@sue", ("sue",))
    bobs = [n["id"] for n in cli("notifications", "list", "--agent", "bob", "-o", "json").json()]
    sues = [n["id"] for n in cli("notifications", "list", "--agent", "sue", "-o", "json").json()]
    first = cli("notifications", "read", "--agent", "bob", str(bobs[0]), str(sues[0]), "-o", "json")
    assert first.exit_code == 1  # sue's notification is not bob's
    outcome = {item["id"]: item["result"] for item in first.json()["results"]}
    assert outcome == {bobs[0]: "changed", sues[0]: "not_found"}
    unread = cli("notifications", "list", "--agent", "bob", "--unread", "-o", "json").json()
    assert sorted(n["id"] for n in unread) == sorted(bobs[1:])
    everything = cli("notifications", "read", "--agent", "bob", "--all", "-o", "json")
    assert everything.exit_code == 0 and everything.json()["summary"]["changed"] == 2
    assert cli("notifications", "list", "--agent", "bob", "--unread", "-o", "json").json() == []
    again = cli("notifications", "read", "--agent", "bob", str(bobs[0]), "-o", "json")
    assert again.json()["results"][0]["result"] == "skipped"
    assert rows.count(Notification, Notification.read_at.is_(None)) == 1  # sue's
    assert rows.count(AuditEvent, AuditEvent.action == "notifications.read") == 3


def test_notifications_read_from_stdin_and_dry_run(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob", ("bob",))
    (note,) = [n["id"] for n in cli("notifications", "list", "--agent", "bob", "-o", "json").json()]
    dry = cli("notifications", "read", "--agent", "bob", "-", "--dry-run", input=f"# mine\n{note}\n")
    assert dry.exit_code == 0
    assert rows.count(Notification, Notification.read_at.is_(None)) == 1
    assert cli("notifications", "read", "--agent", "bob", "-", input=f"{note}\n").exit_code == 0
    assert rows.count(Notification, Notification.read_at.is_(None)) == 0


def test_agents_read_only_their_own_bell(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob", ("bob",))
    refused = cli("--actor", "alice", "notifications", "read", "--agent", "bob", "--all")
    assert refused.exit_code == 1 and "agents act only as themselves" in refused.stderr
    assert cli("--actor", "bob", "notifications", "read", "--all").exit_code == 0
    assert cli("--actor", "sue", "notifications", "list", "--agent", "bob", "-o", "json").exit_code == 0


def test_notifications_usage_errors(cli, rows):
    assert cli("notifications", "read", "--agent", "bob").exit_code == 2
    assert cli("notifications", "read", "--agent", "bob", "1", "--all").exit_code == 2
    assert cli("notifications", "list", "--agent", "nobody").exit_code == 2
    assert cli("notifications", "list").exit_code == 2  # ops is nobody's bell


def test_r9_closing_marks_tag_notifications_read(cli, rows):
    chat = rows.chat(agent="alice")
    rows.comment(chat, "alice", "@bob", ("bob",))
    assert len(cli("notifications", "list", "--agent", "bob", "--unread", "-o", "json").json()) == 1
    assert cli("chats", "close", str(chat)).exit_code == 0
    assert cli("notifications", "list", "--agent", "bob", "--unread", "-o", "json").json() == []
    kept = cli("notifications", "list", "--agent", "bob", "-o", "json").json()
    assert len(kept) == 1 and kept[0]["read_at"] is not None and kept[0]["comment_id"] is None
