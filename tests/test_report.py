"""``chatctl report``: figures per day or hour of the display time zone, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from sqlalchemy import insert, update

from chatctl.domain.buckets import day_or_hour_edges
from chatctl.errors import UsageError
from chatctl.storage.models import Chat, SweepRun, Ticket
from test_status import H, M, add_agent, add_chat

UTC = dt.timezone.utc
JOBURG = ZoneInfo("Africa/Johannesburg")  # UTC+2, no clock changes
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=UTC)  # 12:00 in Johannesburg


def test_day_edges_follow_the_zone_calendar_and_end_now():
    london = ZoneInfo("Europe/London")
    now = dt.datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    edges = day_or_hour_edges(now - dt.timedelta(days=2), now, "day", london)
    # 24 Oct (BST, UTC+1), 25 Oct (25 hours: the clocks go back), 26 Oct (GMT) so far
    assert edges == [dt.datetime(2026, 10, 23, 23, 0, tzinfo=UTC), dt.datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
                     dt.datetime(2026, 10, 26, 0, 0, tzinfo=UTC), now]


def test_hour_edges_start_at_the_local_hour():
    now = dt.datetime(2026, 11, 30, 10, 20, tzinfo=UTC)
    edges = day_or_hour_edges(now - 3 * H, now, "hour", ZoneInfo("Asia/Kolkata"))  # UTC+5:30
    assert edges[0] == dt.datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    assert [b - a for a, b in zip(edges, edges[1:-1])] == [H, H, H]
    assert edges[-1] == now


def test_edges_refuse_an_empty_period_and_too_many_buckets():
    with pytest.raises(UsageError):
        day_or_hour_edges(NOW, NOW, "day", UTC)
    with pytest.raises(UsageError):
        day_or_hour_edges(NOW - dt.timedelta(days=500), NOW, "hour", UTC)


@pytest.fixture
def desk(engine):
    """Two days of a desk in Johannesburg time: yesterday (29th) and today (30th) until 12:00."""
    alice = add_agent(engine, "alice")
    # Yesterday 23:30 local (21:30 UTC on the 29th): answered after 2 minutes, closed by the customer.
    late = add_chat(engine, created=12 * H + 30 * M, messages=(("in", 12 * H + 30 * M), ("out", 12 * H + 28 * M)),
                    agent=alice, status="closed", closed=11 * H, closed_by="customer")
    # Today 00:30 local (22:30 UTC on the 29th): answered after 10 minutes, closed by the system.
    add_chat(engine, created=11 * H + 30 * M, messages=(("in", 11 * H + 30 * M), ("out", 11 * H + 20 * M)),
             agent=alice, status="closed", closed=10 * H, closed_by="system")
    # Today 11:00 local: not answered yet.
    add_chat(engine, created=H, messages=(("in", H),))
    # Converted today: a ticket, later closed; another archived yesterday.
    converted = add_chat(engine, created=2 * H, messages=(("in", 2 * H),), status="converted")
    old = add_chat(engine, created=100 * 24 * H, status="converted")
    with engine.begin() as connection:
        connection.execute(update(Chat).where(Chat.id == late).values(close_reason="sorted"))
        connection.execute(insert(Ticket), [
            {"chat_id": converted, "status": "closed", "reason": "no_agents", "agent_id": None,
             "created_at": NOW - 2 * H, "closed_at": NOW - H, "archived_at": None},
            {"chat_id": old, "status": "open",
             "reason": "manual", "agent_id": None, "created_at": NOW - 100 * 24 * H, "closed_at": None,
             "archived_at": NOW - 20 * H},
        ])
        for started, counts, dry in ((NOW - 3 * H, {"inactivity": 4, "archive": 1}, False),
                                     (NOW - 2 * H, {"inactivity": 100}, True),        # a dry run: left out
                                     (NOW - 15 * H, {"pending": 2}, False)):
            connection.execute(insert(SweepRun).values(
                id=f"RUN{started.hour:02d}{'D' if dry else 'R'}".ljust(26, "0"), jobs=",".join(counts),
                as_of=started, dry_run=dry, started_at=started, finished_at=started, status="ok",
                counts={"jobs": {job: {"changed": n} for job, n in counts.items()}}, host="h", pid=1, shard="all",
                actor="system"))
    return engine


def report(cli, *args, expect: int = 0):
    with freeze_time(NOW):
        result = cli("--tz", "Africa/Johannesburg", "report", "--since", "1d", *args)
    assert result.exit_code == expect, result
    return result


def test_report_days_in_the_display_time_zone(cli, desk):
    document = report(cli, "-o", "json").json()
    assert (document["since"], document["by"], document["timezone"]) == \
        ("2026-11-29T00:00:00+02:00", "day", "Africa/Johannesburg")
    yesterday, today = document["buckets"]
    assert (yesterday["start"], today["start"], today["end"]) == \
        ("2026-11-29T00:00:00+02:00", "2026-11-30T00:00:00+02:00", "2026-11-30T12:00:00+02:00")
    assert (yesterday["chats_started"], today["chats_started"]) == (1, 3)
    assert yesterday["first_response"] == {"chats": 1, "answered": 1, "p50_s": 120.0, "p90_s": 120.0,
                                         "sampled_every": 1}
    assert today["first_response"] == {"chats": 3, "answered": 1, "p50_s": 600.0, "p90_s": 600.0,
                                     "sampled_every": 1}
    assert (yesterday["chats_closed"], today["chats_closed"]) == (0, 2)
    assert today["closed_by"] == {"customer": 1, "agent": 0, "system": 1}
    assert today["close_reasons"] == {"sorted": 1}
    assert today["time_to_close"] == {"closed": 2, "p50_s": 5400.0, "p90_s": 5400.0}
    assert (today["converted"], today["converted_by_reason"]["no_agents"]) == (1, 1)
    assert (today["tickets_closed"], today["tickets_archived"], yesterday["tickets_archived"]) == (1, 0, 1)
    assert (today["sweep_changes"], yesterday["sweep_changes"]) == (5, 2)
    assert today["sweep_changes_by_job"]["inactivity"] == 4  # the dry run's 100 are not changes
    totals = document["totals"]
    assert (totals["chats_started"], totals["chats_closed"], totals["sweep_changes"]) == (4, 2, 7)
    assert totals["first_response"] == {"chats": 4, "answered": 2, "p50_s": 360.0, "p90_s": 552.0,
                                          "sampled_every": 1}


def test_report_by_hour(cli, desk):
    buckets = report(cli, "--by", "hour", "-o", "json").json()["buckets"]
    assert len(buckets) == 24  # the hour a day ago (29th 12:00) to now (30th 12:00), local hours
    started = {bucket["start"]: bucket["chats_started"] for bucket in buckets if bucket["chats_started"]}
    assert started == {"2026-11-29T23:00:00+02:00": 1, "2026-11-30T00:00:00+02:00": 1,
                       "2026-11-30T10:00:00+02:00": 1, "2026-11-30T11:00:00+02:00": 1}


def test_report_csv_one_row_per_bucket_with_seconds(cli, desk):
    rows = list(csv.DictReader(io.StringIO(report(cli, "-o", "csv").stdout)))
    assert [row["start"] for row in rows] == ["2026-11-29T00:00:00+02:00", "2026-11-30T00:00:00+02:00"]
    assert rows[1]["chats_started"] == "3" and rows[1]["closed_by_system"] == "1"
    assert rows[0]["first_response_p50_s"] == "120.0" and rows[1]["time_to_close_p50_s"] == "5400.0"


def test_report_table_has_a_total_and_charts(cli, desk):
    with freeze_time(NOW):
        result = cli("--no-color", "--tz", "Africa/Johannesburg", "report", "--since", "1d", tty=True,
                     env={"COLUMNS": "160"})
    assert result.exit_code == 0, result
    lines = result.stdout.splitlines()
    assert lines[1].startswith("Sun 2026-11-29") and lines[2].startswith("Mon 2026-11-30")
    assert lines[3].split()[:3] == ["total", "4", "2"]
    assert any(line.startswith("chats started") and "▃█" in line for line in lines)  # 1 then 3
    assert "2m" in lines[1] and "10m" in lines[2]  # first reply p50, as a duration


@pytest.mark.parametrize("since", ["soon", "+1d"])
def test_report_refuses_a_bad_period(cli, since):
    with freeze_time(NOW):
        result = cli("report", "--since", since)
    assert result.exit_code == 2, result
    assert "--since" in result.stderr or "before now" in result.stderr
