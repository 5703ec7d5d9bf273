"""Who is acting: an agent (with that agent's role), an operator (``ops:NAME``,
admin rights) or the sweeps (``system``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatctl.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    agent_id: int | None = None

    @property
    def is_agent_role(self) -> bool:
        return self.role == "agent"

    @property
    def can_supervise(self) -> bool:
        return self.role in ("supervisor", "admin")


def resolve_actor(connection: Connection, name: str) -> Actor:
    """``ops:NAME`` and ``system`` act as admin; anything else must be an active agent."""
    from sqlalchemy import select

    from chatctl.storage.models import Agent

    if name == SYSTEM or name.startswith("ops:"):
        return Actor(name=name, role="admin")
    row = connection.execute(
        select(Agent.id, Agent.role, Agent.active).where(Agent.handle == name)
    ).first()
    if row is None:
        raise UsageError(f"unknown actor '{name}': use an agent handle or ops:NAME (admin rights)")
    if not row.active:
        raise UsageError(f"actor '{name}' is deactivated")
    return Actor(name=name, role=row.role, agent_id=row.id)
