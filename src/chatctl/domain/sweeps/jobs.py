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

Every cutoff is computed in Python from the run's ``as_of`` and bound as a
parameter; a cutoff is reached when the timestamp is strictly older than it
(idle *more* than ``inactivity_timeout``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.domain.sweeps import JOB_ORDER

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SYSTEM = "system"
TIMESTAMP_PARAMS = ("as_of", "inactivity_cutoff", "agent_cutoff", "pending_cutoff", "archive_cutoff")


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


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``K/N`` with 1 <= K <= N: the chats whose ``id % N == K - 1``."""
    from chatctl.errors import UsageError

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
class Condition:
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
LIVE = Condition("live", "c.status = 'live'", "not live")
UNFLAGGED = Condition("unflagged", "c.flagged = false", "flagged (R3)")
UNANSWERED = Condition(
    "unanswered",
    "c.last_customer_message_at IS NOT NULL AND (c.last_agent_message_at IS NULL "
    "OR c.last_customer_message_at > c.last_agent_message_at)",
    "no customer message waiting for an answer",
)
UNASSIGNED = Condition("unassigned", "c.agent_id IS NULL", "assigned to an agent")
WAITED = Condition(
    "waited",
    "c.last_customer_message_at < :agent_cutoff AND (c.assigned_at IS NULL OR c.assigned_at < :agent_cutoff)",
    "the customer has not waited agent_chat_timeout yet",
    due=lambda row, prefs: _add(_later(row["last_customer_message_at"], row["assigned_at"]),
                                prefs["agent_chat_timeout"]),
)
IDLE = Condition(
    "idle", "c.last_activity_at < :inactivity_cutoff", "not idle for inactivity_timeout yet",
    due=lambda row, prefs: _add(row["last_activity_at"], prefs["inactivity_timeout"]),
)
NOT_ASSIGNED_THIS_RUN = Condition(
    "not_assigned_at_as_of", "(c.assigned_at IS NULL OR c.assigned_at < :as_of)",
    "(re)assigned at or after as_of: a run changes a chat once, the next run looks again",
)
PENDING = Condition("pending", "c.status = 'pending'", "not pending")
PENDING_DUE = Condition(
    "pending_due", "c.pending_since < :pending_cutoff", "not pending for pending_timeout yet",
    due=lambda row, prefs: _add(row["pending_since"], prefs["pending_timeout"]),
)
ENDED = Condition("ended", "c.status IN ('closed', 'converted')", "not closed or converted")
LEFTOVERS = Condition(
    "leftovers",
    "EXISTS (SELECT 1 FROM comments x WHERE x.chat_id = c.id) "
    "OR EXISTS (SELECT 1 FROM comment_mentions m WHERE m.chat_id = c.id) "
    "OR EXISTS (SELECT 1 FROM notifications n WHERE n.chat_id = c.id AND n.read_at IS NULL "
    "AND n.kind = 'tagged')",
    "no comments, tags or unread tag notifications left",
)
NOT_ARCHIVED = Condition("not_archived", "t.archived_at IS NULL", "ticket already archived")
ARCHIVE_DUE = Condition(
    "archive_due", "t.created_at < :archive_cutoff", "ticket younger than ticket_archive_after",
    due=lambda row, prefs: _add(row["created_at"], prefs["ticket_archive_after"]),
)


def _add(value: dt.datetime | None, delta: dt.timedelta) -> dt.datetime | None:
    return value + delta if value is not None else None


TIMESTAMP_COLUMNS = frozenset({
    "assigned_at", "flagged_at", "created_at", "last_customer_message_at", "last_agent_message_at",
    "last_activity_at", "agent_seen_at", "pending_since", "closed_at", "archived_at"})


def typed_rows(result) -> list[dict[str, Any]]:
    """Rows of a textual SELECT as dicts, timestamps as aware UTC datetimes on every backend."""
    from chatctl.storage.models import UTCDateTime

    rows = [dict(row._mapping) for row in result]
    if rows:
        stamps = [key for key in rows[0] if key in TIMESTAMP_COLUMNS]
        convert = UTCDateTime().process_result_value
        for row in rows:
            for key in stamps:
                row[key] = convert(row[key], None)
    return rows


def bind(sql: str):
    """``text(sql)`` with the timestamp parameters typed (fixed-width UTC text on SQLite)."""
    from sqlalchemy import bindparam, text

    from chatctl.storage.models import UTCDateTime

    statement = text(sql)
    typed = [bindparam(name, type_=UTCDateTime()) for name in TIMESTAMP_PARAMS if f":{name}" in sql]
    if ":ids" in sql:
        typed.append(bindparam("ids", expanding=True))
    return statement.bindparams(*typed) if typed else statement


@dataclass
class BatchOutcome:
    claimed: int = 0
    changed: int = 0
    last_id: int | None = None
    detail: dict[str, int] = field(default_factory=dict)


# -- jobs ----------------------------------------------------------------------------------
class Job:
    """A sweep job over chats (``c``); subclasses say what a batch does."""

    name = ""
    table = "chats"
    alias = "c"
    conditions: tuple[Condition, ...] = ()
    claim_columns = ("id",)
    help = ""

    @property
    def action(self) -> str:
        return f"sweep.{self.name}"

    def predicate(self) -> str:
        return " AND ".join(f"({condition.sql})" for condition in self.conditions)

    def shard_sql(self, context: SweepContext) -> str:
        return f" AND {self.alias}.id % :shard_n = :shard_r" if context.shard else ""

    def count(self, connection: Connection, context: SweepContext, exclude: Sequence[Job] = ()) -> int:
        """Rows eligible at ``as_of`` (minus those an earlier job of the run would take)."""
        others = "".join(f" AND NOT COALESCE(({job.predicate()}), false)" for job in exclude
                         if job.table == self.table)
        sql = (f"SELECT count(*) FROM {self.table} {self.alias} WHERE {self.predicate()}{others}"
               f"{self.shard_sql(context)}")
        return int(connection.execute(bind(sql), context.params()).scalar_one())

    def claim(self, connection: Connection, context: SweepContext, last_id: int, size: int) -> list[dict]:
        """The next batch after ``last_id`` in id order; locked (skipping locked rows) on PostgreSQL.

        On SQLite the transaction began with BEGIN IMMEDIATE: no other writer
        can run until it ends, so the rows read here stay as read.
        """
        from chatctl.storage.engine import is_postgres

        columns = ", ".join(f"{self.alias}.{column}" for column in self.claim_columns)
        sql = (f"SELECT {columns} FROM {self.table} {self.alias} WHERE {self.predicate()} "
               f"AND {self.alias}.id > :last_id{self.shard_sql(context)} ORDER BY {self.alias}.id LIMIT :size")
        if is_postgres(connection):
            sql += " FOR UPDATE SKIP LOCKED"
        params = {**context.params(), "last_id": last_id, "size": size}
        return typed_rows(connection.execute(bind(sql), params))

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        raise NotImplementedError

    def single_statement(self, context: SweepContext) -> tuple[str, dict[str, Any], str] | None:
        """PostgreSQL: the whole batch as one statement (claim, change, R9, audit), when the job has one.

        Returns (sql, extra parameters, detail key) or None.
        """
        return None

    def run_batch(self, connection: Connection, context: SweepContext, last_id: int, size: int) -> BatchOutcome:
        from chatctl.storage.engine import is_postgres

        fast = self.single_statement(context) if is_postgres(connection) else None
        if fast is not None:
            sql, extra, key = fast
            row = connection.execute(bind(sql), {**context.params(), **extra, "last_id": last_id, "size": size,
                                                 "actor": context.actor, "action": self.action,
                                                 "operation_id": context.operation_id}).one()
            return BatchOutcome(claimed=row.claimed, changed=row.changed, last_id=row.last_id,
                                detail={key: row.changed})
        rows = self.claim(connection, context, last_id, size)
        if not rows:
            return BatchOutcome(claimed=0, changed=0, last_id=None)
        outcome = self.apply(connection, context, rows)
        outcome.claimed = len(rows)
        outcome.last_id = max(row["id"] for row in rows)
        return outcome

    # -- shared statements ----------------------------------------------------------------
    def _update(self, connection: Connection, context: SweepContext, ids: Sequence[int], assignments: str,
                extra: Mapping[str, Any] | None = None) -> list[int]:
        """``UPDATE ... SET assignments WHERE id IN ids AND <eligibility again> RETURNING id``."""
        return update_where(connection, self.table, self.alias, ids, assignments, self.predicate(),
                            {**context.params(), **(extra or {})})

    def _close(self, connection: Connection, context: SweepContext, rows: list[dict], reason: str) -> int:
        from chatctl.domain.chats.transitions import purge_ephemeral

        changed = self._update(
            connection, context, [row["id"] for row in rows],
            "status = 'closed', closed_at = :as_of, closed_by = 'system', close_reason = :close_reason, "
            "pending_since = NULL", {"close_reason": reason})
        if not changed:
            return 0
        purged = purge_ephemeral(connection, changed, at=context.as_of)
        by_id = {row["id"]: row for row in rows}
        after = {"status": "closed", "closed_at": context.as_of, "closed_by": SYSTEM, "close_reason": reason,
                 "pending_since": None}
        audit.record(connection, (audit.event(
            at=context.as_of, actor=context.actor, action=self.action, entity_type="chat", entity_id=chat_id,
            operation_id=context.operation_id,
            before={"status": by_id[chat_id]["status"], "closed_at": None, "closed_by": None,
                    "close_reason": None, "pending_since": by_id[chat_id]["pending_since"]},
            after=after, reason=_reason(reason, purged.get(chat_id)),
        ) for chat_id in changed))
        return len(changed)

    def _convert(self, connection: Connection, context: SweepContext, rows: list[dict], reason: str,
                 ticket_agent: Callable[[dict], int | None]) -> int:
        converted = convert_chats(connection, rows, predicate=self.predicate(), params=context.params(),
                                  reason=reason, at=context.as_of, actor=context.actor, action=self.action,
                                  operation_id=context.operation_id, ticket_agent=ticket_agent)
        return len(converted)


def update_where(connection: Connection, table: str, alias: str, ids: Sequence[int], assignments: str,
                 predicate: str, params: Mapping[str, Any]) -> list[int]:
    """``UPDATE table AS alias SET assignments WHERE id IN ids AND predicate RETURNING id``."""
    from chatctl.storage.engine import is_postgres

    if not ids:
        return []
    # SQLite would otherwise walk the status index the UPDATE is rewriting, instead of
    # looking the ids up by rowid.
    hint = "" if is_postgres(connection) else " NOT INDEXED"
    sql = (f"UPDATE {table} AS {alias}{hint} SET {assignments} "
           f"WHERE {alias}.id IN :ids AND {predicate} RETURNING {returning_id(connection, alias)}")
    return [row[0] for row in connection.execute(bind(sql), {**params, "ids": list(ids)})]


NO_TICKET_YET = "NOT EXISTS (SELECT 1 FROM tickets existing WHERE existing.chat_id = c.id)"


def convert_chats(connection: Connection, rows: Sequence[Mapping[str, Any]], *, predicate: str,
                  params: Mapping[str, Any], reason: str, at: dt.datetime, actor: str, action: str,
                  operation_id: str, ticket_agent: Callable[[Mapping[str, Any]], int | None]) -> dict[int, int]:
    """Convert the chats of ``rows`` that still meet ``predicate`` into tickets (``reason``), with R9 and audit.

    A chat that already has a ticket (one per chat) is left as it is.
    Returns chat id -> new ticket id.
    """
    from chatctl.domain.chats.transitions import create_tickets, purge_ephemeral

    changed = update_where(connection, "chats", "c", [row["id"] for row in rows],
                           "status = 'converted', pending_since = NULL",
                           f"{predicate} AND {NO_TICKET_YET}", params)
    if not changed:
        return {}
    by_id = {row["id"]: row for row in rows}
    tickets = create_tickets(connection, [(chat_id, ticket_agent(by_id[chat_id])) for chat_id in changed],
                             reason=reason, at=at)
    purged = purge_ephemeral(connection, changed, at=at)
    events = []
    for chat_id in changed:
        events.append(audit.event(
            at=at, actor=actor, action=action, entity_type="chat", entity_id=chat_id, operation_id=operation_id,
            before={"status": by_id[chat_id]["status"], "pending_since": by_id[chat_id]["pending_since"]},
            after={"status": "converted", "pending_since": None},
            reason=_reason(f"ticket {tickets[chat_id]} ({reason})", purged.get(chat_id)),
        ))
        events.append(audit.event(
            at=at, actor=actor, action=action, entity_type="ticket", entity_id=tickets[chat_id],
            operation_id=operation_id, before=None,
            after={"chat_id": chat_id, "status": "open", "reason": reason,
                   "agent_id": ticket_agent(by_id[chat_id]), "created_at": at},
            reason=f"created from chat {chat_id}",
        ))
    audit.record(connection, events)
    return tickets


def _iso_utc(column: str) -> str:
    """A timestamptz as ISO 8601 UTC text, like ``audit.jsonable`` writes it."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def close_statement(job: Job, context: SweepContext, reason: str) -> tuple[str, dict[str, Any], str]:
    """One PostgreSQL statement per batch: claim (SKIP LOCKED), close with the predicate re-checked on the
    locked row, R9 purge, and the audit rows with the purge counts in their reason.

    The purge matches ``= ANY(ARRAY(SELECT id FROM changed))``: the planner cannot size a CTE and
    would hash-join a whole table per batch; an array of ids is looked up through the chat_id indexes.
    """
    predicate = job.predicate()
    sql = f"""
WITH claimed AS (
    SELECT c.id, c.status, c.pending_since FROM chats c
    WHERE {predicate} AND c.id > :last_id{job.shard_sql(context)}
    ORDER BY c.id LIMIT :size FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE chats c SET status = 'closed', closed_at = :as_of, closed_by = 'system', close_reason = :close_reason,
                       pending_since = NULL
    FROM claimed WHERE c.id = claimed.id AND {predicate}
    RETURNING c.id, claimed.status AS old_status, claimed.pending_since AS old_pending_since
), read_notes AS (
    UPDATE notifications n SET read_at = :as_of
    WHERE n.chat_id = ANY(ARRAY(SELECT id FROM changed)) AND n.read_at IS NULL AND n.kind = 'tagged'
    RETURNING n.chat_id
), gone_tags AS (
    DELETE FROM comment_mentions m WHERE m.chat_id = ANY(ARRAY(SELECT id FROM changed)) RETURNING m.chat_id
), gone_comments AS (
    DELETE FROM comments x WHERE x.chat_id = ANY(ARRAY(SELECT id FROM changed)) RETURNING x.chat_id
), purged AS (
    SELECT chat_id, sum(comments) AS comments, sum(tags) AS tags, sum(notes) AS notes FROM (
        SELECT chat_id, 1 AS comments, 0 AS tags, 0 AS notes FROM gone_comments
        UNION ALL SELECT chat_id, 0, 1, 0 FROM gone_tags
        UNION ALL SELECT chat_id, 0, 0, 1 FROM read_notes) AS removed
    GROUP BY chat_id
), audit AS (
    INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
    SELECT :as_of, :actor, :action, 'chat', changed.id::text,
           jsonb_build_object('status', changed.old_status, 'closed_at', NULL, 'closed_by', NULL,
                              'close_reason', NULL, 'pending_since', {_iso_utc("changed.old_pending_since")}),
           CAST(:after AS jsonb), :operation_id,
           CASE WHEN purged.chat_id IS NULL THEN :close_reason
                ELSE :close_reason || '; comments_removed=' || purged.comments || ', tags_removed=' || purged.tags
                     || ', notifications_read=' || purged.notes END
    FROM changed LEFT JOIN purged ON purged.chat_id = changed.id
    RETURNING 1
)
SELECT (SELECT max(id) FROM claimed) AS last_id, (SELECT count(*) FROM claimed) AS claimed,
       (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM audit) AS audited"""
    after = audit.snapshot({"status": "closed", "closed_at": context.as_of, "closed_by": SYSTEM,
                            "close_reason": reason, "pending_since": None})
    return sql, {"close_reason": reason, "after": json_param(after)}, "closed"


def returning_id(connection: Connection, alias: str) -> str:
    """SQLite's RETURNING cannot name the UPDATE's alias; PostgreSQL's must when joined."""
    from chatctl.storage.engine import is_postgres

    return f"{alias}.id" if is_postgres(connection) else "id"


def _reason(text: str, purged: Mapping[str, int] | None) -> str:
    """The audit reason, with the R9 counts when anything ephemeral was removed."""
    if not purged:
        return text
    return text + "; " + ", ".join(f"{key}={value}" for key, value in purged.items())


class AssignmentJob(Job):
    """Shared by ``unattended`` and ``agent-timeout``: least-loaded (re)assignment or a ticket."""

    claim_columns = ("id", "status", "agent_id", "assigned_at", "reassign_count", "pending_since")
    reassignment = False

    def _assign(self, connection: Connection, context: SweepContext, rows: list[dict],
                reason_if_none: str) -> BatchOutcome:
        from chatctl.domain.agents.assignment import apply_assignments, plan_assignments

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
        outcome = BatchOutcome()
        changes = []
        for row in assigned:
            count = row["reassign_count"] + (1 if self.reassignment and row["agent_id"] is not None else 0)
            changes.append((row, plan[row["id"]], count))
        outcome.detail["assigned"] = len(apply_assignments(
            connection, changes, at=context.as_of, actor=context.actor, action=self.action,
            operation_id=context.operation_id, recheck=self.predicate(), params=context.params(),
            reason="least-loaded online agent" + (" (R5)" if self.reassignment else " (R12)")))
        ticketed = self._convert(connection, context, nobody, reason_if_none, lambda row: None)
        bounced = self._convert(connection, context, bounded, "no_agents", lambda row: None)
        outcome.detail[reason_if_none] = outcome.detail.get(reason_if_none, 0) + ticketed
        outcome.detail["no_agents"] = outcome.detail.get("no_agents", 0) + bounced
        outcome.changed = outcome.detail["assigned"] + ticketed + bounced
        return outcome


class Unattended(AssignmentJob):
    """R12 for chats already in the desk: unassigned live chats still waiting."""

    name = "unattended"
    help = ("unassigned live chats with an unanswered customer: out of hours -> ticket (out_of_hours); "
            "nobody online -> ticket (no_agents); else assigned to the least-loaded online agent")
    conditions = (LIVE, UNFLAGGED, UNASSIGNED, UNANSWERED)

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        from chatctl.domain.agents.assignment import online_agents

        prefs = context.prefs
        if not prefs["business_hours"].is_open(context.as_of, prefs["timezone"], prefs["holidays"]):
            changed = self._convert(connection, context, rows, "out_of_hours", lambda row: None)
            return BatchOutcome(changed=changed, detail={"out_of_hours": changed})
        if not online_agents(connection):
            changed = self._convert(connection, context, rows, "no_agents", lambda row: None)
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


class Inactivity(Job):
    """R3, R4: close (or convert, per inactivity_action) live unflagged chats idle too long."""

    name = "inactivity"
    help = "live unflagged chats idle more than inactivity_timeout: closed, or tickets (inactivity_action)"
    conditions = (LIVE, UNFLAGGED, IDLE, NOT_ASSIGNED_THIS_RUN)
    claim_columns = ("id", "status", "agent_id", "pending_since")

    def single_statement(self, context: SweepContext):
        if context.prefs["inactivity_action"] == "ticket":
            return None
        return close_statement(self, context, "inactivity")

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        if context.prefs["inactivity_action"] == "ticket":
            changed = self._convert(connection, context, rows, "inactivity", lambda row: row["agent_id"])
            return BatchOutcome(changed=changed, detail={"converted": changed})
        changed = self._close(connection, context, rows, "inactivity")
        return BatchOutcome(changed=changed, detail={"closed": changed})


class Pending(Job):
    """R6: pending chats past pending_timeout are closed (flagged ones too)."""

    name = "pending"
    help = "pending chats older than pending_timeout: closed (close_reason pending_timeout)"
    conditions = (PENDING, PENDING_DUE)
    claim_columns = ("id", "status", "pending_since")

    def single_statement(self, context: SweepContext):
        return close_statement(self, context, "pending_timeout")

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        changed = self._close(connection, context, rows, "pending_timeout")
        return BatchOutcome(changed=changed, detail={"closed": changed})


class Archive(Job):
    """R13: tickets created more than ticket_archive_after ago are archived, whatever their status."""

    name = "archive"
    help = "tickets created more than ticket_archive_after before as_of, open or closed: archived"
    table = "tickets"
    alias = "t"
    conditions = (NOT_ARCHIVED, ARCHIVE_DUE)
    claim_columns = ("id",)

    def single_statement(self, context: SweepContext):
        predicate = self.predicate()
        sql = f"""
WITH claimed AS (
    SELECT t.id FROM tickets t WHERE {predicate} AND t.id > :last_id{self.shard_sql(context)}
    ORDER BY t.id LIMIT :size FOR UPDATE SKIP LOCKED
), changed AS (
    UPDATE tickets t SET archived_at = :as_of
    -- = ANY(ARRAY(...)): each claimed ticket by primary key.  A join with the CTE let the planner
    -- hash-join a scan of every due ticket, once per batch, while a backlog is being archived.
    WHERE t.id = ANY(ARRAY(SELECT id FROM claimed)) AND {predicate} RETURNING t.id
), audit AS (
    INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, reason)
    SELECT :as_of, :actor, :action, 'ticket', changed.id::text, CAST(:before AS jsonb), CAST(:after AS jsonb),
           :operation_id, 'ticket_archive_after (R13)'
    FROM changed RETURNING 1
)
SELECT (SELECT max(id) FROM claimed) AS last_id, (SELECT count(*) FROM claimed) AS claimed,
       (SELECT count(*) FROM changed) AS changed, (SELECT count(*) FROM audit) AS audited"""
        return sql, {"before": json_param({"archived_at": None}),
                     "after": json_param(audit.snapshot({"archived_at": context.as_of}))}, "archived"

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        changed = self._update(connection, context, [row["id"] for row in rows], "archived_at = :as_of")
        audit.record(connection, (audit.event(
            at=context.as_of, actor=context.actor, action=self.action, entity_type="ticket", entity_id=ticket_id,
            operation_id=context.operation_id, before={"archived_at": None}, after={"archived_at": context.as_of},
            reason="ticket_archive_after (R13)",
        ) for ticket_id in changed))
        return BatchOutcome(changed=len(changed), detail={"archived": len(changed)})


class Cleanup(Job):
    """R9 safety net: comments, tags and unread tag notifications left on closed or converted chats."""

    name = "cleanup"
    help = "closed or converted chats that still have comments, tags or unread tag notifications: purged (R9)"
    conditions = (ENDED, LEFTOVERS)
    claim_columns = ("id",)

    def apply(self, connection: Connection, context: SweepContext, rows: list[dict]) -> BatchOutcome:
        from chatctl.domain.chats.transitions import purge_ephemeral

        # Nothing on the chat row changes; the claimed (locked) chat rows keep a
        # comment from being added meanwhile, and the purge is idempotent.
        purged = purge_ephemeral(connection, [row["id"] for row in rows], at=context.as_of)
        audit.record(connection, (audit.event(
            at=context.as_of, actor=context.actor, action=self.action, entity_type="chat", entity_id=chat_id,
            operation_id=context.operation_id, before={}, after={},
            reason=_reason("R9 clean-up", counts),
        ) for chat_id, counts in purged.items()))
        return BatchOutcome(changed=len(purged), detail={"purged": len(purged)})


JOBS: dict[str, Job] = {job.name: job for job in (Unattended(), AgentTimeout(), Inactivity(), Pending(),
                                                   Archive(), Cleanup())}
assert tuple(JOBS) == JOB_ORDER


def select_jobs(names: Sequence[str]) -> list[Job]:
    """The named jobs in run order (all of them when none are named)."""
    from chatctl.errors import UsageError

    unknown = [name for name in names if name not in JOBS]
    if unknown:
        raise UsageError(f"unknown job '{unknown[0]}': use one of {', '.join(JOB_ORDER)}")
    wanted = set(names) or set(JOB_ORDER)
    return [JOBS[name] for name in JOB_ORDER if name in wanted]


def json_param(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
