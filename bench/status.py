"""Section ``status``: ``chatctl status`` on a 1,000,000-chat PostgreSQL desk, and the plans it uses.

Loads ``chatctl demo load --chats N`` (1,000,000; quick: 20,000) with ``--now``
the time of the load (``status`` reads the clock, so the desk's last 24 hours
are the real last 24 hours: on this demo a third of the chats started in
them), VACUUM ANALYZE, then measures:

* floor: the statements ``status -o json`` sends (captured in process by a
  SQLAlchemy ``before_cursor_execute`` listener), each run with
  ``EXPLAIN (ANALYZE, FORMAT JSON)`` and its captured parameters: the sum of
  the server's execution times, nothing else;
* ``chatctl status -o json``, ``chatctl status --check`` and
  ``chatctl report --since 7d -o json``: whole process (start-up included)
  and in process (start-up excluded; the goal of ``status`` is judged on it).

Under the table: each statement of ``status`` with its median server time and
the access paths of its plan.

    python bench/run.py --only status
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import statistics

from harness import Bench, BenchFailure, Goal, Row, Section

INTERNAL = ("pg_catalog", "alembic_version", "version()", "current_schema", "show ")


def capture(url: str, args: list[str]) -> list[tuple[str, dict]]:
    """Every statement ``chatctl ARGS`` sends to the desk's tables, with its parameters."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from chatctl.cli import run

    found: list[tuple[str, dict]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        text = statement.lstrip()
        if not executemany and text[:6].upper() in ("SELECT", "WITH") and \
                not any(word in text.lower() for word in INTERNAL):
            found.append((statement, dict(parameters or {})))

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = run(["--database-url", url, *args])
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    if code != 0:
        raise BenchFailure(f"chatctl {' '.join(args)} exited {code}")
    return found


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def access_paths(plan) -> str:
    paths = []
    for node in nodes(plan):
        if "Scan" in node["Node Type"] and node.get("Relation Name"):
            where = node.get("Index Name") or node["Relation Name"]
            path = f"{node['Node Type']} {where}" + (f" ({node['Relation Name']})" if node.get("Index Name") else "")
            if path not in paths:
                paths.append(path)
    return ", ".join(paths)


def label(statement: str) -> str:
    """A short name for a statement: what it reads and, for the big ones, what it is for."""
    text = " ".join(statement.split())
    if "width_bucket" in text:
        return "response times: first responses" if "first_in" in text else "response times: time to close"
    if "FROM sweep_runs" in text:
        return "sweep jobs: latest run / latest success (one per job)"
    tables = re.findall(r"FROM (\w+)", text)
    kind = "grouped" if "GROUP BY" in text else "rows"
    return f"{'/'.join(dict.fromkeys(tables))} ({kind})"


def explain(url: str, statements: list[tuple[str, dict]], runs: int) -> tuple[list[float], list[str]]:
    """Server time of the statements together, per run (seconds), and one line per kind of statement."""
    import psycopg

    totals = [0.0] * runs
    by_label: dict[str, dict] = {}
    with psycopg.connect(url) as pg:
        for statement, parameters in statements:
            times = []
            for run in range(runs):
                with pg.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
                    document = cursor.fetchone()[0][0]
                times.append(document["Execution Time"] / 1000)
                totals[run] += times[-1]
            entry = by_label.setdefault(label(statement), {"times": [], "paths": access_paths(document["Plan"]),
                                                          "count": 0})
            entry["times"].append(statistics.median(times))
            entry["count"] += 1
            pg.rollback()
    lines = []
    for name, entry in by_label.items():
        each = f" (x{entry['count']}, the slowest)" if entry["count"] > 1 else ""
        lines.append(f"`{name}`: {max(entry['times']) * 1000:.1f} ms server time{each}; {entry['paths'] or '-'}")
    return totals, lines


def measure(bench: Bench) -> list[Row]:
    import psycopg

    chats = bench.size(full=1_000_000, quick=20_000)
    pg = bench.postgres()
    url = pg.create("status_desk")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    bench.chatctl(url, "-q", "demo", "load", "--chats", str(chats), "--seed", "7", "--now", now.isoformat(),
                  keep_stdout=False)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
        sizes = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                 for table in ("chats", "messages", "tickets", "comment_mentions")}
        started = connection.execute("SELECT count(*) FROM chats WHERE created_at >= now() - interval '1 day'"
                                     ).fetchone()[0]
    statements = capture(url, ["status", "-o", "json"])
    floor, plans = explain(url, statements, bench.runs)
    status = [bench.chatctl(url, "status", "-o", "json") for _ in range(bench.runs)]
    check = [bench.chatctl(url, "status", "--check", check=False) for _ in range(bench.runs)]
    report = [bench.chatctl(url, "report", "--since", "7d", "-o", "json") for _ in range(bench.runs)]
    if any(timing.exit_code not in (0, 1, 2) for timing in check):
        raise BenchFailure(f"status --check said UNKNOWN: {check[0].stdout}")
    import json

    from chatctl.output import ordinal

    every = json.loads(status[0].stdout)["response_times"]["first_response"]["sampled_every"]
    bench.facts["desk"] = (f"`demo load --chats {chats:,} --now <the time of the load>`: "
                           + ", ".join(f"{count:,} {table}" for table, count in sizes.items())
                           + f"; {started:,} chats started in the last 24 hours (first responses from "
                           + ("all of them)" if every == 1 else f"every {ordinal(every)} of them)"))
    bench.facts["floor"] = (f"the {len(statements)} statements `status -o json` sends, each run with EXPLAIN ANALYZE: "
                            "the sum of the server's execution times")
    for index, line in enumerate(plans, 1):
        bench.facts[f"statement {index}"] = line
    return [
        Row("floor: the statements of `status`, server time only", inprocess=floor, floor=True),
        Row("`chatctl status -o json`", process=[t.process_s for t in status],
            inprocess=[t.inprocess_s for t in status],
            goal=Goal("answers within 1 s", seconds=1.0, basis="inprocess")),
        Row("`chatctl status --check`", process=[t.process_s for t in check],
            inprocess=[t.inprocess_s for t in check], note=f"exit {check[0].exit_code}: {check[0].stdout.strip()[:80]}"),
        Row("`chatctl report --since 7d -o json`", process=[t.process_s for t in report],
            inprocess=[t.inprocess_s for t in report], compare=False,
            note="8 days of buckets; first responses from a sample of at most 50,000 chats"),
    ]


SECTIONS = [Section("status", "The desk at a glance: `chatctl status` on a 1,000,000-chat PostgreSQL desk", measure,
                    order=55)]
