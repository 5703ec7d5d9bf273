"""Sections ``hot-path-sqlite`` and ``hot-path-postgresql``: the commands people type all
day beside the imports they cannot avoid.

The floor is ``python -c "import typer, sqlalchemy, sqlite3"`` on SQLite and
the same with ``psycopg`` on PostgreSQL: the CLI framework, SQLAlchemy and the
driver, nothing else.  Goal: ``chats list live --limit 50`` and ``chats show``
within 1.5x of it, whole process (start-up is what is measured).  The desk is
``demo load --chats N`` (100,000; quick: 10,000); the chat shown is the first
of the live view.  Each command runs in a fresh process, all of them
interleaved round by round so a noisy neighbour slows them alike, after 2
untimed rounds, as an installed chatctl runs (bytecode cached); the CPU time
(user + system) is noted beside the wall-clock median, the steadier figure on
a shared machine.

    python bench/run.py --only hot-path-sqlite --only hot-path-postgresql
"""

from __future__ import annotations

import statistics
import subprocess
import sys

from harness import Bench, Goal, Row, Section
from startup import chatctl_command, time_builtin

NOW = "2026-12-01T10:00:00Z"
FLOORS = {"sqlite": "import typer, sqlalchemy, sqlite3", "postgresql": "import typer, sqlalchemy, psycopg"}


def load_desk(url: str, chats: int) -> None:
    for args in (["db", "init"], ["demo", "load", "--chats", str(chats), "--seed", "7", "--now", NOW]):
        subprocess.run([*chatctl_command(), "--database-url", url, "-q", *args], check=True,
                       stdout=subprocess.DEVNULL)


def first_live_chat(url: str) -> str:
    out = subprocess.run([*chatctl_command(), "--database-url", url, "chats", "list", "live", "--limit", "1",
                          "-o", "ids"], check=True, capture_output=True, text=True).stdout
    return out.split()[0]


def measure(bench: Bench, backend: str) -> list[Row]:
    chats = bench.size(full=100_000, quick=10_000)
    bench.scale = 1.0  # start-up does not shrink with the desk: the goal holds as it is
    runs = bench.size(full=7, quick=3)
    if backend == "postgresql":
        url = bench.postgres().create("hot_path", at_head=False)
    else:
        url = f"sqlite:///{bench.scratch / 'hot_path.db'}"
    load_desk(url, chats)
    chat = first_live_chat(url)
    chatctl = [*chatctl_command(), "--database-url", url]
    floor = f'python -c "{FLOORS[backend]}"'
    commands = {
        floor: ([sys.executable, "-c", FLOORS[backend]], {}),
        "chats list live --limit 50 -o tsv": ([*chatctl, "chats", "list", "live", "--limit", "50", "-o", "tsv"], {}),
        f"chats show {chat} -o json": ([*chatctl, "chats", "show", chat, "-o", "json"], {}),
        f"chats show {chat}": ([*chatctl, "chats", "show", chat, "-o", "plain"], {}),
    }
    wall, cpu = time_builtin(commands, runs, warmup=2)
    rows = []
    for name in commands:
        cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu[floor])
        rows.append(Row(f"floor: `{floor}`" if name == floor else f"`chatctl {name}`", process=wall[name],
                        floor=name == floor, unit="ms",
                        goal=None if name == floor else Goal("within 1.5x the floor", ratio=1.5, basis="process"),
                        note=f"CPU median {statistics.median(cpu[name]) * 1000:.0f} ms ({cpu_ratio:.2f}x the floor's)"))
    bench.runs = runs
    bench.facts["desk"] = f"`demo load --chats {chats}` ({backend})"
    return rows


SECTIONS = [
    Section("hot-path-sqlite", "Everyday commands on SQLite: `chats list`, `chats show` beside the imports",
            lambda bench: measure(bench, "sqlite"), order=2, needs_postgres=False),
    Section("hot-path-postgresql", "Everyday commands on PostgreSQL: `chats list`, `chats show` beside the imports",
            lambda bench: measure(bench, "postgresql"), order=3),
]
