"""Sweep jobs (SPEC 3): each rule on SQLite and PostgreSQL, with the clock
frozen (freezegun) and with ``--as-of``."""

from __future__ import annotations

import datetime as dt

import pytest
from freezegun import freeze_time
from sweep_helpers import (T0, add_agent, add_chat, add_comment, add_ticket, audit_rows, chat, count, hold_lock,
                           minutes, set_pref, ticket, ticket_of)

from chatctl.storage.models import AuditEvent, Comment, CommentMention, Notification, SweepRun

AS_OF = T0.isoformat()


def sweep(cli, *args, clock: str = "as_of"):
    """Run `sweep run` at T0, either frozen by freezegun or through --as-of."""
    if clock == "freeze":
        with freeze_time(T0):
            result = cli("sweep", "run", *args, "-o", "json")
    else:
        result = cli("sweep", "run", *args, "--as-of", AS_OF, "-o", "json")
    assert result.exit_code == 0, result
    return result.json()


CLOCKS = pytest.mark.parametrize("clock", ["freeze", "as_of"])


# -- R4 inactivity ------------------------------------------------------------------------
@CLOCKS
def test_r4_inactivity_closes_idle_live_chat(cli, engine, clock):
    alice = add_agent(engine, "alice")
    idle = add_chat(engine, agent=alice, created=T0 - minutes(45), agent_at=T0 - minutes(31))
    fresh = add_chat(engine, agent=alice, created=T0 - minutes(45), agent_at=T0 - minutes(29))
    summary = sweep(cli, "inactivity", clock=clock)
    assert summary["jobs"]["inactivity"] == {"matched": 1, "changed": 1, "skipped": 0}
    closed = chat(engine, idle)
    assert (closed.status, closed.closed_by, closed.close_reason, closed.closed_at) == \
        ("closed", "system", "inactivity", T0)
    assert chat(engine, fresh).status == "live"
    events = audit_rows(engine, summary["run_id"])
    assert [(e.action, e.entity_id, e.actor, e.at) for e in events] == [("sweep.inactivity", str(idle), "system", T0)]
    assert events[0].before["status"] == "live" and events[0].after["status"] == "closed"


@CLOCKS
def test_r4_inactivity_action_ticket_converts(cli, engine, clock):
    alice = add_agent(engine, "alice")
    idle = add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(40))
    set_pref(cli, "inactivity_action", "ticket")
    summary = sweep(cli, "inactivity", clock=clock)
    assert summary["jobs"]["inactivity"]["changed"] == 1
    assert chat(engine, idle).status == "converted"
    made = ticket_of(engine, idle)
    assert (made.reason, made.status, made.agent_id, made.created_at) == ("inactivity", "open", alice, T0)
    kinds = sorted((e.entity_type, e.action) for e in audit_rows(engine, summary["run_id"]))
    assert kinds == [("chat", "sweep.inactivity"), ("ticket", "sweep.inactivity")]


def test_r4_inactivity_counts_any_activity(cli, engine):
    """A comment or an agent message, made through the CLI, is activity: that chat is not idle."""
    alice = add_agent(engine, "alice")
    created = dict(agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(59))
    commented, answered, untouched = (add_chat(engine, **created) for _ in range(3))
    with freeze_time(T0 - minutes(5)):
        assert cli("chats", "comment", str(commented), "--as", "alice", "--text", "still on it").exit_code == 0
        assert cli("chats", "reply", str(answered), "--as", "alice", "--text", "one moment").exit_code == 0
    summary = sweep(cli, "inactivity")
    assert summary["jobs"]["inactivity"]["changed"] == 1
    assert (chat(engine, commented).status, chat(engine, answered).status) == ("live", "live")
    assert chat(engine, untouched).status == "closed"


@CLOCKS
def test_r3_flagged_chat_not_closed_by_inactivity(cli, engine, clock):
    alice = add_agent(engine, "alice")
    flagged = add_chat(engine, agent=alice, flagged=True, created=T0 - dt.timedelta(days=2))
    summary = sweep(cli, clock=clock)
    assert chat(engine, flagged).status == "live"
    assert all(job["changed"] == 0 for job in summary["jobs"].values())


def test_r3_unflagged_chat_is_treated_normally_again(cli, engine):
    alice = add_agent(engine, "alice")
    flagged = add_chat(engine, agent=alice, flagged=True, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    sweep(cli, "inactivity")
    assert chat(engine, flagged).status == "live"
    with engine.begin() as connection:
        from sqlalchemy import update

        from chatctl.storage.models import Chat
        connection.execute(update(Chat).where(Chat.id == flagged).values(flagged=False))
    sweep(cli, "inactivity")
    assert chat(engine, flagged).status == "closed"


def test_r3_flagged_chat_not_reassigned_by_agent_timeout(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    flagged = add_chat(engine, agent=alice, flagged=True, created=T0 - minutes(10))
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(10))
    sweep(cli, "agent-timeout")
    assert chat(engine, flagged).agent_id == alice
    assert chat(engine, waiting).agent_id == bob  # the same wait without the flag is handed over


def test_r3_flagged_pending_chat_still_times_out(cli, engine):
    alice = add_agent(engine, "alice")
    pending = add_chat(engine, status="pending", agent=alice, flagged=True,
                       pending_since=T0 - dt.timedelta(hours=25))
    sweep(cli, "pending")
    assert chat(engine, pending).close_reason == "pending_timeout"


# -- R9 with the closes --------------------------------------------------------------------
def test_r9_inactivity_close_removes_comments_and_tags(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    idle = add_chat(engine, agent=alice, created=T0 - minutes(120), agent_at=T0 - minutes(100))
    add_comment(engine, idle, alice, bob)
    summary = sweep(cli, "inactivity")
    assert count(engine, Comment, Comment.chat_id == idle) == 0
    assert count(engine, CommentMention, CommentMention.chat_id == idle) == 0
    assert count(engine, Notification, Notification.chat_id == idle, Notification.read_at.is_(None)) == 0
    assert count(engine, Notification, Notification.chat_id == idle, Notification.read_at == T0) == 1
    (event,) = audit_rows(engine, summary["run_id"])
    # The same audit event as `chats close` writes: the R9 counts in `after`.
    assert event.after["comments_removed"] == 1 and event.after["tags_removed"] == 1
    assert event.after["notifications_read"] == 1 and event.reason == "inactivity"


@CLOCKS
def test_r9_cleanup_purges_leftovers_on_closed_and_converted_chats(cli, engine, clock):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    closed = add_chat(engine, status="closed", agent=alice, closed_at=T0 - minutes(5))
    converted = add_chat(engine, agent=alice)
    add_ticket(engine, converted, created=T0 - minutes(5))
    live = add_chat(engine, agent=alice, created=T0 - minutes(3))
    for chat_id in (closed, converted, live):
        add_comment(engine, chat_id, alice, bob)
    summary = sweep(cli, "cleanup", clock=clock)
    assert summary["jobs"]["cleanup"] == {"matched": 2, "changed": 2, "skipped": 0}
    assert count(engine, Comment) == 1 and count(engine, CommentMention) == 1
    assert count(engine, Notification, Notification.read_at.is_(None)) == 1
    assert sorted(e.entity_id for e in audit_rows(engine, summary["run_id"])) == sorted([str(closed), str(converted)])
    assert sweep(cli, "cleanup")["jobs"]["cleanup"]["changed"] == 0


# -- R6 pending -----------------------------------------------------------------------------
@CLOCKS
def test_r6_pending_chat_closes_after_pending_timeout(cli, engine, clock):
    alice = add_agent(engine, "alice")
    due = add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(hours=24, minutes=1))
    young = add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(hours=23))
    summary = sweep(cli, "pending", clock=clock)
    assert summary["jobs"]["pending"]["changed"] == 1
    closed = chat(engine, due)
    assert (closed.status, closed.close_reason, closed.closed_by, closed.pending_since, closed.closed_at) == \
        ("closed", "pending_timeout", "system", None, T0)
    assert chat(engine, young).status == "pending"
    (event,) = audit_rows(engine, summary["run_id"])
    assert event.before["pending_since"].startswith("2026-11-24T09:59")


def test_r6_pending_chat_is_not_closed_by_inactivity(cli, engine):
    alice = add_agent(engine, "alice")
    pending = add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(hours=2),
                       created=T0 - dt.timedelta(hours=3))
    sweep(cli)
    assert chat(engine, pending).status == "pending"


# -- R5 agent timeout -----------------------------------------------------------------------
@CLOCKS
def test_r5_unanswered_chat_goes_to_least_loaded_other_agent(cli, engine, clock):
    alice, bob, carol = add_agent(engine, "alice"), add_agent(engine, "bob"), add_agent(engine, "carol")
    add_agent(engine, "dave", online=False)
    add_chat(engine, agent=bob, created=T0 - minutes(1))  # bob has one live chat, carol none
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(6))
    summary = sweep(cli, "agent-timeout", clock=clock)
    assert summary["jobs"]["agent-timeout"]["changed"] == 1
    moved = chat(engine, waiting)
    assert (moved.agent_id, moved.assigned_at, moved.reassign_count) == (carol, T0, 1)
    (event,) = audit_rows(engine, summary["run_id"])
    assert event.before["agent_id"] == alice and event.after["agent_id"] == carol


def test_r5_timer_counts_from_the_later_of_message_and_assignment(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    recent = add_chat(engine, agent=alice, created=T0 - minutes(30), assigned_at=T0 - minutes(2))
    old = add_chat(engine, agent=alice, created=T0 - minutes(30), assigned_at=T0 - minutes(6))
    sweep(cli, "agent-timeout")
    assert chat(engine, recent).agent_id == alice
    assert chat(engine, old).agent_id == bob


def test_r5_answered_chat_is_not_reassigned(cli, engine):
    alice, _ = add_agent(engine, "alice"), add_agent(engine, "bob")
    answered = add_chat(engine, agent=alice, created=T0 - minutes(20), agent_at=T0 - minutes(19))
    sweep(cli, "agent-timeout")
    assert chat(engine, answered).agent_id == alice


def test_r5_never_the_same_agent_ticket_when_nobody_else(cli, engine):
    alice = add_agent(engine, "alice")
    add_agent(engine, "bob", online=False)
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(6))
    summary = sweep(cli, "agent-timeout")
    assert chat(engine, waiting).status == "converted"
    made = ticket_of(engine, waiting)
    assert (made.reason, made.agent_id) == ("no_agents", None)
    assert summary["jobs"]["agent-timeout"]["changed"] == 1


def test_r5_agent_max_chats_respected(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    set_pref(cli, "agent_max_chats", "2")
    add_chat(engine, agent=bob, created=T0 - minutes(1))
    first = add_chat(engine, agent=alice, created=T0 - minutes(7))
    second = add_chat(engine, agent=alice, created=T0 - minutes(6))
    sweep(cli, "agent-timeout")
    assert chat(engine, first).agent_id == bob  # bob: 1 -> 2, full
    assert chat(engine, second).status == "converted"
    assert ticket_of(engine, second).reason == "no_agents"


def test_r5_max_reassignments_makes_a_ticket(cli, engine):
    alice, _ = add_agent(engine, "alice"), add_agent(engine, "bob")
    bounced = add_chat(engine, agent=alice, created=T0 - minutes(30), reassign_count=3)
    once_more = add_chat(engine, agent=alice, created=T0 - minutes(30), reassign_count=2)
    sweep(cli, "agent-timeout")
    assert chat(engine, bounced).status == "converted"
    assert ticket_of(engine, bounced).reason == "no_agents"
    assert chat(engine, once_more).reassign_count == 3 and chat(engine, once_more).status == "live"


def test_r5_spreads_a_batch_over_agents_by_load(cli, engine):
    alice, bob, carol = add_agent(engine, "alice"), add_agent(engine, "bob"), add_agent(engine, "carol")
    for _ in range(2):
        add_chat(engine, agent=carol, created=T0 - minutes(1))
    waiting = [add_chat(engine, agent=alice, created=T0 - minutes(10)) for _ in range(4)]
    sweep(cli, "agent-timeout", "--batch-size", "10")
    owners = [chat(engine, chat_id).agent_id for chat_id in waiting]
    # bob 0 -> 1 -> 2, then carol and bob tie at 2 -> 3: loads end even.
    assert sorted(owners) == sorted([bob, bob, bob, carol])


@CLOCKS
def test_r5_unassigned_waiting_chat_is_assigned(cli, engine, clock):
    alice = add_agent(engine, "alice")
    unassigned = add_chat(engine, created=T0 - minutes(6))
    sweep(cli, "agent-timeout", clock=clock)
    assigned = chat(engine, unassigned)
    assert (assigned.agent_id, assigned.reassign_count, assigned.assigned_at) == (alice, 0, T0)


# -- R12 unattended -------------------------------------------------------------------------
@CLOCKS
def test_r12_unattended_assigns_when_open_and_agents_online(cli, engine, clock):
    alice = add_agent(engine, "alice")
    waiting = add_chat(engine, created=T0 - minutes(1))
    summary = sweep(cli, "unattended", clock=clock)
    assert summary["jobs"]["unattended"]["changed"] == 1
    assert chat(engine, waiting).agent_id == alice


@CLOCKS
def test_r12_unattended_out_of_hours_becomes_ticket(cli, engine, clock):
    add_agent(engine, "alice")
    set_pref(cli, "business_hours", "mon-fri 11:00-17:00")
    waiting = add_chat(engine, created=T0 - minutes(1))
    sweep(cli, "unattended", clock=clock)
    assert chat(engine, waiting).status == "converted"
    assert ticket_of(engine, waiting).reason == "out_of_hours"


def test_r12_unattended_holiday_is_out_of_hours(cli, engine):
    add_agent(engine, "alice")
    set_pref(cli, "holidays", "2026-11-25")
    waiting = add_chat(engine, created=T0 - minutes(1))
    sweep(cli, "unattended")
    assert ticket_of(engine, waiting).reason == "out_of_hours"


@CLOCKS
def test_r12_unattended_no_agents_online_becomes_ticket(cli, engine, clock):
    add_agent(engine, "alice", online=False)
    waiting = add_chat(engine, created=T0 - minutes(1))
    answered_unassigned = add_chat(engine, created=T0 - minutes(3), agent_at=T0 - minutes(2))
    sweep(cli, "unattended", clock=clock)
    assert ticket_of(engine, waiting).reason == "no_agents"
    assert chat(engine, answered_unassigned).status == "live"


# -- D1 capacity is not "no agents", D2 a system hand-over is activity ------------------------------
def test_d1_agents_online_but_full_leave_the_chat_waiting_until_agent_chat_timeout(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    assert cli("prefs", "set", "agent_max_chats", "1").exit_code == 0
    alices = add_chat(engine, agent=alice, created=T0 - minutes(20))
    add_chat(engine, agent=bob, created=T0 - minutes(20))
    waiting = add_chat(engine, created=T0 - dt.timedelta(seconds=10))
    waited_long = add_chat(engine, created=T0 - minutes(6))       # past agent_chat_timeout (5m)
    summary = sweep(cli, "unattended")
    assert summary["jobs"]["unattended"]["changed"] == 1
    assert chat(engine, waiting).status == "live" and chat(engine, waiting).agent_id is None
    assert ticket_of(engine, waited_long).reason == "no_agents"
    # As soon as an agent has room, the waiting chat is assigned.
    assert cli("chats", "close", str(alices)).exit_code == 0
    assert sweep(cli, "unattended")["jobs"]["unattended"]["changed"] == 1
    assert chat(engine, waiting).agent_id == alice


def test_d2_a_sweep_reassignment_restarts_the_inactivity_clock(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(31))  # unanswered and idle for 31m
    first = sweep(cli)
    assert first["jobs"]["agent-timeout"]["changed"] == 1
    handed_over = chat(engine, waiting)
    assert handed_over.agent_id == bob and handed_over.last_activity_at == T0
    later = (T0 + dt.timedelta(seconds=1)).isoformat()
    second = cli("sweep", "run", "--as-of", later, "-o", "json").json()
    assert second["jobs"]["inactivity"]["changed"] == 0
    assert chat(engine, waiting).status == "live"


# -- R13 archive ----------------------------------------------------------------------------
@CLOCKS
def test_r13_archive_tickets_older_than_archive_after_whatever_status(cli, engine, clock):
    alice = add_agent(engine, "alice")
    old_open = add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=91))
    old_closed = add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=95),
                            status="closed")
    young = add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=89))
    summary = sweep(cli, "archive", clock=clock)
    assert summary["jobs"]["archive"]["changed"] == 2
    assert ticket(engine, old_open).archived_at == T0 and ticket(engine, old_closed).archived_at == T0
    assert ticket(engine, old_closed).status == "closed" and ticket(engine, old_open).status == "open"
    assert ticket(engine, young).archived_at is None
    assert {e.entity_id for e in audit_rows(engine, summary["run_id"])} == {str(old_open), str(old_closed)}


def test_d3_an_unarchive_sticks_until_archive_after_has_passed_again(cli, engine):
    """A 100-day-old ticket unarchived is not archived again by the next run, but once
    ticket_archive_after has passed since the unarchive; explain says when."""
    alice = add_agent(engine, "alice")
    old = add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=100),
                     archived_at=T0 - dt.timedelta(days=10))
    unarchive_at = T0 - dt.timedelta(days=1)
    with freeze_time(unarchive_at):
        assert cli("tickets", "unarchive", str(old)).exit_code == 0
    assert ticket(engine, old).unarchived_at == unarchive_at
    assert sweep(cli, "archive")["jobs"]["archive"]["changed"] == 0
    assert ticket(engine, old).archived_at is None
    chat_id = ticket(engine, old).chat_id
    explained = cli("sweep", "explain", str(chat_id), "--as-of", AS_OF, "-o", "json").json()
    archive = next(verdict for verdict in explained["jobs"] if verdict["job"] == "archive")
    assert archive["would_change"] is False and "last unarchive" in archive["reason"]
    assert archive["due_after"] == (unarchive_at + dt.timedelta(days=90)).isoformat()
    later = (unarchive_at + dt.timedelta(days=91)).isoformat()
    result = cli("sweep", "run", "archive", "--as-of", later, "-o", "json")
    assert result.json()["jobs"]["archive"]["changed"] == 1
    assert ticket(engine, old).archived_at is not None


def test_r13_no_sweep_closes_tickets(cli, engine):
    alice = add_agent(engine, "alice")
    old = add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=400))
    sweep(cli)
    assert ticket(engine, old).status == "open"


# -- the run as a whole ---------------------------------------------------------------------
def test_chat_changes_once_per_run(cli, engine):
    """Reassigned by agent-timeout, not also closed for inactivity in the same run."""
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    waiting = add_chat(engine, agent=alice, created=T0 - minutes(45))  # idle 45m and unanswered 45m
    unassigned_idle = add_chat(engine, created=T0 - minutes(45))
    summary = sweep(cli)
    assert chat(engine, waiting).status == "live" and chat(engine, waiting).agent_id == bob
    assert chat(engine, unassigned_idle).status == "live"
    per_chat = {}
    for event in audit_rows(engine, summary["run_id"], entity_type="chat"):
        per_chat[event.entity_id] = per_chat.get(event.entity_id, 0) + 1
    assert per_chat == {str(waiting): 1, str(unassigned_idle): 1}
    again = sweep(cli)
    assert all(job["changed"] == 0 for job in again["jobs"].values())


def test_second_run_at_same_as_of_changes_nothing(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    add_chat(engine, agent=alice, created=T0 - minutes(50), agent_at=T0 - minutes(40))
    add_chat(engine, status="pending", agent=bob, pending_since=T0 - dt.timedelta(days=2))
    add_chat(engine, agent=alice, created=T0 - minutes(8))
    add_ticket(engine, add_chat(engine, agent=alice), created=T0 - dt.timedelta(days=100))
    first = sweep(cli)
    assert sum(job["changed"] for job in first["jobs"].values()) == 4
    second = sweep(cli)
    assert sum(job["changed"] for job in second["jobs"].values()) == 0


def test_dry_run_is_exact_and_changes_nothing(cli, engine):
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    for minutes_ago in (31, 40, 50):
        add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(minutes_ago))
    add_chat(engine, agent=bob, created=T0 - minutes(45))  # agent-timeout takes it, not inactivity
    add_chat(engine, created=T0 - minutes(45))  # unattended takes it
    add_chat(engine, status="pending", agent=bob, pending_since=T0 - dt.timedelta(days=2))
    before = count(engine, AuditEvent)
    dry = sweep(cli, "--dry-run")
    assert dry["dry_run"] is True
    assert count(engine, AuditEvent) == before
    real = sweep(cli)
    assert {k: v["would_change"] for k, v in dry["jobs"].items()} == {k: v["changed"] for k, v in real["jobs"].items()}
    assert dry["jobs"]["inactivity"]["would_change"] == 3


def test_max_changes_exceeded_exits_5_and_changes_nothing(cli, engine):
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50)) for _ in range(3)]
    add_chat(engine, status="pending", agent=alice, pending_since=T0 - dt.timedelta(days=2))
    result = cli("sweep", "run", "--as-of", AS_OF, "--max-changes", "2")
    assert result.exit_code == 5, result
    assert "inactivity" in result.stderr and "nothing changed" in result.stderr
    assert all(chat(engine, chat_id).status == "live" for chat_id in chats)
    assert count(engine, AuditEvent, AuditEvent.action.like("sweep.%")) == 0
    assert cli("sweep", "run", "--as-of", AS_OF, "--max-changes", "3").exit_code == 0
    assert all(chat(engine, chat_id).status == "closed" for chat_id in chats)


def test_json_summary_shape(cli, engine):
    summary = sweep(cli)
    assert set(summary) == {"run_id", "as_of", "dry_run", "jobs", "duration_s"}
    assert list(summary["jobs"]) == ["unattended", "agent-timeout", "inactivity", "pending", "archive", "cleanup"]
    assert all(set(job) == {"matched", "changed", "skipped"} for job in summary["jobs"].values())
    assert summary["as_of"] == "2026-11-25T10:00:00+00:00"


def test_quiet_run_prints_nothing_on_success(cli, engine):
    result = cli("-q", "sweep", "run", "--as-of", AS_OF)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_unknown_job_and_bad_shard_are_usage_errors(cli):
    assert cli("sweep", "run", "nap").exit_code == 2
    for bad in ("0/2", "3/2", "x", "1/0", "1-2"):
        result = cli("sweep", "run", "--shard", bad)
        assert result.exit_code == 2, (bad, result)


def test_shards_partition_the_chats(cli, engine):
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50)) for _ in range(9)]
    changed = 0
    for k in (1, 2, 3):
        changed += sweep(cli, "inactivity", "--shard", f"{k}/3")["jobs"]["inactivity"]["changed"]
        closed = {c for c in chats if chat(engine, c).status == "closed"}
        assert closed == {c for c in chats if c % 3 <= k - 1}
    assert changed == 9


def test_small_batches_cover_everything(cli, engine):
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50)) for _ in range(7)]
    summary = sweep(cli, "inactivity", "--batch-size", "2")
    assert summary["jobs"]["inactivity"]["changed"] == 7
    assert all(chat(engine, c).status == "closed" for c in chats)


def test_history_and_show(cli, engine):
    alice = add_agent(engine, "alice")
    add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    dry = sweep(cli, "--dry-run")
    real = sweep(cli, "inactivity")
    history = cli("sweep", "history", "-o", "json").json()
    assert [row["run_id"] for row in history[:2]] == [real["run_id"], dry["run_id"]]
    assert history[0]["status"] == "ok" and history[1]["dry_run"] is True
    shown = cli("sweep", "show", real["run_id"], "-o", "json").json()
    assert shown["counts"]["inactivity"]["changed"] == 1 and shown["audit_events"] == 1
    assert shown["jobs"] == "inactivity" and shown["shard"] == "all" and shown["pid"] > 0
    assert cli("sweep", "show", "NOPE").exit_code == 1
    assert cli("sweep", "history", "--limit", "1", "-o", "json").json()[0]["run_id"] == real["run_id"]


def test_metrics_file(cli, engine, tmp_path):
    alice = add_agent(engine, "alice")
    add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    (tmp_path / "metrics").mkdir()
    path = tmp_path / "metrics" / "chatctl.prom"
    with freeze_time(T0):
        assert cli("sweep", "run", "--metrics-file", str(path)).exit_code == 0
    text = path.read_text()
    assert "# TYPE chatctl_sweep_rows gauge" in text
    assert 'chatctl_sweep_rows{job="inactivity",result="changed",shard="all"} 1' in text
    assert f'chatctl_sweep_last_success_timestamp_seconds{{job="inactivity",shard="all"}} {T0.timestamp():.3f}' in text
    assert "chatctl_sweep_duration_seconds" in text and 'chatctl_sweep_success{shard="all"} 1' in text
    assert [p.name for p in path.parent.iterdir()] == ["chatctl.prom"]  # no temporary left behind


def test_run_record_for_every_run(cli, engine):
    sweep(cli, "--dry-run")
    sweep(cli)
    assert cli("sweep", "run", "--max-changes", "0", "--as-of", AS_OF).exit_code == 0
    assert count(engine, SweepRun) == 3


# -- the run lock ---------------------------------------------------------------------------
def test_lock_held_exits_4_and_changes_nothing(cli, engine):
    alice = add_agent(engine, "alice")
    idle = add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    holder = hold_lock(engine, "inactivity:all")
    try:
        result = cli("sweep", "run", "--as-of", AS_OF)
        assert result.exit_code == 4, result
        assert "lock" in result.stderr and "inactivity" in result.stderr
        assert chat(engine, idle).status == "live"
        skipped = cli("sweep", "run", "--as-of", AS_OF, "--skip-if-locked")
        assert skipped.exit_code == 0 and "skipped" in skipped.stderr
        assert chat(engine, idle).status == "live"
        # other shards and other jobs are not held
        assert cli("sweep", "run", "pending", "--as-of", AS_OF).exit_code == 0
        # the lock is only an efficiency guard; tests may bypass it
        assert cli("sweep", "run", "inactivity", "--as-of", AS_OF, "--no-lock").exit_code == 0
        assert chat(engine, idle).status == "closed"
    finally:
        if holder is not None:
            holder.close()
    statuses = [row["status"] for row in cli("sweep", "history", "-o", "json").json()]
    assert statuses.count("locked") == 2


def test_lock_released_after_run(cli, engine):
    assert cli("sweep", "run", "--as-of", AS_OF).exit_code == 0
    assert cli("sweep", "run", "--as-of", AS_OF).exit_code == 0
    from chatctl.storage.models import SweepLease
    assert count(engine, SweepLease) == 0


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_lease_of_a_crashed_holder_expires(cli, engine):
    from sqlalchemy import insert

    from chatctl.storage.models import SweepLease

    with engine.begin() as connection:
        connection.execute(insert(SweepLease).values(
            name="archive:all", holder="gone:4242:X", acquired_at=T0 - minutes(10), expires_at=T0 + minutes(1)))
    with freeze_time(T0):
        assert cli("sweep", "run", "archive").exit_code == 4
    with freeze_time(T0 + minutes(1)):
        assert cli("sweep", "run", "archive").exit_code == 0
    assert count(engine, SweepLease) == 0
