"""``chatctl status``: the desk at a glance, from one snapshot, on SQLite and PostgreSQL.

Its counts are checked against the views' own commands on a demo desk, and
each figure against a desk built row by row with the clock frozen.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from freezegun import freeze_time
from sqlalchemy import func, insert, select, text

from chatctl.storage.models import Agent, Chat, Customer, Message, SweepRun

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # a Monday, inside business hours
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def at_now(cli, *args, expect: int = 0):
    with freeze_time(NOW):
        result = cli(*args)
    assert result.exit_code == expect, result
    return result


# -- the counts agree with the views ------------------------------------------------------------
@pytest.fixture
def demo(cli):
    at_now(cli, "demo", "load", "--chats", "600", "--seed", "7", "--now", NOW.isoformat())
    return cli


def listed(cli, *args) -> int:
    return len(at_now(cli, *args, "--all", "-o", "json").json())


def counted(cli, *expressions) -> int:
    return int(at_now(cli, "chats", "filter", *expressions, "--count").stdout)


def test_r1_status_counts_agree_with_the_views(demo):
    status = at_now(demo, "status", "-o", "json").json()
    views = status["views"]
    assert views["live"]["count"] > 100 and views["pending"]["count"] > 10  # a desk worth counting
    for view in ("live", "pending"):
        assert views[view]["count"] == listed(demo, "chats", "list", view)
        assert views[view]["new"] == listed(demo, "chats", "list", view, "--new")
        assert views[view]["unread"] == listed(demo, "chats", "list", view, "--unread")
        assert views[view]["flagged"] == listed(demo, "chats", "list", view, "--flagged")
        assert views[view]["unassigned"] == counted(demo, f"status={view}", "agent=none")
    assert views["tagged"]["count"] == counted(demo, "status=live", "tagged=yes") + \
        counted(demo, "status=pending", "tagged=yes")
    assert views["tagged"]["flagged"] == counted(demo, "status=live", "tagged=yes", "flagged=yes") + \
        counted(demo, "status=pending", "tagged=yes", "flagged=yes")
    assert views["closed_today"]["count"] == counted(demo, "status=closed", "closed>=2026-11-30T00:00Z")
    assert views["closed_today"]["by_system"] == counted(demo, "status=closed", "closed>=2026-11-30T00:00Z",
                                                         "closed_by=system")
    assert views["open_tickets"]["count"] == listed(demo, "tickets", "list", "--status", "open")
    open_tickets = at_now(demo, "tickets", "list", "--status", "open", "--all", "-o", "json").json()
    assert views["open_tickets"]["unassigned"] == sum(ticket["agent"] is None for ticket in open_tickets)

    assert status["agents"], "the demo desk has agents online at 10:00"
    for agent in status["agents"]:
        handle = agent["agent"]
        assert agent["live"] == listed(demo, "chats", "list", "live", "--agent", handle)
        assert agent["tagged"] == listed(demo, "chats", "list", "tagged", "--agent", handle)
        assert agent["open_tickets"] == listed(demo, "tickets", "list", "--status", "open", "--agent", handle)
        assert agent["unanswered"] <= agent["live"]

    idle = {bucket["bucket"]: bucket["count"] for bucket in status["waiting"]["idle"]}
    assert sum(idle.values()) == views["live"]["count"]
    assert idle["<5m"] == counted(demo, "status=live", "idle<5m")
    assert idle["5-15m"] == counted(demo, "status=live", "idle>=5m", "idle<15m")
    assert idle["30m-1h"] == counted(demo, "status=live", "idle>=30m", "idle<1h")
    assert idle[">4h"] == counted(demo, "status=live", "idle>=4h")

    tickets = status["tickets"]
    assert sum(bucket["count"] for bucket in tickets["by_age"]) == views["open_tickets"]["count"]
    for reason, count in tickets["by_reason"].items():
        assert count == listed(demo, "tickets", "list", "--status", "open", "--reason", reason)
    assert tickets["closed"] == listed(demo, "tickets", "list", "--status", "closed")


def test_status_tsv_is_one_metric_per_line_with_the_json_figures(demo):
    document = at_now(demo, "status", "-o", "json").json()
    lines = at_now(demo, "status", "-o", "tsv").stdout.splitlines()
    assert lines[0] == "metric\tvalue"
    metrics = dict(line.split("\t", 1) for line in lines[1:])
    assert metrics["views.live.count"] == str(document["views"]["live"]["count"])
    assert metrics["waiting.idle.>4h.count"] == str(document["waiting"]["idle"][-1]["count"])
    first = document["agents"][0]
    assert metrics[f"agents.{first['agent']}.live"] == str(first["live"])
    assert metrics["sweeps.jobs.inactivity.overdue"] == "true"


def test_status_table_has_its_sections_and_bars(demo):
    result = at_now(demo, "--no-color", "status", "-o", "table")
    for title in ("views", "live chats by idle time", "online agents", "open tickets by age",
                  "open tickets by reason", "sweep jobs"):
        assert title in result.stdout
    assert "█" in result.stdout
    assert "first response p50" in result.stdout


def test_status_refuses_ids_output(demo):
    result = at_now(demo, "status", "-o", "ids", expect=2)
    assert "no ids" in result.stderr


def test_first_responses_sampled_from_the_views_count_as_from_their_own(demo, engine):
    """status counts the open chats started in the last 24 hours in its views' pass and hands that
    count to the first responses, which count only the closed and converted ones: the same k, the
    same sample, the same figures as counting every chat started."""
    from chatctl.domain.response_times import first_response
    from chatctl.domain.status import RESPONSE_WINDOW, _chat_views

    edges = [NOW - RESPONSE_WINDOW, NOW]
    with engine.connect() as connection:
        open_started = _chat_views(connection, NOW)["open_started"]
        assert open_started > 100
        for sample in (40, 5_000):  # every 10th chat or so, and every chat
            counted = first_response(connection, edges, sample, open_started=open_started)
            assert counted == first_response(connection, edges, sample)
            assert (counted[1] > 1) is (sample == 40)


# -- one snapshot ---------------------------------------------------------------------------------
def test_status_reads_one_snapshot(database_url, engine):
    """What another session commits between two statements of a snapshot is not seen by the second."""
    from chatctl.storage.engine import create_engine, read_snapshot

    reader = create_engine(database_url, for_writes=False)
    with engine.begin() as connection:
        connection.execute(insert(Customer).values(display_name="C", address="c1", created_at=NOW))
    try:
        with read_snapshot(reader) as connection:
            before = connection.execute(select(func.count()).select_from(Customer)).scalar_one()
            if connection.dialect.name == "postgresql":
                assert connection.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
                assert connection.execute(text("SHOW transaction_read_only")).scalar() == "on"
            with engine.begin() as writer:
                writer.execute(insert(Customer).values(display_name="D", address="c2", created_at=NOW))
            assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == before
        with reader.connect() as connection:
            assert connection.execute(select(func.count()).select_from(Customer)).scalar_one() == before + 1
    finally:
        reader.dispose()


# -- figures on a desk built row by row -----------------------------------------------------------------
def add_agent(engine, handle: str, online: bool = True) -> int:
    with engine.begin() as connection:
        return connection.execute(insert(Agent).values(
            handle=handle, name=handle.title(), role="agent", presence="online" if online else "offline",
            active=True, created_at=NOW - 30 * 24 * H).returning(Agent.id)).scalar_one()


def add_chat(engine, *, created: dt.timedelta, messages: tuple[tuple[str, dt.timedelta], ...] = (),
             status: str = "live", agent: int | None = None, closed: dt.timedelta | None = None,
             closed_by: str | None = None) -> int:
    """A chat created ``created`` before NOW with ``(direction, how long before NOW)`` messages."""
    inbound = [NOW - ago for direction, ago in messages if direction == "in"]
    outbound = [NOW - ago for direction, ago in messages if direction == "out"]
    stamps = [NOW - created, *inbound, *outbound]
    with engine.begin() as connection:
        customer = connection.execute(insert(Customer).values(
            display_name="Customer", address=f"+27{os.urandom(5).hex()}", created_at=NOW - created)
            .returning(Customer.id)).scalar_one()
        chat_id = connection.execute(insert(Chat).values(
            customer_id=customer, channel="webchat", status=status, agent_id=agent,
            assigned_at=NOW - created if agent else None, created_at=NOW - created,
            last_customer_message_at=max(inbound, default=None), last_agent_message_at=max(outbound, default=None),
            last_activity_at=max(stamps), agent_seen_at=max(outbound, default=None),
            closed_at=NOW - closed if closed is not None else None,
            closed_by=(closed_by or "agent") if closed is not None else None).returning(Chat.id)).scalar_one()
        for direction, ago in messages:
            connection.execute(insert(Message).values(
                chat_id=chat_id, direction="inbound" if direction == "in" else "outbound",
                agent_id=agent if direction == "out" else None, kind="text", body="...", created_at=NOW - ago))
    return chat_id


def test_response_times_from_the_messages(engine):
    """First response: from the customer's first message to the first agent message after it."""
    from chatctl.domain.buckets import percentile
    from chatctl.domain.response_times import first_response, time_to_close

    alice = add_agent(engine, "alice")
    responses = {
        add_chat(engine, created=2 * H, messages=(("in", 2 * H), ("out", 2 * H - 2 * M), ("in", H)),
                 agent=alice): 120.0,
        add_chat(engine, created=3 * H, messages=(("in", 3 * H), ("in", 3 * H - M), ("out", 3 * H - 10 * M)),
                 agent=alice): 600.0,
        # The agent wrote first (a template): the response is the agent's first message after the customer's.
        add_chat(engine, created=H, messages=(("out", H), ("in", 50 * M), ("out", 45 * M)), agent=alice): 300.0,
        add_chat(engine, created=30 * M, messages=(("in", 30 * M),)): None,                # not answered yet
    }
    add_chat(engine, created=25 * H, messages=(("in", 25 * H), ("out", 25 * H - M)))  # started before the window
    add_chat(engine, created=H)                                                         # no messages
    responses[add_chat(engine, created=5 * H, status="closed", closed=H, messages=(("in", 5 * H),))] = None
    responses[add_chat(engine, created=2 * H, status="closed", closed=30 * M, messages=(("in", 2 * H),))] = None
    add_chat(engine, created=30 * H, status="closed", closed=26 * H, messages=(("in", 30 * H),))
    add_chat(engine, created=3 * H, status="live", closed=2 * H)  # reopened: not in the closed view

    edges = [NOW - 24 * H, NOW]
    with engine.connect() as connection:
        (first,), every = first_response(connection, edges)
        closing, = time_to_close(connection, edges)
    # 120 s, 600 s and 300 s: the median, and the 90th percentile interpolated between 300 and 600;
    # the two closed chats were never answered.
    assert (first.count, first.timed, every) == (6, 3, 1)
    assert first.percentiles() == {"p50_s": 300.0, "p90_s": 540.0}
    assert (closing.count, closing.timed) == (2, 2)
    assert closing.percentiles() == {"p50_s": 9900.0, "p90_s": 13500.0}

    # Buckets: the same chats split by the hour they started in.
    hours = [NOW - 4 * H + index * H for index in range(5)]
    with engine.connect() as connection:
        by_hour, _ = first_response(connection, hours)
    assert [(bucket.count, bucket.timed) for bucket in by_hour] == [(0, 0), (1, 1), (2, 1), (2, 1)]
    assert [bucket.p50 for bucket in by_hour] == [None, 600.0, 120.0, 300.0]

    # A busy period: every k-th chat id, k the smallest keeping the sample within the limit
    # (8 chats started in the window, a limit of 3: every third).
    with engine.connect() as connection:
        (sampled,), every = first_response(connection, edges, sample=3)
    picked = {chat_id: seconds for chat_id, seconds in responses.items() if chat_id % 3 == 0}
    timed = sorted(seconds for seconds in picked.values() if seconds is not None)
    assert every == 3
    assert (sampled.count, sampled.timed) == (len(picked), len(timed))
    assert (sampled.p50, sampled.p90) == (percentile(timed, 0.5), percentile(timed, 0.9))


def test_r5_oldest_unanswered_customer_and_idle_buckets(cli, engine):
    alice = add_agent(engine, "alice")
    bob = add_agent(engine, "bob", online=False)
    add_chat(engine, created=H, messages=(("in", H), ("out", 50 * M), ("in", 40 * M)), agent=alice)
    add_chat(engine, created=20 * M, messages=(("in", 20 * M),))                       # unassigned, 20m
    add_chat(engine, created=2 * H, messages=(("in", 2 * H), ("out", 3 * M)), agent=alice)  # answered
    longest = add_chat(engine, created=5 * H, messages=(("in", 5 * H),), agent=bob)  # offline agent's chat
    status = at_now(cli, "status", "-o", "json").json()
    assert status["waiting"]["oldest_unanswered"] == {"chat_id": longest, "agent": "bob",
                                                      "since": (NOW - 5 * H).isoformat(), "waiting_s": 5 * 3600}
    assert status["waiting"]["unanswered"] == 3
    assert status["waiting"]["held_by_offline_agents"] == 1
    assert {bucket["bucket"]: bucket["count"] for bucket in status["waiting"]["idle"]} == \
        {"<5m": 1, "5-15m": 0, "15-30m": 1, "30m-1h": 1, "1-4h": 0, ">4h": 1}
    assert [(a["agent"], a["live"], a["unanswered"]) for a in status["agents"]] == [("alice", 2, 1)]
    assert status["views"]["live"]["unassigned"] == 1


def test_sweep_jobs_last_run_and_overdue(cli, engine, tmp_path):
    with freeze_time(NOW - 20 * M):
        assert cli("sweep", "run").exit_code == 0
    with freeze_time(NOW - 5 * M):
        assert cli("sweep", "run", "inactivity").exit_code == 0
    with engine.begin() as connection:  # a later run of pending that failed
        connection.execute(insert(SweepRun).values(
            id="01FAILEDRUN0000000000000000", jobs="pending", as_of=NOW - 2 * M, dry_run=False,
            started_at=NOW - 2 * M, finished_at=NOW - 2 * M, status="failed", counts={"jobs": {}}, host="h",
            pid=1, shard="all", actor="system"))
    jobs = {job["job"]: job for job in at_now(cli, "status", "-o", "json").json()["sweeps"]["jobs"]}
    assert jobs["inactivity"]["overdue"] is False
    assert jobs["inactivity"]["last_run_at"] == (NOW - 5 * M).isoformat()
    assert jobs["unattended"]["overdue"] is True and jobs["unattended"]["result"] == "ok"
    assert jobs["unattended"]["last_success_at"] == (NOW - 20 * M).isoformat()
    assert (jobs["pending"]["result"], jobs["pending"]["last_run"]) == ("failed", "01FAILEDRUN0000000000000000")
    assert jobs["pending"]["last_success_at"] == (NOW - 20 * M).isoformat()

    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.desk]\ndatabase_url = "{cli.url}"\nsweep_expected_every = "30m"\n')
    os.chmod(config, 0o600)
    with freeze_time(NOW):
        result = cli("--config", str(config), "--profile", "desk", "status", "-o", "json")
    assert result.exit_code == 0, result
    assert not any(job["overdue"] for job in result.json()["sweeps"]["jobs"])
    assert result.json()["sweeps"]["expected_every_s"] == 1800


# -- status --check (D16) --------------------------------------------------------------------------------
def swept(cli, ago: dt.timedelta) -> None:
    with freeze_time(NOW - ago):
        assert cli("sweep", "run", "cleanup").exit_code == 0


def check(cli, *args, expect: int, before: tuple[str, ...] = ()):
    result = at_now(cli, *before, "status", "--check", *args, expect=expect)
    return result.stdout.splitlines()


def test_d16_check_ok(cli, engine):
    alice = add_agent(engine, "alice")
    add_chat(engine, created=H, messages=(("in", H), ("out", 59 * M), ("in", 3 * M)), agent=alice)
    swept(cli, M)
    assert check(cli, expect=0) == ["OK: oldest unanswered customer 3m, 0 unassigned live chats, "
                                    "last successful sweep 1m ago"]


def test_d16_check_waiting_warning_and_critical(cli, engine):
    alice = add_agent(engine, "alice")
    chat_id = add_chat(engine, created=H, messages=(("in", 12 * M),), agent=alice)
    swept(cli, M)
    assert check(cli, expect=1) == [f"WARNING: customer waiting 12m for an answer (chat {chat_id}), above the "
                                    "warning level of 10m"]
    assert check(cli, "--waiting-critical", "11m", expect=2) == [
        f"CRITICAL: customer waiting 12m for an answer (chat {chat_id}), above the critical level of 11m"]
    assert check(cli, "--waiting-warning", "15m", "--waiting-critical", "1h", expect=0)[0].startswith("OK: ")


def test_d16_check_unassigned_live_chats(cli, engine):
    swept(cli, M)
    for _ in range(6):
        add_chat(engine, created=M, messages=(("in", M),))
    assert check(cli, expect=1) == ["WARNING: 6 unassigned live chats, above the warning level of 5"]
    assert check(cli, "--unassigned-critical", "5", "--unassigned-warning", "2", expect=2) == [
        "CRITICAL: 6 unassigned live chats, above the critical level of 5"]
    assert check(cli, "--unassigned-warning", "6", expect=0)[0].startswith("OK: ")


def test_d16_check_last_successful_sweep(cli, engine):
    assert check(cli, expect=2) == ["CRITICAL: no successful sweep run on record"]
    swept(cli, 15 * M)
    assert check(cli, expect=1) == ["WARNING: last successful sweep 15m ago, above the warning level of 10m"]
    assert check(cli, "--sweep-warning", "4m", expect=2) == [
        "CRITICAL: last successful sweep 15m ago, above the critical level of 12m"]  # three times the warning
    assert check(cli, "--sweep-warning", "20m", expect=0)[0].startswith("OK: ")


def test_d16_check_one_line_per_breach_worst_first(cli, engine):
    chat_id = add_chat(engine, created=H, messages=(("in", 45 * M),))
    for _ in range(5):
        add_chat(engine, created=M, messages=(("in", M),))
    swept(cli, 15 * M)
    assert check(cli, expect=2) == [
        f"CRITICAL: customer waiting 45m for an answer (chat {chat_id}), above the critical level of 30m",
        "WARNING: 6 unassigned live chats, above the warning level of 5",
        "WARNING: last successful sweep 15m ago, above the warning level of 10m",
    ]
    document = at_now(cli, "status", "--check", "-o", "json", expect=2).json()
    assert document["state"] == "CRITICAL" and document["exit_code"] == 2
    assert [(c["check"], c["state"]) for c in document["checks"]] == [
        ("waiting", "CRITICAL"), ("unassigned", "WARNING"), ("sweep", "WARNING")]
    assert document["checks"][0]["chat_id"] == chat_id and document["checks"][1]["value"] == 6


def test_d16_check_levels_from_the_profile_and_flags_over_them(cli, engine, tmp_path):
    chat_id = add_chat(engine, created=H, messages=(("in", 12 * M),))
    swept(cli, M)
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.desk]\ndatabase_url = "{cli.url}"\ncheck_waiting_warning = "20m"\n'
                      'check_waiting_critical = "40m"\ncheck_unassigned_warning = 0\n'
                      'check_unassigned_critical = 3\n')
    os.chmod(config, 0o600)
    profile = ("--config", str(config), "--profile", "desk")
    assert check(cli, before=profile, expect=1) == ["WARNING: 1 unassigned live chats, above the warning level of 0"]
    assert check(cli, "--unassigned-warning", "1", before=profile, expect=0)[0].startswith("OK: ")
    assert check(cli, "--waiting-warning", "5m", "--unassigned-warning", "1", before=profile, expect=1) == [
        f"WARNING: customer waiting 12m for an answer (chat {chat_id}), above the warning level of 5m"]


@pytest.mark.parametrize("args", [
    ("--waiting-warning", "soon"),
    ("--unassigned-warning", "-1"),
    ("--no-such-flag",),
    ("--waiting-warning", "30m", "--waiting-critical", "10m"),
    ("-o", "nonsense"),
], ids=["bad-duration", "negative-count", "unknown-flag", "critical-below-warning", "bad-format"])
def test_d16_check_usage_errors_are_unknown(cli, args):
    result = at_now(cli, "status", "--check", *args, expect=3)
    assert result.stdout.startswith("UNKNOWN: ")
    assert len(result.stdout.splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_d16_usage_error_without_check_keeps_exit_2(cli):
    assert at_now(cli, "status", "--no-such-flag", expect=2).stdout == ""


def test_d16_check_unreachable_database_is_unknown(bare_cli):
    result = bare_cli(["--database-url", "postgresql://nobody:secret@127.0.0.1:1/desk", "status", "--check"])
    assert result.exit_code == 3, result
    assert result.stdout.startswith("UNKNOWN: ") and "secret" not in result.stdout + result.stderr


def test_d16_check_bad_profile_value_is_unknown(cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.desk]\ndatabase_url = "{cli.url}"\nsweep_expected_every = "often"\n')
    os.chmod(config, 0o600)
    result = at_now(cli, "--config", str(config), "--profile", "desk", "status", "--check", expect=3)
    assert "sweep_expected_every" in result.stdout
    # outside --check a bad profile value is a configuration error, exit 3 as ever
    assert "sweep_expected_every" in at_now(cli, "--config", str(config), "--profile", "desk", "status",
                                            expect=3).stderr


def test_r1_a_chat_tagged_many_times_counts_once(cli, engine):
    """A chat with several tags is one chat in the live and tagged views, and one in each tagged agent's view."""
    from chat_rows import Rows

    rows = Rows(engine)
    for handle in ("alice", "bob", "sue"):
        rows.agent(handle)
    both = rows.chat(agent="alice")
    twice = rows.chat(agent="alice", flagged=True)
    rows.chat(agent="alice")
    closed = rows.chat(status="closed", closed=H, agent="alice")
    rows.comment(both, "alice", "@bob @sue", ("bob", "sue"))
    rows.comment(twice, "alice", "@bob", ("bob",))
    rows.comment(twice, "sue", "@bob again", ("bob",))
    rows.comment(closed, "alice", "@sue left behind", ("sue",))  # a tag the clean-up has not removed yet
    status = cli("status", "-o", "json").json()
    assert status["views"]["live"]["count"] == 3 and status["views"]["live"]["flagged"] == 1
    assert status["views"]["tagged"]["count"] == 2 and status["views"]["tagged"]["flagged"] == 1
    agents = {agent["agent"]: agent for agent in status["agents"]}
    assert (agents["alice"]["live"], agents["bob"]["tagged"], agents["sue"]["tagged"], agents["alice"]["tagged"]) \
        == (3, 2, 1, 0)
    for handle in ("bob", "sue"):
        listed = cli("chats", "list", "tagged", "--agent", handle, "-o", "json").json()
        assert agents[handle]["tagged"] == len(listed)


def test_status_and_report_read_through_the_read_url(bare_cli, database_url, engine):
    """Both only read: with --read-url they never touch the primary (here one that cannot be reached)."""
    add_chat(engine, created=H, messages=(("in", H),))
    unreachable = "postgresql://nobody@127.0.0.1:1/desk"
    with freeze_time(NOW):
        status = bare_cli(["--database-url", unreachable, "--read-url", database_url, "status", "-o", "json"])
        report = bare_cli(["--database-url", unreachable, "--read-url", database_url, "report", "-o", "json"])
        check = bare_cli(["--database-url", unreachable, "--read-url", database_url, "status", "--check"])
    assert status.exit_code == 0, status
    assert status.json()["views"]["live"]["count"] == 1
    assert report.exit_code == 0, report
    assert report.json()["totals"]["chats_started"] == 1
    assert check.exit_code == 2 and check.stdout.startswith("CRITICAL: ")  # no sweep on record
