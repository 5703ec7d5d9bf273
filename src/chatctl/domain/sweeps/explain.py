"""``sweep explain``: for one chat at ``as_of``, which job would touch it and
when, or why none would.

It evaluates the very conditions the jobs run on (``jobs.JobCondition``), in SQL,
for this one chat (and its ticket, for ``archive``), and names the first one
that fails.  When only time conditions fail, it says when the job becomes due.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from chatctl.domain.agents.assignment import agent_loads, greedy_plan, online_agents
from chatctl.domain.sweeps.jobs import JOBS
from chatctl.errors import NotFound
from chatctl.parsing.timeparse import format_duration
from chatctl.storage.sql import execute, typed_rows

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from chatctl.domain.sweeps.jobs import Job, SweepContext

CHAT_COLUMNS = ("id", "status", "flagged", "agent_id", "assigned_at", "reassign_count", "created_at",
                "last_customer_message_at", "last_agent_message_at", "last_activity_at", "pending_since",
                "closed_at")


def _evaluate(connection: Connection, job: Job, context: SweepContext, where: str, key: Any) -> dict | None:
    checks = ", ".join(f"CASE WHEN ({condition.sql}) THEN 1 ELSE 0 END AS check_{index}"
                       for index, condition in enumerate(job.conditions))
    columns = "*" if job.table != "chats" else ", ".join(f"chats.{column}" for column in CHAT_COLUMNS)
    rows = typed_rows(execute(connection, f"SELECT {columns}, {checks} FROM {job.table} WHERE {where}",
                              {**context.params(), "key": key}))
    return rows[0] if rows else None


def _action(connection: Connection, job: Job, context: SweepContext, row: dict) -> str:
    prefs = context.prefs
    if job.name == "inactivity":
        return "convert to a ticket (inactivity)" if prefs["inactivity_action"] == "ticket" else \
            "close (closed_by system, close_reason inactivity)"
    if job.name == "pending":
        return "close (closed_by system, close_reason pending_timeout)"
    if job.name == "agent-timeout":
        if row["agent_id"] is not None and row["reassign_count"] >= prefs["agent_max_reassignments"]:
            return (f"convert to a ticket (no_agents): reassigned {row['reassign_count']} times, "
                    f"agent_max_reassignments is {prefs['agent_max_reassignments']}")
        return "reassign to the least-loaded other online agent, or a ticket (no_agents) if none can take it"
    if job.name == "unattended":
        if not prefs["business_hours"].is_open(context.as_of, prefs["timezone"], prefs["holidays"]):
            return "convert to a ticket (out_of_hours)"
        if not online_agents(connection):
            return "convert to a ticket (no_agents): nobody is online"
        if _all_full(connection, context, row):
            return (f"convert to a ticket (no_agents): every online agent has agent_max_chats "
                    f"({prefs['agent_max_chats']}) live chats and the customer has waited agent_chat_timeout")
        return "assign to the least-loaded online agent"
    if job.name == "archive":
        return f"archive ticket {row['id']}"
    return "remove comments and tags, mark tag notifications read"


def _all_full(connection: Connection, context: SweepContext, row: dict) -> bool:
    """Agents are online but none can take the chat: every one is at ``agent_max_chats``.  The
    same least-loaded plan as the assignment jobs', without their locks (explain only reads)."""
    max_chats = context.prefs["agent_max_chats"]
    agents = online_agents(connection)
    return bool(max_chats and agents) and greedy_plan(
        [(row["id"], row["agent_id"])], agent_loads(connection, agents), max_chats)[row["id"]] is None


def _waiting_for_room(connection: Connection, job: Job, context: SweepContext,
                      row: dict) -> dict[str, Any] | None:
    """D1, as ``unattended`` decides it: when every online agent is full, the chat waits for
    room until its customer has waited ``agent_chat_timeout`` (then it becomes a ticket)."""
    prefs = context.prefs
    if job.name != "unattended" or not prefs["business_hours"].is_open(context.as_of, prefs["timezone"],
                                                                       prefs["holidays"]):
        return None
    due = row["last_customer_message_at"] + prefs["agent_chat_timeout"]
    if due < context.as_of or not _all_full(connection, context, row):
        return None  # assigned now, or waited long enough to become a ticket
    return {"reason": f"every online agent has agent_max_chats ({prefs['agent_max_chats']}) live chats: it "
                      "waits for room, and becomes a ticket (no_agents) once its customer has waited "
                      "agent_chat_timeout", "due_after": due}


def explain_chat(connection: Connection, chat_id: int, context: SweepContext) -> dict[str, Any]:
    verdicts = []
    chat = None
    first: dict[str, Any] | None = None
    upcoming: dict[str, Any] | None = None
    for job in JOBS.values():
        where = "chats.id = :key" if job.table == "chats" else "tickets.chat_id = :key"
        row = _evaluate(connection, job, context, where, chat_id)
        if job.table == "chats":
            if row is None:
                raise NotFound(f"no chat {chat_id}")
            chat = chat or row
        if row is None:
            verdicts.append({"job": job.name, "would_change": False, "reason": "the chat has no ticket"})
            continue
        failing = [condition for index, condition in enumerate(job.conditions) if not row[f"check_{index}"]]
        verdict: dict[str, Any] = {"job": job.name, "would_change": not failing}
        waiting = None if failing or first is not None else _waiting_for_room(connection, job, context, row)
        if waiting is not None:
            verdict["would_change"] = False
            upcoming = _due(verdict, waiting["reason"], waiting["due_after"], job, context, upcoming)
        elif not failing:
            if first is None:
                verdict["action"] = _action(connection, job, context, row)
                first = verdict
            else:
                verdict["would_change"] = False
                verdict["reason"] = f"{first['job']} changes it first (a run changes a chat once)"
        else:
            due = None
            if all(condition.due is not None for condition in failing):
                due = max(condition.due(row, context.prefs) for condition in failing)
            upcoming = _due(verdict, failing[0].why_not, due, job, context, upcoming)
        verdicts.append(verdict)
    assert chat is not None
    if first is not None:
        summary = f"{first['job']} would {first['action']}"
    elif upcoming is not None:
        summary = f"no job now; {upcoming['job']} becomes due after {upcoming['due_after'].isoformat()}"
    else:
        summary = "no job would touch it"
    return {
        "chat_id": chat_id, "as_of": context.as_of, "status": chat["status"], "flagged": bool(chat["flagged"]),
        "job": first["job"] if first else None, "action": first["action"] if first else None,
        "next": upcoming, "summary": summary, "jobs": verdicts,
    }


def _due(verdict: dict[str, Any], reason: str, due: dt.datetime | None, job: Job, context: SweepContext,
         upcoming: dict[str, Any] | None) -> dict[str, Any] | None:
    """Say why the job leaves the chat alone now, and when that ends (if it does); returns the
    soonest upcoming job so far."""
    verdict["reason"] = reason
    if due is None:
        return upcoming
    verdict["due_after"] = due
    verdict["time_left"] = format_duration(dt.timedelta(seconds=max(1, int((due - context.as_of).total_seconds()))))
    verdict["reason"] += f" ({verdict['time_left']} left)"
    if upcoming is None or due < upcoming["due_after"]:
        return {"job": job.name, "due_after": due}
    return upcoming
