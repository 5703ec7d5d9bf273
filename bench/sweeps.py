"""The inactivity sweep on a big desk, beside the floor and a naive ORM loop.

* the desk: ``chatctl demo load --chats N --now NOW`` (about 11% of its chats are
  live, unflagged and idle past the 30-minute inactivity timeout at NOW);
* chatctl: ``chatctl sweep run inactivity --as-of NOW --batch-size B`` in a
  fresh process, for each batch size; the run's own ``duration_s`` and its
  longest batch transaction (``sweep show``) are recorded;
* the floor: the same closes, R9 purge and audit rows done by hand-written SQL
  with no batching (PostgreSQL: one statement; SQLite: four statements in one
  transaction, as it has no data-modifying CTEs);
* naive ORM: load each eligible chat as an ORM object, delete its comments and
  tags, mark notifications read, add an AuditEvent, commit per chat.  It runs
  on the first ``--orm-sample`` eligible chats and is extrapolated to all of
  them (labelled as such).

Each run starts from the same data: a PostgreSQL database cloned from a
template (``CREATE DATABASE ... TEMPLATE``) or a copied SQLite file.

Example:
    python bench/sweeps.py --backend postgresql --chats 1000000 --runs 3
    python bench/sweeps.py --backend sqlite --chats 100000 --runs 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent / "src"))

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)

ELIGIBLE = ("c.status = 'live' AND c.flagged = false AND c.last_activity_at < {cutoff} "
            "AND (c.assigned_at IS NULL OR c.assigned_at < {as_of})")

PG_FLOOR = """
WITH changed AS (
    UPDATE chats c
       SET status = 'closed', closed_at = %(as_of)s, closed_by = 'system', close_reason = 'inactivity',
           pending_since = NULL
      FROM chats old
     WHERE old.id = c.id AND """ + ELIGIBLE.format(cutoff="%(cutoff)s", as_of="%(as_of)s") + """
 RETURNING c.id, old.status AS old_status, old.pending_since AS old_pending_since
), read_notes AS (
    UPDATE notifications n SET read_at = %(as_of)s FROM changed
     WHERE n.chat_id = changed.id AND n.read_at IS NULL AND n.kind = 'tagged' RETURNING n.chat_id
), gone_tags AS (
    DELETE FROM comment_mentions m USING changed WHERE m.chat_id = changed.id RETURNING m.chat_id
), gone_comments AS (
    DELETE FROM comments x USING changed WHERE x.chat_id = changed.id RETURNING x.chat_id
), purged AS (
    SELECT chat_id, sum(a) AS comments, sum(b) AS tags, sum(n) AS notes FROM (
        SELECT chat_id, 1 AS a, 0 AS b, 0 AS n FROM gone_comments
        UNION ALL SELECT chat_id, 0, 1, 0 FROM gone_tags
        UNION ALL SELECT chat_id, 0, 0, 1 FROM read_notes) AS removed GROUP BY chat_id
)
INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
SELECT %(as_of)s, 'system', 'sweep.inactivity', 'chat', changed.id::text,
       jsonb_build_object('status', old_status, 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL,
                          'pending_since', old_pending_since),
       jsonb_build_object('status', 'closed', 'closed_at', %(as_of)s, 'closed_by', 'system',
                          'close_reason', 'inactivity', 'pending_since', NULL),
       'FLOOR', CASE WHEN purged.chat_id IS NULL THEN 'inactivity'
                     ELSE 'inactivity; comments_removed=' || purged.comments || ', tags_removed=' || purged.tags
                          || ', notifications_read=' || purged.notes END
  FROM changed LEFT JOIN purged ON purged.chat_id = changed.id
"""

SQLITE_FLOOR = [
    """INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
       SELECT :as_of, 'system', 'sweep.inactivity', 'chat', CAST(c.id AS TEXT),
              json_object('status', c.status, 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL,
                          'pending_since', c.pending_since),
              json_object('status', 'closed', 'closed_at', :as_of, 'closed_by', 'system',
                          'close_reason', 'inactivity', 'pending_since', NULL),
              'FLOOR', 'inactivity'
         FROM chats c WHERE """ + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of"),
    "UPDATE notifications SET read_at = :as_of WHERE read_at IS NULL AND kind = 'tagged' AND chat_id IN "
    "(SELECT c.id FROM chats c WHERE " + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "DELETE FROM comment_mentions WHERE chat_id IN (SELECT c.id FROM chats c WHERE "
    + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "DELETE FROM comments WHERE chat_id IN (SELECT c.id FROM chats c WHERE "
    + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "UPDATE chats AS c SET status = 'closed', closed_at = :as_of, closed_by = 'system', "
    "close_reason = 'inactivity', pending_since = NULL WHERE " + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of"),
]


def chatctl(url: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"chatctl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
    return result


class Postgres:
    name = "postgresql"

    def __init__(self) -> None:
        from pgserver import PostgresServer

        self.server = PostgresServer()
        self.server.start()
        self.base = "sweeps_base"

    def admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server.url("postgres"), autocommit=True) as connection:
            connection.execute(statement)

    def create_base(self) -> str:
        self.admin(f"CREATE DATABASE {self.base}")
        return self.server.url(self.base)

    def finish_base(self) -> None:
        import psycopg

        with psycopg.connect(self.server.url(self.base), autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
            connection.execute("CHECKPOINT")

    def fresh(self, name: str) -> str:
        self.admin(f"DROP DATABASE IF EXISTS {name}")
        self.admin(f"CREATE DATABASE {name} TEMPLATE {self.base}")
        return self.server.url(name)

    def drop(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def floor(self, url: str) -> float:
        import psycopg

        with psycopg.connect(url) as connection:
            started = time.perf_counter()
            connection.execute(PG_FLOOR, {"as_of": NOW, "cutoff": NOW - dt.timedelta(minutes=30)})
            connection.commit()
            return time.perf_counter() - started

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.server.url("postgres")) as connection:
            return connection.execute("SHOW server_version").fetchone()[0]

    def stop(self) -> None:
        self.server.stop()


class Sqlite:
    name = "sqlite"

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="chatctl-bench-"))
        self.base = self.root / "base.db"

    def create_base(self) -> str:
        return f"sqlite:///{self.base}"

    def finish_base(self) -> None:
        import sqlite3

        connection = sqlite3.connect(self.base)
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def fresh(self, name: str) -> str:
        path = self.root / f"{name}.db"
        shutil.copy(self.base, path)
        return f"sqlite:///{path}"

    def drop(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            (self.root / f"{name}.db{suffix}").unlink(missing_ok=True)

    def floor(self, url: str) -> float:
        from sqlalchemy import text

        from chatctl.storage.engine import create_engine
        from chatctl.storage.models import UTCDateTime

        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                started = time.perf_counter()
                with connection.begin():
                    for statement in SQLITE_FLOOR:
                        bound = text(statement).bindparams(
                            *[__import__("sqlalchemy").bindparam(n, type_=UTCDateTime()) for n in ("as_of", "cutoff")
                              if f":{n}" in statement])
                        connection.execute(bound, {"as_of": NOW, "cutoff": NOW - dt.timedelta(minutes=30)})
                return time.perf_counter() - started
        finally:
            engine.dispose()

    def version(self) -> str:
        import sqlite3

        return sqlite3.sqlite_version

    def stop(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def naive_orm(url: str, sample: int) -> tuple[int, float]:
    """Close ``sample`` eligible chats one ORM object and one commit at a time."""
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session

    from chatctl.domain.audit import writer as audit
    from chatctl.storage.engine import create_engine
    from chatctl.storage.models import AuditEvent, Chat, Comment, CommentMention, Notification

    engine = create_engine(url)
    cutoff = NOW - dt.timedelta(minutes=30)
    done = 0
    try:
        with Session(engine) as session:
            ids = session.scalars(select(Chat.id).where(
                Chat.status == "live", Chat.flagged.is_(False), Chat.last_activity_at < cutoff,
                (Chat.assigned_at.is_(None)) | (Chat.assigned_at < NOW)).order_by(Chat.id).limit(sample)).all()
            session.commit()
            started = time.perf_counter()
            for chat_id in ids:
                chat = session.get(Chat, chat_id)
                if chat.status != "live" or chat.flagged or chat.last_activity_at >= cutoff:
                    continue
                before = {"status": chat.status, "closed_at": None, "closed_by": None, "close_reason": None,
                          "pending_since": chat.pending_since}
                chat.status, chat.closed_at, chat.closed_by = "closed", NOW, "system"
                chat.close_reason, chat.pending_since = "inactivity", None
                for notification in session.scalars(select(Notification).where(
                        Notification.chat_id == chat_id, Notification.read_at.is_(None))):
                    notification.read_at = NOW
                session.execute(delete(CommentMention).where(CommentMention.chat_id == chat_id))
                session.execute(delete(Comment).where(Comment.chat_id == chat_id))
                session.add(AuditEvent(**audit.event(
                    at=NOW, actor="system", action="sweep.inactivity", entity_type="chat", entity_id=chat_id,
                    operation_id="ORM", before=before,
                    after={"status": "closed", "closed_at": NOW, "closed_by": "system",
                           "close_reason": "inactivity", "pending_since": None}, reason="inactivity")))
                session.commit()
                done += 1
            return done, time.perf_counter() - started
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--chats", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-sizes", default="1000,2000,5000")
    parser.add_argument("--orm-sample", type=int, default=2000, help="eligible chats for the naive ORM loop")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]

    desk = Postgres() if args.backend == "postgresql" else Sqlite()
    figures: dict = {"backend": desk.name, "chats": args.chats, "runs": args.runs,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "platform": platform.platform(), "processor": _processor()}}
    try:
        figures["machine"]["database"] = f"{desk.name} {desk.version()}"
        url = desk.create_base()
        chatctl(url, "db", "upgrade")
        started = time.perf_counter()
        chatctl(url, "demo", "load", "--chats", str(args.chats), "--seed", "7", "--now", NOW.isoformat())
        figures["demo_load_s"] = round(time.perf_counter() - started, 1)
        desk.finish_base()
        print(f"demo load of {args.chats} chats: {figures['demo_load_s']}s", flush=True)

        url = desk.fresh("probe")
        dry = json.loads(chatctl(url, "sweep", "run", "inactivity", "--dry-run", "--as-of", NOW.isoformat(),
                                 "-o", "json").stdout)
        desk.drop("probe")
        eligible = dry["jobs"]["inactivity"]["changed"]
        figures["eligible"] = eligible
        print(f"eligible for inactivity at {NOW.isoformat()}: {eligible}", flush=True)

        sweep_times: dict[int, list[float]] = {size: [] for size in batch_sizes}
        longest: dict[int, list[float]] = {size: [] for size in batch_sizes}
        floors: list[float] = []
        for run in range(args.runs):
            for size in batch_sizes:
                url = desk.fresh("run")
                wall = time.perf_counter()
                out = json.loads(chatctl(url, "sweep", "run", "inactivity", "--as-of", NOW.isoformat(),
                                         "--batch-size", str(size), "-o", "json").stdout)
                wall = time.perf_counter() - wall
                assert out["jobs"]["inactivity"]["changed"] == eligible, out
                shown = json.loads(chatctl(url, "sweep", "show", out["run_id"], "-o", "json").stdout)
                sweep_times[size].append(out["duration_s"])
                longest[size].append(shown["longest_batch_s"])
                print(f"run {run + 1} chatctl batch {size}: {out['duration_s']:.2f}s "
                      f"(process {wall:.2f}s, longest batch {shown['longest_batch_s']:.3f}s)", flush=True)
                desk.drop("run")
            url = desk.fresh("floor")
            floors.append(desk.floor(url))
            print(f"run {run + 1} hand-written SQL: {floors[-1]:.2f}s", flush=True)
            desk.drop("floor")

        url = desk.fresh("orm")
        done, seconds = naive_orm(url, min(args.orm_sample, eligible))
        desk.drop("orm")
        per_chat = seconds / max(done, 1)
        figures["orm"] = {"sample": done, "sample_s": round(seconds, 2),
                          "extrapolated_s": round(per_chat * eligible, 1)}
        print(f"naive ORM: {done} chats in {seconds:.2f}s -> extrapolated {per_chat * eligible:.1f}s "
              f"for {eligible}", flush=True)

        floor = statistics.median(floors)
        figures["floor_s"] = round(floor, 3)
        figures["floor_runs"] = [round(value, 3) for value in floors]
        figures["chatctl"] = {
            size: {"median_s": round(statistics.median(times), 3), "runs": [round(t, 3) for t in times],
                   "ratio_to_floor": round(statistics.median(times) / floor, 2),
                   "longest_batch_s": round(max(longest[size]), 3)}
            for size, times in sweep_times.items()}
        print(json.dumps(figures, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    finally:
        desk.stop()


def _processor() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
