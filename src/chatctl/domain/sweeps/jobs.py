"""The sweep jobs: what each one selects and what it does to a batch.

Eligibility is written once per job, as a list of named SQL conditions on the
chat (alias ``c``) or the ticket (alias ``t``).  The same text is used by

* the counting query (``--dry-run``, ``--max-changes``),
* the batch claim (``... ORDER BY id LIMIT :n``, ``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL),
* the re-check inside the UPDATE (a customer message that lands after the
  claim keeps its chat live), and
* ``sweep explain``, which evaluates each condition for one chat and names the
  first one that fails.

What a job does to its batch is a transition of ``chats.transitions`` or
``tickets.transitions`` - the same function ``chats close``, ``agents drain``
and the other commands call - given the job's eligibility as its guard.

Every cutoff is computed in Python from the run's ``as_of`` and bound as a
parameter; a cutoff is reached when the timestamp is strictly older than it
(idle *more* than ``inactivity_timeout``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from chatctl.domain.agents.assignment import online_agents, plan_assignments
from chatctl.domain.audit import writer as audit
from chatctl.domain.changes import Claim, Guard, Ids, Outcome
from chatctl.domain.chats import transitions as chat_transitions
from chatctl.domain.sweeps import JOB_ORDER
from chatctl.domain.tickets import transitions as ticket_transitions
from chatctl.errors import UsageError
from chatctl.storage.dialects import dialect
from chatctl.storage.sql import execute, typed_rows

SYSTEM = "system"


@dataclass(frozen=True)
class SweepContext:
    """One run's inputs: the instant, the desk preferences, the shard, the operation id."""

    as_of: dt.datetime
    prefs: Mapping[str, Any]
    operation_id: str
    shard: tuple[int, int] | None = None  # (k, n), k from 1 to n
    actor: str = SYSTEM

    def params(self) -> dict[str, Any]:
        prefs = self.prefs
        values: dict[str, Any] = {
            "as_of": self.as_of,
            "inactivity_cutoff": self.as_of - prefs["inactivity_timeout"],
            "agent_cutoff": self.as_of - prefs["agent_chat_timeout"],
            "pending_cutoff": self.as_of - prefs["pending_timeout"],
            "archive_cutoff": self.as_of - prefs["ticket_archive_after"],
            "max_reassignments": prefs["agent_max_reassignments"],
        }
        if self.shard is not None:
            values["shard_n"] = self.shard[1]
            values["shard_r"] = self.shard[0] - 1
        return values

    def shard_label(self) -> str:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else "all"

    def stamp(self, action: str) -> audit.Stamp:
        return audit.Stamp(self.actor, self.as_of, self.operation_id, action)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``K/N`` with 1 <= K <= N: the chats whose ``id % N == K - 1``."""
    if text is None:
        return None
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        k = n = 0
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"bad shard '{text}': use K/N with 1 <= K <= N, e.g. --shard 2/4")
    return k, n


@dataclass(frozen=True)
class JobCondition:
    key: str
    sql: str
    why_not: str
    """Said by ``sweep explain`` when the condition does not hold."""
    due: Callable[[Mapping[str, Any], Mapping[str, Any]], dt.datetime | None] | None = None
    """For a time condition: the instant after which it holds (row, preferences)."""


def _later(*values: dt.datetime | None) -> dt.datetime | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


# -- the shared conditions ---------------------------------------------------------------
LIVE = JobCondition("live", "chats.status = 'live'", "not live")
UNFLAGGED = JobCondition("unflagged", "chats.flagged = false", "flagged: the sweeps leave it alone")
UNANSWERED = JobCondition(
    "unanswered",
    "chats.last_customer_message_at IS NOT NULL AND (chats.last_agent_message_at IS NULL "
    "OR chats.last_customer_message_at > chats.last_agent_message_at)",
    "no customer message waiting for an answer",
)
UNASSIGNED = JobCondition("unassigned", "chats.agent_id IS NULL", "assigned to an agent")
WAITED = JobCondition(
    "waited",
    "chats.last_customer_message_at < :agent_cutoff "
    "AND (chats.assigned_at IS NULL OR chats.assigned_at < :agent_cutoff)",
    "the customer has not waited agent_chat_timeout yet",
    due=lambda row, prefs: _add(_later(row["last_customer_message_at"], row["assigned_at"]),
                                prefs["agent_chat_timeout"]),
)
IDLE = JobCondition(
    "idle", "chats.last_activity_at < :inactivity_cutoff", "not idle for inactivity_timeout yet",
    due=lambda row, prefs: _add(row["last_activity_at"], prefs["inactivity_timeout"]),
)
NOT_ASSIGNED_THIS_RUN = JobCondition(
    "not_assigned_at_as_of", "(chats.assigned_at IS NULL OR chats.assigned_at < :as_of)",
    "(re)assigned at or after as_of: a run changes a chat once, the next run looks again",
)
PENDING = JobCondition("pending", "chats.status = 'pending'", "not pending")
PENDING_DUE = JobCondition(
    "pending_due", "chats.pending_since < :pending_cutoff", "not pending for pending_timeout yet",
    due=lambda row, prefs: _add(row["pending_since"], prefs["pending_timeout"]),
)
ENDED = JobCondition("ended", "chats.status IN ('closed', 'converted')", "not closed or converted")
LEFTOVERS = JobCondition(
    "leftovers",
    "EXISTS (SELECT 1 FROM comments x WHERE x.chat_id = chats.id) "
    "OR EXISTS (SELECT 1 FROM comment_mentions m WHERE m.chat_id = chats.id) "
    "OR EXISTS (SELECT 1 FROM notifications n WHERE n.chat_id = chats.id AND n.read_at IS NULL "
    "AND n.kind = 'tagged')",
    "no comments, tags or unread tag notifications left",
)
NOT_ARCHIVED = JobCondition("not_archived", "tickets.archived_at IS NULL", "ticket already archived")
# Counted from the later of creation and the last unarchive (D3).  An unarchive is never
# earlier than the creation, so the range on created_at stays the index's.
ARCHIVE_DUE = JobCondition(
    "archive_due",
    "tickets.created_at < :archive_cutoff AND (tickets.unarchived_at IS NULL OR tickets.unarchived_at < "
    ":archive_cutoff)",
    "ticket younger than ticket_archive_after (since its creation or its last unarchive)",
    due=lambda row, prefs: _add(_later(row["created_at"], row.get("unarchived_at")), prefs["ticket_archive_after"]),
)


def _add(value: dt.datetime | None, delta: dt.timedelta) -> dt.datetime | None:
    return value + delta if value is not None else None


@dataclass
class BatchOutcome:
    claimed: int = 0
    changed: int = 0
    last_id: int | None = None
    detail: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, outcome: Outcome, key: str) -> BatchOutcome:
        """A batch done by one transition, its changes counted under ``key``."""
        return cls(claimed=outcome.claimed, changed=len(outcome.changed), last_id=outcome.last_id,
                   detail={key: len(outcome.changed)})


# -- jobs ----------------------------------------------------------------------------------
class Job:
    """A sweep job over one table; subclasses say what a batch does."""

    name = ""
    table = "chats"
    conditions: tuple[JobCondition, ...] = ()
    claim_columns = ("id",)
    help = ""

    @property
    def action(self) -> str:
        return f"sweep.{self.name}"

    def predicate(self) -> str:
        return " AND ".join(f"({condition.sql})" for condition in self.conditions)

    def shard_sql(self, context: SweepContext) -> str:
        return f" AND {self.table}.id % :shard_n = :shard_r" if context.shard else ""

    def guard(self, context: SweepContext) -> Guard:
        """The job's eligibility in this run (and shard): what it claims, and what its
        transition re-checks on each claimed row."""
        return Guard(self.predicate() + self.shard_sql(context), context.params())

    def count(self, connection: Connection, context: SweepContext, exclude: Sequence[Job] = ()) -> int:
        """Rows eligible at ``as_of`` (minus those an earlier job of the run would take)."""
        others = "".join(f" AND NOT COALESCE(({job.predicate()}), false)" for job in exclude
                         if job.table == self.table)
        sql = f"SELECT count(*) FROM {self.table} WHERE {self.predicate()}{others}{self.shard_sql(context)}"
        return int(execute(connection, sql, context.params()).scalar_one())

    def claim(self, connection: Connection, context: SweepContext, last_id: int, size: int) -> list[dict]:
        """The next batch after ``last_id`` in id order; locked (skipping locked rows) on PostgreSQL.

        On SQLite the transaction began with BEGIN IMMEDIATE: no other writer
        can run until it ends, so the rows read here stay as read.
        """
        columns = ", ".join(f"{self.table}.{column}" for column in self.claim_columns)
        sql = (f"SELECT {columns} FROM {self.table} WHERE {self.predicate()} AND {self.table}.id > :last_id"
               f"{self.shard_sql(context)} ORDER BY {self.table}.id LIMIT :size"
               f"{dialect(connection).lock(skip_locked=True, of=self.table)}")
        return typed_rows(execute(connection, sql, {**context.params(), "last_id": last_id, "size": size}))

    def run_batch(self, connection: Connection, context: SweepContext, last_id: int, size: int) -> BatchOutcome:
        """Claim the next batch and apply the job to it (``apply``), in the caller's transaction."""
        rows = self.claim(connection, context, last_id, size)
        if not rows:
            return BatchOutcome(claimed=0, changed=0, last_id=None)
        outcome = self.apply(connection, context, rows)
        outcome.claimed = len(rows)
        outcome.last_id = max(row["id"] for row in rows)
        return outcome

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        raise NotImplementedError

    def _convert(self, connection: Connection, context: SweepContext, rows: list[dict], reason: str) -> int:
        """Claimed chats nobody can take become tickets (``reason``), for nobody."""
        outcome = chat_transitions.end(connection, Ids([row["id"] for row in rows]), context.stamp(self.action),
                                       chat_transitions.Convert(reason, keep_agent=False), guard=self.guard(context),
                                       reason=reason)
        return len(outcome.changed)


class AssignmentJob(Job):
    """Shared by ``unattended`` and ``agent-timeout``: least-loaded (re)assignment or a ticket."""

    claim_columns = ("id", "status", "agent_id", "assigned_at", "reassign_count", "pending_since",
                     "last_customer_message_at")
    reassignment = False

    def _assign(self, connection: Connection, context: SweepContext, rows: list[dict],
                reason_if_none: str) -> BatchOutcome:
        bounded = []
        candidates = []
        limit = context.prefs["agent_max_reassignments"]
        for row in rows:
            if self.reassignment and row["agent_id"] is not None and row["reassign_count"] >= limit:
                bounded.append(row)
            else:
                candidates.append(row)
        plan = plan_assignments(connection, [(row["id"], row["agent_id"]) for row in candidates],
                                max_chats=context.prefs["agent_max_chats"])
        assigned = [row for row in candidates if plan.get(row["id"]) is not None]
        nobody = [row for row in candidates if plan.get(row["id"]) is None]
        if not self.reassignment:
            # D1: agents online but all at agent_max_chats is not "no agents": the chat waits for
            # room, and becomes a ticket only once its customer has waited agent_chat_timeout.
            cutoff = context.as_of - context.prefs["agent_chat_timeout"]
            nobody = [row for row in nobody if row["last_customer_message_at"] < cutoff]
        counts = {row["id"]: row["reassign_count"] + (1 if self.reassignment and row["agent_id"] is not None else 0)
                  for row in assigned}
        outcome = BatchOutcome()
        outcome.detail["assigned"] = len(chat_transitions.assign(
            connection, {row["id"]: plan[row["id"]] for row in assigned}, context.stamp(self.action),
            reassign_counts=counts, guard=self.guard(context), activity=True,
            reason="least-loaded online agent" + (" (the customer waited too long)" if self.reassignment else " (unassigned)")).changed)
        ticketed = self._convert(connection, context, nobody, reason_if_none)
        bounced = self._convert(connection, context, bounded, "no_agents")
        outcome.detail[reason_if_none] = outcome.detail.get(reason_if_none, 0) + ticketed
        outcome.detail["no_agents"] = outcome.detail.get("no_agents", 0) + bounced
        outcome.changed = outcome.detail["assigned"] + ticketed + bounced
        return outcome


class Unattended(AssignmentJob):
    """R12 for chats already in the desk: unassigned live chats still waiting."""

    name = "unattended"
    help = ("unassigned live chats with an unanswered customer: out of hours -> ticket (out_of_hours); "
            "nobody online -> ticket (no_agents); else assigned to the least-loaded online agent with room, "
            "or, when all are full, left waiting until agent_chat_timeout -> ticket (no_agents)")
    conditions = (LIVE, UNFLAGGED, UNASSIGNED, UNANSWERED)

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        prefs = context.prefs
        if not prefs["business_hours"].is_open(context.as_of, prefs["timezone"], prefs["holidays"]):
            changed = self._convert(connection, context, rows, "out_of_hours")
            return BatchOutcome(changed=changed, detail={"out_of_hours": changed})
        if not online_agents(connection):
            changed = self._convert(connection, context, rows, "no_agents")
            return BatchOutcome(changed=changed, detail={"no_agents": changed})
        return self._assign(connection, context, rows, "no_agents")


class AgentTimeout(AssignmentJob):
    """R5: a customer left unanswered for agent_chat_timeout gets another agent, or a ticket."""

    name = "agent-timeout"
    help = ("live unflagged chats whose customer waited agent_chat_timeout unanswered (from the later of the "
            "message and the assignment): reassigned least-loaded first, never to the same agent; a ticket "
            "(no_agents) after agent_max_reassignments or when nobody can take it")
    conditions = (LIVE, UNFLAGGED, UNANSWERED, WAITED)
    reassignment = True

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        return self._assign(connection, context, rows, "no_agents")


class TransitionJob(Job):
    """A job whose whole batch is one transition: it hands the transition its claim, so on
    PostgreSQL a batch is one statement (claim, change, R9, audit)."""

    def change(self, connection: Connection, context: SweepContext, batch: Claim | Ids) -> BatchOutcome:
        raise NotImplementedError

    def run_batch(self, connection: Connection, context: SweepContext, last_id: int, size: int) -> BatchOutcome:
        return self.change(connection, context, self.guard(context).claim(last_id, size))

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        """The same change for rows claimed earlier (``claim``): what still qualifies changes."""
        return self.change(connection, context, Ids([row["id"] for row in rows]))


class Inactivity(TransitionJob):
    """R3, R4: close (or convert, per inactivity_action) live unflagged chats idle too long."""

    name = "inactivity"
    help = "live unflagged chats idle more than inactivity_timeout: closed, or tickets (inactivity_action)"
    conditions = (LIVE, UNFLAGGED, IDLE, NOT_ASSIGNED_THIS_RUN)

    def change(self, connection: Connection, context: SweepContext, batch: Claim | Ids) -> BatchOutcome:
        if context.prefs["inactivity_action"] == "ticket":
            # The ticket stays with the chat's agent.
            how, key = chat_transitions.Convert("inactivity", keep_agent=True), "converted"
        else:
            how, key = chat_transitions.Close(SYSTEM, "inactivity"), "closed"
        return BatchOutcome.of(chat_transitions.end(connection, batch, context.stamp(self.action), how,
                                                    guard=self.guard(context), reason="inactivity"), key)


class Pending(TransitionJob):
    """R6: pending chats past pending_timeout are closed (flagged ones too)."""

    name = "pending"
    help = "pending chats older than pending_timeout: closed (close_reason pending_timeout)"
    conditions = (PENDING, PENDING_DUE)

    def change(self, connection: Connection, context: SweepContext, batch: Claim | Ids) -> BatchOutcome:
        return BatchOutcome.of(chat_transitions.end(
            connection, batch, context.stamp(self.action), chat_transitions.Close(SYSTEM, "pending_timeout"),
            guard=self.guard(context), reason="pending_timeout"), "closed")


class Archive(TransitionJob):
    """R13: tickets created more than ticket_archive_after ago are archived, whatever their status."""

    name = "archive"
    help = "tickets created more than ticket_archive_after before as_of, open or closed: archived"
    table = "tickets"
    conditions = (NOT_ARCHIVED, ARCHIVE_DUE)

    def change(self, connection: Connection, context: SweepContext, batch: Claim | Ids) -> BatchOutcome:
        return BatchOutcome.of(ticket_transitions.archive(
            connection, batch, context.stamp(self.action), guard=self.guard(context),
            reason="older than ticket_archive_after"), "archived")


class Cleanup(TransitionJob):
    """R9 safety net: comments, tags and unread tag notifications left on closed or converted chats."""

    name = "cleanup"
    help = "closed or converted chats that still have comments, tags or unread tag notifications: purged"
    conditions = (ENDED, LEFTOVERS)

    def change(self, connection: Connection, context: SweepContext, batch: Claim | Ids) -> BatchOutcome:
        # Nothing on the chat row changes; the claimed (locked) chat rows keep a
        # comment from being added meanwhile, and the purge is idempotent.
        return BatchOutcome.of(chat_transitions.purge(
            connection, batch, context.stamp(self.action), guard=self.guard(context), reason="clean-up of a closed or converted chat"),
            "purged")


JOBS: dict[str, Job] = {job.name: job for job in (Unattended(), AgentTimeout(), Inactivity(), Pending(),
                                                   Archive(), Cleanup())}
assert tuple(JOBS) == JOB_ORDER


def select_jobs(names: Sequence[str]) -> list[Job]:
    """The named jobs in run order (all of them when none are named)."""
    unknown = [name for name in names if name not in JOBS]
    if unknown:
        raise UsageError(f"unknown job '{unknown[0]}': use one of {', '.join(JOB_ORDER)}")
    wanted = set(names) or set(JOB_ORDER)
    return [JOBS[name] for name in JOB_ORDER if name in wanted]
