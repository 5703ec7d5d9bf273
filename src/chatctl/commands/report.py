"""chatctl report: the desk's trends, day by day or hour by hour."""

from __future__ import annotations

from typing import Annotated

import typer

from chatctl.commands.common import OutputOpt, WideOpt, desk, fmt
from chatctl.vocabulary import choices

app = typer.Typer()
By = choices("By", ("day", "hour"))

# One row per bucket: (key, header, where it comes from in the bucket's figures).
COLUMNS = (
    ("start", "start", ("start",)),
    ("chats_started", "started", ("chats_started",)),
    ("chats_closed", "closed", ("chats_closed",)),
    ("closed_by_customer", "by customer", ("closed_by", "customer")),
    ("closed_by_agent", "by agent", ("closed_by", "agent")),
    ("closed_by_system", "by system", ("closed_by", "system")),
    ("converted", "to tickets", ("converted",)),
    ("tickets_closed", "tickets closed", ("tickets_closed",)),
    ("tickets_archived", "archived", ("tickets_archived",)),
    ("sweep_changes", "sweeps changed", ("sweep_changes",)),
    ("first_response_p50_s", "1st reply p50", ("first_response", "p50_s")),
    ("first_response_p90_s", "1st reply p90", ("first_response", "p90_s")),
    ("time_to_close_p50_s", "close p50", ("time_to_close", "p50_s")),
)
DURATIONS = ("first_response_p50_s", "first_response_p90_s", "time_to_close_p50_s")
# What the table leaves out first on a narrow terminal (--wide keeps all).
DROP = {"closed_by_system": 1, "closed_by_agent": 2, "closed_by_customer": 3, "first_response_p90_s": 4,
        "tickets_archived": 5, "sweep_changes": 6, "tickets_closed": 7, "time_to_close_p50_s": 8}
CHARTS = (("chats started", "chats_started"), ("chats closed", "chats_closed"), ("converted", "converted"),
          ("first reply p50", "first_response_p50_s"))


@app.command("report")
def report(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(
        "--since", metavar="DURATION|TS", help="How far back: a duration (7d, 24h) or a timestamp "
        "(2026-11-01, -30d); the report starts at the beginning of that day or hour.")] = "7d",
    by: Annotated[By, typer.Option("--by", help="One row per day or per hour (in the display time zone).")] = By.day,
    wide: WideOpt = False,
    output: OutputOpt = None,
) -> None:
    """The desk's trends: one row per day (or hour) of the period.

    Chats started, closed (by the customer, an agent or the system, and why), converted to
    tickets, tickets closed and archived, what the sweeps changed, and first-response and
    time-to-close percentiles computed from the messages.  Closed chats are counted where
    they stand: one reopened since is not closed any more.

    A terminal gets a table and a line chart per figure; -o csv and tsv give one row per
    bucket (durations in seconds); -o json the whole document with per-reason and per-job
    figures and totals (its fields: docs/glance.md).

    Example:

    \b
        chatctl report --since 7d
        chatctl report --since 48h --by hour -o csv > hours.csv
    """
    from chatctl.domain.report import desk_report
    from chatctl.errors import UsageError
    from chatctl.output import choose_format, render_record
    from chatctl.storage.engine import read_snapshot

    the_desk = desk(ctx)
    chosen = choose_format(fmt(output), the_desk.env)
    if chosen == "ids":
        raise UsageError("report has no ids to print: use -o table, plain, markdown, tsv, csv, json or jsonl")
    now = the_desk.now()
    with the_desk.errors(read=True), read_snapshot(the_desk.read_engine()) as connection:
        tz = the_desk.tz(connection)
        start = _since(since, now, tz)
        record = desk_report(connection, since=start, until=now, by=by.value, tz=tz)
    if chosen in ("json", "jsonl"):
        render_record(the_desk.env, record, chosen, tz=tz)
        return
    _rows(the_desk.env, record, chosen, tz, by.value, wide)


def _since(text: str, now, tz):
    from chatctl.errors import UsageError
    from chatctl.parsing.timeparse import parse_duration, parse_relative_or_timestamp

    try:
        return now - parse_duration(text)
    except UsageError:
        pass
    try:
        return parse_relative_or_timestamp(text, now, tz)
    except UsageError:
        raise UsageError(f"bad --since '{text}': use a duration like 7d or 24h, or a timestamp like "
                         "2026-11-01 or -30d") from None


def _rows(env, record, chosen: str, tz, by: str, wide: bool) -> None:
    import datetime as dt

    from chatctl.output import Column, render_rows

    people = chosen in ("table", "plain", "markdown")

    def row(figures) -> dict:
        out = {}
        for key, _header, path in COLUMNS:
            value = figures
            for step in path:
                value = value.get(step) if isinstance(value, dict) else None
            if people and key in DURATIONS and value is not None:
                value = dt.timedelta(seconds=round(value))
            out[key] = value
        return out

    rows = [row(bucket) for bucket in record["buckets"]]
    if people:
        rows = [{**line, "start": _label(line["start"], tz, by)} for line in rows]
        rows.append({**row(record["totals"]), "start": "total"})
    columns = [Column(key, header, drop=DROP.get(key, 0)) for key, header, _ in COLUMNS]
    render_rows(env, rows, columns, chosen, tz=tz, id_key="start", wide=wide)
    every = record["totals"]["first_response"]["sampled_every"]
    if people and every > 1:
        from chatctl.output import ordinal

        env.stdout.write(f"(first replies from a sample: every {ordinal(every)} chat)\n")
    if chosen == "table":
        _charts(env, rows[:-1])


def _label(start, tz, by: str) -> str:
    local = start.astimezone(tz)
    return local.strftime("%a %Y-%m-%d") if by == "day" else local.strftime("%a %d %H:00")


def _charts(env, rows) -> None:
    """A line per figure: a sparkline over the buckets, scaled to that figure's highest value."""
    from rich.table import Table

    from chatctl.output import print_renderable, sparkline

    chart = Table(box=None, show_header=False, pad_edge=False)
    chart.add_column(no_wrap=True)
    chart.add_column(overflow="fold")
    chart.add_column(no_wrap=True, style="dim")
    for title, key in CHARTS:
        values = [_number(line[key]) for line in rows]
        peak = max(values, default=0)
        if not peak:
            continue
        where = values.index(peak)
        shown = rows[where][key]
        chart.add_row(title, sparkline(values), f"peak {_text(shown)} ({rows[where]['start']})")
    if chart.row_count:
        env.stdout.write("\n")
        print_renderable(env, chart)


def _number(value) -> float:
    import datetime as dt

    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return float(value or 0)


def _text(value) -> str:
    from chatctl.output import human_value

    return human_value(value, None, machine=False)
