"""Least-loaded assignment (R5), shared by the ``agent-timeout`` and
``unattended`` sweeps and by ``agents drain``.

A batch of chats is planned in Python from one load query (a heap ordered by
live-chat count, then agent id) and applied with one UPDATE joined to the plan,
which re-checks the caller's eligibility condition on each row.

Who can take a chat: an active agent whose presence is ``online`` (any role),
never the chat's current agent, and, when ``agent_max_chats`` > 0, only while
their live chats stay within it.  On PostgreSQL the planning transaction locks
those agents' rows, so two sweepers planning at the same time queue instead of
both giving the last free slot away.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatctl.domain.audit import writer as audit
from chatctl.vocabulary import OPEN_CHAT_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def online_agents(connection: Connection, *, lock: bool = False) -> list[int]:
    """Ids of active online agents, in id order (locked ``FOR UPDATE`` on PostgreSQL if ``lock``)."""
    from sqlalchemy import text

    from chatctl.storage.engine import is_postgres

    sql = "SELECT id FROM agents WHERE active = true AND presence = 'online' ORDER BY id"
    if lock and is_postgres(connection):
        sql += " FOR UPDATE"
    return [row[0] for row in connection.execute(text(sql))]


def agent_loads(connection: Connection, agent_ids: Sequence[int]) -> dict[int, int]:
    """Live chats per agent (0 for agents with none)."""
    from sqlalchemy import bindparam, text

    if not agent_ids:
        return {}
    loads = dict.fromkeys(agent_ids, 0)
    statement = text("SELECT agent_id, count(*) FROM chats WHERE status = 'live' AND agent_id IN :ids "
                     "GROUP BY agent_id").bindparams(bindparam("ids", expanding=True))
    for agent_id, count in connection.execute(statement, {"ids": list(agent_ids)}):
        loads[agent_id] = count
    return loads


def greedy_plan(chats: Iterable[tuple[int, int | None]], loads: Mapping[int, int],
                max_chats: int) -> dict[int, int | None]:
    """Chat id -> the least-loaded agent that may take it (never its current agent), or None.

    Chats are served in the given order; each assignment raises that agent's
    load by one.  Ties go to the lower agent id, which keeps plans repeatable.
    """
    heap = [(load, agent_id) for agent_id, load in loads.items() if not max_chats or load < max_chats]
    heapq.heapify(heap)
    plan: dict[int, int | None] = {}
    for chat_id, current in chats:
        aside = None
        choice = None
        while heap:
            load, agent_id = heapq.heappop(heap)
            if agent_id == current:
                aside = (load, agent_id)
                continue
            choice = agent_id
            if not max_chats or load + 1 < max_chats:
                heapq.heappush(heap, (load + 1, agent_id))
            break
        if aside is not None:
            heapq.heappush(heap, aside)
        plan[chat_id] = choice
    return plan


def plan_assignments(connection: Connection, chats: Sequence[tuple[int, int | None]], *, max_chats: int,
                     exclude: Iterable[int] = ()) -> dict[int, int | None]:
    """Plan a batch against the current loads (locking the candidate agents on PostgreSQL)."""
    if not chats:
        return {}
    excluded = set(exclude)
    agents = [agent_id for agent_id in online_agents(connection, lock=True) if agent_id not in excluded]
    return greedy_plan(chats, agent_loads(connection, agents), max_chats)


def apply_assignments(
    connection: Connection,
    changes: Sequence[tuple[Mapping[str, Any], int, int]],
    *,
    at: dt.datetime,
    actor: str,
    action: str,
    operation_id: str,
    recheck: str,
    params: Mapping[str, Any],
    reason: str,
) -> set[int]:
    """Set ``agent_id``, ``assigned_at = at`` and ``reassign_count`` for each ``(row, agent, count)``.

    One UPDATE joined to the plan; ``recheck`` (SQL on alias ``c``) must still
    hold on the row, so a chat answered meanwhile is left alone.  ``row`` is the
    chat as claimed (id, agent_id, assigned_at, reassign_count), for the audit's
    before-values.  Returns the ids of the chats that changed.
    """
    from chatctl.domain.sweeps.jobs import bind, returning_id
    from chatctl.storage.engine import is_postgres

    if not changes:
        return set()
    plan = json.dumps([{"id": row["id"], "agent_id": agent, "rc": count} for row, agent, count in changes])
    if is_postgres(connection):
        source = "jsonb_to_recordset(CAST(:plan AS jsonb)) AS v(id bigint, agent_id integer, rc integer)"
    else:
        source = ("(SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.agent_id') AS agent_id, "
                  "json_extract(value, '$.rc') AS rc FROM json_each(:plan)) AS v")
    sql = (f"UPDATE chats AS c SET agent_id = v.agent_id, assigned_at = :at, reassign_count = v.rc "
           f"FROM {source} WHERE c.id = v.id AND {recheck} RETURNING {returning_id(connection, 'c')}")
    from sqlalchemy import bindparam

    from chatctl.storage.models import UTCDateTime

    statement = bind(sql).bindparams(bindparam("at", type_=UTCDateTime()))
    changed = {row[0] for row in connection.execute(statement, {**params, "plan": plan, "at": at})}
    events = []
    for row, agent, count in changes:
        if row["id"] not in changed:
            continue
        before, after = audit.diff(
            {"agent_id": row["agent_id"], "assigned_at": row["assigned_at"], "reassign_count": row["reassign_count"]},
            {"agent_id": agent, "assigned_at": at, "reassign_count": count},
        )
        events.append(audit.event(at=at, actor=actor, action=action, entity_type="chat", entity_id=row["id"],
                                  operation_id=operation_id, before=before, after=after, reason=reason))
    audit.record(connection, events)
    return changed


# -- agents drain -------------------------------------------------------------------------------
OPEN_STATUSES = OPEN_CHAT_STATUSES


def open_chat_ids(connection: Connection, agent_id: int) -> list[int]:
    """The agent's open chats (live and pending), in id order."""
    from sqlalchemy import text

    return [row[0] for row in connection.execute(
        text("SELECT id FROM chats WHERE agent_id = :agent AND status IN ('live', 'pending') ORDER BY id"),
        {"agent": agent_id})]


def drain(agent_id: int, handle: str, *, actor: str, operation_id: str, now: dt.datetime):
    """The per-batch step of ``agents drain``: hand the agent's open chats to online agents as R5 would.

    Least-loaded online agents first (never the drained agent), ``agent_max_chats``
    respected; a chat nobody can take becomes a ticket (``no_agents``).  Unlike
    the agent-timeout sweep a drain does not count as a reassignment
    (``reassign_count`` unchanged).  Returns ``apply(connection, ids)`` for the
    bulk engine.
    """
    from chatctl.domain.batches import ItemResult
    from chatctl.domain.prefs import get_preference
    from chatctl.domain.sweeps.jobs import bind, convert_chats, typed_rows
    from chatctl.storage.engine import is_postgres

    still_theirs = "c.agent_id = :drain_agent AND c.status IN ('live', 'pending')"
    params = {"drain_agent": agent_id}

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        lock = " FOR UPDATE" if is_postgres(connection) else ""
        rows = typed_rows(connection.execute(bind(
            "SELECT c.id, c.status, c.agent_id, c.assigned_at, c.reassign_count, c.pending_since FROM chats c "
            f"WHERE c.id IN :ids ORDER BY c.id{lock}"), {"ids": ids}))
        found = {row["id"]: row for row in rows}
        results: dict[int, ItemResult] = {}
        mine = []
        for chat_id in ids:
            row = found.get(chat_id)
            if row is None:
                results[chat_id] = ItemResult(chat_id, "not_found", "no such chat")
            elif row["agent_id"] != agent_id or row["status"] not in OPEN_STATUSES:
                results[chat_id] = ItemResult(chat_id, "skipped", f"no longer an open chat of {handle}")
            else:
                mine.append(row)
        plan = plan_assignments(connection, [(row["id"], row["agent_id"]) for row in mine],
                                max_chats=get_preference(connection, "agent_max_chats"), exclude={agent_id})
        changes = [(row, plan[row["id"]], row["reassign_count"]) for row in mine if plan[row["id"]] is not None]
        moved = apply_assignments(connection, changes, at=now, actor=actor, action="agents.drain",
                          operation_id=operation_id, recheck=still_theirs, params=params,
                          reason=f"drained from {handle}")
        handles = dict(connection.execute(bind("SELECT id, handle FROM agents WHERE id IN :ids"),
                                          {"ids": [agent for _, agent, _ in changes] or [0]}).all())
        for row, agent, _ in changes:
            if row["id"] in moved:
                results[row["id"]] = ItemResult(row["id"], "changed", f"to {handles[agent]}")
        nobody = [row for row in mine if plan[row["id"]] is None]
        tickets = convert_chats(connection, nobody, predicate=still_theirs, params=params, reason="no_agents",
                                at=now, actor=actor, action="agents.drain", operation_id=operation_id,
                                ticket_agent=lambda row: None)
        for row in nobody:
            if row["id"] in tickets:
                results[row["id"]] = ItemResult(row["id"], "changed",
                                                f"ticket {tickets[row['id']]} (no_agents: nobody can take it)")
        for row in mine:
            results.setdefault(row["id"], ItemResult(row["id"], "skipped", f"no longer an open chat of {handle}"))
        return [results[chat_id] for chat_id in ids]

    return apply
