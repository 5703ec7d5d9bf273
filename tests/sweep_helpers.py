"""Building desks for the sweep tests: agents, chats, comments, tickets, straight into the tables."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys
import time

from sqlalchemy import func, insert, select, update

from chatctl.storage.models import (Agent, AuditEvent, Chat, Comment, CommentMention, Customer, Notification,
                                    Ticket)

UTC = dt.timezone.utc
# A Wednesday, inside the default business hours (mon-fri 08:00-17:00 UTC).
T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
_numbers = itertools.count(1)


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def add_agent(engine, handle: str, *, online: bool = True, active: bool = True, role: str = "agent") -> int:
    with engine.begin() as connection:
        return connection.execute(insert(Agent).values(
            handle=handle, name=handle.title(), role=role, presence="online" if online else "offline",
            active=active, created_at=T0 - dt.timedelta(days=30)).returning(Agent.id)).scalar_one()


def add_chat(engine, *, status: str = "live", agent: int | None = None, flagged: bool = False,
             created: dt.datetime | None = None, customer_at: dt.datetime | None = None,
             agent_at: dt.datetime | None = None, activity: dt.datetime | None = None,
             assigned_at: dt.datetime | None = None, pending_since: dt.datetime | None = None,
             reassign_count: int = 0, closed_at: dt.datetime | None = None, chat_id: int | None = None) -> int:
    """A chat; by default live, its customer wrote at ``created`` and nobody answered."""
    created = created or T0 - dt.timedelta(hours=2)
    customer_at = customer_at if customer_at is not None else created
    activity = activity or max(t for t in (created, customer_at, agent_at) if t is not None)
    with engine.begin() as connection:
        number = next(_numbers)
        customer = connection.execute(insert(Customer).values(
            display_name=f"Customer {number}", address=f"+2782{number:07d}-{id(engine)}-{dt.datetime.now().timestamp()}",
            created_at=created).returning(Customer.id)).scalar_one()
        values = dict(
            customer_id=customer, channel="whatsapp", status=status, agent_id=agent,
            assigned_at=assigned_at if assigned_at is not None else (created if agent else None),
            reassign_count=reassign_count, flagged=flagged, created_at=created,
            last_customer_message_at=customer_at, last_agent_message_at=agent_at, last_activity_at=activity,
            agent_seen_at=agent_at, pending_since=pending_since, closed_at=closed_at,
            closed_by="agent" if status == "closed" else None,
        )
        if chat_id is not None:
            values["id"] = chat_id
        return connection.execute(insert(Chat).values(**values).returning(Chat.id)).scalar_one()


def add_comment(engine, chat_id: int, author: int, tagged: int | None = None, *, read: bool = False) -> int:
    with engine.begin() as connection:
        comment = connection.execute(insert(Comment).values(
            chat_id=chat_id, agent_id=author, body="@someone look", created_at=T0 - minutes(90)
        ).returning(Comment.id)).scalar_one()
        if tagged is not None:
            connection.execute(insert(CommentMention).values(comment_id=comment, agent_id=tagged, chat_id=chat_id))
            connection.execute(insert(Notification).values(
                agent_id=tagged, kind="tagged", chat_id=chat_id, comment_id=comment, created_at=T0 - minutes(90),
                read_at=T0 - minutes(80) if read else None))
        return comment


def add_ticket(engine, chat_id: int, *, created: dt.datetime, status: str = "open",
               archived_at: dt.datetime | None = None) -> int:
    with engine.begin() as connection:
        connection.execute(update(Chat).where(Chat.id == chat_id).values(status="converted"))
        return connection.execute(insert(Ticket).values(
            chat_id=chat_id, status=status, reason="manual", created_at=created,
            closed_at=created if status == "closed" else None, archived_at=archived_at,
        ).returning(Ticket.id)).scalar_one()


def chat(engine, chat_id: int):
    with engine.connect() as connection:
        return connection.execute(select(Chat.__table__).where(Chat.id == chat_id)).first()


def ticket_of(engine, chat_id: int):
    with engine.connect() as connection:
        return connection.execute(select(Ticket.__table__).where(Ticket.chat_id == chat_id)).first()


def ticket(engine, ticket_id: int):
    with engine.connect() as connection:
        return connection.execute(select(Ticket.__table__).where(Ticket.id == ticket_id)).first()


def audit_rows(engine, operation_id: str | None = None, entity_type: str | None = None):
    query = select(AuditEvent.__table__).order_by(AuditEvent.id)
    if operation_id is not None:
        query = query.where(AuditEvent.operation_id == operation_id)
    if entity_type is not None:
        query = query.where(AuditEvent.entity_type == entity_type)
    with engine.connect() as connection:
        return connection.execute(query).all()


def count(engine, model, *conditions) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(*conditions)).scalar_one()


def set_pref(cli, key: str, value: str) -> None:
    result = cli("prefs", "set", key, value)
    assert result.exit_code == 0, result


def hold_lock(engine, name: str):
    """Hold ``name`` as another run would: an advisory lock session, or a live lease row."""
    from sqlalchemy import text

    from chatctl.domain.sweeps.locking import lock_key
    from chatctl.storage.engine import is_postgres
    from chatctl.storage.models import SweepLease

    if is_postgres(engine):
        connection = engine.connect()
        assert connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(name)}).scalar()
        connection.commit()
        return connection
    with engine.begin() as connection:
        now = dt.datetime.now(dt.timezone.utc)
        connection.execute(insert(SweepLease).values(name=name, holder="elsewhere:1:X", acquired_at=now,
                                                     expires_at=now + dt.timedelta(minutes=5)))
    return None


# -- a real chatctl process, for crash and signal tests -------------------------------------
def bulk_chats(engine, n: int, *, agent: int | None, idle: bool = True, waiting: bool = False) -> None:
    """``n`` live chats: idle for an hour (inactivity), or with the customer waiting 10 minutes (agent-timeout)."""
    with engine.begin() as connection:
        customer = connection.execute(insert(Customer).values(
            display_name="Many", address=f"bulk-{time.time_ns()}", created_at=T0 - dt.timedelta(days=1))
            .returning(Customer.id)).scalar_one()
        if waiting:
            times = dict(created_at=T0 - minutes(10), last_customer_message_at=T0 - minutes(10),
                         last_agent_message_at=None, last_activity_at=T0 - minutes(10), assigned_at=T0 - minutes(10))
        else:
            times = dict(created_at=T0 - minutes(90), last_customer_message_at=T0 - minutes(90),
                         last_agent_message_at=T0 - minutes(60), last_activity_at=T0 - minutes(60),
                         assigned_at=T0 - minutes(90))
        rows = [dict(customer_id=customer, channel="webchat", status="live", agent_id=agent, reassign_count=0,
                     flagged=False, **times) for _ in range(n)]
        connection.execute(insert(Chat), rows)


def chatctl(url: str, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.Popen:
    """A real ``chatctl`` process, without a terminal; ``input`` is written to its standard input."""
    environment = {**os.environ, **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", url, *args],
                               stdin=subprocess.PIPE if input is not None else None,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    if input is not None:
        process.stdin.write(input)
        process.stdin.close()
        process.stdin = None  # communicate() would flush it again
    return process


def wait_for_audit(engine, minimum: int, process: subprocess.Popen, timeout: float = 60) -> None:
    """Until ``minimum`` audit rows are committed: proof that ``process`` is mid-run, without sleeping a tuned time."""
    from chatctl.storage.engine import create_engine

    # A reader's engine: on SQLite the writers' engine begins with BEGIN
    # IMMEDIATE and would queue behind the sweep for the write lock, letting it
    # run to the end before the count is ever read.
    reader = create_engine(engine.url.render_as_string(hide_password=False), for_writes=False)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with reader.connect() as connection:
                if connection.execute(select(func.count()).select_from(AuditEvent)).scalar_one() >= minimum:
                    return
            if process.poll() is not None:
                raise AssertionError(f"the process ended before it could be stopped: {process.communicate()}")
            time.sleep(0.02)
        raise AssertionError("no batch committed in time")
    finally:
        reader.dispose()
