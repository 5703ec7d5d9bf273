"""Section ``status``: ``chatctl status`` on a 1,000,000-chat PostgreSQL desk, and the plans it uses.

Loads ``chatctl demo load --chats N`` (1,000,000; quick: 20,000) with ``--now``
the time of the load (``status`` reads the clock, so the desk's last 24 hours
are the real last 24 hours: on this demo a third of the chats started in
them), VACUUM ANALYZE until every page of chats is all-visible (``settle``),
then measures:

* floor: the statements ``status -o json`` sends (captured in process by a
  SQLAlchemy ``before_cursor_execute`` listener), each run with
  ``EXPLAIN (ANALYZE, FORMAT JSON)`` and its captured parameters: the sum of
  the server's execution times, nothing else;
* ``chatctl status -o json``, ``chatctl status --check`` and
  ``chatctl report --since 7d -o json``: whole process (start-up included)
  and in process (start-up excluded; the goal of ``status`` is judged on it);
* what the index ``status`` reads the open chats through costs a write: the
  UPDATE a message makes to its chat, on 2% of the desk's live chats, with
  and without ``ix_chats_open_glance`` (``write_cost``).

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
import time

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
        return "sweep jobs: latest run and latest success of every job"
    if "FROM chats" in text and "comment_mentions" in text and "GROUP BY chats.status" in text:
        return "views: the open chats and their tags (grouped)"
    if text.startswith("SELECT count(*) FROM chats c WHERE c.status IN"):
        finished = "'live'" not in text
        return f"response times: {'closed and converted ' if finished else ''}chats started (count)"
    if "chats.closed_by" in text:
        return "closed today (grouped)"
    if "ORDER BY chats.last_customer_message_at" in text:
        return "oldest unanswered chat (rows)"
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


def settle(connection, timeout: float = 120.0) -> tuple[int, int]:
    """VACUUM (ANALYZE) the desk, then VACUUM chats again until its visibility map marks every
    page, as autovacuum leaves a quiet desk; the pages of chats marked, and their number.

    A snapshot still open from the load (an autovacuum's) can keep the first VACUUM from marking
    the pages the load wrote, and index-only scans are priced, and run, on that map: without this
    the plans would depend on when the load's last autovacuum ended."""
    connection.execute("VACUUM (ANALYZE)")
    deadline = time.monotonic() + timeout
    while True:
        visible, pages = connection.execute(
            "SELECT relallvisible, relpages FROM pg_class WHERE relname = 'chats'").fetchone()
        if visible >= pages or time.monotonic() > deadline:
            return visible, pages
        time.sleep(1)
        connection.execute("VACUUM (ANALYZE) chats")


def measure(bench: Bench) -> list[Row]:
    import psycopg

    chats = bench.size(full=1_000_000, quick=20_000)
    pg = bench.postgres()
    url = pg.create("status_desk")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    bench.chatctl(url, "-q", "demo", "load", "--chats", str(chats), "--seed", "7", "--now", now.isoformat(),
                  keep_stdout=False)
    with psycopg.connect(url, autocommit=True) as connection:
        visible, pages = settle(connection)
        sizes = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                 for table in ("chats", "messages", "tickets", "comment_mentions")}
        started = connection.execute("SELECT count(*) FROM chats WHERE created_at >= now() - interval '1 day'"
                                     ).fetchone()[0]
    statements = capture(url, ["status", "-o", "json"])
    floor, plans = explain(url, statements, bench.runs)
    status = [bench.chatctl(url, "status", "-o", "json") for _ in range(bench.runs)]
    check = [bench.chatctl(url, "status", "--check", check=False) for _ in range(bench.runs)]
    report = [bench.chatctl(url, "report", "--since", "7d", "-o", "json") for _ in range(bench.runs)]
    # Last: the updates clear the visibility map of the pages they touch, even rolled back.
    touched, without_index, with_index = write_cost(url, bench.runs, size=round(WRITE_COST_SHARE * chats))
    if any(timing.exit_code not in (0, 1, 2) for timing in check):
        raise BenchFailure(f"status --check said UNKNOWN: {check[0].stdout}")
    import json

    from chatctl.output import ordinal

    every = json.loads(status[0].stdout)["response_times"]["first_response"]["sampled_every"]
    bench.facts["desk"] = (f"`demo load --chats {chats:,} --now <the time of the load>`: "
                           + ", ".join(f"{count:,} {table}" for table, count in sizes.items())
                           + f"; {started:,} chats started in the last 24 hours (first responses from "
                           + ("all of them)" if every == 1 else f"every {ordinal(every)} of them)")
                           + ("; vacuumed: every page of chats all-visible" if visible >= pages
                              else f"; vacuumed: {visible:,} of {pages:,} pages of chats all-visible"))
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
        Row("floor: what a message does to its chat (`UPDATE` of the customer's last message and the "
            "activity time), on open chats, without `ix_chats_open_glance`", inprocess=without_index,
            changed=touched, floor=True, note="the index dropped inside the transaction; rolled back"),
        Row("the same `UPDATE` with `ix_chats_open_glance` (revision 0009, head)", inprocess=with_index,
            changed=touched, note="rolled back"),
    ]


# The open chats a message-like update touches, as a share of the desk (20,000 at full size).
WRITE_COST_SHARE = 0.02
MESSAGE = ("UPDATE chats SET last_customer_message_at = now(), last_activity_at = now() "
           "WHERE id = ANY(%(ids)s)")


def write_cost(url: str, runs: int, *, size: int) -> tuple[int, list[float], list[float]]:
    """What ``ix_chats_open_glance`` costs a write: the same UPDATE of ``size`` live chats (ids
    spread over the desk) without the index (dropped inside the transaction) and with it,
    alternating, each rolled back.  A message changes indexed columns, so its update is never
    heap-only: the new row version gets an entry in every index whose condition it matches."""
    import psycopg

    without, with_ = [], []
    with psycopg.connect(url) as pg:
        ids = [row[0] for row in pg.execute("SELECT id FROM chats WHERE status = 'live' ORDER BY id")]
        ids = ids[::max(1, len(ids) // size)][:size]
        pg.rollback()
        for _ in range(runs):
            for dropped in (True, False):
                if dropped:
                    pg.execute("DROP INDEX ix_chats_open_glance")
                begun = time.perf_counter()
                changed = pg.execute(MESSAGE, {"ids": ids}).rowcount
                (without if dropped else with_).append(time.perf_counter() - begun)
                pg.rollback()
    return changed, without, with_


SECTIONS = [Section("status", "The desk at a glance: `chatctl status` on a 1,000,000-chat PostgreSQL desk", measure,
                    order=55)]
