"""Desk preferences (SPEC 1.4): typed, validated, with defaults.

Values are stored as their canonical text; reading parses them back into
Python values (``timedelta``, ``ZoneInfo``, ``BusinessHours``, ...).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from chatctl.domain.audit import writer as audit
from chatctl.errors import UsageError
from chatctl.parsing import timeparse
from chatctl.storage.models import Preference

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise UsageError(f"bad value {text!r}: use one of {', '.join(allowed)}")
        return value

    return parse


def _integer(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"bad value {text!r}: use a whole number >= 0") from None
    if value < 0:
        raise UsageError(f"bad value {text!r}: use a whole number >= 0")
    return value


def _timeout(text: str):
    """A duration above zero: a zero timeout would let the next sweep act on every chat at once."""
    value = timeparse.parse_duration(text)
    if not value:
        raise UsageError(f"bad value {text!r}: a timeout must be longer than 0s (e.g. 30m)")
    return value


@dataclass(frozen=True)
class PreferenceSpec:
    key: str
    kind: str
    default: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str]
    help: str


PREFERENCES: dict[str, PreferenceSpec] = {
    spec.key: spec
    for spec in (
        PreferenceSpec("inactivity_timeout", "duration > 0", "30m", _timeout, timeparse.format_duration,
                       "close (or ticket) a live chat idle this long"),
        PreferenceSpec("inactivity_action", "close|ticket", "close", _choice("close", "ticket"), str,
                       "what the inactivity sweep does"),
        PreferenceSpec("agent_chat_timeout", "duration > 0", "5m", _timeout, timeparse.format_duration,
                       "reassign a customer left unanswered this long"),
        PreferenceSpec("agent_max_chats", "integer >= 0", "0", _integer, str,
                       "most live chats per agent when (re)assigning; 0 = no limit"),
        PreferenceSpec("agent_max_reassignments", "integer >= 0", "3", _integer, str,
                       "reassignments before a chat becomes a ticket"),
        PreferenceSpec("pending_timeout", "duration > 0", "24h", _timeout, timeparse.format_duration,
                       "close a pending chat after this long"),
        PreferenceSpec("closed_reply_window", "duration", "24h", timeparse.parse_duration, timeparse.format_duration,
                       "free-text replies allowed this long after closing"),
        PreferenceSpec("ticket_archive_after", "duration > 0", "90d", _timeout, timeparse.format_duration,
                       "archive tickets this long after creation"),
        PreferenceSpec("timezone", "IANA zone", "UTC", timeparse.parse_zone, str,
                       "the desk's time zone: business hours, holidays, display"),
        PreferenceSpec("business_hours", "weekly schedule", "mon-fri 08:00-17:00", timeparse.parse_business_hours,
                       lambda hours: hours.canonical(), "when new chats go to agents"),
        PreferenceSpec("holidays", "list of dates", "", timeparse.parse_holidays, timeparse.format_holidays,
                       "days the desk is closed"),
    )
}


def spec_for(key: str) -> PreferenceSpec:
    try:
        return PREFERENCES[key]
    except KeyError:
        raise UsageError(f"unknown preference {key!r}: use one of {', '.join(PREFERENCES)}") from None


def parse_value(key: str, text: str) -> Any:
    spec = spec_for(key)
    try:
        return spec.parse(text)
    except UsageError as error:
        raise UsageError(f"{key} ({spec.kind}): {error.message}") from None


def _stored(connection: Connection) -> dict[str, Any]:
    return {row.key: row for row in connection.execute(select(Preference))}


def get_preference(connection: Connection, key: str) -> Any:
    spec = spec_for(key)
    stored = connection.execute(select(Preference.value).where(Preference.key == key)).scalar()
    return spec.parse(stored if stored is not None else spec.default)


def get_preferences(connection: Connection) -> dict[str, Any]:
    """Every preference as its typed value (defaults filled in)."""
    stored = _stored(connection)
    return {
        key: spec.parse(stored[key].value if key in stored else spec.default)
        for key, spec in PREFERENCES.items()
    }


def list_preferences(connection: Connection) -> list[dict[str, Any]]:
    stored = _stored(connection)
    rows = []
    for key, spec in PREFERENCES.items():
        row = stored.get(key)
        rows.append(
            {
                "key": key,
                "value": row.value if row else spec.default,
                "default": spec.default,
                "is_default": row is None,
                "type": spec.kind,
                "updated_at": row.updated_at if row else None,
                "updated_by": row.updated_by if row else None,
                "help": spec.help,
            }
        )
    return rows


def set_preference(
    connection: Connection, key: str, text: str, *, actor: str, operation_id: str, now: dt.datetime
) -> dict[str, Any]:
    """Validate, store the canonical form, audit.  Returns ``{key, before, after}``."""

    spec = spec_for(key)
    canonical = spec.format(parse_value(key, text))
    stored = _stored(connection).get(key)
    before = stored.value if stored else None
    if before == canonical:
        return {"key": key, "before": before, "after": canonical, "changed": False}
    connection.execute(delete(Preference).where(Preference.key == key))
    connection.execute(insert(Preference).values(key=key, value=canonical, updated_at=now, updated_by=actor))
    audit.record(connection, [audit.event(
        at=now, actor=actor, action="prefs.set", entity_type="preference", entity_id=key,
        operation_id=operation_id, before={"value": before}, after={"value": canonical},
    )])
    return {"key": key, "before": before, "after": canonical, "changed": True}


def unset_preference(
    connection: Connection, key: str, *, actor: str, operation_id: str, now: dt.datetime
) -> dict[str, Any]:
    spec = spec_for(key)
    stored = _stored(connection).get(key)
    if stored is None:
        return {"key": key, "before": None, "after": spec.default, "changed": False}
    connection.execute(delete(Preference).where(Preference.key == key))
    audit.record(connection, [audit.event(
        at=now, actor=actor, action="prefs.unset", entity_type="preference", entity_id=key,
        operation_id=operation_id, before={"value": stored.value}, after={"value": None},
    )])
    return {"key": key, "before": stored.value, "after": spec.default, "changed": True}
