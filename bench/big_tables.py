"""Section ``big-tables``: server-side time of the hot queries on a big PostgreSQL desk.

Loads ``chatctl demo load --chats N`` (1,000,000; quick: 20,000) into a
private PostgreSQL server, adds two audit events per chat (so ``audit list``
has a big table to search), ANALYZEs, then for each hot
command captures the SQL the command really sends (a SQLAlchemy
``before_cursor_execute`` listener around ``chatctl.cli.run``) and runs
``EXPLAIN (ANALYZE, FORMAT JSON)`` of it 50 times (quick: 10) with the
captured parameters: the server's execution times (median and p95), the
plan's access paths, and any Seq Scan on chats, tickets or audit_events.
``tests/test_query_plans.py`` asserts the access paths in CI.

    python bench/run.py --only big-tables
"""

from __future__ import annotations

import contextlib
import io
import statistics

from harness import Bench, BenchFailure, Goal, Row, Section

NOW = "2026-11-30T10:00:00Z"
BIG = ("chats", "tickets", "audit_events")
QUERIES = [
    ("chats list live --limit 50", ["chats", "list", "live", "--limit", "50"]),
    ("chats list live --limit 50 --sort new", ["chats", "list", "live", "--limit", "50", "--sort", "new"]),
    ("chats list live --unread --limit 50", ["chats", "list", "live", "--unread", "--limit", "50"]),
    ("chats list live --agent alice --limit 50", ["chats", "list", "live", "--agent", "alice", "--limit", "50"]),
    ("chats list tagged --agent alice --limit 50", ["chats", "list", "tagged", "--agent", "alice", "--limit", "50"]),
    ("chats list closed --limit 50", ["chats", "list", "closed", "--limit", "50"]),
    ("tickets list", ["tickets", "list"]),
    ("audit list --entity chat:4242", ["audit", "list", "--entity", "chat:4242"]),
    ("chats filter status=live idle>2h (first batch)", ["chats", "filter", "status=live", "idle>2h"]),
    ("chats filter closed>-1h (first batch)", ["chats", "filter", "closed>-1h"]),
    ("tickets close --where status=open age>=30d (first batch)",
     ["tickets", "close", "--where", "status=open", "age>=30d", "--dry-run", "--yes"]),
    ("tickets close --where reason=out_of_hours created<2026-10-01 (first batch)",
     ["tickets", "close", "--where", "reason=out_of_hours", "created<2026-10-01", "--dry-run", "--yes"]),
]


class _Enough(BaseException):
    pass


def capture(url: str, args: list[str]) -> tuple[str, dict]:
    """The first statement on a big table that ``chatctl ARGS`` sends."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from chatctl.cli import run

    found: list[tuple[str, dict]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if not executemany and statement.lstrip().upper().startswith("SELECT") and any(
                f"FROM {table}" in statement for table in BIG) and "count(" not in statement[:40]:
            found.append((statement, dict(parameters or {})))
            raise _Enough

    event.listen(Engine, "before_cursor_execute", listener)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            run(["--database-url", url, *args, "-o", "jsonl"])
    except _Enough:
        pass
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    if not found:
        raise BenchFailure(f"chatctl {' '.join(args)} sent no statement on {BIG}")
    return found[0]


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def explain(pg, statement: str, parameters: dict, runs: int) -> dict:
    times = []
    plan = None
    for _ in range(runs):
        with pg.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
            document = cursor.fetchone()[0][0]
        times.append(document["Execution Time"])
        plan = document["Plan"]
    times.sort()
    access = sorted({f"{n['Node Type']} {n.get('Index Name') or n.get('Relation Name')}"
                     for n in nodes(plan) if "Scan" in n["Node Type"] and
                     (n.get("Relation Name") in BIG or (n.get("Index Name") or "").startswith(("ix_chats", "ix_t",
                                                                                              "ix_audit", "chats_")))})
    seq = sorted({n["Relation Name"] for n in nodes(plan) if n["Node Type"] == "Seq Scan"
                  and n.get("Relation Name") in BIG})
    return {"times_ms": times, "p95": times[max(0, int(round(0.95 * len(times))) - 1)],
            "access": access, "seq": seq}


AUDIT = """
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT TIMESTAMPTZ '2026-11-30 10:00:00+00' - g * interval '1 second', 'system', 'sweep.inactivity', 'chat',
       (1 + g %% %(chats)s)::text, '{"status": "live"}', '{"status": "closed"}', 'OP' || (g / 1000), 'inactivity'
FROM generate_series(1, 2 * %(chats)s) g
"""


def measure(bench: Bench) -> list[Row]:
    import psycopg

    from chatctl.cli import run

    chats = bench.size(full=1_000_000, quick=20_000)
    runs = 10 if bench.quick else 50
    url = bench.postgres().create("big")
    with contextlib.redirect_stdout(io.StringIO()):
        if run(["--database-url", url, "-q", "demo", "load", "--chats", str(chats), "--now", NOW]) != 0:
            raise BenchFailure("demo load failed")
    rows = []
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(AUDIT, {"chats": chats})
        pg.execute("VACUUM ANALYZE")
        sizes = {table: pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in BIG}
        for label, args in QUERIES:
            statement, parameters = capture(url, args)
            result = explain(pg, statement, parameters, runs)
            goal = (Goal("under 5 ms server-side at 1,000,000 chats", seconds=0.005)
                    if label == "chats list live --limit 50" else None)
            rows.append(Row(f"`{label}`", inprocess=[t / 1000 for t in result["times_ms"]], unit="ms", goal=goal,
                            note=(f"p95 {result['p95']:.2f} ms; {', '.join(result['access'])}; Seq Scan on big "
                                  f"tables: {', '.join(result['seq']) or 'none'}")))
    bench.runs = runs
    bench.facts["desk"] = (f"`demo load --chats {chats}` plus two audit events per chat: "
                           + ", ".join(f"{count:,} {table}" for table, count in sizes.items()))
    bench.facts["times"] = ("the in-process column is the server's execution time of the statement chatctl sends "
                            "(EXPLAIN ANALYZE of the captured statement and parameters); first page or first batch")
    return rows


SECTIONS = [Section("big-tables", "Big tables: index use and server-side time of the hot queries", measure,
                    order=50)]
