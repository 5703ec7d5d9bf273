"""Section ``bulk-close``: ``chatctl chats close -`` with N ids on stdin, beside the floor.

The floor is one hand-written SQL statement doing the same work: a CTE that
closes the live chats and returns their old values, feeding one
``INSERT INTO audit_events SELECT ...`` (the audit rows chatctl writes too).

Each run gets a fresh copy of the same desk (``CREATE DATABASE ... TEMPLATE``)
on a private PostgreSQL server, so every run closes the same N live chats
(100,000; quick: 10,000), and both sides must leave the same chats closed with
the same audit rows.  chatctl's per-item output (tsv) goes to a file.

    python bench/run.py --only bulk-close
"""

from __future__ import annotations

import datetime as dt
import time

from harness import Bench, Goal, Row, Section, fingerprint

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


def build(bench: Bench, chats: int) -> None:
    import psycopg

    postgres = bench.postgres()
    url = postgres.create("bulk_base")
    with psycopg.connect(url) as connection:
        for statement in SEED.strip().split(";\n"):
            if statement.strip():
                connection.execute(statement, {"chats": chats})
        connection.commit()
    postgres.freeze("bulk_base")


def left_behind(url: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(url) as connection:
        closed = connection.execute("SELECT id, status, closed_by FROM chats WHERE status = 'closed' "
                                    "ORDER BY id").fetchall()
        audited = connection.execute("SELECT entity_id FROM audit_events WHERE action = 'chats.close' "
                                     "ORDER BY entity_id::bigint").fetchall()
    return len(closed), fingerprint(closed + audited)


def run_floor(url: str, ids: list[int]) -> float:
    import psycopg

    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        connection.execute(FLOOR, {"ids": ids, "now": dt.datetime.now(dt.timezone.utc), "operation": "BENCHFLOOR"})
        connection.commit()
        return time.perf_counter() - started


def measure(bench: Bench) -> list[Row]:
    chats = bench.size(full=100_000, quick=10_000)
    build(bench, chats)
    postgres = bench.postgres()
    ids = list(range(1, chats + 1))
    ids_text = "# chats to close\n" + "\n".join(map(str, ids)) + "\n"
    variants = [None] if bench.quick else [None, 1000, 5000]
    floors, floor_prints = [], set()
    timings: dict = {size: [] for size in variants}
    prints: dict = {size: set() for size in variants}
    for run in range(bench.runs):
        url = postgres.fresh("bulk_run", "bulk_base")
        floors.append(run_floor(url, ids))
        floor_prints.add(left_behind(url))
        postgres.drop("bulk_run")
        for size in variants:
            url = postgres.fresh("bulk_run", "bulk_base")
            extra = [] if size is None else ["--batch-size", str(size)]
            timing = bench.chatctl(url, "-q", "chats", "close", "-", *extra, "-o", "tsv", stdin=ids_text)
            prints[size].add(left_behind(url))
            timings[size].append(timing)
            postgres.drop("bulk_run")
            bench.log(f"run {run + 1}: floor {floors[-1]:.2f}s; chatctl {extra or 'default batch'} "
                      f"{timing.inprocess_s:.2f}s in process, {timing.process_s:.2f}s whole")
    ((floor_count, floor_print),) = floor_prints
    rows = [Row("floor: one statement (`UPDATE ... RETURNING` feeding the audit `INSERT`), ids as one array",
                inprocess=floors, changed=floor_count, fingerprint=floor_print, floor=True)]
    for size in variants:
        ((count, printed),) = prints[size]
        runs = timings[size]
        rows.append(Row("chatctl (default batch size)" if size is None else f"chatctl `--batch-size {size}`",
                        process=[t.process_s for t in runs], inprocess=[t.inprocess_s for t in runs],
                        changed=count, fingerprint=printed,
                        goal=Goal("within 1.5x the floor", ratio=1.5) if size is None else None,
                        note=(f"slowest write transaction {max(t.slowest_transaction_s for t in runs) * 1000:.0f} ms; "
                              f"peak RSS {max(t.peak_rss_mb for t in runs):.0f} MB")))
    bench.facts["desk"] = f"{chats:,} live chats, all closed by each run, ids piped on standard input"
    return rows


SECTIONS = [Section("bulk-close", "Bulk chat close: `chats close -` on PostgreSQL", measure, order=20)]
