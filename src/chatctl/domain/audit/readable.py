"""Audit rows a person can read: handles beside agent ids, and a one-line summary of a change.

The trail keeps ids (``agent_id``) because ``audit revert`` writes them
back; beside each it stores the agent's handle (``agent``) when the change
is recorded, so ``agent: alice → bob`` reads right even after the agent is
gone.  Rows written before handles were stored get them from the agents
table when listed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from chatctl.storage.models import Agent

ARROW = "→"
# Keys of before/after that only annotate (they are never written back).
NAMES = {"agent_id": "agent"}


def name_agents(connection: Connection, events: Iterable[dict[str, Any]]) -> None:
    """Put the agent's handle beside every ``agent_id`` in the events' before/after (in place).

    One look-up for the whole batch, and none when no event names an agent.
    """
    sides = [values for event in events for values in (event["before"], event["after"])
             if values and "agent_id" in values]
    wanted = {values["agent_id"] for values in sides if values["agent_id"] is not None}
    if not sides:
        return
    handles = dict(connection.execute(select(Agent.id, Agent.handle).where(Agent.id.in_(sorted(wanted)))).all()) \
        if wanted else {}
    for values in sides:
        values.setdefault("agent", handles.get(values["agent_id"]))


def agent_handles(connection: Connection) -> dict[int, str]:
    """Every agent's handle by id (the roster is small), for rows written before handles were stored."""
    return dict(connection.execute(select(Agent.id, Agent.handle)).all())


def describe(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, *,
             handles: Mapping[int, str], tz: dt.tzinfo | None = None) -> str:
    """``status: live → closed; agent: alice → bob`` -- what one audit event changed, on one line."""
    if before is None and after is None:
        return ""
    prefix = "created: " if before is None else "removed: " if after is None else ""
    old, new = dict(before or {}), dict(after or {})
    for key, name in NAMES.items():
        for values in (old, new):
            if key in values and name not in values:
                values[name] = handles.get(values[key], values[key]) if values[key] is not None else None
    named = {name for name in NAMES.values() if name in old or name in new}
    keys = []
    for key in dict.fromkeys([*old, *new]):
        if key in named:
            continue  # shown where its id is
        if key in NAMES and NAMES[key] in named:
            key = NAMES[key]
        if before is not None and after is not None and old.get(key) == new.get(key):
            continue  # recorded, but not changed
        keys.append(key)
    parts = []
    for key in keys:
        if before is None:
            parts.append(f"{key}: {_text(key, new.get(key), tz)}")
        elif after is None:
            parts.append(f"{key}: {_text(key, old.get(key), tz)}")
        else:
            parts.append(f"{key}: {_text(key, old.get(key), tz)} {ARROW} {_text(key, new.get(key), tz)}")
    return prefix + "; ".join(parts)


def _text(key: str, value: Any, tz: dt.tzinfo | None) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and key.endswith(("_at", "_since")):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment.astimezone(tz or dt.timezone.utc).isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
