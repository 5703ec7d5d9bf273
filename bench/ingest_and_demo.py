"""Sections ``ingest`` and ``demo-load``: `chatctl events ingest` and `chatctl demo load` on PostgreSQL.

* ingest: N generated events (a realistic mix: chats started in and out of
  business hours, customer and agent messages, revivals of pending chats,
  presence changes), each run on a fresh database; the median of --repeat
  runs beside the floor: the very rows the ingest wrote (customers, chats,
  messages, tickets, audit events) loaded into a fresh database by plain
  COPY statements in one transaction (so the floor writes exactly what
  chatctl wrote); a run at a tenth of the size beside it shows that memory
  does not grow with the input (peak RSS);
* demo: `demo load --chats N` on a fresh database; wall time and rows/s.

    python bench/run.py --only ingest --only demo-load
"""

from __future__ import annotations

import datetime as dt
import json
import random
import statistics
import time
from pathlib import Path

from harness import Bench, Goal, Row, Section

AGENTS = [f"agent{n}" for n in range(1, 11)]
TABLES = ("customers", "chats", "messages", "tickets", "audit_events")


def write_events(path: Path, count: int, seed: int = 1) -> dict[str, int]:
    """A day-by-day stream of traffic from Monday 2026-11-02 on, in time order."""
    rng = random.Random(seed)
    at = dt.datetime(2026, 11, 2, 6, 0, tzinfo=dt.timezone.utc)
    open_chats: list[int] = []
    next_chat = 1
    kinds: dict[str, int] = {}
    with path.open("w") as out:
        for _ in range(count):
            at += dt.timedelta(seconds=rng.randint(1, 12))
            roll = rng.random()
            if roll < 0.02:
                event = {"type": "presence", "agent": rng.choice(AGENTS),
                         "status": "online" if rng.random() < 0.7 else "offline"}
            elif roll < 0.22 or not open_chats:
                event = {"type": "chat_started", "chat": next_chat, "customer": f"+2782{rng.randrange(10**7):07d}",
                         "channel": rng.choice(("whatsapp", "webchat", "sms", "messenger")), "text": "Hi"}
                if rng.random() < 0.5:
                    event["agent"] = rng.choice(AGENTS)
                open_chats.append(next_chat)
                if len(open_chats) > 2000:
                    open_chats.pop(0)
                next_chat += 1
            elif roll < 0.65:
                event = {"type": "customer_message", "chat": rng.choice(open_chats), "text": "any news?"}
            else:
                event = {"type": "agent_message", "chat": rng.choice(open_chats), "agent": rng.choice(AGENTS),
                         "text": "Looking into it."}
            event["at"] = at.isoformat()
            kinds[event["type"]] = kinds.get(event["type"], 0) + 1
            out.write(json.dumps(event) + "\n")
    return kinds


def desk_template(bench: Bench) -> None:
    """A migrated desk with ten online agents."""
    url = bench.postgres().create("ingest_base")
    for handle in AGENTS:
        bench.chatctl(url, "agents", "add", handle, "--name", handle.title(), "--online")
    bench.postgres().freeze("ingest_base")


def copy_floor(source_url: str, target_url: str) -> float:
    """Seconds to COPY the rows an ingest wrote into a fresh desk, in one transaction."""
    import psycopg

    dumps = {}
    with psycopg.connect(source_url) as source:
        for table in TABLES:
            buffer = bytearray()
            # The template's own audit rows (agents added) are already in the target.
            query = "SELECT * FROM audit_events WHERE action LIKE 'events.%'" if table == "audit_events" \
                else f"SELECT * FROM {table}"
            with source.cursor().copy(f"COPY ({query}) TO STDOUT") as copy:
                for block in copy:
                    buffer += block
            dumps[table] = bytes(buffer)
    with psycopg.connect(target_url) as target:
        started = time.perf_counter()
        with target.transaction():
            for table in TABLES:
                with target.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    copy.write(dumps[table])
        return time.perf_counter() - started


def written(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as connection:
        return sum(connection.execute(
            f"SELECT count(*) FROM {table}" + (" WHERE action LIKE 'events.%%'" if table == "audit_events" else "")
        ).fetchone()[0] for table in TABLES)


def ingest(bench: Bench) -> list[Row]:
    events = bench.size(full=100_000, quick=10_000)
    postgres = bench.postgres()
    desk_template(bench)
    rows: list[Row] = []
    for count, label in ((events, ""), (events // 10, ", a tenth of the size (memory)")):
        path = bench.scratch / f"events-{count}.jsonl"
        kinds = write_events(path, count)
        text = path.read_text()
        times, floors, changed = [], [], set()
        for run in range(bench.runs if not label else 1):
            url = postgres.fresh("ingest_run", "ingest_base")
            timing = bench.chatctl(url, "-q", "events", "ingest", "-", "-o", "json", stdin=text)
            times.append(timing)
            changed.add(written(url))
            if not label:
                floor_url = postgres.fresh("ingest_floor", "ingest_base")
                floors.append(copy_floor(url, floor_url))
                changed.add(written(floor_url))
                postgres.drop("ingest_floor")
            postgres.drop("ingest_run")
            bench.log(f"ingest {count} events run {run + 1}: {timing.inprocess_s:.2f}s in process, "
                      f"{timing.process_s:.2f}s whole" + (f"; COPY floor {floors[-1]:.2f}s" if floors else ""))
        (rows_written,) = changed  # the floor copies exactly what chatctl wrote
        if not label:
            rows.append(Row(f"floor: the same {rows_written:,} rows by plain `COPY`, one transaction",
                            inprocess=floors, changed=rows_written, floor=True))
            bench.facts["events"] = (f"{count:,} events: " + ", ".join(f"{n:,} {kind}" for kind, n in
                                                                       sorted(kinds.items())))
        rows.append(Row(f"chatctl `events ingest -`, {count:,} events{label}", process=[t.process_s for t in times],
                        inprocess=[t.inprocess_s for t in times], changed=rows_written if not label else None,
                        compare=not label,
                        goal=None if label else Goal("within 2.5x of `COPY`", ratio=2.5),
                        note=(f"{count / statistics.median(t.process_s for t in times):,.0f} events/s "
                              f"(whole process; {count / statistics.median(t.inprocess_s for t in times):,.0f} "
                              f"in process); peak RSS {max(t.peak_rss_mb for t in times):.0f} MB")))
    return rows


def demo_load(bench: Bench) -> list[Row]:
    chats = bench.size(full=1_000_000, quick=20_000)
    postgres = bench.postgres()
    times, summary = [], {}
    for run in range(1 if not bench.quick else bench.runs):
        url = postgres.create("demo_run")
        timing = bench.chatctl(url, "demo", "load", "--chats", str(chats), "--now", "2026-11-30T10:00:00Z",
                               "-o", "json")
        summary = json.loads(timing.stdout)
        times.append(timing)
        postgres.drop("demo_run")
        bench.log(f"demo load {chats} chats: {timing.process_s:.1f}s")
    rows = sum(summary[key] for key in ("chats", "customers", "messages", "comments", "tags", "notifications",
                                        "tickets"))
    median = statistics.median(t.process_s for t in times)
    return [Row(f"chatctl `demo load --chats {chats}` into an empty desk", process=[t.process_s for t in times],
                inprocess=[t.inprocess_s for t in times], changed=rows,
                goal=Goal("a few minutes (5) for 1,000,000 chats", seconds=300, basis="process"),
                note=f"{rows / median:,.0f} rows/s; peak RSS {max(t.peak_rss_mb for t in times):.0f} MB")]


SECTIONS = [Section("ingest", "Event ingest: `events ingest -` on PostgreSQL", ingest, order=40),
            Section("demo-load", "Demo load: `demo load` on PostgreSQL", demo_load, order=41)]
