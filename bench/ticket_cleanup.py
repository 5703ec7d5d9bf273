"""Section ``ticket-cleanup``: `chatctl tickets close --where 'age>30d' --yes` on a big desk.

On a private PostgreSQL server this builds a desk of N tickets (1,000,000;
quick: 50,000) created over the last 60 days, so about half are older than 30
days, 85% of them open (drawn per ticket from its id), then times, on
identical copies of that database:

* the floor: one hand-written SQL statement doing the same change with its
  audit rows (a CTE ``UPDATE ... RETURNING`` feeding ``INSERT INTO
  audit_events SELECT``), and
* chatctl: the command above as a child process, output to a pipe.

Each run gets a fresh copy (``CREATE DATABASE ... TEMPLATE``) so every run
does the same work, and both sides must leave the same tickets closed.  For
chatctl it also records the slowest transaction (how long a batch holds its
row locks, measured in the child) and the child's peak RSS, which show short
locks and flat memory.

    python bench/run.py --only ticket-cleanup
"""

from __future__ import annotations

import datetime as dt
import statistics
import time

from harness import Bench, BenchFailure, Goal, Row, Section, fingerprint

# `age>30d` is relative to the clock of the process that runs it, so the desk is
# built relative to now, with no ticket aged between 29.5 and 30.5 days: the
# floor and chatctl, run minutes apart, close exactly the same tickets.
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
OPEN_PER_MILLE = 850
SPREAD_DAYS = 60
AGENTS = 20

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


def build(bench: Bench, tickets: int) -> int:
    """The template desk; returns how many tickets are open and older than 30 days."""
    import psycopg

    postgres = bench.postgres()
    url = postgres.create("tickets_base")
    params = {"n": tickets, "now": NOW, "days": SPREAD_DAYS, "open": OPEN_PER_MILLE,
              "agents": AGENTS}
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO agents (id, handle, name, role, presence, active, created_at) "
            "SELECT g, 'agent' || g, 'Agent ' || g, 'agent', 'online', true, %(now)s "
            "FROM generate_series(1, %(agents)s) g", params)
        # Spread and status come from the id (a multiplicative hash), not random(): the same desk every
        # time, and no volatile function that the planner may evaluate once for all rows.
        connection.execute(
            "INSERT INTO customers (id, display_name, address, created_at) "
            "SELECT g, 'Customer ' || g, '+27' || lpad(g::text, 9, '0'), "
            "       %(now)s - (CASE WHEN age < 29.5 THEN age ELSE age + 1 END) * interval '1 day' "
            "FROM (SELECT g, ((g::bigint * 2654435761) %% 1000003) / 1000003.0 * (%(days)s - 1) AS age "
            "      FROM generate_series(1, %(n)s) g) AS drawn", params)
        connection.execute(
            "INSERT INTO chats (id, customer_id, channel, status, created_at, last_activity_at, "
            "last_customer_message_at, reassign_count, flagged) "
            "SELECT id, id, 'whatsapp', 'converted', created_at, created_at, created_at, 0, false FROM customers")
        connection.execute(
            "INSERT INTO tickets (id, chat_id, status, reason, agent_id, created_at, closed_at) "
            "SELECT id, id, status, (ARRAY['out_of_hours','no_agents','inactivity','manual'])[1 + id %% 4], "
            "       CASE WHEN id %% 10 < 7 THEN 1 + (id %% %(agents)s) END, created_at, "
            "       CASE WHEN status = 'closed' THEN created_at + interval '2 hours' END "
            "FROM (SELECT id, created_at, CASE WHEN (id::bigint * 40503) %% 1000 < %(open)s "
            "                             THEN 'open' ELSE 'closed' END AS status FROM chats) AS drawn", params)
        for table in ("agents", "customers", "chats", "tickets"):
            connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
        older = connection.execute("SELECT count(*) FROM tickets WHERE created_at < %s",
                                   (NOW - dt.timedelta(days=30),)).fetchone()[0]
        matched = connection.execute(
            "SELECT count(*) FROM tickets WHERE status = 'open' AND archived_at IS NULL "
            "AND created_at < %s", (NOW - dt.timedelta(days=30),)).fetchone()[0]
    postgres.freeze("tickets_base")
    bench.facts["desk"] = (f"{tickets:,} tickets created over {SPREAD_DAYS} days before {NOW.isoformat()}; "
                           f"{older:,} older than 30 days, of which {matched:,} open "
                           f"({matched / max(older, 1):.0%}) and closed by each run")
    return matched


def closed_tickets(url: str) -> tuple[int, str]:
    """How many tickets the run closed, and a digest of them with their audit rows and what stayed open."""
    import psycopg

    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT t.id, t.status FROM tickets t JOIN audit_events a "
            "ON a.entity_id = t.id::text AND a.action = 'tickets.close' ORDER BY t.id").fetchall()
        still_open = connection.execute("SELECT count(*) FROM tickets WHERE status = 'open'").fetchall()
    return len(rows), fingerprint(rows + still_open)


def run_floor(url: str) -> float:
    import psycopg

    at = dt.datetime.now(dt.timezone.utc)
    params = {"at": at, "cutoff": at - dt.timedelta(days=30), "at_iso": at.isoformat(), "operation": "BENCHFLOOR"}
    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        connection.execute(FLOOR, params)
        connection.commit()
        return time.perf_counter() - started


def measure(bench: Bench) -> list[Row]:
    tickets = bench.size(full=1_000_000, quick=50_000)
    sizes = (1000,) if bench.quick else (1000, 2000)
    matched = build(bench, tickets)
    postgres = bench.postgres()
    floors, floor_prints = [], set()
    timings: dict[int, list] = {size: [] for size in sizes}
    prints: dict[int, set] = {size: set() for size in sizes}
    # Floor and chatctl runs alternate so that noise from other work falls on both alike.
    for run in range(bench.runs):
        url = postgres.fresh("tickets_run", "tickets_base")
        floors.append(run_floor(url))
        count, printed = closed_tickets(url)
        floor_prints.add((count, printed))
        postgres.drop("tickets_run")
        for size in sizes:
            url = postgres.fresh("tickets_run", "tickets_base")
            timing = bench.chatctl(url, "tickets", "close", "--where", "age>30d", "--yes", "--batch-size",
                                   str(size), "-o", "tsv")
            prints[size].add(closed_tickets(url))
            timings[size].append(timing)
            postgres.drop("tickets_run")
            bench.log(f"run {run + 1}: floor {floors[-1]:.2f}s; chatctl --batch-size {size} "
                      f"{timing.inprocess_s:.2f}s in process, {timing.process_s:.2f}s whole")
    ((floor_count, floor_print),) = floor_prints
    if floor_count != matched:
        raise BenchFailure(f"the floor closed {floor_count} tickets, {matched} were open and older than 30 days")
    rows = [Row("floor: one statement (`UPDATE ... RETURNING` feeding the audit `INSERT`)", inprocess=floors,
                changed=floor_count, fingerprint=floor_print, floor=True)]
    for size in sizes:
        ((count, printed),) = prints[size]
        runs = timings[size]
        rows.append(Row(f"chatctl `--batch-size {size}`" + (" (default)" if size == 1000 else ""),
                        process=[t.process_s for t in runs], inprocess=[t.inprocess_s for t in runs],
                        changed=count, fingerprint=printed,
                        goal=Goal("within 2x the floor", ratio=2.0) if size == 1000 else None,
                        note=(f"{max(t.transactions for t in runs):,} write transactions, median "
                              f"{statistics.median(t.median_transaction_s for t in runs) * 1000:.0f} ms, slowest "
                              f"{max(t.slowest_transaction_s for t in runs) * 1000:.0f} ms; peak RSS "
                              f"{max(t.peak_rss_mb for t in runs):.0f} MB")))
    return rows


SECTIONS = [Section("ticket-cleanup", "Ticket cleanup: `tickets close --where 'age>30d' --yes` on PostgreSQL",
                    measure, order=30)]
