"""Inbound events (SPEC 2.5): JSON Lines of chat traffic, applied as the desk would.

Event types and their fields (``at`` is required everywhere, ISO 8601; without
an offset it is UTC)::

    chat_started      customer, channel, [chat], [agent], [text], [name]
    customer_message  chat, text
    agent_message     chat, agent, text
    presence          agent, status (online|offline)

What each does:

* ``chat_started`` creates chat ``chat`` (or one with a new id, reported in
  the summary), the customer on first sight (by address = ``customer``,
  display name ``name`` or the address), assigned to ``agent`` when given,
  with ``text`` as the customer's first message.  R12 at arrival: outside
  ``business_hours`` in the desk ``timezone`` (holidays closed all day) the
  chat becomes a ticket with reason ``out_of_hours``; otherwise, with no
  active agent online, a ticket with reason ``no_agents``.
* ``customer_message`` stores the message and is activity; a pending chat
  becomes live (R6), a closed one becomes live again with its agent (R11,
  close fields cleared, ``reassign_count`` reset as by a reopen).  On a
  converted chat the message is stored and the chat stays converted.
* ``agent_message`` stores the reply, is activity, answers the customer and
  moves the agent's seen mark (R2, R5).  It does not change the assignment
  or the status (a reply to a closed chat leaves it closed, R11).
* ``presence`` sets an agent online or offline; later ``chat_started``
  events of the same file see it (R12).

Every timestamp an event causes is the event's ``at``.  Lines are applied in
file order; a bad line (bad JSON, unknown type, chat or agent, missing or
bad field, bad timestamp) is reported with its line number and skipped.

Audit (R15): one event per created chat (``events.chat_started``), per
created ticket (``events.ticket_created``), per revived chat
(``events.revive``, the changed columns before and after) and per presence
change (``events.presence``).  Plain messages on a live chat change no state
worth reverting and write no audit row; the message rows are their record.

Speed: lines are read as a stream and applied in chunks (``batch_sizes.INGEST``
lines), one transaction per chunk.  Within a chunk, events are first replayed
in memory in file order against the chats and agents the chunk reads (so a
``chat_started`` followed by messages to the same chat in the same chunk
behave as if applied one by one), then written with a constant number of
set-based statements whatever the chunk's size: new chats, messages and audit
events by COPY, customers and tickets by one INSERT each, the chats that
changed by one UPDATE (``storage.dialects``: on PostgreSQL a binary COPY and
statements over arrays; on SQLite executemany).  A chat touched by many
events of a chunk is written once.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from chatctl.batch_sizes import INGEST
from chatctl.domain.audit import writer as audit
from chatctl.domain.chats.transitions import open_tickets, opened_ticket
from chatctl.domain.prefs import get_preferences
from chatctl.errors import UsageError
from chatctl.parsing.timeparse import parse_instant
from chatctl.storage.dialects import dialect
from chatctl.storage.models import Agent, Chat, Customer, Message
from chatctl.storage.retry import retry_serialization
from chatctl.vocabulary import PRESENCES

if TYPE_CHECKING:
    from chatctl.interruption import StopRequest

EVENT_TYPES = ("chat_started", "customer_message", "agent_message", "presence")
REQUIRED = {
    "chat_started": ("customer", "channel"),
    "customer_message": ("chat", "text"),
    "agent_message": ("chat", "agent", "text"),
    "presence": ("agent", "status"),
}
CHANNEL = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# The chat columns an event can change on an existing chat.
CHAT_STATE = ("status", "last_customer_message_at", "last_agent_message_at", "last_activity_at",
              "agent_seen_at", "pending_since", "closed_at", "closed_by", "close_reason", "reassign_count")
NEW_CHAT_COLUMNS = ("id", "customer_id", "channel", "status", "agent_id", "assigned_at", "reassign_count", "flagged",
                    "created_at", "last_customer_message_at", "last_agent_message_at", "last_activity_at",
                    "agent_seen_at")
MESSAGE_COLUMNS = ("chat_id", "direction", "agent_id", "kind", "body", "created_at")
REVIVE_COLUMNS = ("status", "pending_since", "closed_at", "closed_by", "close_reason", "reassign_count")


# PostgreSQL text cannot hold U+0000: such a line is a bad line on every database alike,
# rather than a failed chunk on one of them.
NUL_MESSAGE = "'{key}' must not contain a NUL character (\\u0000)"


class BadLine(Exception):
    """A line that cannot be applied; the message says why."""


@dataclass(slots=True)
class Event:
    line: int
    type: str
    at: dt.datetime
    chat: int | None = None
    agent: str | None = None
    customer: str | None = None
    name: str | None = None
    channel: str | None = None
    text: str | None = None
    status: str | None = None


def _string(data: dict, key: str, *, limit: int = 200) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadLine(f"'{key}' must be a non-empty string")
    if len(value) > limit:
        raise BadLine(f"'{key}' is longer than {limit} characters")
    if "\x00" in value:
        raise BadLine(NUL_MESSAGE.format(key=key))
    return value


def parse_line(text: str, line: int) -> Event:
    """One JSON Lines record -> ``Event``; ``BadLine`` says what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise BadLine(f"bad JSON: {error}") from None
    if not isinstance(data, dict):
        raise BadLine("not a JSON object")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        if kind is None:
            raise BadLine("missing field 'type'")
        raise BadLine(f"unknown type {kind!r}: use one of {', '.join(EVENT_TYPES)}")
    missing = [key for key in ("at", *REQUIRED[kind]) if data.get(key) is None]
    if missing:
        raise BadLine(f"{kind}: missing field{'s' if len(missing) > 1 else ''} "
                      + ", ".join(f"'{key}'" for key in missing))
    at_text = data["at"]
    if not isinstance(at_text, str):
        raise BadLine("'at' must be an ISO 8601 string")
    try:
        at = parse_instant(at_text)
    except UsageError as error:
        raise BadLine(error.message) from None
    event = Event(line=line, type=kind, at=at)
    chat = data.get("chat")
    if chat is not None:
        if isinstance(chat, bool) or not isinstance(chat, int) or chat < 1 or chat > 2**53:
            raise BadLine(f"'chat' must be a positive whole number, not {chat!r}")
        event.chat = chat
    event.agent = _string(data, "agent", limit=64)
    if kind == "chat_started":
        event.customer = _string(data, "customer")
        event.name = _string(data, "name")
        channel = data["channel"]
        if not isinstance(channel, str) or not CHANNEL.match(channel):
            raise BadLine(f"bad channel {channel!r}: a lower-case word such as whatsapp, webchat, sms")
        event.channel = channel
    if kind == "presence":
        if data["status"] not in PRESENCES:
            raise BadLine(f"bad status {data['status']!r}: use online or offline")
        event.status = data["status"]
    text_value = data.get("text")
    if text_value is not None:
        if not isinstance(text_value, str):
            raise BadLine("'text' must be a string")
        if "\x00" in text_value:
            raise BadLine(NUL_MESSAGE.format(key="text"))
        event.text = text_value
    return event


@dataclass
class IngestSummary:
    lines: int = 0
    events: Counter = field(default_factory=Counter)
    chats_created: int = 0
    tickets_created: Counter = field(default_factory=Counter)
    messages: int = 0
    revived: int = 0
    presence_changes: int = 0
    bad_lines: int = 0
    # (line, chat id) of chats created without an explicit id; arrays keep a
    # million of them small.
    generated_lines: array = field(default_factory=lambda: array("q"))
    generated_ids: array = field(default_factory=lambda: array("q"))

    def merge(self, other: IngestSummary) -> None:
        """Add the counts of a committed chunk (``lines`` are added by the caller once it committed)."""
        self.events.update(other.events)
        self.chats_created += other.chats_created
        self.tickets_created.update(other.tickets_created)
        self.messages += other.messages
        self.revived += other.revived
        self.presence_changes += other.presence_changes
        self.generated_lines.extend(other.generated_lines)
        self.generated_ids.extend(other.generated_ids)

    def as_json(self, operation_id: str) -> dict[str, Any]:
        return {
            "operation": operation_id,
            "lines": self.lines,
            "events": {kind: self.events.get(kind, 0) for kind in EVENT_TYPES},
            "chats_created": self.chats_created,
            "tickets_created": sum(self.tickets_created.values()),
            "tickets_by_reason": dict(sorted(self.tickets_created.items())),
            "messages": self.messages,
            "revived": self.revived,
            "presence_changes": self.presence_changes,
            "bad_lines": self.bad_lines,
            "generated_chats": [{"line": line, "chat": chat}
                                for line, chat in zip(self.generated_lines, self.generated_ids)],
        }

    def flat(self, operation_id: str) -> dict[str, Any]:
        """The summary as ``field value`` pairs for the table and text formats."""
        record: dict[str, Any] = {"operation": operation_id, "lines": self.lines}
        record.update({kind: self.events.get(kind, 0) for kind in EVENT_TYPES})
        record.update(chats_created=self.chats_created, tickets_created=sum(self.tickets_created.values()))
        record.update({f"tickets_{reason}": n for reason, n in sorted(self.tickets_created.items())})
        record.update(messages=self.messages, revived=self.revived, presence_changes=self.presence_changes,
                      bad_lines=self.bad_lines)
        return record

    def line(self) -> str:
        applied = sum(self.events.values())
        tickets = sum(self.tickets_created.values())
        return (f"{applied} events applied, {self.chats_created} chats created, {tickets} tickets created, "
                f"{self.revived} revived, {self.bad_lines} bad lines")


def ingest(
    engine: Engine,
    lines: Iterable[str],
    *,
    actor: str,
    operation_id: str,
    report_bad_line: Callable[[int, str], None],
    advance: Callable[[int], None] = lambda n: None,
    chunk_lines: int = INGEST,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Apply the JSON Lines ``lines`` in file order, one transaction per chunk of lines.

    Bad lines go to ``report_bad_line(line_number, message)`` in line order and
    are counted; everything else is applied.

    SIGINT or SIGTERM (``chatctl.interruption``) stops it between chunks with
    ``Interrupted``: the chunks committed stay, the one in flight rolls back
    whole, and lines read since are not applied.  ``summary`` (the caller's,
    to report from after a stop) then counts the committed chunks: its
    ``lines`` is the last line applied.
    """
    from chatctl.interruption import stop_on_signals

    summary = IngestSummary() if summary is None else summary
    with stop_on_signals() as stop:
        _apply_chunks(engine, lines, summary, stop, actor=actor, operation_id=operation_id,
                      report_bad_line=report_bad_line, advance=advance, chunk_lines=chunk_lines)
    return summary


def _apply_chunks(engine: Engine, lines: Iterable[str], summary: IngestSummary, stop: StopRequest, *, actor: str,
                  operation_id: str, report_bad_line: Callable[[int, str], None], advance: Callable[[int], None],
                  chunk_lines: int) -> None:
    chunks = _chunks(lines, chunk_lines)
    while True:
        with stop.waiting_for_input():
            chunk = next(chunks, None)
        if chunk is None:
            return
        events: list[Event] = []
        bad: list[tuple[int, str]] = []
        for number, text in chunk:
            if not text.strip():
                continue
            try:
                events.append(parse_line(text, number))
            except BadLine as error:
                bad.append((number, str(error)))
        if events:
            # A chunk that loses a serialization race is replayed whole; its
            # counts join the summary only once it has committed.
            def one_chunk() -> tuple[list[tuple[int, str]], IngestSummary]:
                counts = IngestSummary()
                with engine.begin() as connection, stop.cancellable(connection):
                    return _Chunk(connection, events, actor=actor, operation_id=operation_id,
                                  summary=counts).apply(), counts

            chunk_bad, counts = retry_serialization(one_chunk)
            bad.extend(chunk_bad)
            summary.merge(counts)
        for number, message in sorted(bad):
            report_bad_line(number, message)
        summary.bad_lines += len(bad)
        summary.lines += len(chunk)
        advance(len(chunk))


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[tuple[int, str]]]:
    chunk: list[tuple[int, str]] = []
    for number, text in enumerate(lines, 1):
        chunk.append((number, text))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# Keys looked up per statement: well under SQLite's 32,766 bound parameters.
LOOKUP = 10_000


def _slices(keys: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(keys), LOOKUP):
        yield keys[start:start + LOOKUP]


@dataclass(slots=True)
class _ChatState:
    """A chat as the chunk sees it: loaded from the database or created by an event."""

    id: int
    new: bool
    original: tuple[Any, ...] | None = None  # state() as loaded
    customer: str | None = None
    channel: str | None = None
    agent_id: int | None = None
    assigned_at: dt.datetime | None = None
    created_at: dt.datetime | None = None
    # CHAT_STATE:
    status: str | None = None
    last_customer_message_at: dt.datetime | None = None
    last_agent_message_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None
    agent_seen_at: dt.datetime | None = None
    pending_since: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    closed_by: str | None = None
    close_reason: str | None = None
    reassign_count: int | None = None

    def state(self) -> tuple[Any, ...]:
        """The CHAT_STATE values."""
        return _CHAT_STATE_OF(self)


_CHAT_STATE_OF = attrgetter(*CHAT_STATE)


@dataclass(slots=True)
class _AgentState:
    id: int
    presence: str
    active: bool
    changed_at: dt.datetime | None = None
    original: str | None = None
    since: dt.datetime | None = None  # presence_changed_at before this ingest


class _Chunk:
    """Replay one chunk of events in memory in file order, then write it in bulk."""

    def __init__(self, connection: Connection, events: list[Event], *, actor: str, operation_id: str,
                 summary: IngestSummary) -> None:
        self.connection = connection
        self.events = events
        self.actor = actor
        self.operation_id = operation_id
        self.summary = summary
        self.bad: list[tuple[int, str]] = []
        self.chats: dict[int, _ChatState] = {}
        self.new_chats: list[_ChatState] = []
        self.messages: list[tuple[Any, ...]] = []  # in MESSAGE_COLUMNS order
        self.tickets: list[tuple[int, int | None, str, dt.datetime]] = []
        self.audit_events: list[dict[str, Any]] = []
        self.new_customers: dict[str, tuple[str, dt.datetime]] = {}

    # -- reading ---------------------------------------------------------------
    def _load(self) -> None:
        preferences = get_preferences(self.connection)
        self.hours = preferences["business_hours"]
        self.zone = preferences["timezone"]
        self.holidays = preferences["holidays"]
        self.agents = {
            row.handle: _AgentState(row.id, row.presence, row.active, original=row.presence,
                                    since=row.presence_changed_at)
            for row in self.connection.execute(select(Agent.id, Agent.handle, Agent.presence, Agent.active,
                                                      Agent.presence_changed_at))
        }
        self.online = sum(1 for agent in self.agents.values() if agent.active and agent.presence == "online")

        spelling = dialect(self.connection)
        chat_ids = sorted({event.chat for event in self.events if event.chat is not None})
        for part in _slices(chat_ids):
            query = select(*(getattr(Chat, name) for name in ("id", "agent_id", *CHAT_STATE))).where(
                spelling.ids_match(Chat.id, part))
            # A concurrent sweep must not close a chat between this read and our write.
            for row in self.connection.execute(spelling.locked(query, of=Chat)):
                values = row._asdict()
                chat = _ChatState(new=False, **values)
                chat.original = chat.state()
                self.chats[row.id] = chat
        self.customers: dict[str, int] = {}
        self._read_customers(sorted({event.customer for event in self.events if event.type == "chat_started"}))

    def _read_customers(self, addresses: list[str]) -> None:
        spelling = dialect(self.connection)
        for part in _slices(addresses):
            self.customers.update(self.connection.execute(
                select(Customer.address, Customer.id).where(spelling.ids_match(Customer.address, part))).all())

    def _allocate_chat_ids(self) -> list[int]:
        """Ids for chats started without one, never colliding with explicit ids of this or later runs."""
        explicit = [event.chat for event in self.events
                    if event.type == "chat_started" and event.chat is not None and event.chat not in self.chats]
        wanted = sum(1 for event in self.events if event.type == "chat_started" and event.chat is None)
        return dialect(self.connection).reserve_ids(self.connection, Chat.__table__, wanted,
                                                    above=max(explicit, default=0))

    # -- replay ----------------------------------------------------------------
    def apply(self) -> list[tuple[int, str]]:
        self._load()
        self.generated = iter(self._allocate_chat_ids())
        handlers = {"chat_started": self._chat_started, "customer_message": self._customer_message,
                    "agent_message": self._agent_message, "presence": self._presence}
        for event in self.events:
            try:
                handlers[event.type](event)
            except BadLine as error:
                self.bad.append((event.line, str(error)))
            else:
                self.summary.events[event.type] += 1
        self._write()
        return self.bad

    def _agent(self, handle: str, *, acting: bool = True) -> _AgentState:
        """The agent named by an event; a deactivated one can only go offline."""
        agent = self.agents.get(handle)
        if agent is None:
            raise BadLine(f"unknown agent '{handle}'")
        if not agent.active and acting:
            raise BadLine(f"agent '{handle}' is deactivated")
        return agent

    def _chat(self, chat_id: int) -> _ChatState:
        chat = self.chats.get(chat_id)
        if chat is None:
            raise BadLine(f"unknown chat {chat_id}")
        return chat

    def _chat_started(self, event: Event) -> None:
        if event.chat is not None and event.chat in self.chats:
            raise BadLine(f"chat {event.chat} already exists")
        agent = self._agent(event.agent) if event.agent else None
        reason = None
        if not self.hours.is_open(event.at, self.zone, self.holidays):
            reason = "out_of_hours"
        elif self.online == 0:
            reason = "no_agents"
        chat_id = event.chat if event.chat is not None else next(self.generated)
        if event.chat is None:
            self.summary.generated_lines.append(event.line)
            self.summary.generated_ids.append(chat_id)
        if event.customer not in self.customers and event.customer not in self.new_customers:
            self.new_customers[event.customer] = (event.name or event.customer, event.at)
        chat = _ChatState(
            id=chat_id, new=True, customer=event.customer, channel=event.channel,
            status="converted" if reason else "live",
            agent_id=agent.id if agent else None, assigned_at=event.at if agent else None,
            created_at=event.at, last_activity_at=event.at, reassign_count=0,
            last_customer_message_at=event.at if event.text is not None else None,
        )
        self.chats[chat_id] = chat
        self.new_chats.append(chat)
        if event.text is not None:
            self._message(chat_id, "inbound", None, event.text, event.at)
        self.audit_events.append(audit.event(
            at=event.at, actor=self.actor, action="events.chat_started", entity_type="chat", entity_id=chat_id,
            operation_id=self.operation_id, before=None,
            after={"status": chat.status, "channel": chat.channel, "customer": event.customer,
                   "agent_id": chat.agent_id, "created_at": event.at},
            reason=f"line {event.line}" + (f"; became a ticket: {reason}" if reason else ""),
        ))
        if reason:
            self.tickets.append((chat_id, chat.agent_id, reason, event.at))
        self.summary.chats_created += 1

    def _customer_message(self, event: Event) -> None:
        chat = self._chat(event.chat)
        if chat.status in ("pending", "closed"):
            before = {name: getattr(chat, name) for name in REVIVE_COLUMNS}
            chat.status = "live"
            chat.pending_since = None
            chat.closed_at = chat.closed_by = chat.close_reason = None
            chat.reassign_count = 0
            after = {name: getattr(chat, name) for name in REVIVE_COLUMNS}
            old, new = audit.diff(before, after)
            self.audit_events.append(audit.event(
                at=event.at, actor=self.actor, action="events.revive", entity_type="chat", entity_id=chat.id,
                operation_id=self.operation_id, before=old, after=new,
                reason=f"line {event.line}: customer message on a {before['status']} chat: live again",
            ))
            self.summary.revived += 1
        chat.last_customer_message_at = event.at
        chat.last_activity_at = event.at
        self._message(chat.id, "inbound", None, event.text, event.at)

    def _agent_message(self, event: Event) -> None:
        chat = self._chat(event.chat)
        agent = self._agent(event.agent)
        chat.last_agent_message_at = event.at
        chat.last_activity_at = event.at
        chat.agent_seen_at = event.at
        self._message(chat.id, "outbound", agent.id, event.text, event.at)

    def _presence(self, event: Event) -> None:
        agent = self._agent(event.agent, acting=event.status == "online")
        if agent.presence == event.status:
            return
        if agent.active:
            self.online += 1 if event.status == "online" else -1
        self.audit_events.append(audit.event(
            at=event.at, actor=self.actor, action="events.presence", entity_type="agent",
            entity_id=event.agent, operation_id=self.operation_id,
            before={"presence": agent.presence, "presence_changed_at": agent.changed_at or agent.since},
            after={"presence": event.status, "presence_changed_at": event.at},
            reason=f"line {event.line}",
        ))
        agent.presence = event.status
        agent.changed_at = event.at
        self.summary.presence_changes += 1

    def _message(self, chat_id: int, direction: str, agent_id: int | None, body: str, at: dt.datetime) -> None:
        self.messages.append((chat_id, direction, agent_id, "text", body, at))

    # -- writing ---------------------------------------------------------------
    def _write(self) -> None:
        """Write the chunk's outcome: a constant number of statements whatever its size.

        New chats, messages and audit events go in through ``Dialect.insert_rows``
        (binary COPY on PostgreSQL, executemany on SQLite), customers and tickets
        through ``insert_returning`` (their ids are needed), changed chats and
        agents through ``update_rows``.
        """
        connection = self.connection
        spelling = dialect(connection)
        if self.new_customers:
            # Another ingest may create the same customer at the same moment:
            # its row is kept, and read back.
            self.customers.update(spelling.insert_returning(
                connection, Customer.__table__, ("address", "display_name", "created_at"),
                [(address, name[:200], at) for address, (name, at) in self.new_customers.items()],
                ("address", "id"), skip_existing=("address",)))
            self._read_customers([address for address in self.new_customers if address not in self.customers])
        if self.new_chats:
            spelling.insert_rows(connection, Chat.__table__, NEW_CHAT_COLUMNS, [
                (chat.id, self.customers[chat.customer], chat.channel, chat.status, chat.agent_id,
                 chat.assigned_at, 0, False, chat.created_at, chat.last_customer_message_at,
                 chat.last_agent_message_at, chat.last_activity_at, chat.agent_seen_at)
                for chat in self.new_chats])
        spelling.update_rows(connection, Chat.__table__, CHAT_STATE,
                             [(chat.id, *state) for chat in self.chats.values()
                              if not chat.new and (state := chat.state()) != chat.original])
        if self.messages:
            spelling.insert_rows(connection, Message.__table__, MESSAGE_COLUMNS, self.messages)
            self.summary.messages += len(self.messages)
        if self.tickets:
            ticket_ids = open_tickets(connection, self.tickets)
            for chat_id, agent_id, reason, at in self.tickets:
                self.audit_events.append(audit.event(
                    at=at, actor=self.actor, action="events.ticket_created", entity_type="ticket",
                    entity_id=ticket_ids[chat_id], operation_id=self.operation_id, before=None,
                    after=opened_ticket(chat_id, agent_id, reason, at), reason=f"a ticket instead of a chat: {reason}",
                ))
                self.summary.tickets_created[reason] += 1
        moved = [(agent.id, agent.presence, agent.changed_at) for agent in self.agents.values()
                 if agent.changed_at is not None and agent.presence != agent.original]
        spelling.update_rows(connection, Agent.__table__, ("presence", "presence_changed_at"), moved)
        audit.record(connection, self.audit_events)
