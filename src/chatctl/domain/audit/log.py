"""Reading the audit trail: ``audit list``.  (``audit revert`` lives in ``chatctl.domain.audit.revert``.)"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.errors import UsageError

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
