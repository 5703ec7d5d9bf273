"""Durations, timestamps, time zones, business hours and holidays as people type them.

Nothing in this module reads the clock.  A function that needs "now" takes it as
an argument, so a sweep planned with ``--as-of`` and a test under freezegun see
exactly the same results.

Durations
    A whole number and a unit, largest unit first, each unit at most once:
    ``90s``, ``30m``, ``2h``, ``1d12h``, ``90d``, ``1w``, ``1h30m``.  The units are
    ``w`` (7 days), ``d``, ``h``, ``m`` (minutes) and ``s``; seconds may carry a
    fraction down to microseconds (``1.5s``).  ISO 8601 durations work too:
    ``PT30M``, ``P90D``, ``P1DT2H``, ``P2W``, ``PT0.5S``.  Case does not matter.
    Months and years are refused because their length varies (write ``P30D`` or
    ``P365D``); negative durations are refused.  chatctl prints durations in the
    canonical form ``1d12h``, ``30m``, ``0s`` (days, hours, minutes, seconds).

Timestamps
    ISO 8601 with a UTC offset or ``Z``: ``2026-11-30T09:00:00Z``,
    ``2026-11-30T11:00+02:00``.  Without an offset (``2026-11-30T09:00``,
    ``2026-11-30 09:00``) the time is wall-clock time in the time zone in effect
    (``--tz``, else the desk's ``timezone`` preference, else UTC); a date alone
    (``2026-11-30``) means midnight there.  Where clocks jump forward, the
    skipped local times do not exist and are refused with a suggestion; where
    clocks fall back, a repeated local time means its first occurrence (the one
    still on summer time).  Every timestamp comes back timezone-aware in UTC.

Relative times (``--since``, ``--as-of``)
    Anything a timestamp accepts, plus ``now`` and an offset from now:
    ``-2h``, ``+30m``, ``-1d12h``, ``-P1D``.

Time zones
    IANA names such as ``Africa/Johannesburg``, ``Europe/London``, ``UTC``.
    ``localtime`` is refused: it names whatever the machine is set to, and a
    desk setting must mean the same thing on every host.

Business hours
    Groups of ``DAYS RANGE...`` separated by ``;``, for example
    ``mon-fri 08:00-17:00; sat 09:00-13:00`` or
    ``mon,wed,fri 09:00-12:00 13:00-17:00``.  Days are ``mon`` .. ``sun`` (full
    names work too), as a list (``mon,wed``), a range (``mon-fri``) or a range
    that wraps past Sunday (``fri-mon``).  A range is ``HH:MM-HH:MM`` in local
    wall-clock time, start included and end excluded; ``24:00`` may end a
    range.  A range may not cross midnight: write ``fri 22:00-24:00; sat
    00:00-06:00`` instead, which also makes plain that a holiday on the
    Saturday closes the early hours.  ``24/7`` (or ``always``) is open all the
    time and ``never`` is always closed.  Days not named are closed.

Holidays
    Dates ``YYYY-MM-DD`` separated by commas or spaces, e.g.
    ``2026-12-25, 2026-12-26``; an empty value means no holidays.  A holiday
    closes the desk for the whole local day in the desk's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from chatctl.errors import UsageError

__all__ = [
    "BUSINESS_HOURS_FORMS",
    "DURATION_FORMS",
    "HOLIDAY_FORMS",
    "RELATIVE_TIME_FORMS",
    "TIMESTAMP_FORMS",
    "ZONE_FORMS",
    "BusinessHours",
    "format_duration",
    "format_holidays",
    "parse_business_hours",
    "parse_duration",
    "parse_holidays",
    "parse_relative_or_timestamp",
    "parse_timestamp",
    "parse_zone",
]

DURATION_FORMS = "use 90s, 30m, 2h, 1d12h, 90d, 1w or ISO 8601 like PT30M, P90D"
TIMESTAMP_FORMS = (
    "use ISO 8601 like 2026-11-30T09:00:00Z, 2026-11-30T11:00+02:00, "
    "2026-11-30T09:00 (local time) or 2026-11-30"
)
INSTANT_FORMS = "use ISO 8601 with an offset like 2026-11-30T09:00:00Z or 2026-11-30T11:00+02:00"
_OFFSET = re.compile(r"[+-]\d\d(:?\d\d)?$")
RELATIVE_TIME_FORMS = (
    "use now, a time relative to now like -2h or +30m, or ISO 8601 like "
    "2026-11-30T09:00:00Z, 2026-11-30T09:00 (local time) or 2026-11-30"
)
ZONE_FORMS = "use an IANA name like Africa/Johannesburg, Europe/London or UTC"
BUSINESS_HOURS_FORMS = (
    "use DAYS HH:MM-HH:MM groups separated by ';' like "
    "'mon-fri 08:00-17:00; sat 09:00-13:00', or 24/7"
)
HOLIDAY_FORMS = "use dates like 2026-12-25, separated by commas or spaces"

SECONDS_PER_MINUTE = 60
SECONDS_PER_HOUR = 3600
SECONDS_PER_DAY = 86400
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
MINUTES_PER_DAY = 24 * 60

# ---------------------------------------------------------------------------
# Durations

# The unit order is fixed so that each duration has one spelling to look for
# in scripts and logs, and so that "1m30m" is caught as the typo it is.
_NUMBER = r"[0-9]+"
_FRACTIONAL_NUMBER = r"[0-9]+(?:[.,][0-9]+)?"
_COMPACT_DURATION = re.compile(
    rf"(?:(?P<weeks>{_NUMBER})w)?"
    rf"(?:(?P<days>{_NUMBER})d)?"
    rf"(?:(?P<hours>{_NUMBER})h)?"
    rf"(?:(?P<minutes>{_NUMBER})m)?"
    rf"(?:(?P<seconds>{_FRACTIONAL_NUMBER})s)?"
)
_ISO_DURATION = re.compile(
    rf"P(?:(?P<weeks>{_NUMBER})W)?"
    rf"(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?"
    rf"(?:(?P<minutes>{_NUMBER})M)?"
    rf"(?:(?P<seconds>{_FRACTIONAL_NUMBER})S)?)?"
)
_ISO_CALENDAR_UNITS = re.compile(r"P(?:[0-9.,]+[YMWD])*?[0-9.,]+[YM]")
_UNIT_SECONDS = {
    "weeks": SECONDS_PER_WEEK,
    "days": SECONDS_PER_DAY,
    "hours": SECONDS_PER_HOUR,
    "minutes": SECONDS_PER_MINUTE,
    "seconds": 1,
}
_MAXIMUM_MICROSECONDS = (
    timedelta.max.days * SECONDS_PER_DAY + timedelta.max.seconds
) * 1_000_000 + timedelta.max.microseconds


def _bad_duration(text: str, reason: str | None = None) -> UsageError:
    detail = f"{reason}; " if reason else ""
    return UsageError(f"bad duration {text!r}: {detail}{DURATION_FORMS}")


def parse_duration(text: str) -> timedelta:
    """Read a duration such as ``90s``, ``1d12h``, ``90d``, ``1w`` or ``PT30M``.

    Raises ``UsageError`` naming the accepted forms for anything else,
    including negative durations and ISO 8601 months or years.
    """
    cleaned = text.strip()
    if not cleaned:
        raise UsageError(f"empty duration: {DURATION_FORMS}")
    if cleaned.startswith("-"):
        raise _bad_duration(text, "a duration cannot be negative")
    if cleaned[0] in "pP":
        match = _iso_duration_match(cleaned.upper(), text)
    else:
        match = _COMPACT_DURATION.fullmatch(cleaned.lower())
        if match is None and cleaned.isdigit():
            raise _bad_duration(text, "the number needs a unit")
    if match is None or not any(match.groupdict().values()):
        raise _bad_duration(text)
    return _duration_from_parts(match.groupdict(), text)


def _iso_duration_match(upper: str, original: str) -> re.Match[str] | None:
    if _ISO_CALENDAR_UNITS.match(upper):
        raise _bad_duration(
            original, "months and years have no fixed length, count days instead (P30D)"
        )
    if upper.endswith("T"):
        return None
    return _ISO_DURATION.fullmatch(upper)


def _duration_from_parts(parts: dict[str, str | None], original: str) -> timedelta:
    # Decimal keeps every value up to timedelta.max exact, where float would not.
    total_seconds = Decimal(0)
    for unit, number in parts.items():
        if number is not None:
            total_seconds += Decimal(number.replace(",", ".")) * _UNIT_SECONDS[unit]
    microseconds = total_seconds * 1_000_000
    if microseconds > _MAXIMUM_MICROSECONDS:
        raise _bad_duration(original, "too long, the limit is 999999999 days")
    if microseconds != microseconds.to_integral_value():
        raise _bad_duration(original, "seconds take at most 6 decimal places")
    return timedelta(microseconds=int(microseconds))


def format_duration(duration: timedelta) -> str:
    """Print a duration in canonical form (``1d12h``, ``30m``, ``1.5s``, ``0s``).

    The result reads back to the same value with ``parse_duration``.  Negative
    durations have no canonical form and raise ``ValueError``: callers decide
    how to word "overdue" or "ago".
    """
    if duration < timedelta(0):
        raise ValueError(f"format_duration needs a non-negative duration, got {duration!r}")
    minutes, seconds = divmod(duration.seconds, SECONDS_PER_MINUTE)
    hours, minutes = divmod(minutes, 60)
    parts = []
    if duration.days:
        parts.append(f"{duration.days}d")
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if duration.microseconds:
        parts.append(f"{seconds}.{duration.microseconds:06d}".rstrip("0") + "s")
    elif seconds:
        parts.append(f"{seconds}s")
    return "".join(parts) or "0s"


# ---------------------------------------------------------------------------
# Timestamps


def parse_timestamp(text: str, tz: tzinfo | None = None) -> datetime:
    """Read an ISO 8601 timestamp or date and return it as an aware UTC datetime.

    A timestamp without an offset is wall-clock time in ``tz`` (UTC when not
    given).  A local time skipped by a clock change is refused; a repeated one
    means its first occurrence.
    """
    return _parse_timestamp(text, tz or timezone.utc, TIMESTAMP_FORMS)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 timestamp that names its offset (``Z`` or ``+02:00``), as an aware UTC
    datetime: what a machine sends (an event's ``at``) is never guessed in a zone."""
    instant = _parse_timestamp(text, timezone.utc, INSTANT_FORMS)
    if not _names_offset(text):
        raise UsageError(f"time {text!r} has no offset: {INSTANT_FORMS}")
    return instant


def _names_offset(text: str) -> bool:
    cleaned = text.strip().upper()
    return len(cleaned) > 10 and (cleaned.endswith("Z") or _OFFSET.search(cleaned[10:]) is not None)


def parse_relative_or_timestamp(
    text: str, now: datetime, tz: tzinfo | None = None
) -> datetime:
    """Read ``now``, ``-2h``/``+30m`` relative to ``now``, or a timestamp.

    ``now`` is an argument, never the clock, so a replay with ``--as-of`` and a
    test see the same result.  Returns an aware UTC datetime.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return now.astimezone(timezone.utc)
    if cleaned and cleaned[0] in "+-":
        try:
            offset = parse_duration(cleaned[1:])
        except UsageError:
            raise UsageError(f"bad time {text!r}: {RELATIVE_TIME_FORMS}") from None
        try:
            moved = now + offset if cleaned[0] == "+" else now - offset
        except OverflowError:
            raise UsageError(f"bad time {text!r}: too far from now") from None
        return moved.astimezone(timezone.utc)
    return _parse_timestamp(text, tz or timezone.utc, RELATIVE_TIME_FORMS)


def _parse_timestamp(text: str, zone: tzinfo, accepted_forms: str) -> datetime:
    cleaned = text.strip()
    if not cleaned:
        raise UsageError(f"empty time: {accepted_forms}")
    if len(cleaned) > 10 and cleaned[10] not in "Tt ":
        # fromisoformat takes any character between date and time; a typo must not.
        raise UsageError(f"bad time {text!r}: {accepted_forms}")
    try:
        # upper() lets people type a lowercase "t" separator or "z" suffix.
        parsed = datetime.fromisoformat(cleaned.upper())
    except ValueError:
        raise UsageError(f"bad time {text!r}: {accepted_forms}") from None
    try:
        if parsed.tzinfo is None:
            return _local_to_utc(parsed, zone)
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise UsageError(f"bad time {text!r}: out of range") from None


def _local_to_utc(naive: datetime, zone: tzinfo) -> datetime:
    # fold=0 picks the first of two repeated wall times, and a wall time in a
    # spring-forward gap fails to survive the round trip back to local time.
    local = naive.replace(tzinfo=zone, fold=0)
    instant = local.astimezone(timezone.utc)
    if instant.astimezone(zone).replace(tzinfo=None) != naive:
        raise UsageError(
            f"local time {naive.isoformat()} does not exist in {_zone_name(zone)} "
            f"(the clocks skip it); give the offset, e.g. {local.isoformat()}"
        )
    return instant


def _zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


# ---------------------------------------------------------------------------
# Time zones

# Both name whatever the host is configured with, so the same setting would
# mean different hours on different machines.
_MACHINE_DEPENDENT_ZONES = frozenset({"localtime", "posixrules"})


def parse_zone(name: str) -> ZoneInfo:
    """Read an IANA time zone name (``Africa/Johannesburg``, ``UTC``).

    Case is forgiven (``europe/london`` gives ``Europe/London``).
    """
    cleaned = name.strip()
    if cleaned and cleaned.lower() not in _MACHINE_DEPENDENT_ZONES:
        try:
            return ZoneInfo(cleaned)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            # Bad keys surface as any of these, depending on how they are bad
            # (unknown, a directory, not a zone file, too long).
            pass
        canonical = _zone_names_by_lowercase().get(cleaned.lower())
        if canonical is not None:
            return ZoneInfo(canonical)
    raise UsageError(f"unknown time zone {name!r}: {ZONE_FORMS}")


@lru_cache(maxsize=1)
def _zone_names_by_lowercase() -> dict[str, str]:
    # Listing the zone database touches hundreds of files, so it happens only
    # when an exact name failed, and at most once per process.
    return {
        zone_name.lower(): zone_name
        for zone_name in available_timezones()
        if zone_name.lower() not in _MACHINE_DEPENDENT_ZONES
    }


# ---------------------------------------------------------------------------
# Business hours

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBERS = {
    **{name: number for number, name in enumerate(DAY_NAMES)},
    **{name: number for number, name in enumerate(_FULL_DAY_NAMES)},
}
_CLOCK_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_ALWAYS_WORDS = frozenset({"24/7", "always"})
_NEVER_WORDS = frozenset({"never"})

OpeningRange = tuple[int, int]
"""Start and end of an opening, in minutes after local midnight (end excluded)."""


@dataclass(frozen=True)
class BusinessHours:
    """Weekly opening hours in local wall-clock time.

    ``week`` holds seven entries, Monday first; each is that day's opening
    ranges as ``(start_minute, end_minute)`` counted from local midnight, start
    included, end excluded, ``1440`` meaning 24:00.  Ranges are kept sorted
    with overlapping and touching ones merged, so two schedules that open at the
    same times compare equal however they were written.
    """

    week: tuple[tuple[OpeningRange, ...], ...]

    def __post_init__(self) -> None:
        if len(self.week) != len(DAY_NAMES):
            raise ValueError(f"business hours need 7 days, got {len(self.week)}")
        for day in self.week:
            for start, end in day:
                if not 0 <= start < end <= MINUTES_PER_DAY:
                    raise ValueError(f"bad opening range {(start, end)!r}")
        object.__setattr__(self, "week", tuple(_merge_ranges(day) for day in self.week))

    @classmethod
    def always(cls) -> BusinessHours:
        return cls(tuple(((0, MINUTES_PER_DAY),) for _ in DAY_NAMES))

    @classmethod
    def never(cls) -> BusinessHours:
        return cls(tuple(() for _ in DAY_NAMES))

    def is_open(
        self, at: datetime, tz: tzinfo, holidays: frozenset[date] = frozenset()
    ) -> bool:
        """Whether the desk is open at the instant ``at``.

        ``at`` is converted to wall-clock time in ``tz``, so the answer follows
        clock changes: with ``mon-fri 08:00-17:00`` the desk opens at 08:00 local
        time in summer and in winter.  When clocks fall back, a repeated wall
        time is open both times if it falls in a range.  The desk is closed all
        day on a holiday, judged by the local date.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError("is_open needs a timezone-aware datetime")
        local = at.astimezone(tz)
        if local.date() in holidays:
            return False
        # Whole minutes suffice because every range starts and ends on a minute.
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.week[local.weekday()])

    def canonical(self) -> str:
        """The schedule written the way chatctl prints it; it reads back equal."""
        if self == BusinessHours.always():
            return "24/7"
        days_by_ranges: dict[tuple[OpeningRange, ...], list[int]] = {}
        for day_number, ranges in enumerate(self.week):
            if ranges:
                days_by_ranges.setdefault(ranges, []).append(day_number)
        if not days_by_ranges:
            return "never"
        return "; ".join(
            f"{_format_days(days)} {' '.join(_format_range(opening) for opening in ranges)}"
            for ranges, days in days_by_ranges.items()
        )

    def __str__(self) -> str:
        return self.canonical()


def _merge_ranges(ranges: Iterable[OpeningRange]) -> tuple[OpeningRange, ...]:
    merged: list[list[int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


def _format_days(days: list[int]) -> str:
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    # A run through Sunday into Monday is written as one wrapping range
    # ("fri-mon"), the way people describe weekend cover.
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][-1] == len(DAY_NAMES) - 1:
        runs = runs[1:-1] + [runs[-1] + runs[0]]
    return ",".join(
        DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
        for run in runs
    )


def _format_range(opening: OpeningRange) -> str:
    return f"{_format_minute(opening[0])}-{_format_minute(opening[1])}"


def _format_minute(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _bad_business_hours(text: str, reason: str) -> UsageError:
    return UsageError(f"bad business hours {text!r}: {reason}; {BUSINESS_HOURS_FORMS}")


def parse_business_hours(text: str) -> BusinessHours:
    """Read a weekly schedule such as ``mon-fri 08:00-17:00; sat 09:00-13:00``.

    See the module documentation for the full syntax.  Raises ``UsageError``
    naming the accepted forms for anything else.
    """
    cleaned = text.strip().lower()
    if not cleaned:
        raise UsageError(f"empty business hours: {BUSINESS_HOURS_FORMS}")
    if cleaned in _ALWAYS_WORDS:
        return BusinessHours.always()
    if cleaned in _NEVER_WORDS:
        return BusinessHours.never()
    week: list[list[OpeningRange]] = [[] for _ in DAY_NAMES]
    for group in re.split(r"[;\n]", cleaned):
        if group.strip():
            days, ranges = _parse_group(group, text)
            for day in days:
                week[day].extend(ranges)
    if not any(week):
        raise UsageError(f"empty business hours: {BUSINESS_HOURS_FORMS}")
    return BusinessHours(tuple(tuple(day) for day in week))


def _parse_group(group: str, original: str) -> tuple[list[int], list[OpeningRange]]:
    # Spaces around "," and "-" are forgiven so that "mon - fri" and
    # "09:00 - 12:00, 13:00 - 17:00" read the way they look.
    tokens = re.sub(r"\s*([,-])\s*", r"\1", group.strip()).split()
    day_token_count = 0
    while day_token_count < len(tokens) and tokens[day_token_count][0].isalpha():
        day_token_count += 1
    day_tokens, range_tokens = tokens[:day_token_count], tokens[day_token_count:]
    if not day_tokens:
        raise _bad_business_hours(original, f"{group.strip()!r} needs days first")
    if not range_tokens:
        raise _bad_business_hours(
            original, f"{group.strip()!r} needs a time range like 09:00-17:00"
        )
    for token in range_tokens:
        if token[0].isalpha():
            raise _bad_business_hours(
                original, f"unexpected {token!r}, separate day groups with ';'"
            )
    days = _parse_days(",".join(day_tokens), original)
    ranges = [
        _parse_range(piece, original)
        for token in range_tokens
        for piece in token.split(",")
        if piece
    ]
    return days, ranges


def _parse_days(text: str, original: str) -> list[int]:
    days: list[int] = []
    for item in text.split(","):
        if not item:
            continue
        names = item.split("-")
        if len(names) > 2:
            raise _bad_business_hours(original, f"bad day range {item!r}")
        first, last = _day_number(names[0], original), _day_number(names[-1], original)
        # Walking forward modulo 7 is what lets "fri-mon" wrap over the weekend.
        day = first
        days.append(day)
        while day != last:
            day = (day + 1) % len(DAY_NAMES)
            days.append(day)
    return days


def _day_number(name: str, original: str) -> int:
    if name not in _DAY_NUMBERS:
        raise _bad_business_hours(
            original, f"unknown day {name!r}, days are {', '.join(DAY_NAMES)}"
        )
    return _DAY_NUMBERS[name]


def _parse_range(text: str, original: str) -> OpeningRange:
    times = text.split("-")
    if len(times) != 2:
        raise _bad_business_hours(original, f"bad time range {text!r}")
    start = _parse_clock_time(times[0], original)
    end = _parse_clock_time(times[1], original)
    if start == MINUTES_PER_DAY:
        raise _bad_business_hours(original, f"{text!r} starts at 24:00, use 00:00")
    if end == start:
        raise _bad_business_hours(original, f"{text!r} is empty")
    if end < start:
        raise _bad_business_hours(
            original,
            f"{text!r} crosses midnight, split it as "
            f"{times[0]}-24:00 on one day and 00:00-{times[1]} on the next",
        )
    return start, end


def _parse_clock_time(text: str, original: str) -> int:
    match = _CLOCK_TIME.fullmatch(text)
    if match is not None:
        hour, minute = int(match.group(1)), int(match.group(2))
        if (hour < 24 and minute < 60) or (hour == 24 and minute == 0):
            return hour * 60 + minute
    raise _bad_business_hours(original, f"bad time {text!r} (HH:MM from 00:00 to 24:00)")


# ---------------------------------------------------------------------------
# Holidays

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_holidays(text: str) -> frozenset[date]:
    """Read dates like ``2026-12-25, 2026-12-26``; an empty text means none."""
    holidays = set()
    for piece in re.split(r"[\s,;]+", text.strip()):
        if not piece:
            continue
        try:
            if not _ISO_DATE.fullmatch(piece):
                raise ValueError(piece)
            holidays.add(date.fromisoformat(piece))
        except ValueError:
            raise UsageError(f"bad holiday {piece!r}: {HOLIDAY_FORMS}") from None
    return frozenset(holidays)


def format_holidays(holidays: Iterable[date]) -> str:
    """Print holidays sorted and comma-separated; reads back with ``parse_holidays``."""
    return ", ".join(day.isoformat() for day in sorted(holidays))
