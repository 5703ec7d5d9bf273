"""Server-side time of the hot queries on a big PostgreSQL desk.

Loads ``chatctl demo load --chats N`` (default 1,000,000) into a private
PostgreSQL server (or the database at --url), ANALYZEs, then for each hot
command captures the SQL the command really sends (a SQLAlchemy
``before_cursor_execute`` listener around ``chatctl.cli.run``) and runs
``EXPLAIN (ANALYZE, FORMAT JSON)`` of it --runs times with the captured
parameters: p50/p95 of the server's execution time, the plan's access paths,
and any Seq Scan on chats, tickets or audit_events.

    python bench/big_tables.py --chats 1000000 --runs 50
    python bench/big_tables.py --url postgresql://me@db/desk_copy --runs 50   # already loaded
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import statistics
import sys
import time
from pathlib import Path

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
        raise SystemExit(f"chatctl {' '.join(args)} sent no statement on {BIG}")
    return found[0]


def nodes(plan):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def measure(pg, statement: str, parameters: dict, runs: int) -> dict:
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
    return {"p50": statistics.median(times), "p95": times[max(0, int(round(0.95 * len(times))) - 1)],
            "access": access, "seq": seq}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=1_000_000, help="demo desk size (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=50, help="EXPLAIN ANALYZE runs per query (default 50)")
    parser.add_argument("--url", help="use this already loaded database instead of a private server")
    options = parser.parse_args()

    import psycopg

    server = None
    url = options.url
    if url is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from pgserver import PostgresServer

        server = PostgresServer()
        server.start()
        with psycopg.connect(server.url("postgres"), autocommit=True) as admin:
            admin.execute("CREATE DATABASE big")
        url = server.url("big")
    try:
        from chatctl.cli import run

        if options.url is None:
            started = time.perf_counter()
            assert run(["--database-url", url, "db", "init"]) == 0
            with contextlib.redirect_stdout(io.StringIO()):
                assert run(["--database-url", url, "-q", "demo", "load", "--chats", str(options.chats),
                            "--now", NOW]) == 0
            print(f"loaded {options.chats:,} chats in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute("VACUUM ANALYZE")
            sizes = {table: pg.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in BIG}
            print(f"rows: {sizes}; {platform.processor() or platform.machine()}, {platform.system()}, "
                  f"PostgreSQL {pg.info.server_version}", file=sys.stderr)
            print("| query | p50 ms | p95 ms | access path | Seq Scan on big tables |")
            print("|---|---|---|---|---|")
            for label, args in QUERIES:
                statement, parameters = capture(url, args)
                result = measure(pg, statement, parameters, options.runs)
                print(f"| `{label}` | {result['p50']:.2f} | {result['p95']:.2f} | {', '.join(result['access'])} | "
                      f"{', '.join(result['seq']) or 'none'} |", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
