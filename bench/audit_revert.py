"""Benchmark `chatctl audit revert` on PostgreSQL.

Builds a desk with N closed chats and the N audit events of the sweep
operation that closed them, then times

* `chatctl audit revert OP --yes` (keyset batches, conflict check, per-item
  results, its own audit rows), and
* the floor: one hand-written SQL statement that writes the same before
  values back and inserts the same number of audit rows, with no conflict
  check and no per-item report,

each on a fresh copy of the same data, and prints medians.

Example: python bench/audit_revert.py --events 50000 --repeat 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

T0 = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
CLOSED = T0 + dt.timedelta(hours=1)

SEED = [
    "INSERT INTO customers (id, display_name, address, created_at) VALUES (1, 'C', '+27820000001', :t0)",
    "INSERT INTO chats (id, customer_id, channel, status, created_at, last_activity_at, flagged, reassign_count, "
    "closed_at, closed_by, close_reason) SELECT g, 1, 'sms', 'closed', :t0, :t0, false, 0, :closed, 'system', "
    "'inactivity' FROM generate_series(1, :n) g",
    "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason) "
    "SELECT :closed, 'system', 'sweep.inactivity', 'chat', g::text, "
    "jsonb_build_object('status', 'live', 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL), "
    "jsonb_build_object('status', 'closed', 'closed_at', CAST(:closed_iso AS text), 'closed_by', 'system', "
    "'close_reason', 'inactivity'), 'OPBENCH', 'idle' FROM generate_series(1, :n) g",
]

FLOOR = """
WITH events AS (
    SELECT id, entity_id::bigint AS chat_id, before, after FROM audit_events
    WHERE operation_id = 'OPBENCH' AND entity_type = 'chat'
), changed AS (
    UPDATE chats c SET status = e.before->>'status', closed_at = (e.before->>'closed_at')::timestamptz,
                       closed_by = e.before->>'closed_by', close_reason = e.before->>'close_reason'
    FROM events e WHERE c.id = e.chat_id RETURNING c.id
)
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT now(), 'ops:bench', 'audit.revert', 'chat', e.chat_id::text, e.after, e.before, 'OPFLOOR',
       'revert of operation OPBENCH'
FROM events e JOIN changed ON changed.id = e.chat_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=50_000, help="audit events in the operation (default 50000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant (default 3)")
    parser.add_argument("--batch-size", type=int, default=1000, help="chatctl --batch-size (default 1000)")
    args = parser.parse_args()

    import psycopg
    import sqlalchemy as sa

    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine
    from pgserver import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        admin = psycopg.connect(server.url("postgres"), autocommit=True)
        admin.execute("CREATE DATABASE bench_template")
        engine = create_engine(server.url("bench_template"))
        schema.upgrade(engine)
        with engine.begin() as connection:
            for statement in SEED:
                connection.execute(sa.text(statement), {"t0": T0, "closed": CLOSED, "closed_iso": CLOSED.isoformat(),
                                                        "n": args.events})
        engine.dispose()
        with psycopg.connect(server.url("bench_template"), autocommit=True) as connection:
            connection.execute("ANALYZE")  # statistics travel with the template copies

        def fresh(name: str) -> str:
            admin.execute(f"DROP DATABASE IF EXISTS {name}")
            admin.execute(f"CREATE DATABASE {name} TEMPLATE bench_template")
            return server.url(name)

        chatctl_times, floor_times = [], []
        for run in range(args.repeat):
            url = fresh(f"bench_{run}")
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, "-q", "audit", "revert",
                                     "OPBENCH", "--yes", "--batch-size", str(args.batch_size), "-o", "ids"],
                                    capture_output=True, text=True)
            chatctl_times.append(time.perf_counter() - started)
            changed = len(result.stdout.split())
            if result.returncode != 0 or changed != args.events:
                raise SystemExit(f"chatctl revert failed: exit {result.returncode}, {changed} changed\n{result.stderr}")

            url = fresh(f"floor_{run}")
            with psycopg.connect(url) as connection:
                started = time.perf_counter()
                connection.execute(FLOOR)
                connection.commit()
                floor_times.append(time.perf_counter() - started)

        chatctl_median, floor_median = statistics.median(chatctl_times), statistics.median(floor_times)
        print(f"events: {args.events}, batch size {args.batch_size}, runs: {args.repeat}")
        print(f"chatctl audit revert: median {chatctl_median:.2f} s ({args.events / chatctl_median:,.0f} events/s)")
        print(f"hand-written SQL floor: median {floor_median:.2f} s ({args.events / floor_median:,.0f} events/s)")
        print(f"ratio: {chatctl_median / floor_median:.1f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
