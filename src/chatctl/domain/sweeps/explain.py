"""``sweep explain``: for one chat at ``as_of``, which job would touch it and
when, or why none would.

It evaluates the very conditions the jobs run on (``jobs.JobCondition``), in SQL,
for this one chat (and its ticket, for ``archive``), and names the first one
that fails.  When only time conditions fail, it says when the job becomes due.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

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


def _action(job: Job, context: SweepContext, row: dict) -> str:
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
        return "assign to the least-loaded online agent, or a ticket (no_agents) if none can take it"
    if job.name == "archive":
        return f"archive ticket {row['id']}"
    return "remove comments and tags, mark tag notifications read"


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
        if not failing:
            if first is None:
                verdict["action"] = _action(job, context, row)
                first = verdict
            else:
                verdict["would_change"] = False
                verdict["reason"] = f"{first['job']} changes it first (a run changes a chat once)"
        else:
            verdict["reason"] = failing[0].why_not
            if all(condition.due is not None for condition in failing):
                due = max(condition.due(row, context.prefs) for condition in failing)
                if due is not None:
                    verdict["due_after"] = due
                    verdict["time_left"] = format_duration(dt.timedelta(seconds=max(
                        1, int((due - context.as_of).total_seconds()))))
                    verdict["reason"] += f" ({verdict['time_left']} left)"
                    if upcoming is None or due < upcoming["due_after"]:
                        upcoming = {"job": job.name, "due_after": due}
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
