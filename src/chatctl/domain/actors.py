"""Who is acting: an agent (with that agent's role), an operator (``ops:NAME``,
admin rights) or the sweeps (``system``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from chatctl.errors import UsageError
from chatctl.storage.models import Agent

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

SYSTEM = "system"
# The refusal when an agent names someone else in --as (SPEC D4).
ONLY_THEMSELVES = "agents act only as themselves"


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

    def may_act_as(self, handle: str) -> bool:
        """D4: an actor with role agent names only themselves in ``--as``; supervisors,
        admins and ``ops:*`` may act as any agent (the audit event names both)."""
        return not self.is_agent_role or self.name == handle


def resolve_actor(connection: Connection, name: str) -> Actor:
    """``ops:NAME`` and ``system`` act as admin; anything else must be an active agent."""

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
