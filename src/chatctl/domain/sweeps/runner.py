"""Running sweep jobs: locks, the safety breaker, keyset batches, the run record.

Each batch is one transaction: claim the next ``batch_size`` eligible rows
after the last id seen (in id order), change them with set-based statements
that re-check eligibility, write their audit events, commit.  The next batch
starts after the highest id *claimed*, so rows skipped because another
transaction holds them never end the scan early, and a batch that claimed
fewer rows than asked was the last one.

A chat changes at most once per run: each job's eligibility excludes what an
earlier job's change leaves behind (a chat (re)assigned at ``as_of`` is not
idle-closed by the same run; converted or closed chats are no longer live).
Counting (dry runs, ``--max-changes``) subtracts the rows an earlier job of
the run would take, so its numbers are the ones a real run would produce.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from chatctl.batch_sizes import sweep_batch_size
from chatctl.domain.audit.operations import pid_alive
from chatctl.domain.sweeps.locking import NoLocks, holder_name, run_locks
from chatctl.errors import Interrupted, LockedError, NotFound, SafetyLimitError
from chatctl.interruption import stop_on_signals
from chatctl.storage.models import AuditEvent, SweepRun
from chatctl.storage.retry import retry_serialization

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from chatctl.domain.sweeps.jobs import Job, SweepContext
    from chatctl.interruption import StopRequest


@dataclass
class JobResult:
    matched: int = 0
    changed: int = 0
    skipped: int = 0
    detail: dict[str, int] = field(default_factory=dict)

    def as_json(self, *, dry_run: bool = False) -> dict[str, int]:
        """``matched``, ``changed`` (``would_change`` in a dry run, D8) and ``skipped``."""
        return {"matched": self.matched, "would_change" if dry_run else "changed": self.changed,
                "skipped": self.skipped}


@dataclass
class RunResult:
    run_id: str
    as_of: dt.datetime
    dry_run: bool
    shard: str
    jobs: dict[str, JobResult]
    duration_s: float = 0.0
    longest_batch_s: float = 0.0
    batches: int = 0
    status: str = "running"
    finished_at: dt.datetime | None = None

    def summary_json(self) -> dict[str, Any]:
        """The ``sweep run -o json`` document (SPEC 2.3)."""
        return {"run_id": self.run_id, "as_of": self.as_of, "dry_run": self.dry_run,
                "jobs": {name: result.as_json(dry_run=self.dry_run) for name, result in self.jobs.items()},
                "duration_s": round(self.duration_s, 3)}

    def counts_json(self) -> dict[str, Any]:
        return {"jobs": {name: {**result.as_json(), **result.detail} for name, result in self.jobs.items()},
                "batches": self.batches, "longest_batch_s": round(self.longest_batch_s, 4)}


def count_jobs(connection: Connection, context: SweepContext, jobs: Sequence[Job]) -> dict[str, int]:
    """Exact per-job counts at ``as_of``; a job does not count what an earlier one takes."""
    return {job.name: job.count(connection, context, exclude=jobs[:index]) for index, job in enumerate(jobs)}


def run_sweep(
    engine: Engine,
    context: SweepContext,
    jobs: Sequence[Job],
    *,
    clock: Callable[[], dt.datetime],
    batch_size: int | None = None,
    dry_run: bool = False,
    max_changes: int | None = None,
    use_lock: bool = True,
    lock_setting: str = "auto",
    on_batch: Callable[[str, int], None] | None = None,
    on_totals: Callable[[dict[str, int]], None] | None = None,
    on_finish: Callable[[RunResult], None] | None = None,
    count_first: bool = False,
) -> RunResult:
    """Run ``jobs`` in order and record the run in ``sweep_runs`` (id = the operation id).

    Raises LockedError (exit 4) when another run holds a job's lock and
    SafetyLimitError (exit 5) when a job would change more than
    ``max_changes`` rows; in both cases nothing was changed.  SIGINT or
    SIGTERM stops the run between batches (``chatctl.interruption``): it is
    recorded as interrupted, its locks are released, and ``Interrupted``
    propagates (exit 130 or 143).
    """

    if batch_size is None:
        batch_size = sweep_batch_size(engine.dialect.name)
    result = RunResult(run_id=context.operation_id, as_of=context.as_of, dry_run=dry_run,
                       shard=context.shard_label(), jobs={job.name: JobResult() for job in jobs})
    exclusive = use_lock and not dry_run
    with stop_on_signals() as stop:
        started = time.perf_counter()
        _record_start(engine, result, jobs, clock())
        locks = NoLocks()
        error: str | None = None
        try:
            locks = run_locks(engine, holder=holder_name(context.operation_id), clock=clock,
                              enabled=exclusive, setting=lock_setting)
            locks.acquire([f"{job.name}:{result.shard}" for job in jobs])
            if exclusive:
                with engine.begin() as connection:
                    _fail_dead_runs(connection, clock(), holding=(result.run_id, result.shard, set(result.jobs)))
            if dry_run or max_changes is not None or count_first:  # count_first: a progress bar's total
                with engine.connect() as connection:
                    with stop.cancellable(connection):
                        counts = count_jobs(connection, context, jobs)
                    connection.rollback()
                if on_totals is not None:
                    on_totals(counts)
                if max_changes is not None:
                    over = {name: count for name, count in counts.items() if count > max_changes}
                    if over:
                        name, count = next(iter(over.items()))
                        raise SafetyLimitError(
                            f"job {name} would change {count} rows, more than --max-changes {max_changes}; "
                            "nothing changed", hint="check the timeouts with `chatctl prefs list`")
                if dry_run:
                    for name, count in counts.items():
                        result.jobs[name] = JobResult(matched=count, changed=count)
            if not dry_run:
                for job in jobs:
                    _run_job(engine, context, job, result, batch_size, locks, on_batch, stop)
            result.status = "ok"
        except LockedError as failure:
            result.status, error = "locked", str(failure)
            raise
        except SafetyLimitError as failure:
            result.status, error = "stopped", str(failure)
            raise
        except Interrupted as failure:
            result.status, error = "interrupted", failure.message
            raise
        except KeyboardInterrupt:
            result.status, error = "interrupted", "interrupted"
            raise
        except BaseException as failure:
            result.status, error = "failed", f"{type(failure).__name__}: {failure}"[:500]
            raise
        finally:
            result.duration_s = time.perf_counter() - started
            result.finished_at = clock()
            try:
                _close_run(engine, locks, result, error)
            finally:
                if on_finish is not None:
                    on_finish(result)
    return result


def _close_run(engine: Engine, locks, result: RunResult, error: str | None) -> None:
    """Release the locks and record the outcome.

    When the run failed because the database went away (a restart, a
    failover, a terminated connection), these writes may fail too; then the
    run's own error is the one to report, and the next run marks this one
    failed (``_fail_dead_runs``) and takes its leases over at once.
    """
    try:
        try:
            locks.release()
        finally:
            _record_finish(engine, result, error)
    except Exception:
        if result.status == "ok":
            raise


def _run_job(engine: Engine, context: SweepContext, job: Job, result: RunResult, batch_size: int,
             locks, on_batch, stop: StopRequest) -> None:
    totals = result.jobs[job.name]
    last_id = 0

    def one_batch():
        with engine.connect() as connection, connection.begin():
            with stop.cancellable(connection):  # the commit stays outside: it is never cancelled
                return job.run_batch(connection, context, last_id, batch_size)

    while True:
        stop.check()
        began = time.perf_counter()
        outcome = retry_serialization(one_batch)
        result.longest_batch_s = max(result.longest_batch_s, time.perf_counter() - began)
        if outcome.claimed == 0:
            return
        result.batches += 1
        totals.matched += outcome.claimed
        totals.changed += outcome.changed
        totals.skipped += outcome.claimed - outcome.changed
        for key, value in outcome.detail.items():
            totals.detail[key] = totals.detail.get(key, 0) + value
        if on_batch is not None:
            on_batch(job.name, outcome.claimed)
        locks.renew()
        if outcome.claimed < batch_size:
            return
        last_id = outcome.last_id


# -- the sweep-run record ------------------------------------------------------------------
def _record_start(engine: Engine, result: RunResult, jobs: Sequence[Job], started_at: dt.datetime) -> None:
    with engine.begin() as connection:
        _fail_dead_runs(connection, started_at)
        connection.execute(insert(SweepRun).values(
            id=result.run_id, jobs=",".join(job.name for job in jobs), as_of=result.as_of, dry_run=result.dry_run,
            started_at=started_at, finished_at=None, status="running", counts=None,
            host=socket.gethostname()[:200], pid=os.getpid(), shard=result.shard, actor="system"))


DEAD_RUN = "the process ended without recording an outcome (killed, or its database connection was lost)"
ABANDONED_RUN = ("the process ended without recording an outcome (killed, or its database connection was lost); "
                 "a later run took over its lock")


def _fail_dead_runs(connection: Connection, now: dt.datetime,
                    holding: tuple[str, str, set[str]] | None = None) -> None:
    """Mark ``failed`` the runs still ``running`` that no process runs any more, so history tells the truth.

    Those of this host whose process is gone; and, once run ``holding[0]``
    holds the locks of jobs ``holding[2]`` on shard ``holding[1]``, any other
    run of one of those jobs on that shard, whatever its host: it cannot be
    running without the lock (its lease expired, or its session died).
    """

    host = socket.gethostname()[:200]
    running = connection.execute(select(SweepRun.id, SweepRun.pid, SweepRun.host, SweepRun.jobs, SweepRun.shard)
                                 .where(SweepRun.status == "running")).all()
    dead = [row.id for row in running if row.host == host and not pid_alive(row.pid)]
    abandoned = []
    if holding is not None:
        run_id, shard, names = holding
        abandoned = [row.id for row in running if row.id != run_id and row.id not in dead and row.shard == shard
                     and names & set(row.jobs.split(","))]
    for ids, error in ((dead, DEAD_RUN), (abandoned, ABANDONED_RUN)):
        if ids:
            connection.execute(update(SweepRun).where(SweepRun.id.in_(ids), SweepRun.status == "running")
                               .values(status="failed", finished_at=now, counts={"error": error}))


def _record_finish(engine: Engine, result: RunResult, error: str | None) -> None:
    counts = result.counts_json()
    counts["duration_s"] = round(result.duration_s, 3)
    if error:
        counts["error"] = error
    with engine.begin() as connection:
        connection.execute(update(SweepRun).where(SweepRun.id == result.run_id).values(
            finished_at=result.finished_at, status=result.status, counts=counts))


def run_rows(connection: Connection, limit: int) -> list[dict[str, Any]]:
    """The latest runs, newest first, for ``sweep history``."""

    rows = connection.execute(select(SweepRun).order_by(SweepRun.started_at.desc(), SweepRun.id.desc())
                              .limit(limit)).all()
    return [_run_json(row) for row in rows]


def run_record(connection: Connection, run_id: str) -> dict[str, Any]:
    row = connection.execute(select(SweepRun).where(SweepRun.id == run_id)).first()
    if row is None:
        raise NotFound(f"no sweep run '{run_id}'", hint="see `chatctl sweep history`")
    record = _run_json(row, detail=True)
    record["audit_events"] = connection.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.operation_id == run_id)).scalar_one()
    return record


def _run_json(row, *, detail: bool = False) -> dict[str, Any]:
    counts = row.counts or {}
    jobs = counts.get("jobs", {})
    record: dict[str, Any] = {
        "run_id": row.id, "jobs": row.jobs, "as_of": row.as_of, "dry_run": row.dry_run, "status": row.status,
        "started_at": row.started_at, "finished_at": row.finished_at, "shard": row.shard,
        "changed": sum(job.get("changed", 0) for job in jobs.values()),
        "host": row.host, "pid": row.pid,
    }
    if detail:
        record["counts"] = jobs
        record["duration_s"] = counts.get("duration_s")
        record["batches"] = counts.get("batches")
        record["longest_batch_s"] = counts.get("longest_batch_s")
        record["error"] = counts.get("error")
    return record
