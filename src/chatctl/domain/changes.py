"""The engine every chat and ticket transition runs on.

A transition (``chats.transitions``, ``tickets.transitions``) is a ``Change``:
new values for some columns of the rows of a batch that still meet its
eligibility, plus, for chats, ``Step``s done to what changed (the R9 purge,
the tickets of a conversion).  ``run`` applies it to a batch and writes one
audit event per changed row (R15), in the caller's transaction:

1. lock the batch's rows in id order and read the values the audit records
   as "before" - a batch named by id (``Ids``: bulk commands, drain, the
   sweeps' assignment plans) or the next rows of a sweep (``Claim``, which
   skips rows another transaction holds);
2. ``UPDATE`` those rows with the eligibility re-checked in the ``WHERE``
   (what changed meanwhile is left alone), returning the new values;
3. the steps, for the rows that changed;
4. the audit events: the columns that changed, before and after, plus what
   the steps add (``comments_removed``, ``ticket_id``, ...).

It has three forms, chosen by dialect from a registry (``FORMS``):

* ``Portable``: a few set-based statements whatever the batch size, the
  audit events diffed and serialised in Python, row by row;
* ``OneStatement``, on PostgreSQL: the same work as one statement
  (data-modifying CTEs), the audit events built in SQL;
* ``AuditFirst``, on SQLite, which has no data-modifying CTEs: the audit
  events built in SQL and inserted before the UPDATE, from the rows as they
  are then; a change with a step that has no such form (``Step.text_sql``:
  only the R9 purge has one) runs in the portable form.

Each fast form leaves the very rows and audit events the portable one does
(tests/test_transitions.py runs both on the same data; on SQLite it
compares the stored audit text byte for byte).

The SQL is textual and names tables, not aliases, so the conditions the
sweeps count, claim and explain with are the very ones re-checked here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from chatctl.domain.audit import writer as audit
from chatctl.storage.dialects import Dialect, Registry, dialect
from chatctl.storage.sql import BOOLEAN_COLUMNS, TIMESTAMP_COLUMNS, execute, json_param, typed_rows


@dataclass(frozen=True)
class Table:
    name: str
    entity: str
    """The audit events' ``entity_type``."""


CHATS = Table("chats", "chat")
TICKETS = Table("tickets", "ticket")


@dataclass(frozen=True)
class Ids:
    """A batch named by id, locked in id order (two bulk commands never deadlock).

    ``plan`` gives values per id that the change's SQL reads as ``plan.NAME``
    (an assignment plan: which agent takes which chat); ``plan_types`` their
    SQL types.
    """

    ids: Sequence[int]
    plan: Mapping[int, Mapping[str, Any]] | None = None
    plan_types: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.plan is not None and (len(self.plan) != len(self.ids) or set(self.plan) != set(self.ids)):
            raise ValueError("a plan names the batch's ids, each once")


@dataclass(frozen=True)
class Claim:
    """A sweep's next batch: up to ``size`` rows meeting ``predicate`` with an id above
    ``after_id``, in id order.  Rows another transaction holds are skipped (PostgreSQL):
    the next run takes them."""

    predicate: str
    params: Mapping[str, Any]
    after_id: int
    size: int


@dataclass(frozen=True)
class Guard:
    """A caller's own condition on the rows (SQL and its parameters), re-checked in the
    UPDATE beside the transition's own: a sweep's eligibility, a drain's "still theirs"."""

    sql: str = "1 = 1"
    params: Mapping[str, Any] = field(default_factory=dict)

    def claim(self, after_id: int, size: int) -> Claim:
        """The next batch of rows meeting this condition (a sweep's batch)."""
        return Claim(self.sql, self.params, after_id, size)


ANY_ROW = Guard()


@dataclass(frozen=True)
class Change:
    """New ``values`` (column -> SQL over the row before the change, the parameters and
    ``plan``) for the rows of a batch that meet ``eligible`` (SQL) when they are changed.

    ``reads`` are more columns of the locked row the steps need (as ``old_NAME``);
    ``reason`` is the audit events' reason.
    """

    table: Table
    values: Mapping[str, str]
    eligible: str
    params: Mapping[str, Any] = field(default_factory=dict)
    reads: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns read before the change: the changed ones, then ``reads``."""
        return tuple(dict.fromkeys((*self.values, *self.reads)))

    @property
    def assignments(self) -> str:
        """The SET list of the UPDATE."""
        return ", ".join(f"{column} = {value}" for column, value in self.values.items())


@dataclass
class Row:
    """One changed row: its id, the values before and after."""

    id: int
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass
class StepResult:
    after: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Per changed id, what the step adds to the row's audit event's ``after``."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """Audit events of rows the step wrote (a ticket created)."""
    made: dict[int, Any] = field(default_factory=dict)
    """Per changed id, what the caller is told (the new ticket's id)."""


@dataclass(frozen=True)
class StepSQL:
    """A step inside the one PostgreSQL statement.

    ``ctes``: (name, SQL) read ``changed`` (``id``, ``new_*``, ``old_*``);
    ``join``: joins one row per changed id (``changed.id``) onto the audit of
    the changed rows and the final SELECT; ``after``: jsonb SQL added to the
    ``after`` of that audit; ``audit``: more audit events (``writer.events_sql``,
    ordered after the changed rows' own, as the portable form writes them);
    ``made``: SQL of the value told to the caller.
    """

    ctes: tuple[tuple[str, str], ...] = ()
    join: str = ""
    after: str | None = None
    audit: tuple[str, ...] = ()
    made: str | None = None


@dataclass(frozen=True)
class TextStepSQL:
    """A step in SQLite's audit-first form (``AuditFirst``).

    ``after``: members added to the ``after`` of a changed row's audit event,
    key -> (SQL true when the key is there, SQL of its value's JSON text),
    over the row before the change (``chats.id``...); ``statements``: run once
    the audit events are written, over the ids of the rows to change
    (``Dialect.ids_in(..., "changed")``).
    """

    after: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    statements: tuple[str, ...] = ()


class Step:
    """Something a transition does to the rows it changed, beyond their columns."""

    name = ""
    makes = False
    """Whether the step makes rows the caller is told about (``Outcome.made``)."""

    def apply(self, connection: Connection, rows: list[Row], stamp: audit.Stamp,
              params: Mapping[str, Any]) -> StepResult:
        raise NotImplementedError

    def sql(self) -> StepSQL:
        raise NotImplementedError

    def text_sql(self, spelling: Dialect) -> TextStepSQL | None:
        """The step in SQLite's audit-first form; None: the change runs in the portable form."""
        return None

    def params(self) -> dict[str, Any]:
        """The parameters the step's SQL binds."""
        return {}


@dataclass
class Outcome:
    claimed: int = 0
    """Rows of the batch found and locked."""
    last_id: int | None = None
    """The highest id claimed: a sweep's next batch starts after it."""
    changed: list[int] = field(default_factory=list)
    """Ids of the rows that changed, in id order."""
    made: dict[str, dict[int, Any]] = field(default_factory=dict)
    """Per step name, per changed id, what the step made (``made["tickets"][chat_id]``)."""


def _batch_params(batch: Ids | Claim, connection: Connection) -> dict[str, Any]:
    if isinstance(batch, Claim):
        return {**batch.params, "claim_after": batch.after_id, "claim_size": batch.size}
    params: dict[str, Any] = {"ids": dialect(connection).ids_value(batch.ids)}
    if batch.plan is not None:
        params["plan"] = json_param([{"id": chat_id, **values} for chat_id, values in batch.plan.items()])
    return params


def _params(connection: Connection, change: Change, batch: Ids | Claim, stamp: audit.Stamp,
            steps: Sequence[Step]) -> dict[str, Any]:
    params = {**change.params, **_batch_params(batch, connection), **stamp.params(), "audit_reason": change.reason}
    for step in steps:
        params.update(step.params())
    return params


def _plan_source(connection: Connection, batch: Ids | Claim) -> str | None:
    if isinstance(batch, Ids) and batch.plan is not None:
        return dialect(connection).json_rows("plan", {"id": "bigint", **batch.plan_types}, "plan")
    return None


def _claim_sql(connection: Connection, table: str, batch: Ids | Claim, select: str, *,
               join: str = "") -> str:
    """SELECT ``select`` from the batch's rows of ``table``, locked, in id order.

    A batch with a plan is named by the plan (``join``) alone: filtered by
    its ids as well, the planner multiplies the two selectivities, expects
    one row, and then joins the batch's rows row by row (a thousand times
    a thousand comparisons for an assignment sweep's batch).
    """
    spelling = dialect(connection)
    if isinstance(batch, Claim):
        return (f"SELECT {select} FROM {table}{join} WHERE ({batch.predicate}) AND {table}.id > :claim_after "
                f"ORDER BY {table}.id LIMIT :claim_size{spelling.lock(skip_locked=True, of=table)}")
    where = "" if join else f" WHERE {spelling.ids_in(f'{table}.id')}"
    return f"SELECT {select} FROM {table}{join}{where} ORDER BY {table}.id{spelling.lock(of=table)}"


class Portable:
    """A few set-based statements per batch, whatever its size: claim, update, steps, audit."""

    def run(self, connection: Connection, change: Change, batch: Ids | Claim, stamp: audit.Stamp,
            steps: Sequence[Step] = ()) -> Outcome:
        if isinstance(batch, Ids) and not batch.ids:
            return Outcome()
        table = change.table.name
        spelling = dialect(connection)
        params = _params(connection, change, batch, stamp, steps)
        select = ", ".join((f"{table}.id", *(f"{table}.{column}" for column in change.columns)))
        claimed = {row.pop("id"): row for row in
                   typed_rows(execute(connection, _claim_sql(connection, table, batch, select), params))}
        outcome = Outcome(claimed=len(claimed), last_id=max(claimed, default=None),
                          made={step.name: {} for step in steps if step.makes})
        if not claimed:
            return outcome
        plan = _plan_source(connection, batch)
        where = _still_eligible(change, spelling.ids_in(f"{table}.id", "claimed"), plan)
        if change.values:
            sql = _update_sql(connection, change, plan, where, ("id", *change.values))
        else:
            # Nothing but the steps: the rows still eligible, locked since the claim.
            sql = f"SELECT {table}.id FROM {table}" + (f", {plan}" if plan else "") + where
        params["claimed"] = spelling.ids_value(sorted(claimed))
        rows = [Row(new.pop("id"), {}, new) for new in typed_rows(execute(connection, sql, params))]
        rows.sort(key=lambda row: row.id)
        for row in rows:
            row.old = claimed[row.id]
        outcome.changed = [row.id for row in rows]
        if not rows:
            return outcome
        results = {step.name: step.apply(connection, rows, stamp, params) for step in steps}
        events = []
        for row in rows:
            before, after = audit.diff(row.old, row.new)
            for result in results.values():
                after.update(result.after.get(row.id, {}))
            events.append(stamp.event(change.table.entity, row.id, before=before, after=after,
                                      reason=change.reason))
        for result in results.values():
            events += result.events
        audit.record(connection, events)
        outcome.made = {step.name: results[step.name].made for step in steps if step.makes}
        return outcome


class OneStatement(Portable):
    """PostgreSQL: claim, update, steps and audit as one statement per batch.

    ``changed`` reaches the claimed rows through ``= ANY(ARRAY(...))``, by
    primary key, and joins ``claimed`` only for its values: found by a join
    with a CTE, whose size the planner cannot know, a table could be
    hash-joined whole once per batch.
    """

    def run(self, connection: Connection, change: Change, batch: Ids | Claim, stamp: audit.Stamp,
            steps: Sequence[Step] = ()) -> Outcome:
        if isinstance(batch, Ids) and not batch.ids:
            return Outcome()
        table = change.table.name
        params = _params(connection, change, batch, stamp, steps)
        plan = _plan_source(connection, batch)
        planned = [f"plan.{name}" for name in (batch.plan_types if plan else ())]
        select = ", ".join((f"{table}.id", *(f"{table}.{column} AS old_{column}" for column in change.columns),
                            *planned))
        claim = _claim_sql(connection, table, batch, select,
                           join=f" JOIN {plan} ON plan.id = {table}.id" if plan else "")
        returning = ", ".join((f"{table}.id", *(f"{table}.{column} AS new_{column}" for column in change.values),
                               *(f"plan.old_{column}" for column in change.columns)))
        fixed = _fixed_values(change.values, params)
        params["audit_fixed"] = audit.fixed_param(fixed)
        changes = audit.changes_sql(
            {column: (f"changed.old_{column}", f"changed.new_{column}") for column in change.values},
            TIMESTAMP_COLUMNS, fixed=fixed)
        before, after = changes.before, changes.after
        parts = [step.sql() for step in steps]
        joins = "".join(part.join for part in parts)
        for part in parts:
            if part.after is not None:
                after += f" || {part.after}"
        ctes = [
            ("claimed", claim),
            ("changed", (f"UPDATE {table} SET {change.assignments} FROM claimed AS plan " if change.values else
                         f"SELECT {returning} FROM {table}, claimed AS plan ")
                        + f"WHERE {table}.id = ANY(ARRAY(SELECT id FROM claimed)) AND {table}.id = plan.id "
                        f"AND ({change.eligible})" + (f" RETURNING {returning}" if change.values else "")),
            *(cte for part in parts for cte in part.ctes),
            ("audited", audit.insert_sql([
                audit.events_sql(entity_type=f"CAST('{change.table.entity}' AS text)",
                                 entity_id="CAST(changed.id AS text)", before=before, after=after,
                                 reason="CAST(:audit_reason AS text)", source=f"changed{changes.lateral}{joins}",
                                 order=(0, "changed.id")),
                *(events for part in parts for events in part.audit)],
                agents="agent_id" in change.values or any(part.audit for part in parts))),
        ]
        # The changed ids (and what the steps made for them) come back as arrays in one row: the
        # driver reads an array in one call, where a row per changed id costs Python time per row.
        each = "ORDER BY changed.id) FILTER (WHERE changed.id IS NOT NULL)"
        made = "".join(f", array_agg({part.made} {each} AS made_{index}"
                       for index, (step, part) in enumerate(zip(steps, parts)) if step.makes)
        sql = ("WITH " + ",\n".join(f"{name} AS ({body})" for name, body in ctes)
               + f"\nSELECT summary.claimed, summary.last_id, array_agg(changed.id {each} AS ids{made} "
               "FROM (SELECT count(*) AS claimed, max(id) AS last_id FROM claimed) AS summary "
               f"LEFT JOIN changed ON true{joins} GROUP BY summary.claimed, summary.last_id")
        row = execute(connection, sql, params).one()
        outcome = Outcome(claimed=row.claimed, last_id=row.last_id)
        outcome.changed = list(row.ids or ())
        outcome.made = {step.name: dict(zip(outcome.changed, getattr(row, f"made_{index}") or ()))
                        for index, step in enumerate(steps) if step.makes}
        return outcome


class AuditFirst(Portable):
    """SQLite: the audit events written by SQL from the rows as they are, then the UPDATE.

    Three statements per batch and no Python per row, the rows to change
    passed from one statement to the next as one text of ids
    (``Dialect.ids_of``):

    1. the claim: how many rows, the last id, and the ids of those that
       still meet the change's eligibility, the rows to change;
    2. ``INSERT INTO audit_events ... SELECT`` over those rows, before and
       after built from the row before the change - the change's values are
       SQL over that row, as in the UPDATE's SET - with SQLite's JSON
       functions, the same text ``audit.record`` stores
       (``writer.text_changes_sql``);
    3. the ``UPDATE`` of the same rows, the eligibility re-checked.

    The transaction holds SQLite's write lock from its first statement
    (``BEGIN IMMEDIATE``, storage.engine), so nothing changes the rows
    between the statements: the rows audited are the rows changed (and the
    counts of both are compared).

    A step that has this form too (``Step.text_sql``: the R9 purge) adds to
    the audit events' ``after`` and runs its statements between the audit
    events and the UPDATE; a change with any other step (the tickets of a
    conversion, a message, a comment) runs in the portable form.
    """

    def run(self, connection: Connection, change: Change, batch: Ids | Claim, stamp: audit.Stamp,
            steps: Sequence[Step] = ()) -> Outcome:
        parts = [step.text_sql(dialect(connection)) for step in steps]
        if not change.values or any(part is None for part in parts):
            return super().run(connection, change, batch, stamp, steps)
        if isinstance(batch, Ids) and not batch.ids:
            return Outcome()
        table = change.table.name
        spelling = dialect(connection)
        params = _params(connection, change, batch, stamp, steps)
        plan = _plan_source(connection, batch)
        claim = _claim_sql(connection, table, batch, f"{table}.id, CASE WHEN {change.eligible} THEN {table}.id END "
                           "AS still", join=f" JOIN {plan} ON plan.id = {table}.id" if plan else "")
        claimed, last_id, params["changed"] = execute(
            connection, f"SELECT count(*), max(id), {spelling.ids_of('still')} FROM ({claim})", params).one()
        outcome = Outcome(claimed=claimed, last_id=last_id)
        if params["changed"] is None:
            return outcome
        outcome.changed = sorted(map(int, params["changed"].split(",")))
        where = _still_eligible(change, spelling.ids_in(f"{table}.id", "changed"), plan)
        before, after = audit.text_changes_sql(
            spelling, {column: (f"{table}.{column}", value) for column, value in change.values.items()},
            TIMESTAMP_COLUMNS, BOOLEAN_COLUMNS, added={key: member for part in parts for key, member in
                                                       part.after.items()})
        audited = execute(connection, audit.select_events_sql(
            entity_type=change.table.entity, entity_id=f"{table}.id", before=before, after=after,
            reason=":audit_reason", source=spelling.by_id(table) + (f", {plan}" if plan else "") + where,
            order=f"{table}.id"), params).rowcount
        for part in parts:
            for statement in part.statements:
                execute(connection, statement, params)
        updated = execute(connection, _update_sql(connection, change, plan, where), params).rowcount
        if not audited == updated == len(outcome.changed):
            raise RuntimeError(f"{len(outcome.changed)} {table} to change: {updated} changed, "
                               f"{audited} audit events written")
        return outcome


def _still_eligible(change: Change, claimed: str, plan: str | None) -> str:
    """The WHERE of the claimed rows (``claimed``: SQL) that still meet the change's eligibility."""
    return (f" WHERE {claimed}" + (f" AND {change.table.name}.id = plan.id" if plan else "")
            + f" AND ({change.eligible})")


def _update_sql(connection: Connection, change: Change, plan: str | None, where: str,
                returning: Sequence[str] = ()) -> str:
    """The change's UPDATE of the rows ``where`` picks, returning ``returning``."""
    spelling = dialect(connection)
    table = change.table.name
    return (f"UPDATE {spelling.by_id(table)} SET {change.assignments}" + (f" FROM {plan}" if plan else "")
            + where + (f" RETURNING {spelling.returning(table, returning)}" if returning else ""))


FORMS: Registry[Portable] = Registry(Portable(), postgresql=OneStatement(), sqlite=AuditFirst())

_LITERALS = {"NULL": None, "true": True, "false": False}


def _fixed_values(values: Mapping[str, str], params: Mapping[str, Any]) -> dict[str, Any]:
    """The new values that are the same for every row: a literal, or one bound parameter."""
    fixed = {}
    for column, sql in values.items():
        if sql in _LITERALS:
            fixed[column] = _LITERALS[sql]
        elif sql.isdigit():
            fixed[column] = int(sql)
        elif len(sql) > 1 and sql[0] == sql[-1] == "'" and "'" not in sql[1:-1]:
            fixed[column] = sql[1:-1]
        elif sql.startswith(":") and sql[1:].isidentifier() and sql[1:] in params:
            fixed[column] = params[sql[1:]]
    return fixed


def run(connection: Connection, change: Change, batch: Ids | Claim, stamp: audit.Stamp,
        steps: Sequence[Step] = (), *, form: Portable | None = None) -> Outcome:
    """Apply ``change`` (and ``steps``) to ``batch`` with its audit events, in the caller's transaction.

    ``form`` defaults to the connection's dialect's: one statement on PostgreSQL, the audit
    events first on SQLite.
    """
    return (form or FORMS(connection)).run(connection, change, batch, stamp, steps)


def sql_list(values: Sequence[str]) -> str:
    """``('live', 'pending')``: constant words of the desk's vocabulary inside SQL text."""
    return "(" + ", ".join(f"'{value}'" for value in values) + ")"

