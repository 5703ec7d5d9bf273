"""A realistic, reproducible demo desk (``chatctl demo load``).

Everything is drawn from ``random.Random(seed)`` relative to ``now``, so the
same seed, size and ``now`` give the same desk.  What it holds:

* agents on three shifts in the desk's time zone (00-08, 08-16, 16-24): the
  shift covering ``now`` is online; one admin, two supervisors, the rest
  agents; with six or more, the last one is deactivated;
* customers on several channels (some with more than one chat);
* chats in every state: live (new, unread, answered; a few unassigned or idle
  long enough for the sweeps to find), pending (some past the pending
  timeout), closed by the customer, an agent or the system, and converted,
  each with 1-4 messages whose times agree with the chat's columns;
* comments with ``@tags`` and their notifications (some read) on live and
  pending chats, flagged chats;
* tickets of every age up to 200 days: open and closed, older than 90 days,
  archived.

Rows are written in chunks, with COPY on PostgreSQL and multi-row INSERTs on
SQLite, all in one transaction: an interrupted load leaves nothing behind.
Ids are assigned here (after the desk's current maximum) and the PostgreSQL
sequences are moved past them at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, text

from chatctl.batch_sizes import DEMO
from chatctl.domain.audit import writer as audit
from chatctl.errors import UsageError
from chatctl.storage.engine import is_postgres

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import Connection

# From this size on, a load into an empty PostgreSQL desk builds indexes and
# foreign keys once at the end instead of row by row.
DEFER_INDEXES_FROM = 50_000
AGENT_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
               "karim", "lerato", "mandla", "nomsa", "olivia", "peggy", "rupert", "sipho", "thabo", "zanele")
FIRST_NAMES = ("Ayanda", "Ben", "Chen", "Dineo", "Emma", "Farid", "Gugu", "Hannah", "Imran", "Jo", "Kagiso",
               "Lina", "Musa", "Naledi", "Omar", "Pieter", "Refilwe", "Sara", "Tumi", "Yusuf")
LAST_NAMES = ("Adams", "Botha", "Cele", "Dlamini", "Ebrahim", "Fourie", "Govender", "Khumalo", "Mokoena",
              "Naidoo", "Pillay", "Smith", "van Wyk", "Zulu")
CHANNELS = (("whatsapp", 40), ("webchat", 25), ("messenger", 15), ("sms", 10), ("email", 5), ("telegram", 5))
# Each kind of chat, with its share of the desk.
KINDS = (("live_new", 8), ("live_unread", 8), ("live_answered", 10), ("pending", 8),
         ("closed_customer", 15), ("closed_agent", 20), ("closed_system", 12), ("converted", 19))
CUSTOMER_LINES = ("Hi, my order hasn't arrived", "Can I change my delivery address?", "I was charged twice",
                  "How do I reset my password?", "Is the store open on Sunday?", "Still waiting...", "hello?",
                  "Thanks!", "The app keeps crashing", "I want a refund")
AGENT_LINES = ("Hi! Let me look into that for you.", "Could you send me your order number?",
               "I've escalated this to our billing team.", "All sorted, anything else?",
               "Sorry for the wait, checking now.")
COMMENT_LINES = ("@{} can you check the refund on this one?", "@{} customer asked for a supervisor",
                 "@{} is this the same issue as yesterday?", "@{} please take over, end of my shift")
FLAG_NOTES = ("follow up tomorrow", "waiting on courier", "VIP customer", "check billing reply")

COLUMNS = {
    "customers": ("id", "display_name", "address", "created_at"),
    "chats": ("id", "customer_id", "channel", "status", "agent_id", "assigned_at", "reassign_count", "flagged",
              "flagged_by", "flagged_at", "flag_note", "created_at", "last_customer_message_at",
              "last_agent_message_at", "last_activity_at", "agent_seen_at", "pending_since", "closed_at",
              "closed_by", "close_reason"),
    "messages": ("id", "chat_id", "direction", "agent_id", "kind", "body", "created_at"),
    "comments": ("id", "chat_id", "agent_id", "body", "created_at"),
    "comment_mentions": ("comment_id", "agent_id", "chat_id"),
    "notifications": ("id", "agent_id", "kind", "chat_id", "comment_id", "created_at", "read_at"),
    "tickets": ("id", "chat_id", "status", "reason", "agent_id", "created_at", "closed_at", "archived_at"),
}
SERIAL_TABLES = ("customers", "chats", "messages", "comments", "notifications", "tickets")
MINUTE = dt.timedelta(minutes=1)


def demo_agents(count: int, now: dt.datetime, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The roster: handles, roles, shifts, who is online at ``now``."""
    hour = now.astimezone(zone).hour
    agents = []
    for index in range(count):
        base = AGENT_NAMES[index % len(AGENT_NAMES)]
        handle = base if index < len(AGENT_NAMES) else f"{base}{index // len(AGENT_NAMES) + 1}"
        role = "admin" if index == 0 else "supervisor" if index in (1, 2) else "agent"
        shift = index % 3
        active = not (count >= 6 and index == count - 1)
        online = active and shift * 8 <= hour < shift * 8 + 8
        agents.append({"handle": handle, "name": f"{base.title()} (shift {shift * 8:02d}-{shift * 8 + 8:02d})",
                       "role": role, "presence": "online" if online else "offline", "active": active,
                       "created_at": now - dt.timedelta(days=365), "presence_changed_at": now - 30 * MINUTE})
    return agents


class _Generator:
    """Draws the desk chat by chat; ``chunk(n)`` returns the rows of the next n chats per table."""

    def __init__(self, rng: random.Random, now: dt.datetime, agents: list[dict[str, Any]],
                 first_ids: dict[str, int]) -> None:
        self.rng = rng
        self.now = now
        self.next_id = dict(first_ids)
        self.active = [agent for agent in agents if agent["active"]]
        self.online = [agent for agent in self.active if agent["presence"] == "online"] or self.active
        self.supervisors = [agent for agent in self.active if agent["role"] != "agent"] or self.active
        self.channel_names = [name for name, _ in CHANNELS]
        self.channel_weights = [weight for _, weight in CHANNELS]
        self.kind_names = [name for name, _ in KINDS]
        self.kind_weights = [weight for _, weight in KINDS]
        self.recent_customers: list[tuple[int, str]] = []
        self.counts: Counter = Counter()
        self.serial = 0

    def _id(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    def _seconds(self, low: float, high: float) -> dt.timedelta:
        return dt.timedelta(seconds=self.rng.uniform(low, high))

    def chunk(self, size: int) -> dict[str, list[tuple]]:
        rows: dict[str, list[tuple]] = {table: [] for table in COLUMNS}
        for _ in range(size):
            self._chat(rows)
        for table, table_rows in rows.items():
            self.counts[table] += len(table_rows)
        return rows

    def _customer(self, rows, created_at: dt.datetime) -> tuple[int, str]:
        rng = self.rng
        if self.recent_customers and rng.random() < 0.2:
            return rng.choice(self.recent_customers)
        channel = rng.choices(self.channel_names, self.channel_weights)[0]
        customer_id = self._id("customers")
        address = {"whatsapp": f"+27{600000000 + customer_id:09d}", "sms": f"+44{7000000000 + customer_id:010d}",
                   "webchat": f"web-{customer_id:08d}", "messenger": f"fb-{customer_id:010d}",
                   "email": f"customer{customer_id}@example.com", "telegram": f"tg-{customer_id}"}[channel]
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        rows["customers"].append((customer_id, name, address, created_at))
        if len(self.recent_customers) < 1000:
            self.recent_customers.append((customer_id, channel))
        else:
            self.recent_customers[rng.randrange(1000)] = (customer_id, channel)
        return customer_id, channel

    def _chat(self, rows) -> None:
        rng, now = self.rng, self.now
        # The first chats cycle through every kind, so even a tiny desk shows them all.
        kind = self.kind_names[self.serial] if self.serial < len(self.kind_names) else \
            rng.choices(self.kind_names, self.kind_weights)[0]
        self.serial += 1
        chat_id = self._id("chats")
        # Messages alternate customer/agent; the shape depends on the kind.
        shape = {"live_new": "i" * rng.randint(1, 2), "live_unread": rng.choice(("ioi", "iioi", "ioii")),
                 "live_answered": rng.choice(("io", "ioio", "iio")), "pending": rng.choice(("io", "iio", "ioio")),
                 "converted": rng.choice(("i", "ii", "io"))}.get(kind) or rng.choice(("io", "iio", "ioio", "ioi"))
        gaps = [self._seconds(20, 480) for _ in shape[1:]]
        closed_at = pending_since = None
        # Work back from the last message, whose time depends on the kind.
        if kind.startswith("live"):
            idle = self._seconds(30, 50 * 60) if rng.random() < 0.85 else self._seconds(50 * 60, 4 * 3600)
            last = now - idle
        elif kind == "pending":
            pending_since = now - (self._seconds(300, 20 * 3600) if rng.random() < 0.8
                                   else self._seconds(25 * 3600, 72 * 3600))
            last = pending_since - self._seconds(10, 300)
        elif kind.startswith("closed"):
            closed_at = now - self._seconds(600, 120 * 86400)
            last = closed_at - self._seconds(60, 40 * 60)
        else:
            last = now - self._seconds(600, 200 * 86400)
        times = [last]
        for gap in reversed(gaps):
            times.append(times[-1] - gap)
        times.reverse()
        created_at = times[0]
        customer_id, channel = self._customer(rows, created_at)

        agent = None
        if kind == "live_new":
            agent = rng.choice(self.online) if rng.random() < 0.7 else None
        elif kind.startswith("live"):
            agent = rng.choice(self.online) if rng.random() < 0.95 else rng.choice(self.active)
        elif kind != "converted" or "o" in shape or rng.random() < 0.3:
            agent = rng.choice(self.active)
        agent_id = agent["id"] if agent else None
        assigned_at = created_at + self._seconds(0, 15) if agent else None
        if assigned_at and assigned_at > times[-1]:
            assigned_at = times[-1]

        last_in = last_out = None
        for direction, at in zip(shape, times):
            if direction == "i":
                rows["messages"].append((self._id("messages"), chat_id, "inbound", None, "text",
                                         rng.choice(CUSTOMER_LINES), at))
                last_in = at
            else:
                rows["messages"].append((self._id("messages"), chat_id, "outbound", agent_id, "text",
                                         rng.choice(AGENT_LINES), at))
                last_out = at
        seen = last_out
        if kind == "live_new" and agent and rng.random() < 0.5:
            seen = min(now, last_in + self._seconds(5, 60))  # seen, not yet answered
        status = {"pending": "pending", "converted": "converted"}.get(kind) or \
            ("closed" if kind.startswith("closed") else "live")
        closed_by = close_reason = None
        if kind.startswith("closed"):
            closed_by = kind.split("_", 1)[1]
            close_reason = {"customer": "customer ended the chat", "agent": "resolved",
                            "system": rng.choice(("inactivity", "inactivity", "pending_timeout"))}[closed_by]

        flagged, flagged_by, flagged_at, flag_note = False, None, None, None
        if status in ("live", "pending"):
            if rng.random() < 0.08:
                flagged, flagged_by = True, rng.choice(self.supervisors)["handle"]
                flagged_at = min(now, last + self._seconds(1, 600))
                flag_note = rng.choice(FLAG_NOTES)
            if rng.random() < 0.2 and len(self.active) > 1:
                self._comment(rows, chat_id, agent, created_at, last)
        rows["chats"].append((
            chat_id, customer_id, channel, status, agent_id, assigned_at, 0, flagged, flagged_by, flagged_at,
            flag_note, created_at, last_in, last_out, last, seen, pending_since, closed_at, closed_by, close_reason,
        ))
        if status == "converted":
            self._ticket(rows, chat_id, agent_id, created_at, last)
        self.counts[f"chats_{kind}"] += 1

    def _comment(self, rows, chat_id: int, agent, created_at: dt.datetime, last: dt.datetime) -> None:
        rng = self.rng
        author = agent if agent and rng.random() < 0.7 else rng.choice(self.supervisors)
        tagged = rng.choice([other for other in self.active if other["id"] != author["id"]] or self.active)
        # Before the last message, so the chat's last activity stays that message.
        at = created_at + (last - created_at) * rng.random()
        comment_id = self._id("comments")
        rows["comments"].append((comment_id, chat_id, author["id"], rng.choice(COMMENT_LINES).format(
            tagged["handle"]), at))
        rows["comment_mentions"].append((comment_id, tagged["id"], chat_id))
        read_at = min(self.now, at + self._seconds(30, 1800)) if rng.random() < 0.5 else None
        rows["notifications"].append((self._id("notifications"), tagged["id"], "tagged", chat_id, comment_id,
                                      at, read_at))

    def _ticket(self, rows, chat_id: int, agent_id: int | None, created_at: dt.datetime,
                last: dt.datetime) -> None:
        rng, now = self.rng, self.now
        reason = rng.choice(("out_of_hours", "no_agents", "inactivity", "manual"))
        at = created_at if reason in ("out_of_hours", "no_agents") else min(now, last + 30 * MINUTE)
        status, closed_at, archived_at = "open", None, None
        if rng.random() < 0.35:
            status, closed_at = "closed", min(now, at + self._seconds(3600, 10 * 86400))
        age = now - at
        # Most tickets past 90 days are archived; some are left for the archive sweep.
        if age > dt.timedelta(days=90) and rng.random() < 0.7:
            archived_at = at + dt.timedelta(days=90)
        rows["tickets"].append((self._id("tickets"), chat_id, status, reason, agent_id, at, closed_at,
                                archived_at))
        self.counts[f"tickets_{status}"] += 1
        if archived_at:
            self.counts["tickets_archived"] += 1
        if age > dt.timedelta(days=90):
            self.counts["tickets_older_than_90d"] += 1


def load(
    connection: Connection,
    *,
    chats: int,
    agents: int,
    seed: int,
    now: dt.datetime,
    zone: ZoneInfo,
    append: bool,
    actor: str,
    operation_id: str,
    advance: Callable[[int], None] = lambda n: None,
    chunk_chats: int = DEMO,
) -> dict[str, Any]:
    """Load the demo desk in the caller's transaction; returns the counts (also in the audit event)."""

    from chatctl.storage.models import Agent, Chat, metadata

    existing = connection.execute(select(func.count()).select_from(Chat)).scalar_one()
    if existing and not append:
        raise UsageError(f"the desk already has {existing} chats; pass --append to add the demo to them")
    postgres = is_postgres(connection)
    rng = random.Random(seed)

    roster = demo_agents(agents, now, zone)
    known = set(connection.execute(select(Agent.handle)).scalars())
    new_agents = [agent for agent in roster if agent["handle"] not in known]
    if new_agents:
        connection.execute(insert(Agent), new_agents)
    ids = dict(connection.execute(select(Agent.handle, Agent.id)).all())
    roster = [{**agent, "id": ids[agent["handle"]]} for agent in roster]

    first_ids = {table: connection.execute(
        text(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")).scalar_one() for table in SERIAL_TABLES}
    generator = _Generator(rng, now, roster, first_ids)
    write = _copy_writer(connection) if postgres else _insert_writer(connection, metadata)
    sizes = [min(chunk_chats, chats - start) for start in range(0, chats, chunk_chats)]
    big_fresh_load = postgres and not existing and chats >= DEFER_INDEXES_FROM
    deferred = _deferred_indexes(connection) if big_fresh_load else contextlib.nullcontext()
    with deferred:
        _write_chunks(generator, sizes, write, advance)
    if postgres:
        for table in SERIAL_TABLES:
            connection.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), MAX(id)) FROM {table} HAVING MAX(id) > 0"))

    counts = {"agents_added": len(new_agents), "agents_online": sum(a["presence"] == "online" for a in roster),
              "chats": chats, "customers": generator.counts["customers"], "messages": generator.counts["messages"],
              "comments": generator.counts["comments"], "tags": generator.counts["comment_mentions"],
              "notifications": generator.counts["notifications"], "tickets": generator.counts["tickets"]}
    counts.update(sorted((key, value) for key, value in generator.counts.items()
                         if key.startswith(("chats_", "tickets_"))))
    audit.record(connection, [audit.event(
        at=now, actor=actor, action="demo.load", entity_type="desk", entity_id="demo", operation_id=operation_id,
        before=None, after=counts, reason=f"seed {seed}",
    )])
    return {"operation": operation_id, "seed": seed, "now": now, **counts}


def _write_chunks(generator: _Generator, sizes: list[int], write, advance) -> None:
    # Draw the next chunk in a thread while this one is written: the database
    # works in its own process meanwhile.  One worker keeps the draws in order,
    # so the desk is the same as drawn in line.
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(generator.chunk, sizes[0])
        for index, size in enumerate(sizes):
            chunk = upcoming.result()
            if index + 1 < len(sizes):
                upcoming = pool.submit(generator.chunk, sizes[index + 1])
            for table, rows in chunk.items():
                if rows:
                    write(table, rows)
            advance(size)


@contextlib.contextmanager
def _deferred_indexes(connection: Connection) -> Iterator[None]:
    """Into an empty desk on PostgreSQL: drop the secondary indexes and foreign keys of the
    tables being loaded, and build them again afterwards, as pg_restore does.

    One index build and one validation query per constraint beat millions of
    per-row index insertions and foreign-key lookups.  The definitions are read
    from the catalogue and restored verbatim, inside the load's transaction, so
    the schema is exactly the same afterwards (or, on failure, never changed).
    """

    tables = list(COLUMNS)
    foreign_keys = connection.execute(text(
        "SELECT conname, conrelid::regclass::text AS table_name, pg_get_constraintdef(oid) AS definition "
        "FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY(CAST(:tables AS regclass[]))"),
        {"tables": tables}).all()
    indexes = connection.execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = ANY(:tables) AND indexname NOT IN "
        "(SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))"), {"tables": tables}).all()
    for name, table, _ in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        connection.execute(text(f'DROP INDEX "{name}"'))
    yield
    for _, definition in indexes:
        connection.execute(text(definition))
    for name, table, definition in foreign_keys:
        connection.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))


def _copy_writer(connection: Connection) -> Callable[[str, list[tuple]], None]:
    """PostgreSQL: COPY through the raw psycopg connection, inside the caller's transaction."""

    raw = connection.connection.driver_connection
    # Binary COPY spares the server parsing text (timestamps above all); it
    # needs each column's exact type, read from the catalogue.
    types = {}
    for table, columns in COLUMNS.items():
        found = dict(connection.execute(text(
            "SELECT column_name, udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = :table"), {"table": table}).all())
        types[table] = [found[column] for column in columns]

    def write(table: str, rows: list[tuple]) -> None:
        columns = ", ".join(COLUMNS[table])
        with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types[table])
            write_row = copy.write_row
            for row in rows:
                write_row(row)

    return write


def _insert_writer(connection: Connection, metadata) -> Callable[[str, list[tuple]], None]:
    """SQLite: multi-row INSERTs through the column types (so timestamps are stored as the models expect)."""

    def write(table: str, rows: list[tuple]) -> None:
        columns = COLUMNS[table]
        connection.execute(insert(metadata.tables[table]), [dict(zip(columns, row)) for row in rows])

    return write
