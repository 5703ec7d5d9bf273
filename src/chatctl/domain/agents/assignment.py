"""Least-loaded assignment (R5), shared by the ``agent-timeout`` and
``unattended`` sweeps and by ``agents drain``.

A batch of chats is planned in Python from one load query (a heap ordered by
live-chat count, then agent id) and applied by ``chats.transitions.assign``
(one UPDATE joined to the plan, which re-checks the caller's eligibility
condition on each row).

Who can take a chat: an active agent whose presence is ``online`` (any role),
never the chat's current agent, and, when ``agent_max_chats`` > 0, only while
their live chats stay within it.  On PostgreSQL the planning transaction locks
those agents' rows, so two sweepers planning at the same time queue instead of
both giving the last free slot away.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from chatctl.domain.audit import writer as audit
from chatctl.domain.batches import ItemResult
from chatctl.domain.changes import Guard, Ids, sql_list
from chatctl.domain.chats import transitions
from chatctl.domain.prefs import get_preference
from chatctl.storage.dialects import dialect
from chatctl.storage.models import OPEN_CHATS, Agent, Chat
from chatctl.storage.sql import execute, ids_match
from chatctl.vocabulary import OPEN_CHAT_STATUSES


def online_agents(connection: Connection, *, lock: bool = False) -> list[int]:
    """Ids of active online agents, in id order (locked on PostgreSQL if ``lock``)."""
    sql = "SELECT id FROM agents WHERE active = true AND presence = 'online' ORDER BY id"
    if lock:
        sql += dialect(connection).lock()
    return [row[0] for row in execute(connection, sql, {})]


def agent_loads(connection: Connection, agent_ids: Sequence[int]) -> dict[int, int]:
    """Live chats per agent (0 for agents with none)."""
    if not agent_ids:
        return {}
    loads = dict.fromkeys(agent_ids, 0)
    sql = "SELECT agent_id, count(*) FROM chats WHERE status = 'live' AND agent_id IN :ids GROUP BY agent_id"
    for agent_id, count in execute(connection, sql, {"ids": list(agent_ids)}):
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


# -- agents drain -------------------------------------------------------------------------------
OPEN_STATUSES = OPEN_CHAT_STATUSES


def open_chat_ids(connection: Connection, agent_id: int) -> list[int]:
    """The agent's open chats (live and pending), in id order."""

    return [row[0] for row in connection.execute(
        text(f"SELECT id FROM chats WHERE agent_id = :agent AND ({OPEN_CHATS}) ORDER BY id"),
        {"agent": agent_id})]


def drain(agent_id: int, handle: str, *, actor: str, operation_id: str, now: dt.datetime):
    """The per-batch step of ``agents drain``: hand the agent's open chats to online agents as R5 would.

    Least-loaded online agents first (never the drained agent), ``agent_max_chats``
    respected; a chat nobody can take becomes a ticket (``no_agents``).  Unlike
    the agent-timeout sweep a drain does not count as a reassignment
    (``reassign_count`` unchanged).  Returns ``apply(connection, ids)`` for the
    bulk engine.
    """
    still_theirs = Guard(f"chats.agent_id = :drain_agent AND chats.status IN {sql_list(OPEN_STATUSES)}",
                         {"drain_agent": agent_id})
    stamp = audit.Stamp(actor, now, operation_id, "agents.drain")

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        query = (select(Chat.id, Chat.status, Chat.agent_id).where(ids_match(connection, Chat.id, ids))
                 .order_by(Chat.id))
        found = {row.id: row for row in connection.execute(dialect(connection).locked(query, of=Chat))}
        results: dict[int, ItemResult] = {}
        mine = []
        for chat_id in ids:
            row = found.get(chat_id)
            if row is None:
                results[chat_id] = ItemResult(chat_id, "not_found", "no such chat")
            elif row.agent_id != agent_id or row.status not in OPEN_STATUSES:
                results[chat_id] = ItemResult(chat_id, "skipped", f"no longer an open chat of {handle}")
            else:
                mine.append(chat_id)
        plan = plan_assignments(connection, [(chat_id, agent_id) for chat_id in mine],
                                max_chats=get_preference(connection, "agent_max_chats"), exclude={agent_id})
        taken = {chat_id: plan[chat_id] for chat_id in mine if plan[chat_id] is not None}
        moved = transitions.assign(connection, taken, stamp, guard=still_theirs,
                                   reason=f"drained from {handle}", activity=True).changed
        handles = dict(connection.execute(select(Agent.id, Agent.handle).where(
            Agent.id.in_(sorted(set(taken.values()))))).all()) if taken else {}
        for chat_id in moved:
            results[chat_id] = ItemResult(chat_id, "changed", f"to {handles[taken[chat_id]]}")
        nobody = [chat_id for chat_id in mine if plan[chat_id] is None]
        tickets = transitions.end(connection, Ids(nobody), stamp, transitions.Convert("no_agents", keep_agent=False),
                                  guard=still_theirs, reason="no_agents").made.get("tickets", {})
        for chat_id, ticket_id in tickets.items():
            results[chat_id] = ItemResult(chat_id, "changed", f"ticket {ticket_id} (no_agents: nobody can take it)")
        for chat_id in mine:
            results.setdefault(chat_id, ItemResult(chat_id, "skipped", f"no longer an open chat of {handle}"))
        return [results[chat_id] for chat_id in ids]

    return apply
