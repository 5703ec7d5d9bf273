"""The bell: one notification per @-tag (R7), listed and marked read per agent.

Tag notifications of a chat that closes or converts are marked read by the
R9 purge (``chats.transitions.Purge``); the rows stay, so the bell keeps
its history.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from chatctl.batch_sizes import READ
from chatctl.domain.actors import ONLY_THEMSELVES
from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.errors import RuleRefused
from chatctl.storage.models import Notification
from chatctl.storage.paging import Ordering, Page, keyset_page
from chatctl.storage.sql import ids_match

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from chatctl.domain.actors import Actor
    from chatctl.domain.chats.actions import Acting, Apply, Person

# The JSON keys of a notification, in order (SPEC 2.3).
NOTIFICATION_KEYS = ("id", "agent", "kind", "chat_id", "comment_id", "created_at", "read_at")
NEWEST_FIRST = Ordering("newest", None, Notification.id)


def check_authority(actor: Actor, person: Person) -> None:
    """An agent marks their own bell read; supervisors and admins may act for anyone (D4)."""

    if not actor.may_act_as(person.handle):
        raise RuleRefused(f"{ONLY_THEMSELVES} ({actor.name} is not {person.handle})")


def list_notifications(connection: Connection, person: Person, *, unread: bool = False, limit: int | None = 50,
                       after: str | None = None) -> Page:
    """Newest first, as notification objects (SPEC 2.3), by the keyset pager (``limit=None``: all of them)."""
    query = select(Notification.__table__).where(Notification.agent_id == person.id)
    if unread:
        query = query.where(Notification.read_at.is_(None))

    def decorate(_connection: Connection, batch: list[Any]) -> list[dict[str, Any]]:
        return [{key: person.handle if key == "agent" else getattr(row, key) for key in NOTIFICATION_KEYS}
                for row in batch]

    return keyset_page(connection, query, NEWEST_FIRST, list_name="notifications", after=after, limit=limit,
                       decorate=decorate)


def unread_ids(connection: Connection, person: Person) -> Iterator[int]:
    """Every unread notification id of ``person`` (for ``read --all``), streamed by keyset."""
    last_id = 0
    while True:
        batch = connection.execute(
            select(Notification.id).where(Notification.agent_id == person.id, Notification.read_at.is_(None),
                                          Notification.id > last_id)
            .order_by(Notification.id).limit(READ)).scalars().all()
        yield from batch
        if len(batch) < READ:
            return
        last_id = batch[-1]


def mark_read(acting: Acting, person: Person) -> Apply:
    """Mark notifications of ``person`` read, one UPDATE and one audit INSERT per batch."""
    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        rows = {row.id: row for row in connection.execute(
            select(Notification.id, Notification.agent_id, Notification.read_at)
            .where(ids_match(connection, Notification.id, ids)))}
        decided = {}
        for item, row in rows.items():
            if row.agent_id != person.id:
                decided[item] = ItemResult(item, "not_found", f"not a notification of {person.handle}")
            elif row.read_at is not None:
                decided[item] = ItemResult(item, "skipped", "already read")
            else:
                decided[item] = ItemResult(item, "changed")
        todo = [item for item, result in decided.items() if result.result == "changed"]
        changed: set[int] = set()
        if todo:
            changed = set(connection.execute(
                update(Notification).where(ids_match(connection, Notification.id, todo),
                                           Notification.read_at.is_(None))
                .values(read_at=acting.now).returning(Notification.id)).scalars())
        audit.record(connection, [
            audit.event(at=acting.now, actor=acting.actor.name, action="notifications.read",
                        entity_type="notification", entity_id=item, operation_id=acting.operation_id,
                        before={"read_at": None}, after={"read_at": acting.now})
            for item in sorted(changed)])
        results = []
        for item in ids:
            result = decided.get(item, ItemResult(item, "not_found", "no such notification"))
            if result.result == "changed" and item not in changed:
                result = ItemResult(item, "skipped", "already read")
            results.append(result)
        return results

    return apply
