"""Section ``sweep-jobs``: every sweep job on both backends, on the same demo desk, beside its floor.

* the desk: ``chatctl demo load --chats N --now T`` (the same seed on both
  backends), plus leftover comments, tags and unread tag notifications on
  every 20th closed or converted chat so ``cleanup`` has work (the demo puts
  comments on open chats only);
* chatctl: ``chatctl sweep run JOB --as-of T+1h`` in a fresh process, one job
  per run, each run on a fresh copy of the desk;
* the floor: the same job's changes written by hand in one transaction, on
  the same copy: the rows the job's eligibility selects (its conditions, as
  ``sweep explain`` shows them) put in a temporary table, then plain
  statements over it: the chat or ticket update, the R9 purge, the tickets of
  converted chats, one audit row per change; the least-loaded plan of
  ``unattended`` and ``agent-timeout`` is chatctl's own greedy planner over
  the online agents' loads, in Python. It takes no lock, records no run and checks nothing twice;
* checked: both sides change the same number of chats (tickets for
  ``archive``) and leave the same counts of chats per status, tickets,
  comments, tags and unread notifications.

The notes give chats/s for both sides, chatctl's start-up (whole process
minus in process), the in-process time of the same run repeated with nothing
left to do (what every run costs: its lock, its run record, the count for
``--max-changes``) and, on SQLite, the time per chat against PostgreSQL's.

    python bench/run.py --only sweep-jobs
"""

from __future__ import annotations

import datetime as dt
import json
import statistics

from harness import Bench, Goal, Row, Section, copy_sqlite, fingerprint, time_call

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
AS_OF = NOW + dt.timedelta(hours=1)
JOBS = ("unattended", "agent-timeout", "inactivity", "pending", "archive", "cleanup")
PARAMS = {"as_of": AS_OF, "inactivity_cutoff": AS_OF - dt.timedelta(minutes=30),
          "agent_cutoff": AS_OF - dt.timedelta(minutes=5), "pending_cutoff": AS_OF - dt.timedelta(hours=24),
          "archive_cutoff": AS_OF - dt.timedelta(days=90), "max_reassignments": 3}
TIMES = ("as_of", "inactivity_cutoff", "agent_cutoff", "pending_cutoff", "archive_cutoff")
MAX_REASSIGNMENTS = 3  # the default agent_max_reassignments; agent_max_chats is 0 (no cap)

LEFTOVERS = [
    # Every 20th ended chat gets a comment by its agent (or the first agent), a tag and an unread notification.
    """INSERT INTO comments (chat_id, agent_id, body, created_at)
       SELECT c.id, COALESCE(c.agent_id, (SELECT min(id) FROM agents)), 'left over', :as_of
         FROM chats c WHERE c.status IN ('closed', 'converted') AND c.id % 20 = 0""",
    """INSERT INTO comment_mentions (comment_id, agent_id, chat_id)
       SELECT x.id, x.agent_id, x.chat_id FROM comments x WHERE x.body = 'left over'""",
    """INSERT INTO notifications (agent_id, kind, chat_id, comment_id, created_at)
       SELECT x.agent_id, 'tagged', x.chat_id, x.id, :as_of FROM comments x WHERE x.body = 'left over'""",
]


def _sql(connection, statement: str, params: dict | None = None):
    from sqlalchemy import bindparam, text

    from chatctl.storage.models import UTCDateTime

    bound = text(statement).bindparams(*[bindparam(name, type_=UTCDateTime()) for name in TIMES
                                         if f":{name}" in statement])
    if isinstance(params, list):  # many rows
        return connection.execute(bound, params)
    return connection.execute(bound, {**PARAMS, **(params or {})})


def _audit(obj: str, entity: str, before: str, after: str, reason: str, source: str) -> str:
    return (f"INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, "
            f"reason) SELECT :as_of, 'system', :action, '{entity}', CAST(id AS TEXT), {obj}({before}), "
            f"{obj}({after}), 'FLOOR', {reason} FROM {source}")


def _analyze(connection, table: str) -> None:
    """PostgreSQL keeps no statistics of a temporary table until it is analysed (autovacuum skips
    them): without them it plans the statements over the table for a guess of its size."""
    if connection.dialect.name == "postgresql":
        _sql(connection, f"ANALYZE {table}")


def _purge(connection, obj: str) -> None:
    """R9 for the picked chats, counted into their audit reasons first."""
    _sql(connection, "UPDATE notifications SET read_at = :as_of WHERE read_at IS NULL AND kind = 'tagged' "
                     "AND chat_id IN (SELECT id FROM picked)")
    _sql(connection, "DELETE FROM comment_mentions WHERE chat_id IN (SELECT id FROM picked)")
    _sql(connection, "DELETE FROM comments WHERE chat_id IN (SELECT id FROM picked)")


def _end(connection, obj: str, action: str, *, close_reason: str | None, ticket_reason: str | None) -> None:
    """Close (``close_reason``) or convert (``ticket_reason``) the picked chats: audit, R9, tickets, chats."""
    picked = "picked"
    if close_reason:
        after = (f"'status', 'closed', 'closed_at', :as_of, 'closed_by', 'system', "
                 f"'close_reason', '{close_reason}', 'pending_since', NULL")
        _sql(connection, _audit(obj, "chat", "'status', status, 'pending_since', pending_since", after,
                                f"'{close_reason}'", picked), {"action": action})
        _purge(connection, obj)
        _sql(connection, f"UPDATE chats SET status = 'closed', closed_at = :as_of, closed_by = 'system', "
                         f"close_reason = '{close_reason}', pending_since = NULL "
                         f"WHERE id IN (SELECT id FROM {picked})")
        return
    _sql(connection, _audit(obj, "chat", "'status', status, 'pending_since', pending_since",
                            "'status', 'converted', 'pending_since', NULL", f"'{ticket_reason}'", picked),
         {"action": action})
    _purge(connection, obj)
    _sql(connection, f"INSERT INTO tickets (chat_id, agent_id, status, reason, created_at) "
                     f"SELECT id, NULL, 'open', '{ticket_reason}', :as_of FROM {picked} ORDER BY id")
    _sql(connection, _audit(obj, "ticket", "'chat_id', chat_id", "'chat_id', chat_id, 'status', 'open'",
                            "'created from chat ' || chat_id",
                            f"tickets WHERE chat_id IN (SELECT id FROM {picked}) AND created_at = :as_of"),
         {"action": action})
    _sql(connection, f"UPDATE chats SET status = 'converted', pending_since = NULL "
                     f"WHERE id IN (SELECT id FROM {picked})")


def _assign(connection, obj: str, action: str, reassignment: bool) -> int:
    """Least-loaded assignment of the picked chats (never to their current agent); bounced ones become tickets."""
    picked = list(_sql(connection, "SELECT id, agent_id, reassign_count FROM picked ORDER BY id"))
    agents = [row[0] for row in _sql(connection, "SELECT id FROM agents WHERE active = true AND presence = 'online' "
                                                 "ORDER BY id")]
    loads = dict.fromkeys(agents, 0)
    for agent, count in _sql(connection, "SELECT agent_id, count(*) FROM chats WHERE status = 'live' "
                                         "AND agent_id IS NOT NULL GROUP BY agent_id"):
        if agent in loads:
            loads[agent] = count
    # The least-loaded plan is Python on both sides: the floor uses chatctl's own greedy planner.
    from chatctl.domain.agents.assignment import greedy_plan

    bounded = {chat_id for chat_id, current, count in picked
               if reassignment and current is not None and count >= MAX_REASSIGNMENTS}
    chosen = greedy_plan([(chat_id, current) for chat_id, current, _ in picked if chat_id not in bounded],
                         loads, 0)
    plan, bounced = [], []
    for chat_id, current, count in picked:
        if chosen.get(chat_id) is None:
            bounced.append(chat_id)
        else:
            plan.append({"id": chat_id, "agent": chosen[chat_id],
                         "n": count + (1 if reassignment and current is not None else 0)})
    _sql(connection, "CREATE TEMP TABLE plan (id integer PRIMARY KEY, agent integer, n integer)")
    if plan:
        _sql(connection, "INSERT INTO plan (id, agent, n) VALUES (:id, :agent, :n)", plan)
        _analyze(connection, "plan")
        _sql(connection, _audit(obj, "chat", "'agent_id', picked.agent_id, 'reassign_count', picked.reassign_count",
                                "'agent_id', plan.agent, 'assigned_at', :as_of, 'reassign_count', plan.n",
                                "'least-loaded online agent'", "plan JOIN picked USING (id)").replace(
                                    "CAST(id AS TEXT)", "CAST(plan.id AS TEXT)"), {"action": action})
        _sql(connection, "UPDATE chats SET agent_id = (SELECT agent FROM plan WHERE plan.id = chats.id), "
                         "assigned_at = :as_of, reassign_count = (SELECT n FROM plan WHERE plan.id = chats.id) "
                         "WHERE id IN (SELECT id FROM plan)")
    if bounced:
        _sql(connection, "DELETE FROM picked WHERE id IN (SELECT id FROM plan)")
        _end(connection, obj, action, close_reason=None, ticket_reason="no_agents")
    return len(plan) + len(bounced)


def floor(url: str, job: str) -> tuple[float, int]:
    """Seconds and rows changed by the job's changes written by hand, in one transaction."""
    from chatctl.domain.sweeps.jobs import JOBS as CHATCTL_JOBS
    from chatctl.storage.engine import create_engine

    engine = create_engine(url)
    obj = "jsonb_build_object" if engine.dialect.name == "postgresql" else "json_object"
    action = f"sweep.{job}"
    predicate = CHATCTL_JOBS[job].predicate()

    def work() -> int:
        with engine.begin() as connection:
            if job == "archive":
                _sql(connection, f"CREATE TEMP TABLE picked AS SELECT id FROM tickets WHERE {predicate}")
                _analyze(connection, "picked")
                changed = _sql(connection, "SELECT count(*) FROM picked").scalar_one()
                _sql(connection, _audit(obj, "ticket", "'archived_at', NULL", "'archived_at', :as_of",
                                        "'ticket_archive_after (R13)'", "picked"), {"action": action})
                _sql(connection, "UPDATE tickets SET archived_at = :as_of WHERE id IN (SELECT id FROM picked)")
                return changed
            _sql(connection, "CREATE TEMP TABLE picked AS SELECT id, status, agent_id, pending_since, reassign_count "
                             f"FROM chats WHERE {predicate}")
            _analyze(connection, "picked")
            changed = _sql(connection, "SELECT count(*) FROM picked").scalar_one()
            if job == "cleanup":
                _sql(connection, _audit(obj, "chat", "'status', status", "'status', status", "'R9 clean-up'",
                                        "picked"), {"action": action})
                _purge(connection, obj)
            elif job == "inactivity":
                _end(connection, obj, action, close_reason="inactivity", ticket_reason=None)
            elif job == "pending":
                _end(connection, obj, action, close_reason="pending_timeout", ticket_reason=None)
            else:
                changed = _assign(connection, obj, action, reassignment=job == "agent-timeout")
            return changed

    try:
        return time_call(work)
    finally:
        engine.dispose()


def left_behind(url: str) -> str:
    """Counts a job changes: chats per status and assigned or not, tickets (archived or not), comments,
    tags and unread notifications."""
    from sqlalchemy import text

    from chatctl.storage.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = list(connection.execute(text(
                "SELECT status, agent_id IS NULL, count(*) FROM chats GROUP BY status, agent_id IS NULL "
                "ORDER BY status, agent_id IS NULL")))
            rows += list(connection.execute(text(
                "SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM tickets WHERE archived_at IS NULL), "
                "(SELECT count(*) FROM comments), (SELECT count(*) FROM comment_mentions), "
                "(SELECT count(*) FROM notifications WHERE read_at IS NULL)")))
        return fingerprint(rows)
    finally:
        engine.dispose()


class Desks:
    """The base desk of one backend and fresh copies of it."""

    def __init__(self, bench: Bench, backend: str) -> None:
        self.bench = bench
        self.backend = backend

    def base(self) -> str:
        if self.backend == "postgresql":
            return self.bench.postgres().create("jobs_base")
        from chatctl.storage import schema
        from chatctl.storage.engine import create_engine

        url = f"sqlite:///{self.bench.scratch / 'jobs_base.db'}"
        engine = create_engine(url)
        schema.upgrade(engine)
        engine.dispose()
        return url

    def finish(self) -> None:
        if self.backend == "postgresql":
            self.bench.postgres().freeze("jobs_base")
            return
        import sqlite3

        connection = sqlite3.connect(self.bench.scratch / "jobs_base.db")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()

    def fresh(self, name: str) -> str:
        if self.backend == "postgresql":
            return self.bench.postgres().fresh(name, "jobs_base")
        copy_sqlite(self.bench.scratch / "jobs_base.db", self.bench.scratch / f"{name}.db")
        return f"sqlite:///{self.bench.scratch / f'{name}.db'}"

    def drop(self, name: str) -> None:
        if self.backend == "postgresql":
            self.bench.postgres().drop(name)
            return
        for suffix in ("", "-wal", "-shm"):
            (self.bench.scratch / f"{name}.db{suffix}").unlink(missing_ok=True)


def seed(bench: Bench, desks: Desks, chats: int) -> None:
    from chatctl.storage.engine import create_engine

    url = desks.base()
    bench.chatctl(url, "demo", "load", "--chats", str(chats), "--seed", "7", "--now", NOW.isoformat(),
                  keep_stdout=False)
    engine = create_engine(url)
    with engine.begin() as connection:
        for statement in LEFTOVERS:
            _sql(connection, statement)
    engine.dispose()
    desks.finish()


def measure(bench: Bench) -> list[Row]:
    chats = bench.size(full=100_000, quick=10_000)
    rows: list[Row] = []
    per_chat: dict[tuple[str, str], float] = {}
    for backend in ("postgresql", "sqlite"):
        desks = Desks(bench, backend)
        seed(bench, desks, chats)
        for job in JOBS:
            floors, timings, idle, changed, prints = [], [], [], set(), set()
            for run in range(bench.runs):
                url = desks.fresh("jobs_floor")
                seconds, count = floor(url, job)
                floors.append(seconds)
                changed.add(count)
                prints.add(left_behind(url))
                desks.drop("jobs_floor")
                url = desks.fresh("jobs_run")
                timing = bench.chatctl(url, "sweep", "run", job, "--as-of", AS_OF.isoformat(), "-o", "json")
                timings.append(timing)
                changed.add(json.loads(timing.stdout)["jobs"][job]["changed"])
                prints.add(left_behind(url))
                idle.append(bench.chatctl(url, "sweep", "run", job, "--as-of", AS_OF.isoformat(), "-o", "json"))
                desks.drop("jobs_run")
                bench.log(f"{backend} {job} run {run + 1}: floor {seconds:.2f}s, chatctl "
                          f"{timing.inprocess_s:.2f}s in process, {timing.process_s:.2f}s whole ({count:,} rows)")
            (count,) = changed  # chatctl and the floor changed as many rows on every run
            (left,) = prints
            inprocess = statistics.median(t.inprocess_s for t in timings)
            startup = statistics.median(t.process_s - t.inprocess_s for t in timings)
            floor_s = statistics.median(floors)
            unit = "tickets" if job == "archive" else "chats"
            per_chat[backend, job] = inprocess / max(count, 1)
            note = (f"{count / inprocess:,.0f} {unit}/s (floor {count / floor_s:,.0f}/s); "
                    f"start-up {startup:.2f} s; a run with nothing left to do "
                    f"{statistics.median(t.inprocess_s for t in idle):.2f} s in process")
            if backend == "sqlite" and count:
                note += (f"; per {unit[:-1]}: {per_chat[backend, job] / per_chat['postgresql', job]:.2f}x "
                         f"PostgreSQL's (goal: at most 3x)")
            rows.append(Row(f"floor: `{job}` by hand ({backend})", inprocess=floors, changed=count,
                            fingerprint=left, floor=True))
            rows.append(Row(f"chatctl `sweep run {job}` ({backend})", process=[t.process_s for t in timings],
                            inprocess=[t.inprocess_s for t in timings], changed=count, fingerprint=left,
                            goal=Goal("within 3x the floor", ratio=3), note=note))
    bench.facts["desk"] = (f"`demo load --chats {chats} --seed 7 --now {NOW.isoformat()}` on each backend, plus a "
                           f"comment, tag and unread notification on every 20th closed or converted chat; "
                           f"every job run alone with `--as-of {AS_OF.isoformat()}` on a fresh copy")
    return rows


SECTIONS = [Section("sweep-jobs", "Every sweep job on both backends: `sweep run JOB` beside its floor", measure,
                    order=12)]
