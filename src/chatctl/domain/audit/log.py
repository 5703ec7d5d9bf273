"""Reading and undoing the audit trail: ``audit list`` and ``audit revert``.

``audit revert OPERATION_ID`` walks the audit events of one operation (a sweep
run or a bulk command), newest first, in keyset batches, and writes each
event's ``before`` values back onto the entity it names, when that entity has
not been changed since.  The rules, in the order they are checked:

* an event whose ``before`` is empty recorded a creation (an agent added, a
  ticket made by a conversion): it is not revertible and is ``refused`` -- a
  revert never deletes rows;
* a later audit event on the same entity, from another operation, is a
  conflict: ``refused``, naming that operation -- unless it is an earlier
  ``audit revert`` of this very operation, which makes the item ``skipped``
  (already reverted), so running a revert twice is harmless;
* the entity's current values must still equal the event's ``after`` values,
  or something changed it outside the audit trail: ``refused``;
* values that are not columns of the entity (``comments_removed`` and the
  other R9 counters) cannot be restored: comments are deleted for good when a
  chat closes.  The item is still ``changed`` and its reason says so.

The entity rows of a batch are locked (``FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) before the conflict check, and every change made
elsewhere writes its audit event in the same transaction as the change, so a
concurrent change is either seen by the check or waits for the revert.  The
revert writes its own audit events (action ``audit.revert``, its own
operation id, reason naming the reverted operation) in each batch's
transaction, so a revert can itself be reverted.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.errors import NotFound, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

ENTITY_FORMS = "chat:ID, ticket:ID, agent:HANDLE or preference:KEY"
ENTITY_TYPES = ("chat", "ticket", "agent", "preference")
REVERT_ACTION = "audit.revert"
_OPERATION_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,32}$")
# Key columns identify the row; they are never written back.
_KEY_COLUMNS = {"chat": {"id"}, "ticket": {"id", "chat_id"}, "agent": {"id", "handle"}}


@dataclass(frozen=True)
class EntityRef:
    type: str
    id: str

    def __str__(self) -> str:
        return f"{self.type}:{self.id}"


def parse_entity(text: str) -> EntityRef:
    """``chat:42`` -> EntityRef("chat", "42"); anything else is a usage error."""
    kind, sep, ident = text.strip().partition(":")
    kind = kind.strip().lower()
    ident = ident.strip()
    if not sep or kind not in ENTITY_TYPES or not ident:
        raise UsageError(f"bad entity '{text}': use {ENTITY_FORMS}")
    if kind in ("chat", "ticket"):
        if not ident.isdigit() or int(ident) <= 0 or int(ident) > 2**63 - 1:
            raise UsageError(f"bad entity '{text}': a {kind} id is a positive whole number ({ENTITY_FORMS})")
        ident = str(int(ident))
    return EntityRef(kind, ident)


def check_operation_id(text: str) -> str:
    if not _OPERATION_ID.match(text or ""):
        raise UsageError(f"bad operation id '{text}': operation ids are printed by every change "
                         "(e.g. 01JDZ8Q3K4V7W2M5N6P8R9S0TA); find them with `chatctl audit list`")
    return text


# -- list ------------------------------------------------------------------------------
def list_events(
    connection: Connection,
    *,
    entity: EntityRef | None = None,
    operation: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    before_id: int | None = None,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Audit events newest first (by id, i.e. in the order they were written), as SPEC 2.3 dicts.

    Rows stream from a server-side cursor on PostgreSQL, so ``limit=None``
    (``--all``) keeps memory flat on any size of trail.
    """
    from sqlalchemy import select

    from chatctl.storage.models import AuditEvent

    query = select(AuditEvent.__table__).order_by(AuditEvent.id.desc())
    if entity is not None:
        query = query.where(AuditEvent.entity_type == entity.type, AuditEvent.entity_id == entity.id)
    if operation is not None:
        query = query.where(AuditEvent.operation_id == operation)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if limit is not None:
        query = query.limit(limit)
    result = connection.execution_options(stream_results=True, yield_per=1000).execute(query)
    for row in result.mappings():
        yield audit.audit_json(row)


# -- revert ----------------------------------------------------------------------------
def count_operation_events(connection: Connection, operation_id: str) -> int:
    """How many audit events the operation wrote; NotFound (exit 1) when none."""
    from sqlalchemy import func, select

    from chatctl.storage.models import AuditEvent

    count = connection.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.operation_id == operation_id)
    ).scalar_one()
    if not count:
        raise NotFound(f"no audit events for operation '{operation_id}'",
                       hint="find operation ids with `chatctl audit list`")
    return count


class OperationEvents:
    """The audit ids of one operation, newest first, fetched page by page (keyset).

    Quacks like ``bulk.IdSpool`` (``count``, ``batches``, ``close``) so the
    shared mutation runner can drive a revert.  Each page is read in its own
    short transaction, after the previous batch committed.
    """

    def __init__(self, engine: Engine, operation_id: str, count: int) -> None:
        self.engine = engine
        self.operation_id = operation_id
        self.count = count

    def batches(self, size: int) -> Iterator[list[int]]:
        from sqlalchemy import select

        from chatctl.storage.models import AuditEvent

        last: int | None = None
        while True:
            query = (select(AuditEvent.id).where(AuditEvent.operation_id == self.operation_id)
                     .order_by(AuditEvent.id.desc()).limit(size))
            if last is not None:
                query = query.where(AuditEvent.id < last)
            with self.engine.connect() as connection:
                page = list(connection.execute(query).scalars())
            if not page:
                return
            last = page[-1]
            yield page

    def close(self) -> None:
        pass


def _models():
    from chatctl.storage.models import Agent, Chat, Preference, Ticket

    return {"chat": Chat.__table__, "ticket": Ticket.__table__, "agent": Agent.__table__,
            "preference": Preference.__table__}


_KEYS = {"chat": "id", "ticket": "id", "agent": "handle", "preference": "key"}


def _key_column(entity_type: str, table):
    return table.c[_KEYS[entity_type]]


def _key_value(entity_type: str, entity_id: str) -> Any:
    if entity_type in ("chat", "ticket"):
        try:
            return int(entity_id)
        except ValueError:
            return None
    return entity_id


def _to_column_value(column, value: Any) -> Any:
    """A JSON snapshot value back into what the column takes (ISO text -> aware datetime)."""
    from sqlalchemy import Boolean

    from chatctl.storage.models import UTCDateTime

    if value is None:
        return None
    if isinstance(column.type, UTCDateTime) and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    if isinstance(column.type, Boolean):
        return bool(value)
    return value


class Reverter:
    """``apply(connection, audit_ids)`` for one batch of a revert."""

    def __init__(self, operation_id: str, *, revert_operation_id: str, actor: str, now: dt.datetime) -> None:
        self.operation_id = operation_id
        self.revert_operation_id = revert_operation_id
        self.actor = actor
        self.now = now
        self.tables = _models()

    def __call__(self, connection: Connection, audit_ids: list[int]) -> list[ItemResult]:
        from sqlalchemy import select

        from chatctl.storage.models import AuditEvent

        events = {row.id: row for row in connection.execute(
            select(AuditEvent.__table__).where(AuditEvent.id.in_(audit_ids)))}
        ordered_events = [events[i] for i in audit_ids if i in events]
        current = self._lock_entities(connection, ordered_events)
        later = self._later_events(connection, ordered_events)

        results: list[ItemResult] = []
        audit_rows: list[dict[str, Any]] = []
        self._pending: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        self._pending_keys: set[tuple[str, str]] = set()
        for event in ordered_events:
            result, audit_row = self._revert_one(connection, event, current, later.get(event.id))
            results.append(result)
            if audit_row is not None:
                audit_rows.append(audit_row)
        self._flush(connection)
        audit.record(connection, audit_rows)
        return results

    # -- writing ---------------------------------------------------------------------------
    def _queue(self, connection: Connection, entity_type: str, key: Any, restored: dict[str, Any]) -> None:
        """Collect row updates by shape, so a batch costs one executemany per shape, not one round trip per row."""
        if (entity_type, str(key)) in self._pending_keys:
            self._flush(connection)  # the same row twice in one batch: keep the order of the writes
        self._pending.setdefault((entity_type, tuple(restored)), []).append(
            {"k_key": key, **{f"v_{name}": value for name, value in restored.items()}})
        self._pending_keys.add((entity_type, str(key)))

    def _flush(self, connection: Connection) -> None:
        from sqlalchemy import bindparam

        for (entity_type, columns), rows in self._pending.items():
            table = self.tables[entity_type]
            key_column = _key_column(entity_type, table)
            statement = (table.update().where(key_column == bindparam("k_key", type_=key_column.type))
                         .values({name: bindparam(f"v_{name}", type_=table.c[name].type) for name in columns}))
            connection.execute(statement, rows)
        self._pending = {}
        self._pending_keys = set()

    # -- reading, locking ------------------------------------------------------------------
    def _lock_entities(self, connection: Connection, events) -> dict[tuple[str, str], dict[str, Any]]:
        """Current rows of the batch's entities, locked for the rest of the transaction."""
        from sqlalchemy import select

        wanted: dict[str, set] = {}
        for event in events:
            if event.entity_type in self.tables:
                key = _key_value(event.entity_type, event.entity_id)
                if key is not None:
                    wanted.setdefault(event.entity_type, set()).add(key)
        current: dict[tuple[str, str], dict[str, Any]] = {}
        for entity_type, keys in wanted.items():
            table = self.tables[entity_type]
            key_column = _key_column(entity_type, table)
            query = select(table).where(key_column.in_(sorted(keys))).order_by(key_column).with_for_update()
            for row in connection.execute(query).mappings():
                current[(entity_type, str(row[key_column.name]))] = dict(row)
        return current

    def _later_events(self, connection: Connection, events) -> dict[int, Any]:
        """For each event, the newest audit event on the same entity from another operation."""
        from sqlalchemy import select

        from chatctl.storage.models import AuditEvent

        if not events:
            return {}
        outer = AuditEvent.__table__.alias("e")
        later = AuditEvent.__table__.alias("l")
        newest_later = (
            select(later.c.id)
            .where(later.c.entity_type == outer.c.entity_type, later.c.entity_id == outer.c.entity_id,
                   later.c.id > outer.c.id,
                   later.c.operation_id.not_in([self.operation_id, self.revert_operation_id]))
            .order_by(later.c.id.desc()).limit(1).scalar_subquery()
        )
        pairs = connection.execute(
            select(outer.c.id, newest_later.label("later_id")).where(outer.c.id.in_([e.id for e in events]))
        ).all()
        later_ids = {event_id: later_id for event_id, later_id in pairs if later_id is not None}
        if not later_ids:
            return {}
        rows = {row.id: row for row in connection.execute(
            select(AuditEvent.id, AuditEvent.operation_id, AuditEvent.action, AuditEvent.reason)
            .where(AuditEvent.id.in_(set(later_ids.values()))))}
        return {event_id: rows[later_id] for event_id, later_id in later_ids.items()}

    # -- one event ------------------------------------------------------------------------
    def _revert_one(self, connection: Connection, event, current, later) -> tuple[ItemResult, dict | None]:
        ref = f"{event.entity_type}:{event.entity_id}"

        def outcome(result: str, reason: str) -> tuple[ItemResult, None]:
            return ItemResult(ref, result, f"{reason} (audit event {event.id}, {event.action})"), None

        if event.entity_type not in self.tables:
            return outcome("refused", f"a {event.entity_type} change cannot be reverted")
        if event.before is None:
            return outcome("refused", f"not revertible: this change created the {event.entity_type}")
        if later is not None:
            if later.action == REVERT_ACTION and (later.reason or "").startswith(self._reason_prefix()):
                return outcome("skipped", f"already reverted by operation {later.operation_id}")
            return outcome("refused", f"conflict: changed since by operation {later.operation_id} "
                                      f"({later.action}, audit event {later.id})")
        if event.entity_type == "preference":
            return self._revert_preference(connection, event, current, ref)

        table = self.tables[event.entity_type]
        row = current.get((event.entity_type, event.entity_id))
        if row is None:
            return outcome("not_found", f"{event.entity_type} {event.entity_id} no longer exists")
        skip = _KEY_COLUMNS[event.entity_type]
        restorable = [key for key in event.before if key in table.c and key not in skip]
        lost = [key for key in {**event.before, **(event.after or {})} if key not in restorable and key not in skip]
        if not restorable:
            return outcome("refused", f"nothing restorable: {', '.join(lost) or 'no values'}")
        restored = {key: _to_column_value(table.c[key], event.before[key]) for key in restorable}
        mismatch = self._outside_change(table, row, event.after or {}, restorable)
        if mismatch:
            return outcome("refused", f"conflict: {mismatch} changed outside the audit trail")

        key_column = _key_column(event.entity_type, table)
        self._queue(connection, event.entity_type, row[key_column.name], restored)
        previous = {key: row[key] for key in restorable}
        row.update(restored)
        reason = f"restored {', '.join(restorable)}"
        if lost:
            reason += f"; not restorable: {', '.join(lost)}"
            if any(key.startswith(("comments", "tags", "notifications")) for key in lost):
                reason += " (comments and tags are deleted for good when a chat closes, R9)"
        return (ItemResult(ref, "changed", f"{reason} (audit event {event.id}, {event.action})"),
                self._audit_row(event, previous, restored))

    def _revert_preference(self, connection: Connection, event, current, ref: str):
        from sqlalchemy import delete, insert

        from chatctl.storage.models import Preference

        before = event.before.get("value") if isinstance(event.before, dict) else None
        after = (event.after or {}).get("value")
        if not isinstance(event.before, dict) or "value" not in event.before:
            return ItemResult(ref, "refused", f"nothing restorable (audit event {event.id})"), None
        row = current.get(("preference", event.entity_id))
        now_value = row["value"] if row else None
        if now_value != after:
            return (ItemResult(ref, "refused", f"conflict: value changed outside the audit trail "
                                               f"(audit event {event.id}, {event.action})"), None)
        connection.execute(delete(Preference).where(Preference.key == event.entity_id))
        if before is not None:
            values = {"key": event.entity_id, "value": before, "updated_at": self.now, "updated_by": self.actor}
            connection.execute(insert(Preference).values(**values))
            current[("preference", event.entity_id)] = values
        else:
            current.pop(("preference", event.entity_id), None)
        restored = f"restored value {before!r}" if before is not None else "restored the default (unset)"
        return (ItemResult(ref, "changed", f"{restored} (audit event {event.id}, {event.action})"),
                self._audit_row(event, {"value": now_value}, {"value": before}))

    @staticmethod
    def _outside_change(table, row: dict[str, Any], after: dict[str, Any], columns: list[str]) -> str | None:
        for key in columns:
            if key in after and row[key] != _to_column_value(table.c[key], after[key]):
                return key
        return None

    def _reason_prefix(self) -> str:
        return f"revert of operation {self.operation_id}"

    def _audit_row(self, event, previous: dict[str, Any], restored: dict[str, Any]) -> dict[str, Any]:
        return audit.event(
            at=self.now, actor=self.actor, action=REVERT_ACTION, entity_type=event.entity_type,
            entity_id=event.entity_id, operation_id=self.revert_operation_id, before=previous,
            after=restored, reason=f"{self._reason_prefix()} (audit event {event.id}, {event.action})",
        )
