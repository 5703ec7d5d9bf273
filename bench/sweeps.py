"""Sections ``sweeps-postgresql`` and ``sweeps-sqlite``: the inactivity sweep on a big desk.

* the desk: ``chatctl demo load --chats N --now NOW`` (about 11% of its chats are
  live, unflagged and idle past the 30-minute inactivity timeout at NOW);
* chatctl: ``chatctl sweep run inactivity --as-of NOW --batch-size B`` in a
  fresh process, for each batch size;
* the floor: the same closes, R9 purge and audit rows (with the purge counts in
  their ``after``, as chatctl writes them) by hand-written SQL with no batching
  (PostgreSQL: one statement; SQLite: five statements in one transaction, as it
  has no data-modifying CTEs); checked to leave the same chats, audit rows,
  comments and notifications as chatctl;
* naive ORM: load each eligible chat as an ORM object, delete its comments and
  tags, mark notifications read, add an AuditEvent, commit per chat, on a
  sample of the eligible chats, extrapolated to all of them (labelled as such).

Each run starts from the same data: a PostgreSQL database cloned from a
template (``CREATE DATABASE ... TEMPLATE``) or a copied SQLite file.

    python bench/run.py --only sweeps-postgresql --only sweeps-sqlite
"""

from __future__ import annotations

import datetime as dt
import json
import time

from harness import Bench, BenchFailure, Goal, Row, Section, copy_sqlite, fingerprint

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
                          'close_reason', 'inactivity', 'pending_since', NULL)
       || CASE WHEN purged.chat_id IS NULL THEN '{}'::jsonb
               ELSE jsonb_build_object('comments_removed', purged.comments, 'tags_removed', purged.tags,
                                       'notifications_read', purged.notes) END,
       'FLOOR', 'inactivity'
  FROM changed LEFT JOIN purged ON purged.chat_id = changed.id
"""

# SQLite has no data-modifying CTEs: five statements in one transaction.  The
# audit rows are written first, while the comments, tags and notifications they
# count are still there, so their events carry the same R9 counts as chatctl's.
SQLITE_FLOOR = [
    """WITH eligible AS (
           SELECT c.id, c.status, c.pending_since,
                  (SELECT count(*) FROM comments x WHERE x.chat_id = c.id) AS comments,
                  (SELECT count(*) FROM comment_mentions m WHERE m.chat_id = c.id) AS tags,
                  (SELECT count(*) FROM notifications n
                    WHERE n.chat_id = c.id AND n.read_at IS NULL AND n.kind = 'tagged') AS notes
             FROM chats c WHERE """ + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + """)
       INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
       SELECT :as_of, 'system', 'sweep.inactivity', 'chat', CAST(id AS TEXT),
              json_object('status', status, 'closed_at', NULL, 'closed_by', NULL, 'close_reason', NULL,
                          'pending_since', pending_since),
              CASE WHEN comments + tags + notes = 0
                   THEN json_object('status', 'closed', 'closed_at', :as_of, 'closed_by', 'system',
                                    'close_reason', 'inactivity', 'pending_since', NULL)
                   ELSE json_object('status', 'closed', 'closed_at', :as_of, 'closed_by', 'system',
                                    'close_reason', 'inactivity', 'pending_since', NULL,
                                    'comments_removed', comments, 'tags_removed', tags, 'notifications_read',
                                    notes) END,
              'FLOOR', 'inactivity'
         FROM eligible""",
    "UPDATE notifications SET read_at = :as_of WHERE read_at IS NULL AND kind = 'tagged' AND chat_id IN "
    "(SELECT c.id FROM chats c WHERE " + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "DELETE FROM comment_mentions WHERE chat_id IN (SELECT c.id FROM chats c WHERE "
    + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "DELETE FROM comments WHERE chat_id IN (SELECT c.id FROM chats c WHERE "
    + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of") + ")",
    "UPDATE chats AS c SET status = 'closed', closed_at = :as_of, closed_by = 'system', "
    "close_reason = 'inactivity', pending_since = NULL WHERE " + ELIGIBLE.format(cutoff=":cutoff", as_of=":as_of"),
]


def naive_orm(url: str, sample: int) -> tuple[int, float]:
    """Close ``sample`` eligible chats one ORM object and one commit at a time."""
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session, registry

    from chatctl.domain.audit import writer as audit
    from chatctl.storage import models
    from chatctl.storage.engine import create_engine
    from chatctl.storage.models import Comment, CommentMention

    # chatctl itself queries Core tables; the naive loop maps classes onto them here.
    mapper = registry()

    class Chat:
        pass

    class Notification:
        pass

    class AuditEvent:
        def __init__(self, **values) -> None:
            self.__dict__.update(values)

    for cls, table in ((Chat, models.Chat), (Notification, models.Notification), (AuditEvent, models.AuditEvent)):
        mapper.map_imperatively(cls, table.__table__)
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



CUTOFF = NOW - dt.timedelta(minutes=30)


def pg_floor(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as connection:
        started = time.perf_counter()
        connection.execute(PG_FLOOR, {"as_of": NOW, "cutoff": CUTOFF})
        connection.commit()
        return time.perf_counter() - started


def sqlite_floor(url: str) -> float:
    from sqlalchemy import bindparam, text

    from chatctl.storage.engine import create_engine
    from chatctl.storage.models import UTCDateTime

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            started = time.perf_counter()
            with connection.begin():
                for statement in SQLITE_FLOOR:
                    bound = text(statement).bindparams(
                        *[bindparam(name, type_=UTCDateTime()) for name in ("as_of", "cutoff")
                          if f":{name}" in statement])
                    connection.execute(bound, {"as_of": NOW, "cutoff": CUTOFF})
            return time.perf_counter() - started
    finally:
        engine.dispose()


def left_behind(url: str) -> str:
    """What the sweep leaves: the chats it closed, its audit rows with their R9 counts, the comments,
    tags and unread tag notifications that remain."""
    from sqlalchemy import text

    from chatctl.storage.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(text(
                "SELECT id, status, closed_by, close_reason FROM chats "
                "WHERE status = 'closed' AND close_reason = 'inactivity' AND closed_by = 'system' ORDER BY id")))
            counts = ", ".join((f"after ->> '{key}'" if engine.dialect.name == "postgresql" else
                                f"json_extract(after, '$.{key}')")
                               for key in ("comments_removed", "tags_removed", "notifications_read"))
            rows += [tuple(str(value) for value in row) for row in connection.execute(text(
                f"SELECT entity_id, reason, {counts} FROM audit_events WHERE action = 'sweep.inactivity' "
                "ORDER BY CAST(entity_id AS INTEGER)"))]
            rows += list(connection.execute(text(
                "SELECT (SELECT count(*) FROM comments), (SELECT count(*) FROM comment_mentions), "
                "(SELECT count(*) FROM notifications WHERE read_at IS NULL)")))
        return fingerprint(rows)
    finally:
        engine.dispose()


class PostgresDesks:
    def __init__(self, bench: Bench) -> None:
        self.postgres = bench.postgres()

    def base(self) -> str:
        return self.postgres.create("sweeps_base")

    def finish(self) -> None:
        self.postgres.freeze("sweeps_base")

    def fresh(self, name: str) -> str:
        return self.postgres.fresh(name, "sweeps_base")

    def drop(self, name: str) -> None:
        self.postgres.drop(name)


class SqliteDesks:
    def __init__(self, bench: Bench) -> None:
        self.root = bench.scratch

    def base(self) -> str:
        from chatctl.storage import schema
        from chatctl.storage.engine import create_engine

        engine = create_engine(f"sqlite:///{self.root / 'base.db'}")
        schema.upgrade(engine)
        engine.dispose()
        return f"sqlite:///{self.root / 'base.db'}"

    def finish(self) -> None:
        import sqlite3

        connection = sqlite3.connect(self.root / "base.db")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def fresh(self, name: str) -> str:
        copy_sqlite(self.root / "base.db", self.root / f"{name}.db")
        return f"sqlite:///{self.root / f'{name}.db'}"

    def drop(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            (self.root / f"{name}.db{suffix}").unlink(missing_ok=True)


def measure(bench: Bench, backend: str) -> list[Row]:
    postgres = backend == "postgresql"
    chats = bench.size(full=1_000_000, quick=20_000) if postgres else bench.size(full=100_000, quick=10_000)
    sizes = (1000, 2000, 5000) if not bench.quick else ((1000,) if postgres else (5000,))
    default = 1000 if postgres else 5000
    sample = 200 if bench.quick else 2000
    desks = PostgresDesks(bench) if postgres else SqliteDesks(bench)
    floor = pg_floor if postgres else sqlite_floor

    url = desks.base()
    bench.chatctl(url, "demo", "load", "--chats", str(chats), "--seed", "7", "--now", NOW.isoformat(),
                  keep_stdout=False)
    desks.finish()
    url = desks.fresh("probe")
    dry = json.loads(bench.chatctl(url, "sweep", "run", "inactivity", "--dry-run", "--as-of", NOW.isoformat(),
                                   "-o", "json").stdout)
    desks.drop("probe")
    eligible = dry["jobs"]["inactivity"].get("would_change", dry["jobs"]["inactivity"].get("changed"))
    bench.log(f"{chats:,} chats, {eligible:,} eligible at {NOW.isoformat()}")

    floor_times: list[float] = []
    floor_prints: set[str] = set()
    timings: dict[int, list] = {size: [] for size in sizes}
    prints: dict[int, set[str]] = {size: set() for size in sizes}
    changed: dict[int, set[int]] = {size: set() for size in sizes}
    for run in range(bench.runs):
        url = desks.fresh("floor")
        floor_times.append(floor(url))
        floor_prints.add(left_behind(url))
        desks.drop("floor")
        for size in sizes:
            url = desks.fresh("run")
            timing = bench.chatctl(url, "sweep", "run", "inactivity", "--as-of", NOW.isoformat(),
                                   "--batch-size", str(size), "-o", "json")
            changed[size].add(json.loads(timing.stdout)["jobs"]["inactivity"]["changed"])
            prints[size].add(left_behind(url))
            timings[size].append(timing)
            desks.drop("run")
            bench.log(f"run {run + 1}: floor {floor_times[-1]:.2f}s, chatctl batch {size} "
                      f"{timing.inprocess_s:.2f}s in process, {timing.process_s:.2f}s whole")

    (floor_print,) = floor_prints  # every floor run left the same rows
    goal = Goal("within 1.5x the floor", ratio=1.5)
    rows = [Row(f"floor: {'one statement' if postgres else 'five statements, one transaction'}",
                inprocess=floor_times, changed=eligible, fingerprint=floor_print, floor=True)]
    for size in sizes:
        if len(prints[size]) != 1 or len(changed[size]) != 1:
            raise BenchFailure(f"chatctl --batch-size {size} did not change the same rows on every run")
        slowest = max(timing.slowest_transaction_s for timing in timings[size])
        rows.append(Row(f"chatctl `--batch-size {size}`" + (" (default)" if size == default else ""),
                        process=[t.process_s for t in timings[size]], inprocess=[t.inprocess_s for t in timings[size]],
                        changed=changed[size].pop(), fingerprint=prints[size].pop(),
                        goal=goal if size == default else None,
                        note=f"longest batch transaction {slowest:.2f} s"))
    url = desks.fresh("orm")
    done, seconds = naive_orm(url, min(sample, eligible))
    desks.drop("orm")
    rows.append(Row(f"naive ORM loop, extrapolated from {done:,} chats in {seconds:.2f} s",
                    inprocess=[seconds / max(done, 1) * eligible], note="one object and one commit per chat"))
    bench.facts["desk"] = (f"`demo load --chats {chats}` at {NOW.isoformat()}: {eligible:,} chats live, unflagged "
                           f"and idle past the 30-minute timeout")
    return rows


SECTIONS = [
    Section("sweeps-postgresql", "Sweep `inactivity` on PostgreSQL", lambda bench: measure(bench, "postgresql"),
            order=10),
    Section("sweeps-sqlite", "Sweep `inactivity` on SQLite", lambda bench: measure(bench, "sqlite"), order=11,
            needs_postgres=False),
]
