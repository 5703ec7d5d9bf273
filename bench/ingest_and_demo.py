"""Benchmark: `chatctl events ingest` and `chatctl demo load` on PostgreSQL.

* ingest: N generated events (a realistic mix: chats started in and out of
  business hours, customer and agent messages, revivals of pending chats,
  presence changes), each run on a fresh database; the median of --repeat
  runs beside the floor: the very rows the ingest wrote (customers, chats,
  messages, tickets, audit events) loaded into a fresh database by plain
  COPY statements in one transaction.
* demo: `demo load --chats N` once on a fresh database; wall time and rows/s.

Starts a private PostgreSQL server (tests/pgserver.py) unless --url names one.
Runs chatctl as a subprocess, so start-up is included.

    python bench/ingest_and_demo.py --events 100000 --repeat 3 --demo-chats 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

AGENTS = [f"agent{n}" for n in range(1, 11)]
TABLES = ("customers", "chats", "messages", "tickets", "audit_events")


def chatctl(url: str, *args: str, stdin=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, "-q", *args],
                            stdin=stdin, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"chatctl {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


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


class Databases:
    def __init__(self, base: str) -> None:
        self.base = base
        self.count = 0

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.base + "/postgres", autocommit=True) as connection:
            connection.execute(statement)

    def fresh(self, template: str | None = None) -> str:
        self.count += 1
        name = f"bench_{os.getpid()}_{self.count}"
        self.admin(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
        return name

    def drop(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def desk_template(dbs: Databases) -> str:
    """A migrated desk with ten online agents."""
    name = dbs.fresh()
    url = f"{dbs.base}/{name}"
    chatctl(url, "db", "init")
    for handle in AGENTS:
        chatctl(url, "agents", "add", handle, "--name", handle.title(), "--online")
    return name


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


def bench_ingest(dbs: Databases, template: str, events: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "events.jsonl"
        kinds = write_events(path, events)
        times, floors, summary = [], [], None
        for run in range(repeat):
            name = dbs.fresh(template)
            url = f"{dbs.base}/{name}"
            with path.open() as stdin:
                started = time.perf_counter()
                result = chatctl(url, "events", "ingest", "-", "-o", "json", stdin=stdin)
                times.append(time.perf_counter() - started)
            summary = json.loads(result.stdout)
            floor_db = dbs.fresh(template)
            floors.append(copy_floor(url, f"{dbs.base}/{floor_db}"))
            dbs.drop(floor_db)
            dbs.drop(name)
            print(f"  ingest run {run + 1}: {times[-1]:.2f}s (COPY floor {floors[-1]:.2f}s)", flush=True)
    ingest_s, floor_s = statistics.median(times), statistics.median(floors)
    return {"events": events, "kinds": kinds, "runs_s": [round(t, 2) for t in times],
            "median_s": round(ingest_s, 2), "events_per_s": round(events / ingest_s),
            "floor_runs_s": [round(t, 2) for t in floors], "floor_median_s": round(floor_s, 2),
            "ratio_to_floor": round(ingest_s / floor_s, 1),
            "summary": {k: v for k, v in (summary or {}).items() if k != "generated_chats"}}


def bench_demo(dbs: Databases, chats: int) -> dict:
    name = dbs.fresh()
    url = f"{dbs.base}/{name}"
    chatctl(url, "db", "init")
    started = time.perf_counter()
    result = chatctl(url, "demo", "load", "--chats", str(chats), "--now", "2026-11-30T10:00:00Z", "-o", "json")
    elapsed = time.perf_counter() - started
    summary = json.loads(result.stdout)
    rows = sum(summary[key] for key in ("chats", "customers", "messages", "comments", "tags", "notifications",
                                        "tickets"))
    dbs.drop(name)
    return {"chats": chats, "seconds": round(elapsed, 1), "rows": rows, "rows_per_s": round(rows / elapsed),
            "chats_per_s": round(chats / elapsed), "summary": summary}


def machine(base: str) -> dict:
    import psycopg

    with psycopg.connect(base + "/postgres") as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "ram_gb": round(memory_kb / 1024 / 1024, 1), "postgresql": version,
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events per ingest run (default 100000)")
    parser.add_argument("--repeat", type=int, default=3, help="ingest runs; the median is reported (default 3)")
    parser.add_argument("--demo-chats", type=int, default=1_000_000, help="chats for demo load; 0 skips it")
    parser.add_argument("--url", help="a PostgreSQL server to use (postgresql://user@host:port), "
                        "instead of starting a private one")
    args = parser.parse_args()

    server = None
    base = args.url
    if not base:
        from pgserver import PostgresServer

        server = PostgresServer()
        server.start()
        base = server.url("").rstrip("/")
    try:
        dbs = Databases(base)
        results = {"machine": machine(base)}
        print(json.dumps(results["machine"]), flush=True)
        if args.events:
            template = desk_template(dbs)
            results["ingest"] = bench_ingest(dbs, template, args.events, args.repeat)
            dbs.drop(template)
            print(json.dumps(results["ingest"]), flush=True)
        if args.demo_chats:
            results["demo"] = bench_demo(dbs, args.demo_chats)
            print(json.dumps(results["demo"]), flush=True)
        print(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
