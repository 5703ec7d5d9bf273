"""Ticket cleanup benchmark: `chatctl tickets close --where 'age>30d' --yes` on a big desk.

On a private PostgreSQL server this builds a desk of N tickets (default
1,000,000; created over the last 60 days, so about half are older than 30
days; 85% open), then times, on identical copies of that database:

* the floor: one hand-written SQL statement doing the same change with its
  audit rows (a CTE ``UPDATE ... RETURNING`` feeding ``INSERT INTO
  audit_events SELECT``), and
* chatctl: the command above as a child process, output to a pipe.

Each run gets a fresh copy (``CREATE DATABASE ... TEMPLATE``) so every run
does the same work.  For chatctl it also records the slowest transaction
(how long a batch holds its row locks, measured in the child) and the
child's peak RSS (``os.wait4``), which show short locks and flat memory.

    python bench/ticket_cleanup.py                      # 1,000,000 tickets, 3 runs each
    python bench/ticket_cleanup.py --tickets 200000 --batch-sizes 500,1000,2000,5000 --runs 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
OPEN_SHARE = 0.85
SPREAD_DAYS = 60
AGENTS = 20

# Runs inside the chatctl child: time every transaction from BEGIN to COMMIT
# or ROLLBACK (the time a batch holds its row locks), then run the CLI.
CHILD = """
import atexit, json, sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
spans = []
started = {}
writes = set()
@event.listens_for(Engine, "begin")
def _begin(connection):
    started[id(connection)] = time.perf_counter()
@event.listens_for(Engine, "before_cursor_execute")
def _statement(connection, cursor, statement, parameters, context, executemany):
    if statement.lstrip().startswith(("UPDATE", "WITH")):
        writes.add(id(connection))
def _end(connection):
    begun = started.pop(id(connection), None)
    if begun is not None and id(connection) in writes:
        spans.append(time.perf_counter() - begun)
    writes.discard(id(connection))
event.listen(Engine, "commit", _end)
event.listen(Engine, "rollback", _end)
def _report():
    spans.sort()
    with open(sys.argv[1], "w") as out:
        json.dump({"transactions": len(spans), "slowest_s": spans[-1] if spans else 0.0,
                   "median_s": spans[len(spans) // 2] if spans else 0.0}, out)
atexit.register(_report)
from chatctl.cli import run
code = run(sys.argv[2:])
_report()
sys.exit(code)
"""

FLOOR = """
WITH changed AS (
    UPDATE tickets SET status = 'closed', closed_at = %(at)s
    WHERE status = 'open' AND archived_at IS NULL AND created_at < %(cutoff)s
    RETURNING id
)
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT %(at)s, 'ops:bench', 'tickets.close', 'ticket', id::text,
       '{"status": "open", "closed_at": null}'::jsonb,
       jsonb_build_object('status', 'closed', 'closed_at', %(at_iso)s::text),
       %(operation)s, 'selected by --where age>30d'
FROM changed
"""


def build(admin_url: str, url: str, tickets: int) -> None:
    import psycopg

    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS bench_base")
        admin.execute("CREATE DATABASE bench_base")
    engine = create_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    params = {"n": tickets, "now": NOW, "spread": dt.timedelta(days=SPREAD_DAYS), "open": OPEN_SHARE,
              "agents": AGENTS}
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT setseed(0.42)")
        connection.execute(
            "INSERT INTO agents (id, handle, name, role, presence, active, created_at) "
            "SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'online', true, %(now)s "
            "FROM generate_series(1, %(agents)s) g", params)
        connection.execute(
            "INSERT INTO customers (id, display_name, address, created_at) "
            "SELECT g, 'Customer ' || g, '+27' || lpad(g::text, 9, '0'), %(now)s - random() * %(spread)s "
            "FROM generate_series(1, %(n)s) g", params)
        connection.execute(
            "INSERT INTO chats (id, customer_id, channel, status, created_at, last_activity_at, "
            "last_customer_message_at, reassign_count, flagged) "
            "SELECT id, id, 'whatsapp', 'converted', created_at, created_at, created_at, 0, false FROM customers")
        connection.execute(
            "INSERT INTO tickets (id, chat_id, status, reason, agent_id, created_at, closed_at) "
            "SELECT id, id, s.status, (ARRAY['out_of_hours','no_agents','inactivity','manual'])[1 + id %% 4], "
            "       CASE WHEN random() < 0.7 THEN 1 + (id %% %(agents)s) END, created_at, "
            "       CASE WHEN s.status = 'closed' THEN created_at + interval '2 hours' END "
            "FROM chats, LATERAL (SELECT CASE WHEN random() < %(open)s THEN 'open' ELSE 'closed' END "
            "                     AS status OFFSET 0) s", params)
        for table in ("agents", "customers", "chats", "tickets"):
            connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
        connection.execute("VACUUM (ANALYZE, FREEZE)")
        connection.execute("CHECKPOINT")
        matched = connection.execute(
            "SELECT count(*) FROM tickets WHERE status = 'open' AND archived_at IS NULL "
            "AND created_at < %s", (NOW - dt.timedelta(days=30),)).fetchone()[0]
    print(f"built {tickets:,} tickets in {time.perf_counter() - started:.1f}s; "
          f"{matched:,} open and older than 30 days", flush=True)


def fresh_copy(admin_url: str, name: str) -> None:
    import psycopg

    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    # The base follows the schema to head first, so a copy always matches the
    # chatctl the child process imports.
    engine = create_engine(admin_url.rsplit("/", 1)[0] + "/bench_base")
    schema.upgrade(engine)
    engine.dispose()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name} TEMPLATE bench_base STRATEGY FILE_COPY")
        admin.execute("CHECKPOINT")


def drop(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run_floor(url: str) -> dict:
    import psycopg

    at = dt.datetime.now(dt.timezone.utc)
    params = {"at": at, "cutoff": at - dt.timedelta(days=30), "at_iso": at.isoformat(),
              "operation": "BENCHFLOOR"}
    started = time.perf_counter()
    with psycopg.connect(url) as connection:
        changed = connection.execute(FLOOR, params).rowcount
        connection.commit()
    return {"seconds": time.perf_counter() - started, "changed": changed}


def run_chatctl(url: str, batch_size: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as report:
        report_path = report.name
    command = [sys.executable, "-c", CHILD, report_path, "--database-url", url, "tickets", "close",
               "--where", "age>30d", "--yes", "--batch-size", str(batch_size)]
    env = {**os.environ, "CHATCTL_ACTOR": "ops:bench", "PYTHONPATH": str(ROOT / "src")}
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # Drain the pipe as a script would (one result line per ticket).
    changed = 0
    for line in child.stdout:
        if b"\tchanged" in line:
            changed += 1
    stderr = child.stderr.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"chatctl failed ({code}): {stderr}")
    with open(report_path) as source:
        transactions = json.load(source)
    os.unlink(report_path)
    return {"seconds": seconds, "changed": changed, "peak_rss_mb": usage.ru_maxrss / 1024,
            "slowest_transaction_s": transactions["slowest_s"], "median_transaction_s": transactions["median_s"],
            "transactions": transactions["transactions"],
            "summary": stderr.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of each side (median reported)")
    parser.add_argument("--batch-sizes", default="2000", help="comma-separated chatctl --batch-size values")
    parser.add_argument("--pg-url", help="use this server (postgresql://user@host:port) instead of a private one")
    parser.add_argument("--reuse", action="store_true",
                        help="with --pg-url: keep the bench_base database a previous run built")
    args = parser.parse_args()

    from pgserver import PostgresServer

    server = None
    if args.pg_url:
        base = args.pg_url.rstrip("/")
    else:
        server = PostgresServer()
        server.start()
        base = server.url("").rstrip("/")
    admin_url = f"{base}/postgres"
    try:
        with __import__("psycopg").connect(admin_url) as connection:
            version = connection.execute("SHOW server_version").fetchone()[0]
        print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Python {platform.python_version()}, "
              f"PostgreSQL {version}", flush=True)
        if not args.reuse:
            build(admin_url, f"{base}/bench_base", args.tickets)
        sizes = [int(size) for size in args.batch_sizes.split(",")]
        floors: list[dict] = []
        runs: dict[int, list[dict]] = {size: [] for size in sizes}
        # Floor and chatctl runs alternate so that noise from other work on
        # the machine falls on both sides alike.
        for number in range(1, args.runs + 1):
            fresh_copy(admin_url, "bench_run")
            floors.append(run_floor(f"{base}/bench_run"))
            drop(admin_url, "bench_run")
            print(f"run {number} floor: {floors[-1]['seconds']:.2f}s, {floors[-1]['changed']:,} closed", flush=True)
            for size in sizes:
                fresh_copy(admin_url, "bench_run")
                run = run_chatctl(f"{base}/bench_run", size)
                drop(admin_url, "bench_run")
                runs[size].append(run)
                print(f"run {number} chatctl --batch-size {size}: {run['seconds']:.2f}s, {run['changed']:,} closed, "
                      f"batch transactions: {run['transactions']:,}, median {run['median_transaction_s'] * 1000:.0f} ms, "
                      f"slowest {run['slowest_transaction_s'] * 1000:.0f} ms; peak RSS {run['peak_rss_mb']:.0f} MB", flush=True)
        floor = statistics.median(run["seconds"] for run in floors)
        print(f"floor (one SQL statement): median {floor:.2f}s", flush=True)
        for size in sizes:
            median = statistics.median(run["seconds"] for run in runs[size])
            print(f"chatctl --batch-size {size}: median {median:.2f}s = {median / floor:.2f}x the floor; "
                  f"slowest batch transaction {max(r['slowest_transaction_s'] for r in runs[size]) * 1000:.0f} ms; "
                  f"peak RSS {max(r['peak_rss_mb'] for r in runs[size]):.0f} MB", flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
