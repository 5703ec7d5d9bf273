"""``audit revert`` (D9): every change of one operation undone by its inverse, whole or not at all.

The audit events of the operation are taken newest first, in keyset pages
(``OperationEvents``); each page is one transaction.  The unit of a revert is
an *entity group*: every event of the operation on one chat, together with
the rows created or removed with it (the ticket a conversion made, the
comment a ``chats comment`` added), or every event on one ticket, agent,
preference or notification.  A group is reverted whole or left as it is:

* **conflict** -- an event on one of its entities from another operation
  after this one's (``refused``, naming it), or a column no longer holding
  the value the event wrote (changed outside the audit trail), or a created
  row changed or gone since;
* **already reverted** -- the later event is an earlier revert of this very
  operation (``skipped``), so a revert can be run again after Ctrl-C;
* **irreversible** -- the change cannot be taken back: a message sent to the
  customer (a reply), a chat or message the customer sent (ingest), a demo
  load.  ``skipped`` with reason ``irreversible``; nothing of the entity
  changes, so e.g. ``last_agent_message_at`` stays with the message it
  describes.  The comments a close or conversion purged (R9) are gone for
  good: each is its own ``skipped`` ``irreversible`` item, while the chat
  itself is restored;
* otherwise the before-values are written back, created rows removed
  (a ticket with the chat's link to it, a comment with its tags and
  notifications) and removed rows re-created with their original ids.

How an event says what it did, beyond the columns it changed:

* a chat event's ``ticket_id``/``comment_id`` going from null to an id
  created that ticket or comment with the change; from an id to null
  removed it (only a revert removes them, and its event on the ticket or
  comment holds the whole row in ``before``, so a revert of that revert
  re-creates it with the same id);
* ``comments_removed`` (a count, or the ids) in a chat event's ``after``,
  or ``comments_removed=N`` in its reason: R9 purged that many comments;
* ``agent``/``customer`` and other keys that are not columns are there for
  people reading the trail and are never written back.

Set-based per page: the events, the events of the same groups outside the
page, the later events on their entities, and the current rows (locked:
``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) are read with a
constant number of statements; then each table gets one UPDATE restoring the
final values of all its rows (a dialect strategy: ``jsonb_to_recordset`` on
PostgreSQL), one DELETE and one INSERT, and the revert's own audit events go
through the one audit writer.  Every revert event has action
``audit.revert``, the revert's operation id and a reason naming the reverted
operation, so a revert can itself be reverted.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, delete, func, insert, select, text, union

from chatctl.domain.audit import operations
from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.errors import NotFound, RuleRefused
from chatctl.storage.dialects import Registry, dialect
from chatctl.storage.models import (
    AuditEvent,
    Chat,
    Comment,
    CommentMention,
    Message,
    Notification,
    Ticket,
    UTCDateTime,
    metadata,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

REVERT_ACTION = "audit.revert"
# What cannot be taken back, by the action that did it (SPEC D9).
IRREVERSIBLE = {
    "chats.reply": "a message sent to the customer cannot be taken back",
    "events.chat_started": "a chat the customer started cannot be taken back",
    "events.revive": "the customer's message that reopened the chat cannot be taken back",
    "events.ticket_created": "the chat arrived as this ticket; the customer's chat cannot be taken back",
    "demo.load": "a demo load cannot be taken back",
}
PURGED = "comments are deleted for good when a chat closes or becomes a ticket"
_PURGE_COUNT = re.compile(r"comments_removed=(\d+)")
# Chat keys naming a row created (null -> id) or removed (id -> null) with the change.
LINKS = {"ticket_id": "ticket", "comment_id": "comment"}


# -- the operation ---------------------------------------------------------------------------
def check_revertible(connection: Connection, operation_id: str, *, now: dt.datetime) -> int:
    """How many audit events the operation wrote.

    Refused while the operation is still running, and with reason ``pruned``
    when ``audit prune`` removed its events (D17); NotFound (exit 1) when it
    has none.
    """

    record = operations.find(connection, operation_id)
    if record is not None and record["status"] == "running":
        operations.mark_dead(connection, now=now, process=operations.Process.current())
        record = operations.find(connection, operation_id)
    if record is not None and record["status"] == "running":
        raise RuleRefused(f"operation {operation_id} is still running (pid {record['pid']} on {record['host']}): "
                          "revert it when it has finished")
    if record is not None and record["pruned_at"] is not None:
        raise RuleRefused(f"operation {operation_id} cannot be reverted: pruned (its audit events were removed by "
                          f"operation {record['pruned_by']})")
    count = connection.execute(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.operation_id == operation_id)
    ).scalar_one()
    if not count:
        raise NotFound(f"no audit events for operation '{operation_id}'",
                       hint="find operation ids with `chatctl audit operations`")
    return count


class OperationEvents:
    """The audit ids of one operation, newest first, fetched page by page (keyset).

    It is ``batches.Items`` (``count``, ``batches``, ``close``), so the one
    batch runner drives a revert.  Each page is read in its own short
    transaction, after the previous batch committed.
    """

    def __init__(self, engine: Engine, operation_id: str, count: int) -> None:
        self.engine = engine
        self.operation_id = operation_id
        self.count = count

    READ_AHEAD = 20_000  # ids read per statement: a few batches at a time, a round trip saved per batch

    def batches(self, size: int) -> Iterator[list[int]]:
        last: int | None = None
        while True:
            query = (select(AuditEvent.id).where(AuditEvent.operation_id == self.operation_id)
                     .order_by(AuditEvent.id.desc()).limit(max(size, self.READ_AHEAD)))
            if last is not None:
                query = query.where(AuditEvent.id < last)
            with self.engine.connect() as connection:
                ids = connection.execute(query).scalars().all()
            if not ids:
                return
            last = ids[-1]
            # Events written since the read cannot belong to this operation's past: a batch is still
            # every event of the operation between its lowest and highest id.
            for start in range(0, len(ids), size):
                yield ids[start:start + size]

    def close(self) -> None:
        pass


# -- entities --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """An entity type the trail names, and the table row behind it."""

    name: str
    table: str
    key: str  # the column entity ids name
    numeric: bool
    fixed: tuple[str, ...] = ()  # identity columns: never written back

    def key_value(self, entity_id: str) -> Any:
        if not self.numeric:
            return entity_id
        try:
            return int(entity_id)
        except ValueError:
            return None


KINDS = {kind.name: kind for kind in (
    Kind("chat", "chats", "id", True, ("id", "customer_id", "created_at")),
    Kind("ticket", "tickets", "id", True, ("id", "chat_id")),
    Kind("comment", "comments", "id", True, ("id", "chat_id")),
    Kind("notification", "notifications", "id", True, ("id", "agent_id", "chat_id")),
    Kind("agent", "agents", "handle", False, ("id", "handle")),
    Kind("preference", "preferences", "key", False, ("key",)),
)}


def _tables():
    return metadata.tables


_COLUMN_KINDS: dict[tuple[str, str], str] = {}


def to_column(table, name: str, value: Any) -> Any:
    """A JSON snapshot value back into what the column takes (ISO text -> aware datetime)."""
    if value is None:
        return None
    kind = _COLUMN_KINDS.get((table.name, name))
    if kind is None:
        from sqlalchemy import Boolean

        from chatctl.storage.models import UTCDateTime

        column_type = table.c[name].type
        kind = "time" if isinstance(column_type, UTCDateTime) else "bool" if isinstance(column_type, Boolean) else ""
        _COLUMN_KINDS[(table.name, name)] = kind
    if kind == "time" and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    if kind == "bool":
        return bool(value)
    return value


@dataclass
class Event:
    id: int
    action: str
    kind: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None

    @property
    def ref(self) -> tuple[str, str]:
        return (self.kind, self.entity_id)

    def chat_of(self) -> str | None:
        """The chat a ticket or comment event belongs to."""
        if self.kind == "chat":
            return self.entity_id
        for side in (self.after, self.before):
            if side and side.get("chat_id") is not None:
                return str(side["chat_id"])
        return None

    def links(self) -> dict[str, tuple[Any, Any]]:
        """``{"ticket": (before, after)}``: rows created or removed with a chat change."""
        found = {}
        for key, kind in LINKS.items():
            old = (self.before or {}).get(key)
            new = (self.after or {}).get(key)
            if old != new:
                found[kind] = (old, new)
        return found

    def purged(self) -> tuple[list[int], int]:
        """Comments R9 purged with this change: (their ids when recorded, how many)."""
        value = (self.after or {}).get("comments_removed")
        if isinstance(value, list):
            return [int(i) for i in value], len(value)
        if isinstance(value, int):
            return [], value
        match = _PURGE_COUNT.search(self.reason or "")
        return [], int(match.group(1)) if match else 0


def _event(row) -> Event:
    return Event(row.id, row.action, row.entity_type, row.entity_id, row.before, row.after, row.reason)


# -- one page --------------------------------------------------------------------------------
@dataclass
class Changes:
    """What a page writes: final row values, removals, re-creations, and the revert's audit events."""

    updates: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    deletes: dict[str, list[Any]] = field(default_factory=dict)
    inserts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)


class Conflict(Exception):
    """A group that cannot be reverted as a whole; the message is the item reason."""


class Revert:
    """``revert(connection, audit_ids)`` for one page of an operation's events."""

    def __init__(self, operation_id: str, *, revert_operation_id: str, actor: str, now: dt.datetime,
                 plain_statements: bool = True) -> None:
        self.operation_id = operation_id
        self.revert_operation_id = revert_operation_id
        self.actor = actor
        self.now = now
        # Results of events decided with their group on an earlier page.
        self.decided: dict[int, list[ItemResult]] = {}
        # Set per dialect on the first page (None: every event takes the general path).
        self.strategy: PlainChanges | None = None
        self.plain_statements = plain_statements

    def reason_for(self, event_id: int, action: str) -> str:
        return f"{self._reason_prefix()} (audit event {event_id}, {action})"

    def __call__(self, connection: Connection, audit_ids: list[int]) -> list[ItemResult]:
        if self.strategy is None:
            self.strategy = PlainChanges.of(connection) if self.plain_statements else PlainChanges()
        done = self.strategy.revert_plain(connection, self, audit_ids)
        rest = [event_id for event_id in audit_ids if event_id not in done and event_id not in self.decided]
        page = self._events(connection, rest) if rest else []
        todo = page
        groups = self._groups(connection, todo)
        state = _State.read(connection, groups)
        later = self._later_events(connection, groups)
        changes = Changes()
        for members in groups.values():
            self._revert_group(members, state, later, changes)
        state.write(connection, changes)
        audit.record(connection, changes.events)
        results: list[ItemResult] = []
        for event_id in audit_ids:
            if event_id in done:
                results.append(done[event_id])
            else:
                results.extend(self.decided.pop(event_id, []))
        return results

    # -- reading ----------------------------------------------------------------------------
    def _events(self, connection: Connection, ids: Sequence[int]) -> list[Event]:
        rows = connection.execute(select(AuditEvent.__table__).where(AuditEvent.id.in_(list(ids)))).all()
        return sorted((_event(row) for row in rows), key=lambda event: -event.id)

    def _of_operation(self, connection: Connection, refs: set[tuple[str, str]],
                      known: Mapping[int, Event]) -> list[Event]:
        """Every event of the operation on these entities (ids first, one statement per entity type;
        then the rows of those not already ``known``)."""

        ids: list[int] = []
        by_kind: dict[str, list[str]] = {}
        for kind, entity_id in refs:
            by_kind.setdefault(kind, []).append(entity_id)
        for kind, entity_ids in by_kind.items():
            ids += connection.execute(
                select(AuditEvent.id).where(AuditEvent.operation_id == self.operation_id,
                                            AuditEvent.entity_type == kind,
                                            AuditEvent.entity_id.in_(sorted(set(entity_ids))))).scalars().all()
        missing = [event_id for event_id in ids if event_id not in known]
        return [known[event_id] for event_id in ids if event_id in known] + (
            self._events(connection, missing) if missing else [])

    def _groups(self, connection: Connection, page: list[Event]) -> dict[tuple[str, str], list[Event]]:
        """The page's events with the rest of their groups, newest first in each group."""
        def group_of(event: Event) -> tuple[str, str]:
            if event.kind in ("ticket", "comment") and event.chat_of() is not None and (
                    event.before is None or event.after is None):
                return ("chat", event.chat_of())
            return event.ref

        known = {event.id: event for event in page}
        wanted = {group_of(event) for event in page}
        events = {event.id: event for event in self._of_operation(connection, wanted, known)}
        linked = {(kind, str(value)) for event in events.values() if event.kind == "chat"
                  for kind, pair in event.links().items() for value in pair if value is not None}
        linked |= {event.ref for event in page if group_of(event)[0] == "chat" and event.kind != "chat"}
        if linked:
            events.update({event.id: event for event in self._of_operation(connection, linked, {**known, **events})})
        events.update(known)
        groups: dict[tuple[str, str], list[Event]] = {}
        for event in sorted(events.values(), key=lambda e: -e.id):
            if event.id in self.decided:
                continue
            groups.setdefault(group_of(event), []).append(event)
        return groups

    def _later_events(self, connection: Connection, groups) -> dict[tuple[str, str], Any]:
        """Per entity, the newest event after the group's first one, from another operation."""

        since: dict[tuple[str, str], int] = {}
        for members in groups.values():
            for event in members:
                since[event.ref] = min(since.get(event.ref, event.id), event.id)
        if not since:
            return {}
        floor = min(since.values())
        by_kind: dict[str, list[str]] = {}
        for kind, entity_id in since:
            by_kind.setdefault(kind, []).append(entity_id)
        later: dict[tuple[str, str], Any] = {}
        for kind, entity_ids in by_kind.items():
            rows = connection.execute(
                select(AuditEvent.id, AuditEvent.entity_id, AuditEvent.operation_id, AuditEvent.action,
                       AuditEvent.reason)
                .where(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(sorted(set(entity_ids))),
                       AuditEvent.id > floor,
                       AuditEvent.operation_id.not_in([self.operation_id, self.revert_operation_id]))
                .order_by(AuditEvent.id))
            for row in rows:
                ref = (kind, row.entity_id)
                if row.id > since[ref]:
                    later[ref] = row
        return later

    # -- one group ----------------------------------------------------------------------------
    def _revert_group(self, members: list[Event], state: _State, later, changes: Changes) -> None:
        def report(result: str, reason: str) -> None:
            for event in members:
                self.decided[event.id] = [ItemResult(_ref_text(event), result, reason)]

        refs = {event.ref for event in members}
        for event in members:
            for kind, pair in event.links().items():
                refs |= {(kind, str(value)) for value in pair if value is not None}
        for ref in sorted(refs):
            found = later.get(ref)
            if found is None:
                continue
            if found.action == REVERT_ACTION and (found.reason or "").startswith(self._reason_prefix()):
                return report("skipped", f"already reverted by operation {found.operation_id}")
            return report("refused", f"conflict: {ref[0]} {ref[1]} changed since by operation "
                                     f"{found.operation_id} ({found.action})")
        for event in members:
            why = IRREVERSIBLE.get(event.action)
            if why is None and event.kind == "chat" and event.before is None:
                why = IRREVERSIBLE["events.chat_started"]
            if why is not None:
                return report("skipped", f"irreversible ({why})")
        draft = state.draft()
        try:
            notes = [self._invert(event, members, draft) for event in members]
        except Conflict as conflict:
            return report("refused", f"conflict: {conflict}")
        draft.commit(changes)
        for event, (note, revert_events) in zip(members, notes):
            ids, count = event.purged()
            if note is not None:
                results = [ItemResult(_ref_text(event), "changed", note)]
            elif count:  # e.g. the R9 clean-up sweep: nothing but the purge, which stays
                results = [ItemResult(_ref_text(event), "skipped", f"irreversible ({PURGED})")]
            else:
                results = [ItemResult(_ref_text(event), "skipped", "nothing to restore")]
            if ids:
                results += [ItemResult(f"comment:{i}", "skipped", f"irreversible ({PURGED})") for i in ids]
            elif count and note is not None:
                results.append(ItemResult(f"{_ref_text(event)}:comments", "skipped",
                                          f"irreversible ({count} comment(s) removed; {PURGED})"))
            self.decided[event.id] = results
            changes.events += [self._audit(event, *revert_event) for revert_event in revert_events]

    def _invert(self, event: Event, members: list[Event], draft: _Draft) -> tuple[str | None, list[tuple]]:
        """Apply the inverse of ``event`` to the draft; returns the item's note (None: nothing to
        restore) and the revert's events."""
        kind = KINDS.get(event.kind)
        if kind is None:
            raise Conflict(f"a {event.kind} change cannot be reverted")
        if event.kind in ("ticket", "comment") and (event.before is None or event.after is None) \
                and event.chat_of() is not None and any(m.kind == "chat" for m in members):
            # Created or removed with its chat: the chat event's link does the work.
            return (f"{'removed' if event.before is None else 're-created'} with chat {event.chat_of()}", [])
        if event.before is None:
            return self._remove(kind, event.entity_id, event.after or {}, draft)
        if event.after is None:
            return self._recreate(kind, event.entity_id, event.before, draft)
        return self._restore(kind, event, members, draft)

    def _restore(self, kind: Kind, event: Event, members: list[Event],
                 draft: _Draft) -> tuple[str | None, list[tuple]]:
        table = _tables()[kind.table]
        key = kind.key_value(event.entity_id)
        row = draft.row(kind, key)
        if kind.name == "preference":
            return self._restore_preference(event, row, draft)
        if row is None:
            raise Conflict(f"{kind.name} {event.entity_id} no longer exists")
        columns = [name for name in event.before if name in table.c and name not in kind.fixed]
        for name in columns:
            if name in (event.after or {}) and row[name] != to_column(table, name, event.after[name]):
                raise Conflict(f"{name} of {kind.name} {event.entity_id} changed outside the audit trail")
        before = {name: row[name] for name in columns}
        restored = {name: to_column(table, name, event.before[name]) for name in columns}
        events = []
        notes = [f"restored {', '.join(columns)}"] if columns else []
        for link_kind, (old, new) in event.links().items():
            if old is None and new is not None:
                note, removal = self._remove(KINDS[link_kind], str(new), None, draft, chat=key)
            else:
                note, removal = self._recreate(KINDS[link_kind], str(old),
                                               _removed_row(members, link_kind, str(old)), draft)
            notes.append(note)
            events += removal
            before[f"{link_kind}_id"], restored[f"{link_kind}_id"] = new, old
        if not notes:
            return None, []
        draft.update(kind, key, {name: value for name, value in restored.items() if name in table.c})
        events.insert(0, (kind.name, event.entity_id, before, restored))
        return "; ".join(notes), events

    def _restore_preference(self, event: Event, row, draft: _Draft) -> tuple[str, list[tuple]]:
        old, new = (event.before or {}).get("value"), (event.after or {}).get("value")
        now_value = row["value"] if row is not None else None
        if now_value != new:
            raise Conflict(f"preference {event.entity_id} changed outside the audit trail")
        if old is None:
            draft.delete(KINDS["preference"], event.entity_id)
        else:
            draft.put(KINDS["preference"], event.entity_id, {"key": event.entity_id, "value": old,
                                                              "updated_at": self.now, "updated_by": self.actor})
        note = f"restored value {old!r}" if old is not None else "restored the default (unset)"
        return note, [("preference", event.entity_id, {"value": now_value}, {"value": old})]

    def _remove(self, kind: Kind, entity_id: str, created: Mapping[str, Any] | None, draft: _Draft, *,
                chat: Any = None) -> tuple[str, list[tuple]]:
        """Remove a row the operation created, if nothing changed it since."""
        key = kind.key_value(entity_id)
        row = draft.row(kind, key)
        if row is None:
            raise Conflict(f"{kind.name} {entity_id} no longer exists")
        table = _tables()[kind.table]
        for name, value in (created or {}).items():
            if name in table.c and name not in ("id",) and row[name] != to_column(table, name, value):
                raise Conflict(f"{kind.name} {entity_id} changed since it was created ({name})")
        if kind.name == "ticket" and chat is not None and row["chat_id"] != chat:
            raise Conflict(f"ticket {entity_id} belongs to another chat")
        whole = draft.whole(kind, key)
        if kind.name == "ticket" and (row["status"] != "open" or row["archived_at"] is not None):
            raise Conflict(f"ticket {entity_id} was {'archived' if row['archived_at'] else row['status']} since")
        if kind.name == "comment" and any(note["read_at"] is not None for note in whole.get("notifications", [])):
            raise Conflict(f"a notification of comment {entity_id} was read since")
        if kind.name == "agent" and draft.in_use(row["id"]):
            raise Conflict(f"agent {entity_id} has chats, tickets, messages or comments since")
        draft.delete(kind, key)
        return f"removed {kind.name} {entity_id}", [(kind.name, entity_id, whole, None)]

    def _recreate(self, kind: Kind, entity_id: str, whole: Mapping[str, Any] | None,
                  draft: _Draft) -> tuple[str, list[tuple]]:
        """Put back a row the operation removed, with its original id."""
        key = kind.key_value(entity_id)
        if whole is None:
            raise Conflict(f"the removed {kind.name} {entity_id} was not recorded")
        if draft.row(kind, key) is not None:
            raise Conflict(f"{kind.name} {entity_id} exists again")
        draft.insert(kind, key, dict(whole))
        return f"re-created {kind.name} {entity_id}", [(kind.name, entity_id, None, dict(whole))]

    # -- audit --------------------------------------------------------------------------------
    def _reason_prefix(self) -> str:
        return f"revert of operation {self.operation_id}"

    def stamp(self) -> audit.Stamp:
        """What every audit event of this revert shares."""
        return audit.Stamp(actor=self.actor, at=self.now, operation_id=self.revert_operation_id,
                           action=REVERT_ACTION)

    def _audit(self, event: Event, kind: str, entity_id: str, before, after) -> dict[str, Any]:
        return self.stamp().event(kind, entity_id, before=before, after=after,
                                  reason=self.reason_for(event.id, event.action))


def _ref_text(event: Event) -> str:
    return f"{event.kind}:{event.entity_id}"


def _removed_row(members: list[Event], kind: str, entity_id: str) -> dict[str, Any] | None:
    """The whole row a revert removed, from its event on that row in the same operation."""
    for event in members:
        if event.kind == kind and event.entity_id == entity_id and event.after is None and event.before:
            return event.before
    return None


# -- rows: read, drafted, written ----------------------------------------------------------------
class _State:
    """The current rows of a page's entities, locked, and the writes the page makes."""

    def __init__(self, rows: dict[tuple[str, Any], dict[str, Any] | None], extras, in_use: set[int],
                 writer: RowWriter) -> None:
        self.rows = rows
        self.extras = extras  # comment -> {"mentions": [...], "notifications": [...]}
        self.agents_in_use = in_use
        self.writer = writer

    @classmethod
    def read(cls, connection: Connection, groups) -> _State:
        wanted: dict[str, set] = {}
        for members in groups.values():
            for event in members:
                kind = KINDS.get(event.kind)
                if kind is not None and kind.key_value(event.entity_id) is not None:
                    wanted.setdefault(kind.name, set()).add(kind.key_value(event.entity_id))
                for link_kind, pair in event.links().items():
                    wanted.setdefault(link_kind, set()).update(int(v) for v in pair if v is not None)
        tables = _tables()
        spelling = dialect(connection)
        rows: dict[tuple[str, Any], dict[str, Any] | None] = {}
        for name in sorted(wanted):
            kind = KINDS[name]
            table = tables[kind.table]
            keys = sorted(wanted[name])
            for key in keys:
                rows[(name, key)] = None
            query = spelling.locked(select(table).where(table.c[kind.key].in_(keys)).order_by(table.c[kind.key]),
                                    of=table)
            for row in connection.execute(query).mappings():
                rows[(name, row[kind.key])] = dict(row)
        extras = _comment_parts(connection, [key for (name, key), row in rows.items()
                                             if name == "comment" and row is not None])
        agent_ids = [row["id"] for (name, _), row in rows.items() if name == "agent" and row is not None]
        return cls(rows, extras, _agents_in_use(connection, agent_ids), RowWriter.of(connection))

    def draft(self) -> _Draft:
        return _Draft(self)

    def write(self, connection: Connection, changes: Changes) -> None:
        tables = _tables()
        # Removals first (a ticket before its chat's status moves back), then updates, then re-creations.
        for name in ("notification", "comment", "ticket", "agent", "preference"):
            keys = changes.deletes.get(name)
            if keys:
                kind = KINDS[name]
                if name == "comment":
                    _delete_comment_parts(connection, keys)
                table = tables[kind.table]
                connection.execute(table.delete().where(table.c[kind.key].in_(keys)))
        for name, rows in changes.updates.items():
            if rows:
                self.writer.update(connection, tables[KINDS[name].table], KINDS[name].key, rows)
        for name in ("agent", "ticket", "comment", "preference"):
            rows = changes.inserts.get(name)
            if rows:
                _insert(connection, name, rows)


class _Draft:
    """One group's changes, applied to copies of the rows; kept only if the whole group succeeds."""

    def __init__(self, state: _State) -> None:
        self.state = state
        self.rows: dict[tuple[str, Any], dict[str, Any] | None] = {}
        self.updated: dict[tuple[str, Any], dict[str, Any]] = {}
        self.deleted: list[tuple[str, Any]] = []
        self.inserted: list[tuple[str, Any, dict[str, Any]]] = []

    def row(self, kind: Kind, key: Any) -> dict[str, Any] | None:
        ref = (kind.name, key)
        if ref in self.rows:
            return self.rows[ref]
        row = self.state.rows.get(ref)
        return dict(row) if row is not None else None

    def whole(self, kind: Kind, key: Any) -> dict[str, Any]:
        """The row as the trail keeps a removed one: every column but the id, comments with their parts."""
        row = self.row(kind, key) or {}
        whole = {name: audit.jsonable(value) for name, value in row.items() if name != "id" or kind.key != "id"}
        if kind.name == "comment":
            whole.update(self.state.extras.get(key, {"mentions": [], "notifications": []}))
        return whole

    def in_use(self, agent_id: int) -> bool:
        return agent_id in self.state.agents_in_use

    def update(self, kind: Kind, key: Any, values: Mapping[str, Any]) -> None:
        row = self.row(kind, key)
        row.update(values)
        self.rows[(kind.name, key)] = row
        self.updated.setdefault((kind.name, key), {}).update(values)

    def put(self, kind: Kind, key: Any, values: dict[str, Any]) -> None:
        """A preference: replace (or create) the row."""
        self.delete(kind, key)
        self.inserted.append((kind.name, key, values))
        self.rows[(kind.name, key)] = values

    def delete(self, kind: Kind, key: Any) -> None:
        self.deleted.append((kind.name, key))
        self.rows[(kind.name, key)] = None

    def insert(self, kind: Kind, key: Any, whole: dict[str, Any]) -> None:
        self.inserted.append((kind.name, key, whole))
        self.rows[(kind.name, key)] = {kind.key: key, **{k: v for k, v in whole.items()
                                                          if k not in ("mentions", "notifications")}}

    def commit(self, changes: Changes) -> None:
        """Fold the group into the page's writes and into the page's view of the rows."""
        for ref, row in self.rows.items():
            self.state.rows[ref] = row
        for (name, key) in self.deleted:
            changes.deletes.setdefault(name, []).append(key)
            changes.updates.get(name, {}).pop(key, None)
        for (name, key), values in self.updated.items():
            if self.rows.get((name, key)) is not None and (name, key) not in self.deleted:
                changes.updates.setdefault(name, {}).setdefault(key, {}).update(values)
        for name, key, whole in self.inserted:
            changes.inserts.setdefault(name, []).append({"key": key, **whole})


def _comment_parts(connection: Connection, comment_ids: Sequence[int]) -> dict[int, dict[str, list]]:
    """Each comment's tags and notifications, as the trail keeps them for a re-creation."""

    parts: dict[int, dict[str, list]] = {i: {"mentions": [], "notifications": []} for i in comment_ids}
    if not comment_ids:
        return parts
    for row in connection.execute(select(CommentMention.comment_id, CommentMention.agent_id)
                                  .where(CommentMention.comment_id.in_(list(comment_ids)))
                                  .order_by(CommentMention.comment_id, CommentMention.agent_id)):
        parts[row.comment_id]["mentions"].append(row.agent_id)
    for row in connection.execute(select(Notification.__table__)
                                  .where(Notification.comment_id.in_(list(comment_ids)))
                                  .order_by(Notification.id)).mappings():
        parts[row["comment_id"]]["notifications"].append(
            {"id": row["id"], "agent_id": row["agent_id"], "kind": row["kind"],
             "created_at": audit.jsonable(row["created_at"]), "read_at": audit.jsonable(row["read_at"])})
    return parts


def _delete_comment_parts(connection: Connection, comment_ids: Sequence[int]) -> None:
    connection.execute(delete(Notification).where(Notification.comment_id.in_(list(comment_ids))))
    connection.execute(delete(CommentMention).where(CommentMention.comment_id.in_(list(comment_ids))))


def _agents_in_use(connection: Connection, agent_ids: Sequence[int]) -> set[int]:
    """The agents some row refers to (a removed agent must leave nothing dangling)."""

    if not agent_ids:
        return set()
    ids = list(agent_ids)
    query = union(*(select(column).where(column.in_(ids)) for column in (
        Chat.agent_id, Ticket.agent_id, Message.agent_id, Comment.agent_id, CommentMention.agent_id,
        Notification.agent_id)))
    return set(connection.execute(query).scalars())


def _insert(connection: Connection, name: str, rows: list[dict[str, Any]]) -> None:
    """Re-create removed rows with their original ids (comments with their tags and notifications)."""

    kind = KINDS[name]
    table = _tables()[kind.table]
    values = []
    for row in rows:
        record = {kind.key: row["key"]}
        record.update({column: to_column(table, column, value) for column, value in row.items()
                       if column in table.c and column != kind.key})
        values.append(record)
    connection.execute(insert(table), values)
    if name == "comment":
        mentions = [{"comment_id": row["key"], "agent_id": agent_id, "chat_id": row["chat_id"]}
                    for row in rows for agent_id in row.get("mentions", [])]
        notes = [{**{key: to_column(Notification.__table__, key, value) for key, value in note.items()},
                  "comment_id": row["key"], "chat_id": row["chat_id"]}
                 for row in rows for note in row.get("notifications", [])]
        if mentions:
            connection.execute(insert(CommentMention), mentions)
        if notes:
            connection.execute(insert(Notification), notes)


class RowWriter:
    """Writes a page's final row values back: one statement per table (a strategy per dialect)."""

    @staticmethod
    def of(connection: Connection) -> RowWriter:
        return ROW_WRITERS(connection)()

    def update(self, connection: Connection, table, key: str, rows: Mapping[Any, Mapping[str, Any]]) -> None:
        """``UPDATE table SET ... WHERE key = ...`` for every row: one executemany per set of columns."""

        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row_key, values in rows.items():
            shapes.setdefault(tuple(sorted(values)), []).append(
                {"k_key": row_key, **{f"v_{name}": value for name, value in values.items()}})
        for columns, params in shapes.items():
            statement = (table.update().where(table.c[key] == bindparam("k_key", type_=table.c[key].type))
                         .values({name: bindparam(f"v_{name}", type_=table.c[name].type) for name in columns}))
            connection.execute(statement, params)


class PostgresRowWriter(RowWriter):
    """One ``UPDATE ... FROM jsonb_to_recordset(...)`` per table and set of columns: a batch in one round trip."""

    def update(self, connection: Connection, table, key: str, rows: Mapping[Any, Mapping[str, Any]]) -> None:
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row_key, values in rows.items():
            shapes.setdefault(tuple(sorted(values)), []).append(
                {"k": row_key, **{name: audit.jsonable(value) for name, value in values.items()}})
        dialect = connection.dialect

        def typed(name: str, alias: str) -> str:
            return f'"{alias}" {table.c[name].type.compile(dialect=dialect)}'

        for columns, records in shapes.items():
            sets = ", ".join(f'"{name}" = v."{name}"' for name in columns)
            record_type = ", ".join([typed(key, "k"), *(typed(name, name) for name in columns)])
            sql = (f'UPDATE {table.name} AS t SET {sets} FROM jsonb_to_recordset(CAST(:rows AS jsonb)) '
                   f'AS v({record_type}) WHERE t."{key}" = v."k"')
            connection.execute(text(sql), {"rows": json.dumps(records)})


ROW_WRITERS: Registry[type[RowWriter]] = Registry(RowWriter, postgresql=PostgresRowWriter)


# -- the plain changes of a page, one statement per table -------------------------------------------
class PlainChanges:
    """Reverts the *plain* changes of a page: column values on a chat, ticket or notification that
    nothing else in the operation touched (no rows created or removed with them, nothing purged,
    nothing irreversible) -- a sweep's closes, a bulk flag, a ticket cleanup.

    The general path (``Revert``) handles every event on SQLite, where a statement costs no round
    trip; the PostgreSQL strategy does the plain ones in one statement per table and page.  Both
    leave the same rows and the same audit events.
    """

    handled = 0  # events this strategy took (the rest went the general way)

    @staticmethod
    def of(connection: Connection) -> PlainChanges:
        return PLAIN_FORMS(connection)()

    def revert_plain(self, connection: Connection, revert: Revert, audit_ids: list[int]) -> dict[int, ItemResult]:
        """Results of the events reverted here; the others are left to the general path.

        ``audit_ids`` is a keyset page: every event of the operation from the lowest id to the highest.
        """
        return {}


PLAIN_KINDS = ("chat", "ticket", "notification")


class PostgresPlainChanges(PlainChanges):
    """One statement per table and shape of change (the set of keys an event recorded: a sweep's
    closes share one), so each statement sets and checks exactly the columns that changed."""

    def __init__(self) -> None:
        self._statements: dict[tuple[str, tuple[str, ...]], str] = {}

    def revert_plain(self, connection: Connection, revert: Revert, audit_ids: list[int]) -> dict[int, ItemResult]:
        results: dict[int, ItemResult] = {}
        # A page is every event of the operation between its lowest and highest id (keyset pages).
        bounds = {"op": revert.operation_id, "low": min(audit_ids), "high": max(audit_ids)}
        prefix = revert._reason_prefix()
        for kind, shape in self._page_shapes(connection, bounds):
            columns = self._columns(kind, shape)
            if columns is None:
                continue
            key = (kind, shape)
            sql = self._statements.get(key) or self._statements.setdefault(
                key, self._statement(connection, kind, columns))
            restored = f"restored {', '.join(columns)}"
            rows = connection.execute(text(sql).bindparams(bindparam("audit_at", type_=UTCDateTime())), {
                **bounds, **revert.stamp().params(), "kind": kind, "shape": list(shape),
                "rop": revert.revert_operation_id, "prefix": prefix, "irreversible": list(IRREVERSIBLE)}).all()
            for row in rows:
                if row.done:
                    results.update((event_id, ItemResult(f"{kind}:{key}", "changed", restored))
                                   for event_id, key in zip(row.ids or (), row.keys or ()))
                    continue
                ref = f"{kind}:{row.key}"
                if row.later_op is not None:
                    if row.later_action == REVERT_ACTION and (row.later_reason or "").startswith(prefix):
                        results[row.id] = ItemResult(ref, "skipped", f"already reverted by operation {row.later_op}")
                    else:
                        results[row.id] = ItemResult(ref, "refused", f"conflict: {kind} {row.key} changed since by "
                                                                     f"operation {row.later_op} ({row.later_action})")
                elif not row.present:
                    results[row.id] = ItemResult(ref, "refused", f"conflict: {kind} {row.key} no longer exists")
                elif row.mismatch is not None:
                    results[row.id] = ItemResult(ref, "refused", f"conflict: {row.mismatch} of {kind} {row.key} "
                                                                 "changed outside the audit trail")
                else:
                    results[row.id] = ItemResult(ref, "refused", f"conflict: {kind} {row.key} changed meanwhile")
        self.handled += len(results)
        return results

    @staticmethod
    def _page_shapes(connection: Connection, bounds: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
        """The entity types and shapes of the page's events, in order.  The keys are listed once per
        distinct ``before`` (a sweep's closes share one or a few), not once per event."""
        shapes = connection.execute(text(
            "SELECT DISTINCT entity_type, ARRAY(SELECT jsonb_object_keys(before) ORDER BY 1) AS shape "
            "FROM (SELECT DISTINCT e.entity_type, e.before FROM audit_events e "
            "WHERE e.operation_id = CAST(:op AS text) AND e.id BETWEEN :low AND :high "
            "AND e.entity_type = ANY(CAST(:kinds AS text[])) AND jsonb_typeof(e.before) = 'object') AS events"),
            {**bounds, "kinds": list(PLAIN_KINDS)}).all()
        return sorted((kind, tuple(shape)) for kind, shape in shapes)

    @staticmethod
    def _columns(kind_name: str, shape: tuple[str, ...]) -> list[str] | None:
        """The columns a plain change of this shape restores, in the order the trail keeps its keys
        (jsonb: shorter keys first); None when the shape is not a plain change."""
        kind = KINDS[kind_name]
        table = _tables()[kind.table]
        if any(key in LINKS or key == "comments_removed" for key in shape):
            return None
        columns = [key for key in shape if key in table.c and key not in kind.fixed]
        return sorted(columns, key=lambda key: (len(key), key.encode())) or None

    @staticmethod
    def _statement(connection: Connection, kind_name: str, columns: list[str]) -> str:
        """The page's plain events of one entity type and shape: restore those whose row holds the values
        the event wrote and that no later event touched, audit them, and say why the others were not."""
        kind = KINDS[kind_name]
        table = _tables()[kind.table]
        dialect = connection.dialect

        def typed(side: str, name: str) -> str:
            return f"({side}->>'{name}')::{table.c[name].type.compile(dialect=dialect)}"

        def holds(row: str, name: str) -> str:
            return f"{row}.{name} IS NOT DISTINCT FROM {typed('p.after', name)}"

        holds_all = " AND ".join(holds("t", name) for name in columns)
        # The revert's events, newest reverted first, as the general path writes them.
        audited = audit.insert_sql([audit.events_sql(
            entity_type="CAST(:kind AS text)", entity_id="r.entity_id", before="r.after", after="r.before",
            reason="CAST(:prefix AS text) || ' (audit event ' || r.id || ', ' || r.action || ')'",
            source="restored AS r", order=(0, "-r.id"))])
        mismatch = " ".join(f"WHEN NOT {holds('c', name)} THEN '{name}'" for name in columns)
        sets = ", ".join(f"{name} = {typed('p.before', name)}" for name in columns)
        # The UPDATE checks each row as it locks it (a row changed meanwhile is re-checked in its new
        # version), in key order through the primary key: no deadlock with a sweep or another revert.
        # No join between two CTEs: the planner cannot size them and would nest-loop them.  The restored
        # events come back as one row of arrays, the others (a conflict each) one row apiece.
        return f"""
WITH page AS (
    SELECT e.id, e.entity_id, e.entity_id::bigint AS key, e.before, e.after, e.action, o.later_id
    FROM audit_events e
    CROSS JOIN LATERAL (
        SELECT bool_or(x.operation_id = CAST(:op AS text)) AS same_operation,
               max(x.id) FILTER (WHERE x.id > e.id AND x.operation_id <> CAST(:op AS text)
                                 AND x.operation_id <> CAST(:rop AS text)) AS later_id
        FROM audit_events x
        WHERE x.entity_type = e.entity_type AND x.entity_id = e.entity_id AND x.id <> e.id) AS o
    WHERE e.operation_id = CAST(:op AS text) AND e.id BETWEEN :low AND :high AND e.entity_type = CAST(:kind AS text)
      AND jsonb_typeof(e.before) = 'object' AND jsonb_typeof(e.after) = 'object'
      AND e.before ?& CAST(:shape AS text[]) AND e.before - CAST(:shape AS text[]) = '{{}}'::jsonb
      AND e.after ?& CAST(:shape AS text[]) AND e.after - CAST(:shape AS text[]) = '{{}}'::jsonb
      AND e.entity_id ~ '^[0-9]+$' AND length(e.entity_id) <= 18 AND NOT e.action = ANY(CAST(:irreversible AS text[]))
      AND position('comments_removed=' in coalesce(e.reason, '')) = 0
      AND o.same_operation IS NOT TRUE
), restored AS (
    UPDATE {table.name} t SET {sets}
    FROM (SELECT * FROM page ORDER BY key) AS p
    WHERE t.{kind.key} = p.key AND p.later_id IS NULL AND {holds_all}
    RETURNING p.id, p.entity_id, p.before, p.after, p.action
), audited AS (
    {audited} RETURNING 1
)
SELECT NULL::bigint AS id, NULL::bigint AS key, true AS done, NULL AS later_op, NULL AS later_action,
       NULL AS later_reason, true AS present, NULL AS mismatch, array_agg(r.id) AS ids,
       array_agg(r.entity_id::bigint) AS keys, (SELECT count(*) FROM audited) AS audited
FROM restored r
UNION ALL
SELECT p.id, p.key, false, later.operation_id, later.action, later.reason,
       c.{kind.key} IS NOT NULL, CASE {mismatch} END, NULL, NULL, NULL
FROM page p
LEFT JOIN audit_events later ON later.id = p.later_id
LEFT JOIN {table.name} c ON c.{kind.key} = p.key
WHERE p.id NOT IN (SELECT r.id FROM restored r)"""


PLAIN_FORMS: Registry[type[PlainChanges]] = Registry(PlainChanges, postgresql=PostgresPlainChanges)
