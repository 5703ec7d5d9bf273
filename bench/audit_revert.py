"""Section ``audit-revert``: `chatctl audit revert` on PostgreSQL.

Builds a desk with N (20,000; quick: 2,000) closed chats and the N audit events of the sweep
operation that closed them, then times

* `chatctl audit revert OP --yes` (keyset batches; per batch one statement per
  table that locks the rows, checks each change against later events and the
  values it wrote, restores and audits; per-item results), and
* the floor: one hand-written SQL statement that writes the same before
  values back and inserts the same number of audit rows, with no conflict
  check and no per-item report,

each on a fresh copy of the same data; both must leave the same chats and
the same number of revert audit rows.

    python bench/run.py --only audit-revert
"""

from __future__ import annotations

import datetime as dt
import time

from harness import Bench, Goal, Row, Section, fingerprint

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


def build(bench: Bench, events: int) -> None:
    import sqlalchemy as sa

    from chatctl.storage.engine import create_engine

    postgres = bench.postgres()
    engine = create_engine(postgres.create("revert_base"))
    with engine.begin() as connection:
        for statement in SEED:
            connection.execute(sa.text(statement), {"t0": T0, "closed": CLOSED, "closed_iso": CLOSED.isoformat(),
                                                    "n": events})
    engine.dispose()
    postgres.freeze("revert_base")


def left_behind(url: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(url) as connection:
        chats = connection.execute("SELECT id, status, closed_at, closed_by FROM chats ORDER BY id").fetchall()
        reverted = connection.execute("SELECT entity_id FROM audit_events WHERE action = 'audit.revert' "
                                      "ORDER BY entity_id::bigint").fetchall()
    return len(reverted), fingerprint(chats + reverted)


def measure(bench: Bench) -> list[Row]:
    events = bench.size(full=20_000, quick=2_000)
    build(bench, events)
    postgres = bench.postgres()
    floors, timings, floor_prints, prints = [], [], set(), set()
    for run in range(bench.runs):
        url = postgres.fresh("revert_floor", "revert_base")
        import psycopg

        with psycopg.connect(url) as connection:
            started = time.perf_counter()
            connection.execute(FLOOR)
            connection.commit()
            floors.append(time.perf_counter() - started)
        floor_prints.add(left_behind(url))
        postgres.drop("revert_floor")
        url = postgres.fresh("revert_run", "revert_base")
        timing = bench.chatctl(url, "-q", "audit", "revert", "OPBENCH", "--yes", "-o", "ids")
        timings.append(timing)
        prints.add(left_behind(url))
        postgres.drop("revert_run")
        bench.log(f"run {run + 1}: floor {floors[-1]:.2f}s, chatctl {timing.inprocess_s:.2f}s in process, "
                  f"{timing.process_s:.2f}s whole")
    ((floor_count, floor_print),) = floor_prints
    ((count, printed),) = prints
    bench.facts["desk"] = f"{events:,} chats closed by one sweep operation, {events:,} audit events to revert"
    return [Row("floor: one `UPDATE ... FROM audit_events` + the audit `INSERT`, no checks, no report",
                inprocess=floors, changed=floor_count, fingerprint=floor_print, floor=True),
            Row("chatctl `audit revert OP --yes` (row locks, conflict checks, per-item results)",
                process=[t.process_s for t in timings], inprocess=[t.inprocess_s for t in timings],
                changed=count, fingerprint=printed, goal=Goal("within 2x the floor", ratio=2.0))]


SECTIONS = [Section("audit-revert", "Audit revert: `audit revert OPERATION_ID` on PostgreSQL", measure, order=60)]
