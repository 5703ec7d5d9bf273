"""Desk users: add, list, presence, deactivation.  Each change is audited (R15)."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select, update

from chatctl.domain.audit import writer as audit
from chatctl.errors import NotFound, UsageError
from chatctl.storage.models import Agent, Chat
from chatctl.vocabulary import PRESENCES, ROLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

HANDLE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def validate_handle(handle: str) -> str:
    if not HANDLE.match(handle):
        raise UsageError(
            f"bad handle '{handle}': use lower-case letters, digits, '.', '_' or '-' (at most 64)"
        )
    return handle


def list_agents(connection: Connection, *, include_inactive: bool = False) -> list[dict[str, Any]]:
    live = (
        select(Chat.agent_id, func.count().label("live_chats"))
        .where(Chat.status == "live", Chat.agent_id.is_not(None))
        .group_by(Chat.agent_id)
        .subquery()
    )
    query = (
        select(Agent.handle, Agent.name, Agent.role, Agent.presence, Agent.active, Agent.created_at,
               func.coalesce(live.c.live_chats, 0).label("live_chats"))
        .outerjoin(live, and_(live.c.agent_id == Agent.id))
        .order_by(Agent.handle)
    )
    if not include_inactive:
        query = query.where(Agent.active.is_(True))
    return [dict(row._mapping) for row in connection.execute(query)]


def agent_by_handle(connection: Connection, handle: str):
    row = connection.execute(select(Agent.__table__).where(Agent.handle == handle)).first()
    if row is None:
        raise NotFound(f"no agent '{handle}'")
    return row


def require_agent_id(connection: Connection, handle: str, *, active_only: bool = True) -> int:
    """The id of an agent, or a usage error with the nearest handle (for ``--agent``, ``agent=``).

    ``active_only`` for actions (a deactivated agent takes no new work); a
    listing or a filter names any agent the desk has had.
    """
    import difflib

    row = connection.execute(select(Agent.id, Agent.active).where(Agent.handle == handle)).first()
    if row is None:
        handles = connection.execute(select(Agent.handle)).scalars().all()
        nearest = difflib.get_close_matches(handle, handles, n=1)
        raise UsageError(f"unknown agent '{handle}'" + (f" (did you mean '{nearest[0]}'?)" if nearest else ""),
                         hint=None if nearest else "chatctl agents list --all shows the handles")
    if active_only and not row.active:
        raise UsageError(f"agent '{handle}' is deactivated")
    return row.id


def add_agent(connection: Connection, handle: str, name: str, role: str, *, actor: str,
              operation_id: str, now: dt.datetime, presence: str = "offline") -> dict[str, Any]:
    validate_handle(handle)
    if role not in ROLES:
        raise UsageError(f"bad role '{role}': use one of {', '.join(ROLES)}")
    if presence not in PRESENCES:
        raise UsageError(f"bad presence '{presence}': use online or offline")
    if connection.execute(select(Agent.id).where(Agent.handle == handle)).first():
        raise UsageError(f"agent '{handle}' already exists")
    values = {"handle": handle, "name": name, "role": role, "presence": presence, "active": True,
              "created_at": now, "presence_changed_at": now}
    agent_id = connection.execute(insert(Agent).values(**values).returning(Agent.id)).scalar_one()
    audit.record(connection, [audit.event(
        at=now, actor=actor, action="agents.add", entity_type="agent", entity_id=handle,
        operation_id=operation_id, before=None, after={k: values[k] for k in ("name", "role", "presence")},
    )])
    return {"id": agent_id, **values}


def _update(connection: Connection, handle: str, changes: dict[str, Any], *, action: str, actor: str,
            operation_id: str, now: dt.datetime) -> dict[str, Any]:
    agent = agent_by_handle(connection, handle)
    current = {key: getattr(agent, key) for key in changes}
    before, after = audit.diff(current, changes)
    if not after:
        return {"handle": handle, "result": "skipped", "reason": "no change"}
    connection.execute(update(Agent).where(Agent.id == agent.id).values(**changes))
    audit.record(connection, [audit.event(
        at=now, actor=actor, action=action, entity_type="agent", entity_id=handle,
        operation_id=operation_id, before=before, after=after,
    )])
    return {"handle": handle, "result": "changed", "reason": None}


def set_presence(connection: Connection, handle: str, presence: str, **kwargs: Any) -> dict[str, Any]:
    if presence not in PRESENCES:
        raise UsageError(f"bad presence '{presence}': use online or offline")
    agent = agent_by_handle(connection, handle)
    if not agent.active and presence == "online":
        raise UsageError(f"agent '{handle}' is deactivated")
    changes = {"presence": presence}
    if agent.presence != presence:
        changes["presence_changed_at"] = kwargs["now"]
    return _update(connection, handle, changes, action="agents.set-status", **kwargs)


def deactivate(connection: Connection, handle: str, **kwargs: Any) -> dict[str, Any]:
    """Deactivate (and take offline).  Their chats stay assigned: `agents drain` hands them over."""
    return _update(connection, handle, {"active": False, "presence": "offline"},
                   action="agents.deactivate", **kwargs)
