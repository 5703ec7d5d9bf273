"""Audit retention on PostgreSQL: does a big audit table slow the sweeps down,
and how fast does ``audit prune`` remove it, beside its floors.

1. **Sweep with a full audit table.**  A desk of ``--chats`` chats (a tenth of
   them live and idle past the inactivity timeout), once with an empty
   ``audit_events`` and once with ``--audit-rows`` rows already in it (spread
   over 400 days, over every chat, 1,000 events per operation, the shape
   chatctl writes).  ``chatctl sweep run inactivity`` on a fresh clone of each,
   side by side, ``--runs`` times; the run's own ``duration_s``.
2. **Prune.**  On a clone of the full desk, every audit row older than the
   cutoff (all of them) removed three ways, side by side, ``--runs`` times:
   ``chatctl audit prune --before 1d --yes`` (batched deletes, the default
   batch size); one hand-written ``DELETE FROM audit_events WHERE at < cutoff``
   (the floor for deleting); and the same rows in a copy of the table
   partitioned by month, removed by ``DROP TABLE`` of every partition (the
   floor for partitioning; the copy's loading time is not counted).

Each measurement starts from the same data (``CREATE DATABASE ... TEMPLATE``).
The machine is shared: the variants alternate within each run so that noise
falls on both; medians and the spread (min-max) are printed.

Example:
    python bench/audit_retention.py --chats 1000000 --audit-rows 10000000 --runs 3 --json out.json
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
HISTORY_DAYS = 400

CHATS_SQL = """
INSERT INTO customers (id, display_name, address, created_at)
SELECT g, 'Customer ' || g, '+2782' || lpad(g::text, 7, '0'), %(t0)s FROM generate_series(1, 1000) g;
INSERT INTO agents (id, handle, name, role, presence, active, created_at)
VALUES (1, 'alice', 'Alice', 'agent', 'online', true, %(t0)s);
INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged, created_at,
                   last_customer_message_at, last_agent_message_at, last_activity_at, agent_seen_at)
SELECT g, g %% 1000 + 1, 'webchat', CASE WHEN g %% 10 = 0 THEN 'live' ELSE 'closed' END, 1,
       %(t0)s, 0, false, %(t0)s, %(t0)s, %(t0)s,
       CASE WHEN g %% 10 = 0 THEN %(idle)s ELSE %(now)s END, %(t0)s
  FROM generate_series(1, %(chats)s) g;
SELECT setval(pg_get_serial_sequence('chats', 'id'), %(chats)s);
"""

AUDIT_SQL = """
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


def chatctl(url: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"chatctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


class Desk:
    def __init__(self) -> None:
        from pgserver import PostgresServer

        self.server = PostgresServer()
        self.server.start()

    def execute(self, statement: str, database: str = "postgres", params: dict | None = None):
        import psycopg

        with psycopg.connect(self.server.url(database), autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else None

    def fresh(self, name: str, template: str) -> str:
        self.execute(f"DROP DATABASE IF EXISTS {name}")
        self.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.server.url(name)

    def drop(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def finish(self, name: str) -> None:
        self.execute("VACUUM ANALYZE", name)
        self.execute("CHECKPOINT", name)

    def size(self, name: str, relation: str) -> str:
        return self.execute(f"SELECT pg_size_pretty(pg_total_relation_size('{relation}'))", name)[0][0]

    def version(self) -> str:
        return self.execute("SHOW server_version")[0][0]


def build(desk: Desk, chats: int, audit_rows: int) -> None:
    desk.execute("CREATE DATABASE empty_audit")
    chatctl(desk.server.url("empty_audit"), "db", "upgrade")
    idle = NOW - dt.timedelta(hours=2)
    for statement in CHATS_SQL.split(";"):
        if statement.strip():
            desk.execute(statement, "empty_audit", {"t0": NOW - dt.timedelta(days=3), "idle": idle, "now": NOW,
                                                    "chats": chats})
    desk.finish("empty_audit")
    desk.execute("CREATE DATABASE full_audit TEMPLATE empty_audit")
    started = time.perf_counter()
    desk.execute(AUDIT_SQL, "full_audit", {"oldest": NOW - dt.timedelta(days=HISTORY_DAYS + 1),
                                           "span": (HISTORY_DAYS - 1) * 86400, "rows": audit_rows, "chats": chats})
    desk.finish("full_audit")
    print(f"built: {chats} chats; {audit_rows} audit rows in {time.perf_counter() - started:.0f}s "
          f"({desk.size('full_audit', 'audit_events')} with indexes)", flush=True)


def sweep(desk: Desk, template: str) -> float:
    url = desk.fresh("run", template)
    try:
        out = json.loads(chatctl(url, "sweep", "run", "inactivity", "--as-of", NOW.isoformat(), "-o", "json").stdout)
        return out["duration_s"], out["jobs"]["inactivity"]["changed"]
    finally:
        desk.drop("run")


def prune_chatctl(desk: Desk, expected: int) -> float:
    url = desk.fresh("prune", "full_audit")
    try:
        started = time.perf_counter()
        out = json.loads(chatctl(url, "audit", "prune", "--before", "1d", "--yes", "-o", "json").stdout)
        seconds = time.perf_counter() - started
        assert out["removed"] == expected, out
        return seconds
    finally:
        desk.drop("prune")


def prune_delete(desk: Desk, expected: int) -> float:
    import psycopg

    url = desk.fresh("floor", "full_audit")
    try:
        with psycopg.connect(url) as connection:
            started = time.perf_counter()
            removed = connection.execute("DELETE FROM audit_events WHERE at < %s",
                                         (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1),)).rowcount
            connection.commit()
            seconds = time.perf_counter() - started
        assert removed == expected, removed
        return seconds
    finally:
        desk.drop("floor")


def build_partitioned(desk: Desk, expected: int) -> list[str]:
    """A clone of the full desk whose audit rows are copied into a table partitioned by month (a template)."""
    url = desk.fresh("parts_base", "full_audit")
    months = []
    with __import__("psycopg").connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE audit_parts (LIKE audit_events INCLUDING DEFAULTS) PARTITION BY RANGE (at)")
        month = (NOW - dt.timedelta(days=HISTORY_DAYS + 40)).replace(day=1, hour=0, minute=0, second=0,
                                                                     microsecond=0)
        while month < NOW:
            following = (month + dt.timedelta(days=32)).replace(day=1)
            name = f"audit_parts_{month:%Y_%m}"
            connection.execute(f"CREATE TABLE {name} PARTITION OF audit_parts FOR VALUES FROM "
                               f"('{month.isoformat()}') TO ('{following.isoformat()}')")
            months.append(name)
            month = following
        for columns, index in ((("entity_type", "entity_id", "id"), "entity"), (("operation_id", "id"), "op"),
                               (("at",), "at")):
            connection.execute(f"CREATE INDEX audit_parts_{index} ON audit_parts ({', '.join(columns)})")
        connection.execute("INSERT INTO audit_parts SELECT * FROM audit_events")
        copied = connection.execute("SELECT count(*) FROM audit_parts").fetchone()[0]
        assert copied == expected, copied
    desk.finish("parts_base")
    return months


def prune_partitions(desk: Desk, months: list[str]) -> float:
    """Every month's partition dropped, in one transaction (the loading of the copy is not counted)."""
    import psycopg

    url = desk.fresh("parts", "parts_base")
    try:
        with psycopg.connect(url, autocommit=True) as connection:
            started = time.perf_counter()
            with connection.transaction():
                for name in months:
                    connection.execute(f"DROP TABLE {name}")
            return time.perf_counter() - started
    finally:
        desk.drop("parts")


def spread(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3),
            "max_s": round(max(values), 3), "runs": [round(value, 3) for value in values]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=1_000_000)
    parser.add_argument("--audit-rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip", choices=("sweep", "prune"), action="append", default=[])
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    desk = Desk()
    figures: dict = {"chats": args.chats, "audit_rows": args.audit_rows, "runs": args.runs,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "database": f"PostgreSQL {desk.version()}"}}
    try:
        build(desk, args.chats, args.audit_rows)
        figures["audit_table_size"] = desk.size("full_audit", "audit_events")
        if "sweep" not in args.skip:
            empty, full = [], []
            for run in range(args.runs):
                for template, times in (("empty_audit", empty), ("full_audit", full)):
                    seconds, changed = sweep(desk, template)
                    times.append(seconds)
                    print(f"run {run + 1} sweep, {template}: {seconds:.2f}s ({changed} closed)", flush=True)
            figures["sweep"] = {"closed": changed, "empty_audit": spread(empty), "full_audit": spread(full)}
        if "prune" not in args.skip:
            months = build_partitioned(desk, args.audit_rows)
            ways = {"chatctl audit prune": lambda: prune_chatctl(desk, args.audit_rows),
                    "one DELETE": lambda: prune_delete(desk, args.audit_rows),
                    "DROP monthly partitions": lambda: prune_partitions(desk, months)}
            times: dict[str, list[float]] = {name: [] for name in ways}
            for run in range(args.runs):
                for name, way in ways.items():
                    times[name].append(way())
                    print(f"run {run + 1} prune, {name}: {times[name][-1]:.2f}s", flush=True)
            figures["prune"] = {name: spread(values) for name, values in times.items()}
            floor = figures["prune"]["one DELETE"]["median_s"]
            figures["prune"]["chatctl audit prune"]["ratio_to_delete"] = round(
                figures["prune"]["chatctl audit prune"]["median_s"] / floor, 2)
        print(json.dumps(figures, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        desk.server.stop()


if __name__ == "__main__":
    main()
