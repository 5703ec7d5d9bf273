"""Sections ``export-postgresql`` and ``export-sqlite``: ``chats list closed --all -o jsonl``
beside a plain driver loop over the same rows.

The desk: N closed chats (1,000,000; quick: 50,000) made by hand-written SQL,
with 100,000 customers and 12 agents; every chat has an agent, a customer
message, an agent reply and a close reason, so every column of the chat
object is filled.

The floor is the least an export of the same JSON Lines can do: the same
query (chat columns, customer, agent and ticket joined, the R2 marks computed
by the database, newest closed first), read by the bare driver (psycopg
through a server-side cursor, 1,000 rows at a time; sqlite3 by its cursor),
each row zipped with the key names and written with ``json.dumps`` -
timestamps as ISO 8601 text (``isoformat()`` on PostgreSQL; on SQLite the
stored UTC text with a ``T`` and ``+00:00``).  Both sides write to a file
once, to check they print the same bytes (the fingerprint), and to
``/dev/null`` in the timed runs.  chatctl's peak memory is the child's peak RSS.

    python bench/run.py --only export-postgresql --only export-sqlite
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

from harness import Bench, Goal, Row, Section

NOW = "2026-12-01 10:00:00"
KEYS = ("id", "status", "channel", "customer", "agent", "flagged", "new", "unread", "created_at",
        "last_activity_at", "last_customer_message_at", "last_agent_message_at", "pending_since", "closed_at",
        "closed_by", "close_reason", "ticket_id")
TIMESTAMPS = tuple(index for index, key in enumerate(KEYS) if key.endswith("_at") or key == "pending_since")

# The chat object's query, newest closed first (what `chats list closed --all` reads).
QUERY = """
SELECT c.id, c.status, c.channel, cu.address, a.handle, c.flagged,
       c.last_agent_message_at IS NULL,
       c.last_customer_message_at IS NOT NULL
           AND (c.agent_seen_at IS NULL OR c.last_customer_message_at > c.agent_seen_at),
       c.created_at, c.last_activity_at, c.last_customer_message_at, c.last_agent_message_at,
       c.pending_since, c.closed_at, c.closed_by, c.close_reason, t.id
  FROM chats c
  JOIN customers cu ON cu.id = c.customer_id
  LEFT JOIN agents a ON a.id = c.agent_id
  LEFT JOIN tickets t ON t.chat_id = c.id
 WHERE c.status = 'closed'
 ORDER BY c.closed_at DESC, c.id DESC
"""

# {ts(seconds)}: a timestamp that many seconds before NOW, with microseconds (never zero, so
# both sides print them), in each database's own dialect.
SEED = """
INSERT INTO agents (id, handle, name, role, presence, active, created_at)
SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'online', {true}, {ts0} FROM {series12};
INSERT INTO customers (id, display_name, address, created_at)
SELECT g, 'Customer ' || g, {address}, {ts0} FROM {series_customers};
INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, flagged,
                   created_at, last_customer_message_at, last_agent_message_at, last_activity_at, agent_seen_at,
                   closed_at, closed_by, close_reason)
SELECT g, 1 + g % {customers}, CASE g % 4 WHEN 0 THEN 'whatsapp' WHEN 1 THEN 'webchat' WHEN 2 THEN 'sms'
       ELSE 'messenger' END, 'closed', 1 + g % 12, {ts_assigned}, 0, {false},
       {ts_created}, {ts_customer}, {ts_agent}, {ts_agent}, {ts_agent}, {ts_closed},
       CASE g % 3 WHEN 0 THEN 'customer' WHEN 1 THEN 'agent' ELSE 'system' END,
       CASE g % 3 WHEN 2 THEN 'inactivity' ELSE 'resolved' END
  FROM {series_chats}
"""


def seed_statements(backend: str, chats: int) -> list[str]:
    customers = min(100_000, chats)
    micro = "(1 + (g * 7919) % 999999)" if backend == "sqlite" else "(1 + (g::bigint * 7919) % 999999)"
    if backend == "postgresql":
        def ts(seconds: str) -> str:
            return (f"timestamptz '{NOW}+00' - ({seconds}) * interval '1 second' "
                    f"+ {micro} * interval '1 microsecond'")

        def series(n: int) -> str:
            return f"generate_series(1, {n}) AS g"
        words = {"true": "true", "false": "false", "address": "'+2782' || lpad(g::text, 7, '0')"}
    else:
        def ts(seconds: str) -> str:
            return (f"strftime('%Y-%m-%d %H:%M:%S', '{NOW}', '-' || ({seconds}) || ' seconds') "
                    f"|| '.' || substr('000000' || {micro}, -6, 6)")

        def series(n: int) -> str:
            return (f"(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {n}) "
                    "SELECT g FROM s)")
        words = {"true": "1", "false": "0", "address": "'+2782' || substr('0000000' || g, -7, 7)"}
    text = SEED.format(
        ts0=ts("864000"), series12=series(12), series_customers=series(customers), customers=customers,
        series_chats=series(chats), ts_assigned=ts("3 * g + 600"), ts_created=ts("3 * g + 900"),
        ts_customer=ts("3 * g + 500"), ts_agent=ts("3 * g + 400"), ts_closed=ts("3 * g"), **words)
    return [statement for statement in text.strip().split(";\n") if statement.strip()]


# -- the floors: the bare driver ---------------------------------------------------------------
def postgres_floor(url: str, out_path: str) -> float:
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url) as connection, open(out_path, "w") as out:
        dumps = json.dumps
        with connection.cursor(name="export") as cursor:  # server-side, fetched 1,000 rows at a time
            cursor.itersize = 1000
            cursor.execute(QUERY)
            for row in cursor:
                out.write(dumps(dict(zip(KEYS, row)), default=_isoformat, ensure_ascii=False) + "\n")
    return time.perf_counter() - started


def _isoformat(value):
    return value.isoformat()


def sqlite_floor(path: str, out_path: str) -> float:
    import sqlite3

    started = time.perf_counter()
    connection = sqlite3.connect(path)
    try:
        with open(out_path, "w") as out:
            dumps = json.dumps
            for row in connection.execute(QUERY):
                record = dict(zip(KEYS, row))
                for key in ("flagged", "new", "unread"):
                    record[key] = bool(record[key])
                for index in TIMESTAMPS:
                    value = row[index]
                    if value is not None:
                        record[KEYS[index]] = value.replace(" ", "T") + "+00:00"
                out.write(dumps(record, ensure_ascii=False) + "\n")
    finally:
        connection.close()
    return time.perf_counter() - started


def digest(path: Path) -> str:
    hashed, lines = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for line in handle:
            hashed.update(line)
            lines += 1
    return f"{lines}:{hashed.hexdigest()[:16]}"


def measure(bench: Bench, backend: str) -> list[Row]:
    chats = bench.size(full=1_000_000, quick=50_000)
    if backend == "postgresql":
        postgres = bench.postgres()
        url = postgres.create("export_desk")
        import psycopg

        with psycopg.connect(url) as connection:
            for statement in seed_statements(backend, chats):
                connection.execute(statement)
        postgres.freeze("export_desk")
        floor = lambda out: postgres_floor(url, out)  # noqa: E731
    else:
        path = bench.scratch / "export.db"
        url = f"sqlite:///{path}"
        subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, "-q", "db", "init"], check=True)
        import sqlite3

        connection = sqlite3.connect(path)
        for statement in seed_statements(backend, chats):
            connection.execute(statement)
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
        floor = lambda out: sqlite_floor(str(path), out)  # noqa: E731
    command = ("chats", "list", "closed", "--all", "-o", "jsonl")
    # Once to files: both sides must print the same bytes.
    floor_file, chatctl_file = bench.scratch / "floor.jsonl", bench.scratch / "chatctl.jsonl"
    floor(str(floor_file))
    with chatctl_file.open("w") as out:
        subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *command], stdout=out, check=True,
                       env={**__import__("os").environ, "CHATCTL_ACTOR": "ops:bench"})
    floor_print, chatctl_print = digest(floor_file), digest(chatctl_file)
    floor_file.unlink()
    chatctl_file.unlink()
    floors, timings = [], []
    for run in range(bench.runs):
        floors.append(floor("/dev/null"))
        timing = bench.chatctl(url, *command, keep_stdout=False)
        timings.append(timing)
        bench.log(f"run {run + 1}: floor {floors[-1]:.2f}s; chatctl {timing.inprocess_s:.2f}s in process, "
                  f"{timing.process_s:.2f}s whole, peak RSS {timing.peak_rss_mb:.0f} MB")
    driver = "psycopg (server-side cursor)" if backend == "postgresql" else "sqlite3"
    peak = max(t.peak_rss_mb for t in timings)
    rows = [
        Row(f"floor: the same query through plain {driver}, `json.dumps` per row", inprocess=floors,
            changed=chats, fingerprint=floor_print, floor=True),
        Row(f"chatctl `{' '.join(command)}`", process=[t.process_s for t in timings],
            inprocess=[t.inprocess_s for t in timings], changed=chats, fingerprint=chatctl_print,
            goal=Goal("within 3x the floor", ratio=3.0),
            note=f"peak RSS {peak:.0f} MiB (goal: under 150 MiB{'' if peak < 150 else ': MISSED'}); "
                 f"{chats / min(t.inprocess_s for t in timings):,.0f} rows/s at best"),
    ]
    bench.facts["desk"] = f"{chats:,} closed chats, 100,000 customers, 12 agents, every column filled"
    return rows


SECTIONS = [
    Section("export-postgresql", "Exports: `chats list closed --all -o jsonl` on PostgreSQL",
            lambda bench: measure(bench, "postgresql"), order=30),
    Section("export-sqlite", "Exports: `chats list closed --all -o jsonl` on SQLite",
            lambda bench: measure(bench, "sqlite"), order=31, needs_postgres=False),
]
