"""Section ``write-cost``: what the chats table's indexes cost a close, before and after the
partial indexes of revision 0006, beside the same close on a table with no index but its key.

The desk: N live chats, all idle past the inactivity timeout (100,000; quick:
10,000), made by hand-written SQL.  Each run closes all of them, on a fresh
copy of the desk (``CREATE DATABASE ... TEMPLATE``):

* floor: one statement doing the inactivity close (status, closed_at,
  closed_by, close_reason, pending_since, the rule in its WHERE) and writing
  one audit row per chat with the before and after values, on minimal tables:
  the columns the close reads and writes, and an audit table, each with its
  primary key and no other index;
* the same statement on chatctl's own schema at revision 0005 (eight
  secondary indexes on chats) and at the head (the partial indexes);
* ``chatctl sweep run inactivity`` at the head: the same closes in batches,
  with the R9 purge and one audit event per chat.

    python bench/run.py --only write-cost
"""

from __future__ import annotations

import time

from harness import Bench, Goal, Row, Section, fingerprint

AS_OF = "2026-12-01T10:00:00+00:00"
SEED = """
INSERT INTO agents (id, handle, name, role, presence, active, created_at)
SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'online', true, timestamptz '2026-11-01' FROM generate_series(1, 50) AS g;
INSERT INTO customers (id, display_name, address, created_at)
SELECT g, 'Customer ' || g, '+2782' || lpad(g::text, 7, '0'), timestamptz '2026-11-01'
  FROM generate_series(1, %(chats)s) AS g;
INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged,
                   created_at, last_customer_message_at, last_agent_message_at, last_activity_at)
SELECT g, g, (ARRAY['whatsapp','webchat','messenger','sms'])[1 + g %% 4], 'live', 1 + g %% 50,
       timestamptz '2026-12-01 06:00+00', 0, false,
       timestamptz '2026-12-01 06:00+00' - (g %% 1000) * interval '1 second',
       timestamptz '2026-12-01 07:00+00' - (g %% 1000) * interval '1 second',
       timestamptz '2026-12-01 08:00+00' - (g %% 1000) * interval '1 second',
       timestamptz '2026-12-01 08:00+00' - (g %% 1000) * interval '1 second'
  FROM generate_series(1, %(chats)s) AS g;
SELECT setval(pg_get_serial_sequence('chats', 'id'), %(chats)s);
CREATE TABLE chats_minimal AS
SELECT id, status, flagged, last_activity_at, assigned_at, pending_since, closed_at, closed_by, close_reason
  FROM chats;
ALTER TABLE chats_minimal ADD PRIMARY KEY (id);
CREATE TABLE audit_minimal (LIKE audit_events INCLUDING DEFAULTS);
ALTER TABLE audit_minimal ADD PRIMARY KEY (id)
"""

CLOSE = """
WITH changed AS (
    UPDATE {chats} c
       SET status = 'closed', closed_at = %(as_of)s, closed_by = 'system', close_reason = 'inactivity',
           pending_since = NULL
      FROM {chats} old
     WHERE old.id = c.id AND c.status = 'live' AND c.flagged = false AND c.last_activity_at < %(cutoff)s
       AND (c.assigned_at IS NULL OR c.assigned_at < %(as_of)s)
 RETURNING c.id, old.status AS old_status, old.pending_since AS old_pending_since
)
INSERT INTO {audit} (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT %(as_of)s, 'system', 'sweep.inactivity', 'chat', id::text,
       jsonb_build_object('status', old_status, 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL,
                          'pending_since', old_pending_since),
       jsonb_build_object('status', 'closed', 'closed_at', %(as_of)s, 'closed_by', 'system',
                          'close_reason', 'inactivity', 'pending_since', NULL),
       'BYHAND', 'inactivity'
  FROM changed
"""


def build(bench: Bench, chats: int) -> None:
    import psycopg

    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    postgres = bench.postgres()
    url = postgres.create("write_head")
    with psycopg.connect(url) as connection:
        for statement in SEED.strip().split(";\n"):
            connection.execute(statement, {"chats": chats})
        connection.commit()
    postgres.freeze("write_head")
    url = postgres.fresh("write_0005", "write_head")
    engine = create_engine(url)
    try:
        schema.downgrade(engine, "0006")
    finally:
        engine.dispose()
    postgres.freeze("write_0005")


def closed(url: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, status, closed_at, closed_by, close_reason FROM chats "
                                  "WHERE status = 'closed' ORDER BY id").fetchall()
    return len(rows), fingerprint(rows)


def by_hand(url: str, chats: str, audit: str) -> tuple[float, int]:
    import datetime as dt

    import psycopg

    as_of = dt.datetime.fromisoformat(AS_OF)
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        changed = connection.execute(CLOSE.format(chats=chats, audit=audit),
                                     {"as_of": as_of, "cutoff": as_of - dt.timedelta(minutes=30)}).rowcount
        connection.commit()
        return time.perf_counter() - started, changed


def measure(bench: Bench) -> list[Row]:
    chats = bench.size(full=100_000, quick=10_000)
    build(bench, chats)
    postgres = bench.postgres()
    floors, heads, olds, sweeps, counts = [], [], [], [], set()
    for run in range(bench.runs):
        url = postgres.fresh("write_run", "write_head")
        seconds, changed = by_hand(url, "chats_minimal", "audit_minimal")
        floors.append(seconds)
        counts.add(changed)
        postgres.drop("write_run")
        url = postgres.fresh("write_run", "write_0005")
        seconds, changed = by_hand(url, "chats", "audit_events")
        olds.append(seconds)
        counts.add(changed)
        postgres.drop("write_run")
        url = postgres.fresh("write_run", "write_head")
        seconds, changed = by_hand(url, "chats", "audit_events")
        heads.append(seconds)
        counts.add(changed)
        postgres.drop("write_run")
        url = postgres.fresh("write_run", "write_head")
        sweeps.append(bench.chatctl(url, "-q", "sweep", "run", "inactivity", "--as-of", AS_OF, "-o", "json"))
        swept = closed(url)
        counts.add(swept[0])
        postgres.drop("write_run")
        bench.log(f"run {run + 1}: minimal {floors[-1]:.2f}s, 0005 {olds[-1]:.2f}s, head {heads[-1]:.2f}s, "
                  f"sweep {sweeps[-1].inprocess_s:.2f}s in process")
    (count,) = counts
    slowest = max(t.slowest_transaction_s for t in sweeps)
    bench.facts["desk"] = f"{chats:,} live chats, all idle past the 30-minute timeout; every run closes all of them"
    return [
        Row("floor: the close and its audit rows as one statement, on minimal tables (primary keys only)",
            inprocess=floors, changed=count, floor=True),
        Row("the same statement on chatctl's schema at revision 0005 (eight secondary indexes on chats)",
            inprocess=olds, changed=count),
        Row("the same statement on chatctl's schema at head (partial indexes)", inprocess=heads, changed=count),
        Row("chatctl `sweep run inactivity` at head (batches, R9 purge, audit events)",
            process=[t.process_s for t in sweeps], inprocess=[t.inprocess_s for t in sweeps], changed=count,
            goal=Goal("within 3x the floor", ratio=3.0), note=f"longest batch transaction {slowest:.2f} s"),
    ]


SECTIONS = [Section("write-cost", "Schema write cost: an inactivity close by hand and by the sweep, on PostgreSQL",
                    measure, order=12)]
