"""chatctl status: the whole desk on one screen, and the monitoring check."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from typer import _click as click
from typer.core import TyperCommand

from chatctl.commands.common import IntervalOpt, OutputOpt, WatchOpt, desk, fmt, watch_interval

app = typer.Typer()


class MonitoringCommand(TyperCommand):
    """With ``--check``, even a bad command line answers in the monitoring-plugin convention (UNKNOWN, 3)."""

    def make_context(self, info_name, args, parent=None, **extra):
        checking = "--check" in args
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.UsageError as error:
            if not checking:
                raise
            from chatctl.errors import CheckUnknown

            raise CheckUnknown(f"{error.format_message()} (see 'chatctl status -h')") from None




@app.command("status", cls=MonitoringCommand)
def status(
    ctx: typer.Context,
    check: Annotated[bool, typer.Option("--check", help="Monitoring check: one line per breached level and the "
                                        "plugin exit code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).")] = False,
    waiting_warning: Annotated[Optional[str], typer.Option(
        "--waiting-warning", metavar="DURATION", show_default=False, help="--check: warn when the oldest unanswered customer has waited longer "
        "(profile check_waiting_warning; default 10m).")] = None,
    waiting_critical: Annotated[Optional[str], typer.Option(
        "--waiting-critical", metavar="DURATION", show_default=False, help="--check: critical level of the same (check_waiting_critical; 30m).")] = None,
    unassigned_warning: Annotated[Optional[int], typer.Option(
        "--unassigned-warning", metavar="N", min=0, show_default=False, help="--check: warn when more live chats than this have no agent "
        "(check_unassigned_warning; 5).")] = None,
    unassigned_critical: Annotated[Optional[int], typer.Option(
        "--unassigned-critical", metavar="N", min=0, show_default=False, help="--check: critical level of the same (check_unassigned_critical; 20).")] = None,
    sweep_warning: Annotated[Optional[str], typer.Option(
        "--sweep-warning", metavar="DURATION", show_default=False, help="--check: warn when the last successful sweep run is older "
        "(check_sweep_warning; default the profile's sweep_expected_every, 10m).")] = None,
    sweep_critical: Annotated[Optional[str], typer.Option(
        "--sweep-critical", metavar="DURATION", show_default=False, help="--check: critical level of the same (check_sweep_critical; three times "
        "the warning level).")] = None,
    watch: WatchOpt = False,
    interval: IntervalOpt = "2s",
    output: OutputOpt = None,
) -> None:
    """The whole desk on one screen, from one consistent snapshot.

    The views' counts, how long customers have waited, each online agent's load, tickets by
    age and reason, each sweep job's last run, and response times over the last 24 hours.

    Off a terminal the figures print as "metric value" lines (tsv, csv); -o json prints one
    document (its fields: docs/glance.md).  A sweep job is overdue when its last success is older
    than the profile's sweep_expected_every (default 10m).

    --check is for Nagios, Icinga and cron: it looks at the oldest unanswered customer, the
    unassigned live chats and the age of the last successful sweep run, prints one line per
    level breached (or one OK line), and exits 0 OK, 1 WARNING, 2 CRITICAL or 3 UNKNOWN (a bad
    command line or an unreachable database).  Levels come from the flags, else from the
    profile's check_* keys, else the defaults.

    Example:

    \b
        chatctl status
        chatctl status --watch --interval 5s
        chatctl status --check --waiting-warning 5m --waiting-critical 15m
    """
    if check:
        _check(ctx, output, waiting_warning=waiting_warning, waiting_critical=waiting_critical,
               unassigned_warning=unassigned_warning, unassigned_critical=unassigned_critical,
               sweep_warning=sweep_warning, sweep_critical=sweep_critical)
        return
    from chatctl.domain.prefs import get_preferences
    from chatctl.domain.status import desk_status, sweep_expected_every
    from chatctl.errors import UsageError
    from chatctl.output import watch as watch_loop
    from chatctl.storage.engine import read_snapshot

    if output is not None and output.value == "ids":
        raise UsageError("status has no ids to print: use -o table, plain, markdown, tsv, csv, json or jsonl")
    every = watch_interval(interval) if watch else None
    the_desk = desk(ctx)
    expected = sweep_expected_every(the_desk.settings.status)

    def draw(env) -> None:
        with the_desk.errors(read=True), read_snapshot(the_desk.read_engine()) as connection:
            prefs = get_preferences(connection)
            tz = the_desk.tz(preference=prefs["timezone"])
            record = desk_status(connection, now=the_desk.now(), tz=tz, expected_every=expected, prefs=prefs)
        _render(env, record, fmt(output), tz, one_line=watch)

    if not watch:
        draw(the_desk.env)
        return
    watch_loop(the_desk.env, draw, fmt=fmt(output), interval=every, heading=lambda: "chatctl status")


def _check(ctx: typer.Context, output, **flags) -> None:
    from chatctl.errors import ChatctlError, CheckUnknown

    try:
        from chatctl.domain.status import check, sweep_expected_every, thresholds
        from chatctl.output import render_record
        from chatctl.storage.engine import read_snapshot

        the_desk = desk(ctx)
        profile = the_desk.settings.status
        levels = thresholds(flags, profile)
        with the_desk.errors(read=True), read_snapshot(the_desk.read_engine()) as connection:
            result = check(connection, now=the_desk.now(), levels=levels,
                           expected_every=sweep_expected_every(profile))
    except CheckUnknown:
        raise
    except ChatctlError as error:
        raise CheckUnknown(str(error)) from None
    if output is not None and output.value in ("json", "jsonl"):
        render_record(the_desk.env, result, output.value)
    else:
        the_desk.env.stdout.write("".join(f"{line}\n" for line in result["lines"]))
    raise typer.Exit(result["exit_code"])


# -- rendering ------------------------------------------------------------------------------
def _render(env, record, output: str | None, tz, *, one_line: bool) -> None:
    from chatctl.output import choose_format, flat_metrics, render_record, render_rows

    chosen = choose_format(output, env)
    if chosen in ("json", "jsonl"):
        render_record(env, record, "jsonl" if one_line else chosen, tz=tz)
    elif chosen in ("tsv", "csv"):
        render_rows(env, flat_metrics(record), ["metric", "value"], chosen, tz=tz, id_key="metric")
    else:
        _people(env, record, chosen, tz)


def _people(env, record, chosen: str, tz) -> None:
    """Sections for people: a table each, with bars where a bar says more than a number."""
    from chatctl.output import Column

    now = record["as_of"]
    views = record["views"]
    closed = views["closed_today"]
    rows = [{"view": name, **views[name]} for name in ("live", "pending", "tagged")]
    rows.append({"view": "closed today", "count": closed["count"],
                 "detail": f"customer {closed['by_customer']}, agent {closed['by_agent']}, "
                           f"system {closed['by_system']}"})
    rows.append({"view": "open tickets", **views["open_tickets"]})
    _section(env, chosen, "views", rows,
             ["view", "count", "new", "unread", "flagged", "unassigned", Column("detail", "closed by", drop=1)],
             tz, now)

    waiting = record["waiting"]
    _section(env, chosen, "live chats by idle time", _shares(waiting["idle"]),
             ["bucket", "count", Column("share", "", bar=30)], tz, now)
    oldest = waiting["oldest_unanswered"]
    _figures(env, chosen, "customers waiting", tz, now, [
        ("unanswered live chats", waiting["unanswered"]),
        ("waiting longest", "nobody" if oldest is None else
         f"chat {oldest['chat_id']}, {_ago(now, oldest['since'])} ({oldest['agent'] or 'unassigned'})"),
        ("live chats of agents not online", waiting["held_by_offline_agents"]),
    ])

    busiest = max((row["live"] for row in record["agents"]), default=0)
    agents = [{**row, "bar": row["load"] if row["load"] is not None else (row["live"] / busiest if busiest else 0)}
              for row in record["agents"]]
    _section(env, chosen, "online agents", agents,
             ["agent", "live", Column("max_chats", "max"), Column("bar", "", bar=12, drop=2), "unanswered",
              "tagged", Column("open_tickets", "open tickets")], tz, now,
             empty="no agent online")

    tickets = record["tickets"]
    by_reason = _shares([{"reason": reason, "count": count} for reason, count in tickets["by_reason"].items()])
    _section(env, chosen, "open tickets by age", _shares(tickets["by_age"]),
             ["bucket", "count", Column("share", "", bar=30)], tz, now)
    _section(env, chosen, "open tickets by reason", by_reason, ["reason", "count", Column("share", "", bar=30)],
             tz, now)
    _figures(env, chosen, "tickets", tz, now, [
        ("open, closed (not archived)", f"{tickets['open']}, {tickets['closed']}"),
        ("archived within a day", tickets["archive_next_day"]),
    ])

    sweeps = [{**job, "overdue": "overdue" if job["overdue"] else ""} for job in record["sweeps"]["jobs"]]
    _section(env, chosen, "sweep jobs", sweeps,
             ["job", Column("last_run_at", "last run", ago="last run"), "result", "changed",
              Column("last_success_at", "last success", ago="last success"), "overdue",
              Column("last_run", "run", drop=1)], tz, now)

    times = record["response_times"]
    first, closing = times["first_response"], times["time_to_close"]
    _figures(env, chosen, "the last 24 hours", tz, now, [
        ("first response p50, p90", f"{_duration(first['p50_s'])}, {_duration(first['p90_s'])}"),
        ("chats answered", f"{first['answered']} of {first['chats']}{_sampled(first['sampled_every'])}"),
        ("time to close p50, p90", f"{_duration(closing['p50_s'])}, {_duration(closing['p90_s'])}"),
        ("chats closed", closing["closed"]),
    ])


def _figures(env, chosen: str, title: str, tz, now, figures) -> None:
    """A few figures of one section, one per line."""
    _section(env, chosen, title, [{"figure": name, "value": value} for name, value in figures],
             ["figure", "value"], tz, now)


def _shares(rows):
    """Each row's share of the total count, for its bar."""
    total = sum(row["count"] for row in rows)
    return [{**row, "share": row["count"] / total if total else 0.0} for row in rows]


def _section(env, chosen: str, title: str, rows, columns, tz, now, *, empty: str | None = None) -> None:
    from chatctl.output import render_rows

    if chosen != "table":
        env.stdout.write(f"\n{title}:\n")
    render_rows(env, rows, columns, chosen, tz=tz, now=now, title=title if chosen == "table" else None,
                empty=empty)


def _sampled(every: int) -> str:
    from chatctl.output import ordinal

    return f" (a sample: every {ordinal(every)} chat)" if every > 1 else ""


def _ago(now, then) -> str:
    from chatctl.output import relative_time

    return relative_time(now - then)


def _duration(seconds: float | None) -> str:
    """Exact to the second under an hour ("5m29s"); to the nearest unit that matters above ("1d21h")."""
    import datetime as dt

    from chatctl.output import relative_time
    from chatctl.parsing.timeparse import format_duration

    if seconds is None:
        return "-"
    value = dt.timedelta(seconds=round(seconds))
    return format_duration(value) if seconds < 3600 else relative_time(value)
