"""What every benchmark section shares: the section registry, result rows, timing and checks.

A section is a function that measures one thing and returns rows; ``bench/run.py``
finds every ``SECTIONS`` list in ``bench/*.py``, runs them, checks them and writes
their tables into ``docs/benchmarks.md``.  To add one, put this in a module of
``bench/``::

    from harness import Goal, Row, Section

    def measure(bench):                       # bench: a Bench (sizes, runs, servers, timing)
        chats = bench.size(full=100_000, quick=5_000)
        url = bench.postgres().fresh("mine")  # a private PostgreSQL 15, a database at head
        ...
        timing = bench.chatctl(url, "chats", "close", "-", stdin=ids_text)   # a Timing
        return [Row("floor: ...", inprocess=floor_runs, changed=n, fingerprint=f, floor=True),
                Row("chatctl ...", process=[t.process_s for t in timings],
                    inprocess=[t.inprocess_s for t in timings], changed=n, fingerprint=f,
                    goal=Goal("within 1.5x the floor", ratio=1.5))]

    SECTIONS = [Section("mine", "What it measures", measure, order=50)]

The rules the runner enforces, so a table can be trusted:

* a row marked ``floor=True`` is the baseline of the rows after it in the same
  section; each of those must report the same ``changed`` count and (when given)
  the same ``fingerprint`` as the floor, or the whole run fails;
* every chatctl row reports both times: ``process`` (exec to exit, start-up
  included) and ``inprocess`` (inside ``chatctl.cli.run``, with every library and
  chatctl module imported before the clock starts: start-up excluded); a goal
  says which one it is judged on (``basis``), and the table says it too;
* a goal on absolute seconds holds at full size only: a ``--quick`` run shows
  it as not judged (start-up does not shrink with the size, so no scaling is fair).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))


class BenchFailure(Exception):
    """A benchmark that cannot be trusted: a floor that did other work than chatctl, a failed command."""


@dataclasses.dataclass(frozen=True)
class Goal:
    """What a row should achieve.  ``ratio``: at most this multiple of the section's floor;
    ``seconds``: at most this many seconds (at full size; scaled in quick runs);
    ``basis``: which time the goal is judged on, "inprocess" or "process"."""

    text: str
    ratio: float | None = None
    seconds: float | None = None
    basis: str = "inprocess"

    def __post_init__(self) -> None:
        if self.basis not in ("inprocess", "process"):
            raise ValueError(f"goal basis must be inprocess or process, not {self.basis!r}")
        if (self.ratio is None) == (self.seconds is None):
            raise ValueError("a goal is either a ratio to the floor or a number of seconds")


@dataclasses.dataclass
class Row:
    """One line of a section's table.  Times are lists of seconds, one per run."""

    what: str
    process: list[float] = dataclasses.field(default_factory=list)
    inprocess: list[float] = dataclasses.field(default_factory=list)
    changed: int | None = None
    fingerprint: str | None = None
    floor: bool = False
    goal: Goal | None = None
    note: str = ""
    unit: str = "s"  # "s" or "ms": how the times are shown
    compare: bool = True  # False: a row of another size or kind, shown without a ratio to the floor


@dataclasses.dataclass(frozen=True)
class Section:
    name: str
    title: str
    measure: Callable[[Bench], list[Row]]
    order: int = 100
    needs_postgres: bool = True


@dataclasses.dataclass
class Timing:
    """One chatctl process: wall time from exec to exit (``process_s``, start-up included), time
    inside ``chatctl.cli.run`` with every module already imported (``inprocess_s``, start-up
    excluded), peak RSS, its write transactions (BEGIN to COMMIT of those that wrote)."""

    process_s: float
    inprocess_s: float
    exit_code: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    transactions: int
    slowest_transaction_s: float
    median_transaction_s: float


# Runs inside the chatctl child: time chatctl.cli.run and every write transaction.
CHILD = r"""
import json, sys, time
report_path, argv = sys.argv[1], sys.argv[2:]
sys.argv = ["chatctl", *argv]  # as the installed script sees it
from sqlalchemy import event
from sqlalchemy.engine import Engine
spans, started, writes = [], {}, set()
@event.listens_for(Engine, "begin")
def _begin(connection):
    started[id(connection)] = time.perf_counter()
@event.listens_for(Engine, "before_cursor_execute")
def _statement(connection, cursor, statement, parameters, context, executemany):
    if statement.lstrip()[:6].upper().startswith(("UPDATE", "INSERT", "DELETE", "WITH", "COPY")):
        writes.add(id(connection))
def _end(connection):
    begun = started.pop(id(connection), None)
    if begun is not None and id(connection) in writes:
        spans.append(time.perf_counter() - begun)
    writes.discard(id(connection))
event.listen(Engine, "commit", _end)
event.listen(Engine, "rollback", _end)
# Start-up stays out of the in-process time: every library and chatctl module is
# loaded before the clock starts, so what is timed is the command's own work (the
# drivers of both databases, and platformdirs, which finds the default config).
import importlib, pkgutil
import chatctl, psycopg, sqlalchemy.dialects.postgresql.psycopg, sqlalchemy.dialects.sqlite, sqlite3, platformdirs
import alembic.runtime.migration, alembic.script
for module in pkgutil.walk_packages(chatctl.__path__, "chatctl."):
    if ".migrations" not in module.name and not module.name.endswith("__main__"):
        importlib.import_module(module.name)
from chatctl.cli import run
begun = time.perf_counter()
try:
    code = run(argv)
finally:
    elapsed = time.perf_counter() - begun
    spans.sort()
    with open(report_path, "w") as out:
        json.dump({"inprocess_s": elapsed, "transactions": len(spans),
                   "slowest_s": spans[-1] if spans else 0.0,
                   "median_s": spans[len(spans) // 2] if spans else 0.0}, out)
sys.stdout.flush()
sys.exit(code)
"""


class Postgres:
    """The private PostgreSQL server of one benchmark run (tests/pgserver.py settings)."""

    def __init__(self) -> None:
        from pgserver import PostgresServer

        self.server = PostgresServer()
        self.server.start()
        self.templates: set[str] = set()

    def url(self, database: str) -> str:
        return self.server.url(database)

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server.url("postgres"), autocommit=True) as connection:
            connection.execute(statement)

    def create(self, name: str, *, at_head: bool = True) -> str:
        """A new empty database (at schema head unless ``at_head=False``)."""
        self.drop(name)
        self.admin(f"CREATE DATABASE {name}")
        url = self.url(name)
        if at_head:
            from chatctl.storage import schema
            from chatctl.storage.engine import create_engine

            engine = create_engine(url)
            try:
                schema.upgrade(engine)
            finally:
                engine.dispose()
        return url

    def freeze(self, name: str) -> None:
        """Make ``name`` a template: vacuumed, analysed, checkpointed."""
        import psycopg

        with psycopg.connect(self.url(name), autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE, FREEZE)")
            connection.execute("CHECKPOINT")
        self.templates.add(name)

    def fresh(self, name: str, template: str) -> str:
        """A copy of ``template`` under ``name``, so every run does the same work."""
        self.drop(name)
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres")) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]

    def stop(self) -> None:
        self.server.stop()


class Bench:
    """What a section gets: sizes, run counts, servers, a scratch directory and timing."""

    def __init__(self, *, quick: bool, runs: int | None = None, log=print, fraction: float | None = None) -> None:
        self.quick = quick
        self.fraction = fraction  # --fraction: every section's full size times this (a machine too small)
        self.runs = runs or 3
        self.log = log
        self.scratch = Path(tempfile.mkdtemp(prefix="chatctl-bench-"))
        self._postgres: Postgres | None = None
        self.scale = 1.0  # set by size(): quick size / full size of the section's main size
        self.facts: dict[str, str] = {}  # what a section wants said under its table (desk size, ...)

    def size(self, *, full: int, quick: int) -> int:
        """The section's main size; also sets ``scale`` for goals in seconds."""
        if self.quick:
            self.scale = quick / full
            return quick
        if self.fraction is not None:
            self.scale = self.fraction
            return round(full * self.fraction)
        self.scale = 1.0
        return full

    def postgres(self) -> Postgres:
        if self._postgres is None:
            self._postgres = Postgres()
        return self._postgres

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()
        import shutil

        shutil.rmtree(self.scratch, ignore_errors=True)

    def chatctl(self, url: str | None, *args: str, stdin: str | None = None, actor: str = "ops:bench",
                env: dict[str, str] | None = None, check: bool = True, keep_stdout: bool = True) -> Timing:
        """Run chatctl in a fresh process; time it whole and inside ``chatctl.cli.run``."""
        report = self.scratch / f"child-{time.monotonic_ns()}.json"
        argv = [sys.executable, "-c", CHILD, str(report)]
        if url is not None:
            argv += ["--database-url", url]
        argv += list(args)
        child_env = {**os.environ, "CHATCTL_ACTOR": actor, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
        stdin_file = None
        if stdin is not None:
            stdin_file = (self.scratch / f"stdin-{time.monotonic_ns()}").open("w+")
            stdin_file.write(stdin)
            stdin_file.seek(0)
        out = tempfile.TemporaryFile(mode="w+", dir=self.scratch) if keep_stdout else subprocess.DEVNULL
        err = tempfile.TemporaryFile(mode="w+", dir=self.scratch)
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdin=stdin_file or subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=child_env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        process_s = time.perf_counter() - started
        child.returncode = code = os.waitstatus_to_exitcode(status)
        if stdin_file is not None:
            stdin_file.close()
            Path(stdin_file.name).unlink()
        stdout = ""
        if keep_stdout:
            out.seek(0)
            stdout = out.read()
            out.close()
        err.seek(0)
        stderr = err.read()
        err.close()
        if check and code not in (0,):
            raise BenchFailure(f"chatctl {' '.join(args)} failed with exit {code}: {stderr[-2000:]}")
        try:
            inside = json.loads(report.read_text())
            report.unlink()
        except (OSError, ValueError):
            raise BenchFailure(f"chatctl {' '.join(args)} left no timing report (exit {code}): {stderr[-2000:]}")
        return Timing(process_s=process_s, inprocess_s=inside["inprocess_s"], exit_code=code, stdout=stdout,
                      stderr=stderr, peak_rss_mb=usage.ru_maxrss / 1024, transactions=inside["transactions"],
                      slowest_transaction_s=inside["slowest_s"], median_transaction_s=inside["median_s"])


def fingerprint(rows: Iterable) -> str:
    """A short digest of query rows (order them in the query), to compare what two runs left behind."""
    digest = hashlib.sha256()
    count = 0
    for row in rows:
        digest.update(repr(tuple(_plain(value) for value in row)).encode())
        count += 1
    return f"{count}:{digest.hexdigest()[:16]}"


def _plain(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def copy_sqlite(source: Path, target: Path) -> None:
    """A fresh copy of a SQLite desk, written to disk before anything is timed on it.

    Left in the page cache, the copy is written back by the first fsync that
    follows: chatctl's checkpoint as it closes the database, inside its timing
    (the floor's comes after its timing), so a run would pay for the bench's own
    copying - some 30 ms for a 100,000-chat desk.
    """
    import shutil

    shutil.copy(source, target)
    with open(target, "rb+") as copy:
        os.fsync(copy.fileno())


def time_call(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return time.perf_counter() - started, value
