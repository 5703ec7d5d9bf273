"""Filter expressions for ``chats filter`` and ``tickets close --where``.

Each expression is one command-line word, ``FIELD OP VALUE``; several
expressions are ANDed::

    chatctl chats filter status=live idle>2h 'customer~"acme corp"'
    chatctl tickets close --where reason=out_of_hours 'age>=30d' --dry-run

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, and ``~`` (contains,
ignoring case).  Spaces around the operator are allowed inside one quoted
word.  One pair of quotes around VALUE is removed, which keeps spaces in a
value and lets a value start with an operator character
(``'customer~"=sign"'``).  Field names and choice values ignore case.

What each kind of field takes:

- choice (``status``, ``channel``, ``closed_by``, ticket ``reason``): one of its
  values, with ``=`` or ``!=``; ``closed_by=none`` finds chats nobody closed.
- text (``customer``, chat ``reason``): ``=``/``!=`` compare exactly, ``~``
  finds the value anywhere, ignoring case.  ``customer`` matches the display
  name or the address (phone number, web id).
- yes/no (``flagged``, ``tagged``, ``archived``): ``yes``, ``no``, ``true``,
  ``false``, ``1`` or ``0``, with ``=`` or ``!=``.
- timestamp (``created``, ``closed``): ISO 8601 (``2026-11-30``,
  ``2026-11-30T09:00Z``; without an offset, local time in ``--tz``) or a time
  relative to now (``-2h``), with ``<``, ``<=``, ``>``, ``>=``.  ``=`` is refused
  because an instant almost never matches to the microsecond: a whole day is
  ``created>=2026-11-30 created<2026-12-01``.
- age (``idle``, ``age``): a duration (``2h``, ``30d``, ``PT30M``) with ``<``,
  ``<=``, ``>``, ``>=``.  ``idle>2h`` is a chat with no activity for more than
  two hours; ``age>=30d`` one created at least 30 days ago.
- agent: a handle, or ``none`` for unassigned, with ``=`` or ``!=``.
- chat (tickets): a chat id, with any operator but ``~``.

``!=`` keeps rows where the field is empty: ``agent!=alice`` includes
unassigned chats and ``closed_by!=system`` includes chats still open.

Chat fields: ``status`` (live, pending, closed, converted), ``channel``,
``agent``, ``customer``, ``flagged``, ``tagged`` (someone is @-tagged in a
comment), ``created``, ``closed``, ``closed_by`` (customer, agent, system),
``reason`` (close reason), ``idle`` (since the last activity), ``age`` (since
the chat started).

Ticket fields: ``status`` (open, closed), ``reason`` (out_of_hours, no_agents,
inactivity, manual), ``agent``, ``created``, ``closed``, ``archived``, ``age``
(since the ticket was created), ``chat`` (the chat it came from).

Values always reach the database as bound parameters, never as SQL text.
"""

from __future__ import annotations

import operator as python_operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from chatctl.domain.agents.roster import validate_handle
from chatctl.parsing.timeparse import parse_duration, parse_relative_or_timestamp, parse_timestamp
from chatctl.errors import UsageError
from chatctl.storage.models import Agent, Chat, CommentMention, Customer, Ticket
from chatctl.vocabulary import (CHANNELS, CHAT_STATUSES, CLOSED_BY, TICKET_REASONS, TICKET_STATUSES,
                                check_channel)

__all__ = [
    "CHAT_FIELDS",
    "OPERATORS",
    "TICKET_FIELDS",
    "Condition",
    "FieldKind",
    "FieldSpec",
    "TypedCondition",
    "compile_chat_filter",
    "mentioned_agents",
    "compile_ticket_filter",
    "parse_expression",
    "parse_expressions",
    "validate",
]

OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~")
EQUALITY_OPERATORS = ("=", "!=")
ORDERING_OPERATORS = ("<", "<=", ">", ">=")
CONTAINS_OPERATOR = "~"
NONE_WORD = "none"
EXPRESSION_FORMS = (
    "write FIELD OP VALUE with OP one of =, !=, <, <=, >, >=, ~ "
    "(e.g. status=live, idle>2h, customer~acme)"
)

# Two-character operators come first so that "<=" is not read as "<" and "=...".
_EXPRESSION = re.compile(
    r"\s*(?P<field>[^=!<>~]*?)\s*(?P<operator>!=|<=|>=|=|<|>|~)\s*(?P<value>.*?)\s*",
    re.DOTALL,
)
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]*")
_QUOTES = "'\""
_OPERATOR_CHARACTERS = "=!<>~"


# ---------------------------------------------------------------------------
# Parsing: words into conditions


@dataclass(frozen=True)
class Condition:
    """One ``FIELD OP VALUE`` as typed: field lower-cased, quotes removed, value unchecked."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{self.value}"


def _bad_expression(word: str, reason: str) -> UsageError:
    return UsageError(f"bad filter expression {word!r}: {reason}; {EXPRESSION_FORMS}")


def parse_expression(word: str) -> Condition:
    """Split one word such as ``idle>2h`` into field, operator and value."""
    match = _EXPRESSION.fullmatch(word)
    if match is None:
        raise _bad_expression(word, "no operator")
    # "closed-by" is accepted for closed_by because dashes are what people
    # type in command-line words.
    field_name = match["field"].lower().replace("-", "_")
    if not field_name:
        raise _bad_expression(word, "the field is missing")
    if not _FIELD_NAME.fullmatch(field_name):
        raise _bad_expression(word, f"{match['field']!r} is not a field name")
    return Condition(field_name, match["operator"], _unquote(match["value"], word))


def _unquote(value: str, word: str) -> str:
    if value[:1] and value[0] in _QUOTES:
        if len(value) >= 2 and value[-1] == value[0]:
            return value[1:-1]
        raise _bad_expression(word, "the quote around the value is not closed")
    if value[-1:] and value[-1] in _QUOTES:
        raise _bad_expression(word, "the quote around the value is not opened")
    if not value:
        raise _bad_expression(word, "the value is missing")
    if value[0] in _OPERATOR_CHARACTERS:
        raise _bad_expression(
            word, "use one operator, and quote a value that starts with one of = ! < > ~"
        )
    return value


def parse_expressions(words: Iterable[str]) -> list[Condition]:
    """Parse each word as one expression; together they are ANDed."""
    return [parse_expression(word) for word in words]


def mentioned_agents(conditions: Iterable[Condition]) -> list[str]:
    """The agent handles the conditions name (``agent=alice``), for the caller to check against the
    desk: a mistyped handle must be a usage error, not a filter that quietly matches nothing."""
    handles = (condition.value.strip().lower() for condition in conditions if condition.field == "agent")
    return list(dict.fromkeys(handle for handle in handles if handle and handle != NONE_WORD))


# ---------------------------------------------------------------------------
# Fields: what each entity can be filtered on, and how values are read


class FieldKind(StrEnum):
    ENUM = "enum"
    TEXT = "text"
    BOOL = "bool"
    TIMESTAMP = "timestamp"
    DURATION_SINCE = "duration_since"
    AGENT_HANDLE = "agent_handle"
    ID = "id"
    CHANNEL = "channel"


@dataclass(frozen=True)
class ValueContext:
    """What reading a value may depend on: ``now`` for ``-2h``, ``tz`` for local times."""

    now: datetime | None = None
    tz: tzinfo | None = None


ValueParser = Callable[[str, ValueContext], Any]


@dataclass(frozen=True)
class FieldSpec:
    """How one filter field is typed, which operators it takes and how its value is read.

    ``value_parser`` raises ``UsageError`` naming the accepted values.  ``choices``
    lists an enum field's values (for messages and help).
    """

    kind: FieldKind
    operators: tuple[str, ...]
    value_parser: ValueParser
    description: str
    choices: tuple[str, ...] = ()


def _read_choice(choices: tuple[str, ...], nullable: bool) -> ValueParser:
    accepted = choices + ((NONE_WORD,) if nullable else ())

    def read(text: str, context: ValueContext) -> str | None:
        value = text.strip().lower()
        if nullable and value == NONE_WORD:
            return None
        if value not in choices:
            raise UsageError(f"bad value {text!r}: use one of {', '.join(accepted)}")
        return value

    return read


def _read_text(text: str, context: ValueContext) -> str:
    return text


_BOOLEAN_WORDS = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


def _read_bool(text: str, context: ValueContext) -> bool:
    try:
        return _BOOLEAN_WORDS[text.strip().lower()]
    except KeyError:
        raise UsageError(f"bad value {text!r}: use yes, no, true, false, 1 or 0") from None


def _read_timestamp(text: str, context: ValueContext) -> datetime:
    if context.now is None:
        return parse_timestamp(text, context.tz)
    return parse_relative_or_timestamp(text, context.now, context.tz)


def _read_duration(text: str, context: ValueContext) -> timedelta:
    return parse_duration(text)


def _read_channel(text: str, context: ValueContext) -> str:
    try:
        return check_channel(text.strip().lower())
    except ValueError as error:
        raise UsageError(str(error)) from None


def _read_agent_handle(text: str, context: ValueContext) -> str | None:
    handle = text.strip().lower()
    if handle == NONE_WORD:
        return None
    return validate_handle(handle)


_MAXIMUM_ID = 2**63 - 1


def _read_id(text: str, context: ValueContext) -> int:
    cleaned = text.strip()
    if cleaned.isascii() and cleaned.isdigit() and 0 < int(cleaned) <= _MAXIMUM_ID:
        return int(cleaned)
    raise UsageError(f"bad value {text!r}: use an id, a whole number from 1")


def enum_field(description: str, choices: Sequence[str], *, nullable: bool = False) -> FieldSpec:
    return FieldSpec(FieldKind.ENUM, EQUALITY_OPERATORS, _read_choice(tuple(choices), nullable),
                     description, tuple(choices))


def text_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.TEXT, EQUALITY_OPERATORS + (CONTAINS_OPERATOR,), _read_text, description)


def bool_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.BOOL, EQUALITY_OPERATORS, _read_bool, description)


def timestamp_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.TIMESTAMP, ORDERING_OPERATORS, _read_timestamp, description)


def duration_since_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.DURATION_SINCE, ORDERING_OPERATORS, _read_duration, description)


def agent_handle_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.AGENT_HANDLE, EQUALITY_OPERATORS, _read_agent_handle, description)


def channel_field(description: str) -> FieldSpec:
    """Any lower-case word ingest accepts as a channel (D5); the known ones are the examples."""
    return FieldSpec(FieldKind.CHANNEL, EQUALITY_OPERATORS, _read_channel, description, CHANNELS)


def id_field(description: str) -> FieldSpec:
    return FieldSpec(FieldKind.ID, EQUALITY_OPERATORS + ORDERING_OPERATORS, _read_id, description)


CHAT_FIELDS: dict[str, FieldSpec] = {
    "status": enum_field("chat status", CHAT_STATUSES),
    "channel": channel_field("channel the customer writes on"),
    "agent": agent_handle_field("assigned agent's handle, or none"),
    "customer": text_field("customer display name or address"),
    "flagged": bool_field("flagged for follow-up"),
    "tagged": bool_field("someone is @-tagged in a comment"),
    "created": timestamp_field("when the chat started"),
    "closed": timestamp_field("when the chat was closed"),
    "closed_by": enum_field("who closed the chat", CLOSED_BY, nullable=True),
    "reason": text_field("why the chat was closed"),
    "idle": duration_since_field("time since the last activity"),
    "age": duration_since_field("time since the chat started"),
}

TICKET_FIELDS: dict[str, FieldSpec] = {
    "status": enum_field("ticket status", TICKET_STATUSES),
    "reason": enum_field("why the chat became a ticket", TICKET_REASONS),
    "agent": agent_handle_field("assigned agent's handle, or none"),
    "created": timestamp_field("when the ticket was created"),
    "closed": timestamp_field("when the ticket was closed"),
    "archived": bool_field("archived"),
    "age": duration_since_field("time since the ticket was created"),
    "chat": id_field("id of the chat the ticket came from"),
}


@dataclass(frozen=True)
class TypedCondition:
    """A condition whose field exists, whose operator applies and whose value is read."""

    condition: Condition
    spec: FieldSpec
    value: Any

    @property
    def field(self) -> str:
        return self.condition.field

    @property
    def operator(self) -> str:
        return self.condition.operator


def validate(
    conditions: Iterable[Condition],
    fields: Mapping[str, FieldSpec],
    *,
    now: datetime | None = None,
    tz: tzinfo | None = None,
) -> list[TypedCondition]:
    """Check each condition against ``fields`` and read its value.

    Timestamps without an offset are local to ``tz`` (UTC when not given);
    relative timestamps (``created>-2h``) need ``now``.  Raises ``UsageError``
    naming the accepted fields, operators or values.
    """
    context = ValueContext(now=now, tz=tz)
    return [_validate_one(condition, fields, context) for condition in conditions]


def _validate_one(
    condition: Condition, fields: Mapping[str, FieldSpec], context: ValueContext
) -> TypedCondition:
    spec = fields.get(condition.field)
    if spec is None:
        raise UsageError(
            f"unknown field {condition.field!r}: use one of {', '.join(sorted(fields))}"
        )
    if condition.operator not in spec.operators:
        raise UsageError(
            f"{condition}: operator {condition.operator!r} does not apply to "
            f"{condition.field}: use {', '.join(spec.operators)}"
        )
    try:
        value = spec.value_parser(condition.value, context)
    except UsageError as error:
        raise UsageError(f"{condition}: {error.message}") from None
    return TypedCondition(condition, spec, value)


# ---------------------------------------------------------------------------
# Compiling: conditions into SQLAlchemy WHERE clauses

_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "=": python_operator.eq,
    "!=": python_operator.ne,
    "<": python_operator.lt,
    "<=": python_operator.le,
    ">": python_operator.gt,
    ">=": python_operator.ge,
}
# "idle>2h" means the activity happened before now - 2h: an age compares the
# opposite way from the timestamp it is measured from.
_AGE_TO_TIMESTAMP_OPERATOR = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
_EARLIEST_INSTANT = datetime.min.replace(tzinfo=timezone.utc)


def compile_chat_filter(
    conditions: Iterable[Condition | TypedCondition],
    now: datetime,
    tz: tzinfo | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``Chat`` for the conditions, to AND together.

    ``now`` anchors ``idle``, ``age`` and relative timestamps; nothing here
    reads the clock.  Use as ``select(Chat).where(*compile_chat_filter(...))``.
    """
    typed = _validated(conditions, CHAT_FIELDS, now, tz)
    return [_compile_chat_condition(condition, now) for condition in typed]


def compile_ticket_filter(
    conditions: Iterable[Condition | TypedCondition],
    now: datetime,
    tz: tzinfo | None = None,
) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``Ticket`` for the conditions, to AND together.

    ``now`` anchors ``age`` and relative timestamps; nothing here reads the
    clock.  Use as ``select(Ticket).where(*compile_ticket_filter(...))``.
    """
    typed = _validated(conditions, TICKET_FIELDS, now, tz)
    return [_compile_ticket_condition(condition, now) for condition in typed]


def _validated(
    conditions: Iterable[Condition | TypedCondition],
    fields: Mapping[str, FieldSpec],
    now: datetime,
    tz: tzinfo | None,
) -> list[TypedCondition]:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    # Conditions validated earlier are read again against this entity's fields,
    # so a chat condition can never slip into a ticket query.
    raw = [item.condition if isinstance(item, TypedCondition) else item for item in conditions]
    return validate(raw, fields, now=now, tz=tz)


def _compile_chat_condition(condition: TypedCondition, now: datetime) -> ColumnElement[bool]:
    name, operator, value = condition.field, condition.operator, condition.value
    if name == "status":
        return _compare(Chat.status, operator, value)
    if name == "channel":
        return _compare(Chat.channel, operator, value)
    if name == "agent":
        return _agent_matches(Chat.agent_id, operator, value)
    if name == "customer":
        return _customer_matches(operator, value)
    if name == "flagged":
        return Chat.flagged == _wanted(operator, value)
    if name == "tagged":
        tagged_chats = select(CommentMention.chat_id)
        if _wanted(operator, value):
            return Chat.id.in_(tagged_chats)
        return Chat.id.not_in(tagged_chats)
    if name == "created":
        return _compare(Chat.created_at, operator, value)
    if name == "closed":
        return _compare(Chat.closed_at, operator, value)
    if name == "closed_by":
        return _compare(Chat.closed_by, operator, value, nullable=True)
    if name == "reason":
        return _compare(Chat.close_reason, operator, value, nullable=True)
    if name == "idle":
        return _age_compare(Chat.last_activity_at, operator, value, now)
    if name == "age":
        return _age_compare(Chat.created_at, operator, value, now)
    raise AssertionError(f"chat field {name!r} has no compilation")


def _compile_ticket_condition(condition: TypedCondition, now: datetime) -> ColumnElement[bool]:
    name, operator, value = condition.field, condition.operator, condition.value
    if name == "status":
        return _compare(Ticket.status, operator, value)
    if name == "reason":
        return _compare(Ticket.reason, operator, value)
    if name == "agent":
        return _agent_matches(Ticket.agent_id, operator, value)
    if name == "created":
        return _compare(Ticket.created_at, operator, value)
    if name == "closed":
        return _compare(Ticket.closed_at, operator, value)
    if name == "archived":
        if _wanted(operator, value):
            return Ticket.archived_at.is_not(None)
        return Ticket.archived_at.is_(None)
    if name == "age":
        return _age_compare(Ticket.created_at, operator, value, now)
    if name == "chat":
        return _compare(Ticket.chat_id, operator, value)
    raise AssertionError(f"ticket field {name!r} has no compilation")


def _compare(column: Any, operator: str, value: Any, *, nullable: bool = False) -> ColumnElement[bool]:
    if operator == CONTAINS_OPERATOR:
        # autoescape makes % and _ in the value match themselves, not wildcards.
        return column.icontains(value, autoescape=True)
    if value is None:
        return column.is_(None) if operator == "=" else column.is_not(None)
    if operator == "!=" and nullable:
        # A plain != would drop rows where the column is NULL, which is the
        # opposite of what "closed_by!=system" means to the person typing it.
        return column.is_distinct_from(value)
    return _COMPARISONS[operator](column, value)


def _wanted(operator: str, value: bool) -> bool:
    return value if operator == "=" else not value


def _age_compare(column: Any, operator: str, age: timedelta, now: datetime) -> ColumnElement[bool]:
    try:
        cutoff = now.astimezone(timezone.utc) - age
    except OverflowError:
        # An age longer than the calendar reaches back before any row.
        cutoff = _EARLIEST_INSTANT
    return _COMPARISONS[_AGE_TO_TIMESTAMP_OPERATOR[operator]](column, cutoff)


def _agent_matches(column: Any, operator: str, handle: str | None) -> ColumnElement[bool]:
    if handle is None:
        return column.is_(None) if operator == "=" else column.is_not(None)
    agent_ids = select(Agent.id).where(Agent.handle == handle)
    if operator == "=":
        return column.in_(agent_ids)
    return or_(column.is_(None), column.not_in(agent_ids))


def _customer_matches(operator: str, value: str) -> ColumnElement[bool]:
    if operator == CONTAINS_OPERATOR:
        matches = or_(Customer.display_name.icontains(value, autoescape=True),
                      Customer.address.icontains(value, autoescape=True))
    else:
        matches = or_(Customer.display_name == value, Customer.address == value)
    customer_ids = select(Customer.id).where(matches)
    if operator == "!=":
        return Chat.customer_id.not_in(customer_ids)
    return Chat.customer_id.in_(customer_ids)
