"""Section ``audit-retention``: audit retention on PostgreSQL.

A desk of N chats (1,000,000; quick: 50,000), a tenth of them live and idle
past the inactivity timeout, and M audit rows (10,000,000; quick: 300,000)
spread over 400 days and over every chat, 1,000 events per operation -- the
shape chatctl writes.  The rows are loaded with the audit indexes dropped and
the indexes built afterwards (what a year of traffic leaves, built in minutes
instead of hours); the templates are vacuumed and checkpointed.

* does a big audit table slow the sweeps down?
  ``chatctl sweep run inactivity`` on a fresh copy of the desk with an empty
  ``audit_events`` (the floor row) and on one with the M rows, alternating
  within each run so that the machine's noise falls on both.
* pruning: every one of the M rows removed, three ways, each on a
  fresh copy: one hand-written ``DELETE FROM audit_events WHERE at < cutoff``
  (the floor); ``chatctl audit prune --before 1d --yes`` (batched deletes);
  and ``DROP TABLE`` of every month of a copy of the rows partitioned by
  month (what partitioning would cost at prune time; building that copy is
  not timed).

One section, so that the desk is built once; each of its two parts has its
own floor row.

    python bench/run.py --only audit-retention [--fraction 0.3]

``--fraction F`` scales both sizes (F x 1,000,000 chats, F x 10,000,000 audit
rows) for a machine that cannot finish the full size in reasonable time.
"""

from __future__ import annotations

import datetime as dt
import time

from harness import Bench, Goal, Row, Section, fingerprint

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
HISTORY_DAYS = 400

CHATS = [
    "INSERT INTO customers (id, display_name, address, created_at) "
    "SELECT g, 'Customer ' || g, '+2782' || lpad(g::text, 7, '0'), %(t0)s FROM generate_series(1, 1000) g",
    "INSERT INTO agents (id, handle, name, role, presence, active, created_at) "
    "VALUES (1, 'alice', 'Alice', 'agent', 'online', true, %(t0)s)",
    "INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged, created_at, "
    "last_customer_message_at, last_agent_message_at, last_activity_at, agent_seen_at) "
    "SELECT g, g %% 1000 + 1, 'webchat', CASE WHEN g %% 10 = 0 THEN 'live' ELSE 'closed' END, 1, %(t0)s, 0, false, "
    "%(t0)s, %(t0)s, %(t0)s, CASE WHEN g %% 10 = 0 THEN %(idle)s ELSE %(now)s END, %(t0)s "
    "FROM generate_series(1, %(chats)s) g",
    "SELECT setval(pg_get_serial_sequence('chats', 'id'), %(chats)s)",
]

AUDIT_INDEXES = {"ix_audit_entity": "(entity_type, entity_id, id)", "ix_audit_operation": "(operation_id, id)",
                 "ix_audit_at": "(at)"}

AUDIT_ROWS = """
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT %(oldest)s + (g::double precision / %(rows)s) * %(span)s * interval '1 second',
       'system', 'sweep.inactivity', 'chat', ((g::bigint * 7919) %% %(chats)s + 1)::text,
       jsonb_build_object('status', 'live', 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL,
                          'pending_since', NULL),
       jsonb_build_object('status', 'closed', 'closed_at', '2026-01-01T00:00:00+00:00', 'closed_by', 'system',
                          'close_reason', 'inactivity', 'pending_since', NULL),
       '01' || lpad(upper(to_hex(g / 1000)), 24, '0'), 'inactivity'
  FROM generate_series(1, %(rows)s) g
"""


def _execute(url: str, statements: list[str], params: dict | None = None) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement, params)


def _sizes(bench: Bench) -> tuple[int, int]:
    rows = bench.size(full=10_000_000, quick=300_000)
    return (50_000 if bench.quick else round(1_000_000 * bench.scale)), rows


def build(bench: Bench) -> tuple[int, int]:
    """Templates ``audit_empty`` and ``audit_full`` (once per benchmark run)."""
    postgres = bench.postgres()
    chats, rows = _sizes(bench)
    if "audit_full" in postgres.templates:
        return chats, rows
    url = postgres.create("audit_empty")
    _execute(url, CHATS, {"t0": NOW - dt.timedelta(days=3), "idle": NOW - dt.timedelta(hours=2), "now": NOW,
                          "chats": chats})
    postgres.freeze("audit_empty")
    url = postgres.fresh("audit_full", "audit_empty")
    started = time.perf_counter()
    _execute(url, [f"DROP INDEX {name}" for name in AUDIT_INDEXES])
    _execute(url, [AUDIT_ROWS], {"oldest": NOW - dt.timedelta(days=HISTORY_DAYS + 1),
                                 "span": (HISTORY_DAYS - 1) * 86400, "rows": rows, "chats": chats})
    _execute(url, [f"CREATE INDEX {name} ON audit_events {columns}" for name, columns in AUDIT_INDEXES.items()])
    postgres.freeze("audit_full")
    import psycopg

    with psycopg.connect(url) as connection:
        size = connection.execute("SELECT pg_size_pretty(pg_total_relation_size('audit_events'))").fetchone()[0]
    bench.log(f"built {chats:,} chats and {rows:,} audit rows ({size} with indexes) in "
              f"{time.perf_counter() - started:.0f}s")
    bench.facts["desk"] = (f"{chats:,} chats ({chats // 10:,} idle live ones to close); {rows:,} audit rows over "
                           f"{HISTORY_DAYS} days, {size} with their three indexes")
    return chats, rows


def _closed(url: str) -> tuple[int, str]:
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT id, status, closed_at FROM chats WHERE status = 'closed' AND "
                                  "close_reason = 'inactivity' ORDER BY id").fetchall()
    return len(rows), fingerprint(rows)


def sweep_full_audit(bench: Bench) -> list[Row]:
    postgres = bench.postgres()
    timings: dict[str, list] = {"audit_empty": [], "audit_full": []}
    left: dict[str, set] = {"audit_empty": set(), "audit_full": set()}
    for run in range(bench.runs):
        for template in timings:
            url = postgres.fresh("sweep_run", template)
            timing = bench.chatctl(url, "-q", "sweep", "run", "inactivity", "--as-of", NOW.isoformat())
            timings[template].append(timing)
            left[template].add(_closed(url))
            postgres.drop("sweep_run")
            bench.log(f"run {run + 1} {template}: {timing.inprocess_s:.2f}s in process")
    ((count, printed),) = left["audit_empty"]
    ((full_count, full_printed),) = left["audit_full"]
    empty, full = timings["audit_empty"], timings["audit_full"]
    return [Row("chatctl `sweep run inactivity`, empty audit table", process=[t.process_s for t in empty],
                inprocess=[t.inprocess_s for t in empty], changed=count, fingerprint=printed, floor=True),
            Row("chatctl `sweep run inactivity`, audit table full", process=[t.process_s for t in full],
                inprocess=[t.inprocess_s for t in full], changed=full_count, fingerprint=full_printed,
                goal=Goal("no slower than with an empty audit table beyond the measured spread", ratio=1.25))]


def build_partitioned(bench: Bench) -> list[str]:
    """Template ``audit_parts``: the full desk plus a copy of its audit rows partitioned by month."""
    postgres = bench.postgres()
    url = postgres.fresh("audit_parts", "audit_full")
    month = (NOW - dt.timedelta(days=HISTORY_DAYS + 40)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months, statements = [], ["CREATE TABLE audit_parts (LIKE audit_events INCLUDING DEFAULTS) "
                              "PARTITION BY RANGE (at)"]
    while month < NOW:
        following = (month + dt.timedelta(days=32)).replace(day=1)
        months.append(f"audit_parts_{month:%Y_%m}")
        statements.append(f"CREATE TABLE {months[-1]} PARTITION OF audit_parts FOR VALUES FROM "
                          f"('{month.isoformat()}') TO ('{following.isoformat()}')")
        month = following
    statements.append("INSERT INTO audit_parts SELECT * FROM audit_events")
    statements += [f"CREATE INDEX {name}_parts ON audit_parts {columns}" for name, columns in AUDIT_INDEXES.items()]
    _execute(url, statements)
    postgres.freeze("audit_parts")
    return months


def _audit_left(url: str) -> int:
    """Audit rows left, the prune's own rows aside."""
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute("SELECT count(*) FROM audit_events WHERE action <> 'audit.prune'").fetchone()[0]


def audit_prune(bench: Bench, rows: int) -> list[Row]:
    import psycopg

    months = build_partitioned(bench)
    postgres = bench.postgres()
    floors, partitions, timings = [], [], []
    for run in range(bench.runs):
        url = postgres.fresh("prune_floor", "audit_full")
        with psycopg.connect(url) as connection:
            started = time.perf_counter()
            removed = connection.execute("DELETE FROM audit_events WHERE at < %s",
                                         (NOW - dt.timedelta(days=1),)).rowcount
            connection.commit()
            floors.append(time.perf_counter() - started)
        assert removed == rows and _audit_left(url) == 0
        postgres.drop("prune_floor")

        url = postgres.fresh("prune_run", "audit_full")
        timing = bench.chatctl(url, "-q", "audit", "prune", "--before", "1d", "--yes", "-o", "json")
        timings.append(timing)
        assert _audit_left(url) == 0, "chatctl left audit rows behind"
        postgres.drop("prune_run")

        url = postgres.fresh("prune_parts", "audit_parts")
        with psycopg.connect(url) as connection:
            started = time.perf_counter()
            for name in months:
                connection.execute(f"DROP TABLE {name}")
            connection.commit()
            partitions.append(time.perf_counter() - started)
            assert connection.execute("SELECT count(*) FROM audit_parts").fetchone()[0] == 0
        postgres.drop("prune_parts")
        bench.log(f"run {run + 1}: DELETE {floors[-1]:.1f}s, chatctl {timing.inprocess_s:.1f}s in process, "
                  f"partition drop {partitions[-1]:.2f}s")
    return [Row("floor: one `DELETE FROM audit_events WHERE at < cutoff`", inprocess=floors, changed=rows,
                floor=True),
            Row("chatctl `audit prune --before 1d --yes` (batches of 10,000, one audit row each)",
                process=[t.process_s for t in timings], inprocess=[t.inprocess_s for t in timings], changed=rows,
                goal=Goal("within 3x the one-statement DELETE", ratio=3.0)),
            Row("partitioned by month: `DROP TABLE` of every partition (not what chatctl does)",
                inprocess=partitions, changed=rows, note="copy partitioned beforehand, not timed")]


def measure(bench: Bench) -> list[Row]:
    _, rows = build(bench)
    return sweep_full_audit(bench) + audit_prune(bench, rows)


SECTIONS = [Section("audit-retention", "Audit retention: sweeps beside a full audit table, and `audit prune`, "
                    "on PostgreSQL", measure, order=65)]
