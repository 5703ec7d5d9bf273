"""Reading the audit trail: ``audit list``.  (``audit revert`` lives in ``chatctl.domain.audit.revert``.)"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from chatctl.domain.audit import writer as audit
from chatctl.errors import UsageError
from chatctl.storage.models import AuditEvent
from chatctl.storage.paging import Ordering, Page, keyset_page

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ENTITY_FORMS = "chat:ID, ticket:ID, comment:ID, notification:ID, agent:HANDLE or preference:KEY"
ENTITY_TYPES = ("chat", "ticket", "comment", "notification", "agent", "preference")
NUMBERED = ("chat", "ticket", "comment", "notification")
_OPERATION_ID = re.compile(r"^[0-9A-Za-z_.:-]{1,32}$")


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
    if kind in NUMBERED:
        if not ident.isdigit() or int(ident) <= 0 or int(ident) > 2**63 - 1:
            raise UsageError(f"bad entity '{text}': a {kind} id is a positive whole number ({ENTITY_FORMS})")
        ident = str(int(ident))
    return EntityRef(kind, ident)


def check_operation_id(text: str) -> str:
    if not _OPERATION_ID.match(text or ""):
        raise UsageError(f"bad operation id '{text}': operation ids are printed by every change "
                         "(e.g. 01JDZ8Q3K4V7W2M5N6P8R9S0TA); find them with `chatctl audit operations`")
    return text


# -- list ------------------------------------------------------------------------------
LIST_NAME = "audit"
WRITTEN = Ordering("written", None, AuditEvent.id)  # newest first: by id, the order of writing


def list_events(
    connection: Connection,
    *,
    entity: EntityRef | None = None,
    operation: str | None = None,
    actor: str | None = None,
    since: dt.datetime | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> Page:
    """Audit events newest first (by id, i.e. in the order they were written), as SPEC 2.3 dicts,
    through the one keyset pager (``storage/paging.py``): ``after`` is its cursor.

    ``limit=None`` (``--all``) streams every event through a server-side cursor
    on PostgreSQL, so memory stays flat on any size of trail.
    """
    query = select(AuditEvent.__table__)
    if entity is not None:
        query = query.where(AuditEvent.entity_type == entity.type, AuditEvent.entity_id == entity.id)
    if operation is not None:
        query = query.where(AuditEvent.operation_id == operation)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return keyset_page(connection, query, WRITTEN, list_name=LIST_NAME, after=after, limit=limit,
                       decorate=lambda _connection, batch: [audit.audit_json(row._mapping) for row in batch])


