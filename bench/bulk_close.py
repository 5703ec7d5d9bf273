"""Bulk chat close: ``chatctl chats close -`` with N ids on stdin, beside the floor.

The floor is one hand-written SQL statement doing the same work: a CTE that
closes the live chats and returns their old values, feeding one
``INSERT INTO audit_events SELECT ...`` (the audit rows chatctl writes too).

Each run gets a fresh copy of the same desk (``CREATE DATABASE ... TEMPLATE``)
on a private PostgreSQL server, so every run closes the same N live chats.
Prints one line per run and a summary with medians and ratios; ``--json``
writes the figures for docs/benchmarks.md.

Example:
    python bench/bulk_close.py --chats 100000 --runs 3 --batch-sizes 1000,2000,5000,10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

FLOOR = """
WITH closed AS (
    UPDATE chats AS c
       SET status = 'closed', closed_at = %(now)s, closed_by = 'agent', close_reason = 'manual',
           pending_since = NULL
      FROM chats AS old
     WHERE old.id = c.id
       AND c.id = ANY(%(ids)s)
       AND c.status IN ('live', 'pending')
       AND NOT c.flagged
 RETURNING c.id, old.status AS old_status, old.closed_at AS old_closed_at,
           old.closed_by AS old_closed_by, old.close_reason AS old_close_reason,
           old.pending_since AS old_pending_since
)
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT %(now)s, 'ops:bench', 'chats.close', 'chat', id::text,
       jsonb_build_object('status', old_status, 'closed_at', old_closed_at, 'closed_by', old_closed_by,
                          'close_reason', old_close_reason),
       jsonb_build_object('status', 'closed', 'closed_at', %(now)s, 'closed_by', 'agent',
                          'close_reason', 'manual'),
       %(operation)s, NULL
  FROM closed
"""

SEED = """
INSERT INTO agents (id, handle, name, role, presence, active, created_at)
SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'online', true, now() FROM generate_series(1, 50) AS g;
INSERT INTO customers (id, display_name, address, created_at)
SELECT g, 'Customer ' || g, '+2782' || lpad(g::text, 7, '0'), now() - interval '2 days'
  FROM generate_series(1, %(chats)s) AS g;
INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged,
                   created_at, last_customer_message_at, last_agent_message_at, last_activity_at)
SELECT g, g, (ARRAY['whatsapp','webchat','messenger','sms'])[1 + g %% 4], 'live', 1 + g %% 50,
       now() - interval '3 hours', 0, false,
       now() - interval '3 hours' - (g %% 1000) * interval '1 second',
       now() - interval '2 hours' - (g %% 1000) * interval '1 second',
       now() - interval '1 hour' - (g %% 1000) * interval '1 second',
       now() - interval '1 hour' - (g %% 1000) * interval '1 second'
  FROM generate_series(1, %(chats)s) AS g;
"""


def psql(url: str, statement: str, params: dict | None = None, *, autocommit: bool = False) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=autocommit) as connection:
        started = time.perf_counter()
        connection.execute(statement, params or {})
        if not autocommit:
            connection.commit()
        return time.perf_counter() - started


def build_template(server, chats: int) -> str:
    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    name = "bulk_close_template"
    psql(server.url("postgres"), f"DROP DATABASE IF EXISTS {name}", autocommit=True)
    psql(server.url("postgres"), f"CREATE DATABASE {name}", autocommit=True)
    engine = create_engine(server.url(name))
    schema.upgrade(engine)
    engine.dispose()
    import psycopg

    with psycopg.connect(server.url(name)) as connection:
        for statement in SEED.strip().split(";\n"):
            if statement.strip():
                connection.execute(statement, {"chats": chats})
        connection.commit()
    with psycopg.connect(server.url(name), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")
    return name


def fresh_copy(server, template: str, name: str) -> str:
    psql(server.url("postgres"), f"DROP DATABASE IF EXISTS {name}", autocommit=True)
    psql(server.url("postgres"), f"CREATE DATABASE {name} TEMPLATE {template}", autocommit=True)
    return server.url(name)


def drop(server, name: str) -> None:
    psql(server.url("postgres"), f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", autocommit=True)


def count_closed(url: str) -> tuple[int, int]:
    import psycopg

    with psycopg.connect(url) as connection:
        closed = connection.execute("SELECT count(*) FROM chats WHERE status = 'closed'").fetchone()[0]
        audited = connection.execute("SELECT count(*) FROM audit_events WHERE action = 'chats.close'").fetchone()[0]
    return closed, audited


def run_floor(url: str, ids: list[int]) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    return psql(url, FLOOR, {"ids": ids, "now": now, "operation": "BENCHFLOOR"})


def run_chatctl(url: str, ids_text: str, batch_size: int) -> float:
    chatctl = shutil.which("chatctl", path=os.path.dirname(sys.executable)) or shutil.which("chatctl")
    command = [chatctl, "--database-url", url, "--actor", "ops:bench", "-q", "chats", "close", "-",
               "--batch-size", str(batch_size), "-o", "tsv"]
    started = time.perf_counter()
    result = subprocess.run(command, input=ids_text, text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"chatctl failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--chats", type=int, default=100_000, help="live chats in the desk and ids piped")
    parser.add_argument("--runs", type=int, default=3, help="runs of each variant (the median is quoted)")
    parser.add_argument("--batch-sizes", default="5000", help="comma-separated --batch-size values to time")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    from pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        version = subprocess.run([str(server.bindir / "postgres"), "--version"], capture_output=True,
                                 text=True).stdout.strip()
        started = time.perf_counter()
        template = build_template(server, args.chats)
        print(f"desk of {args.chats:,} live chats built in {time.perf_counter() - started:.1f}s ({version})")
        ids = list(range(1, args.chats + 1))
        ids_text = "# chats to close\n" + "\n".join(map(str, ids)) + "\n"
        figures: dict[str, list[float]] = {"floor": []}
        for run in range(args.runs):
            url = fresh_copy(server, template, "bulk_close_run")
            seconds = run_floor(url, ids)
            assert count_closed(url) == (args.chats, args.chats), count_closed(url)
            figures["floor"].append(seconds)
            print(f"floor  run {run + 1}: {seconds:.2f}s")
            drop(server, "bulk_close_run")
            for size in (int(s) for s in args.batch_sizes.split(",")):
                url = fresh_copy(server, template, "bulk_close_run")
                seconds = run_chatctl(url, ids_text, size)
                assert count_closed(url) == (args.chats, args.chats), count_closed(url)
                figures.setdefault(f"chatctl --batch-size {size}", []).append(seconds)
                print(f"chatctl --batch-size {size} run {run + 1}: {seconds:.2f}s")
                drop(server, "bulk_close_run")
        floor = statistics.median(figures["floor"])
        print(f"\n{args.chats:,} chats, medians of {args.runs}:")
        summary = {}
        for name, values in figures.items():
            median = statistics.median(values)
            summary[name] = {"median_s": round(median, 3), "runs_s": [round(v, 3) for v in values],
                             "ratio_to_floor": round(median / floor, 2)}
            print(f"  {name:<28} {median:7.2f}s  x{median / floor:.1f}")
        machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "postgresql": version,
                   "platform": platform.platform()}
        print(f"  machine: {machine}")
        if args.json:
            args.json.write_text(json.dumps({"chats": args.chats, "runs": args.runs, "results": summary,
                                             "machine": machine}, indent=2) + "\n")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
