"""The desk's fixed words, written once: roles, presences, chat and ticket
states, message directions and kinds, known channels, sweep jobs, views and
output formats.

The storage models, the domain rules, the filter fields, ``db check`` and the
command-line choices all take their values from here, so a new ticket reason
or output format is one edit.  Standard library only: command modules build
their option enums from these tuples at start-up (``choices``), where nothing
heavier may load.
"""

from __future__ import annotations

import re
from enum import Enum

ROLES = ("agent", "supervisor", "admin")
PRESENCES = ("online", "offline")

CHAT_STATUSES = ("live", "pending", "closed", "converted")
# A chat that is still a conversation: comments, flags, assignment and the timeouts apply.
OPEN_CHAT_STATUSES = ("live", "pending")
# A chat that is over: its comments and tags are gone (R9).
FINISHED_CHAT_STATUSES = ("closed", "converted")
CLOSED_BY = ("customer", "agent", "system")

TICKET_STATUSES = ("open", "closed")
TICKET_REASONS = ("out_of_hours", "no_agents", "inactivity", "manual")

MESSAGE_DIRECTIONS = ("inbound", "outbound")
MESSAGE_KINDS = ("text", "template")

# The channels chatctl knows by name: what completion and the demo offer and
# what the WhatsApp reply rules (R11) key on.  Ingest accepts any lower-case
# word as a channel (D5).
CHANNELS = ("whatsapp", "webchat", "messenger", "sms", "email", "telegram")
# What any channel looks like: a lower-case word (viber, line, instagram_dm ...).
CHANNEL_WORD = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")

# The sweep jobs, in the order a bare ``sweep run`` runs them (SPEC 3).
SWEEP_JOBS = ("unattended", "agent-timeout", "inactivity", "pending", "archive", "cleanup")

# The five views of ``chats list`` (R1) and the orders a chat view can take.
VIEWS = ("live", "pending", "tagged", "closed", "tickets")
SORTS = ("activity", "new", "closed")

OUTPUT_FORMATS = ("table", "plain", "tsv", "csv", "json", "jsonl", "markdown", "ids")

# What a mutation reports for each item (SPEC 2.3); a dry run says what it
# would change, never that it changed (D8).
ITEM_RESULTS = ("changed", "skipped", "not_found", "refused")
DRY_RUN_ITEM_RESULTS = ("would_change", "skipped", "not_found", "refused")


def spoken(values: tuple[str, ...]) -> str:
    """The values as a person lists them: "live, pending or closed"."""
    return values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"


def choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A ``str`` enum of ``values`` for a command-line option or argument (Typer offers its values)."""
    return Enum(name, [(value.replace("-", "_"), value) for value in values], type=str)


def check_channel(text: str) -> str:
    """A channel as written (D5: an open vocabulary), or ValueError saying what a channel looks like."""
    if not CHANNEL_WORD.match(text):
        raise ValueError(f"bad channel {text!r}: a lower-case word such as {spoken(CHANNELS[:3])}")
    return text
