"""How fast the desk answers and closes, computed from the messages themselves.

* **First response**: for a chat started in a period, the time from the
  customer's first message to the first agent message after it.  Chats the
  customer never wrote in are left out; chats nobody answered yet count as
  unanswered (no time).
* **Time to close**: for a chat closed in a period, from its start to its close.

Both are summarised per bucket (``status``: one bucket, the last 24 hours;
``report``: one per day or hour) as a count and the 50th and 90th percentiles,
interpolated between the two nearest values (PostgreSQL's ``percentile_cont``).

What differs by database is a class per dialect (``DIALECTS``): PostgreSQL
buckets and takes percentiles in the statement, so only a row per bucket
comes back however busy the period was; SQLite returns the durations and
Python does the same sums.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PERCENTILES = (0.5, 0.9)

# The customer's first message and the first agent message after it, per chat
# started in [:since, :until).  One grouped pass over the chats' messages finds
# each chat's first inbound and first outbound message; only a chat whose agent
# wrote before the customer (a rare, agent-started chat) needs a second look
# for the first agent message after the customer's.
FIRST_RESPONSE = """
SELECT f.created_at AS at, {seconds} AS seconds
FROM (
    SELECT c.id, c.created_at,
           min(m.created_at) FILTER (WHERE m.direction = 'inbound') AS first_in,
           min(m.created_at) FILTER (WHERE m.direction = 'outbound') AS first_out
    FROM chats c JOIN messages m ON m.chat_id = c.id
    WHERE c.created_at >= :since AND c.created_at < :until
    GROUP BY c.id, c.created_at
) f
WHERE f.first_in IS NOT NULL
"""
FIRST_REPLY = """CASE WHEN f.first_out IS NULL THEN NULL
     WHEN f.first_out >= f.first_in THEN f.first_out
     ELSE (SELECT min(r.created_at) FROM messages r
           WHERE r.chat_id = f.id AND r.direction = 'outbound' AND r.created_at >= f.first_in) END"""

TIME_TO_CLOSE = """
SELECT c.closed_at AS at, {seconds} AS seconds
FROM chats c
WHERE c.status = 'closed' AND c.closed_at >= :since AND c.closed_at < :until
"""


@dataclass(frozen=True)
class Summary:
    """One bucket: how many chats, how many of them have a time, and its percentiles (seconds)."""

    count: int = 0
    timed: int = 0
    p50: float | None = None
    p90: float | None = None

    def percentiles(self) -> dict[str, float | None]:
        return {"p50_s": _round(self.p50), "p90_s": _round(self.p90)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """``percentile_cont``: linear interpolation between the two nearest of the sorted values."""
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class _Generic:
    """Durations come back row by row; buckets and percentiles are Python's."""

    def seconds(self, start: str, end: str) -> str:
        return f"(julianday({end}) - julianday({start})) * 86400.0"

    def summarise(self, connection: Connection, sql: str, edges: Sequence[dt.datetime]) -> list[Summary]:
        from chatctl.storage.models import UTCDateTime

        to_utc = UTCDateTime().process_result_value
        found: list[list[float | None]] = [[] for _ in edges[1:]]
        for at, seconds in connection.execute(_statement(sql), {"since": edges[0], "until": edges[-1]}):
            index = bisect.bisect_right(edges, to_utc(at, None)) - 1
            if 0 <= index < len(found):
                # julianday() is a day count in a double: round off its last microseconds.
                found[index].append(None if seconds is None else round(seconds, 3))
        summaries = []
        for values in found:
            timed = sorted(value for value in values if value is not None)
            summaries.append(Summary(len(values), len(timed), *(percentile(timed, q) for q in PERCENTILES)))
        return summaries


class _Postgres(_Generic):
    """One row per bucket: ``width_bucket`` over the edges, ``percentile_cont`` over the durations."""

    def seconds(self, start: str, end: str) -> str:
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS double precision)"

    def summarise(self, connection: Connection, sql: str, edges: Sequence[dt.datetime]) -> list[Summary]:
        grouped = f"""
SELECT width_bucket(x.at, CAST(:edges AS timestamptz[])) AS bucket, count(*) AS count,
       count(x.seconds) AS timed,
       percentile_cont(CAST(:fractions AS double precision[])) WITHIN GROUP (ORDER BY x.seconds) AS p
FROM ({sql}) x GROUP BY 1"""
        summaries = [Summary() for _ in edges[1:]]
        rows = connection.execute(_statement(grouped), {"since": edges[0], "until": edges[-1], "edges": list(edges),
                                                        "fractions": list(PERCENTILES)})
        for bucket, count, timed, values in rows:
            if 1 <= bucket <= len(summaries):
                summaries[bucket - 1] = Summary(count, timed, *(values if timed else (None, None)))
        return summaries


DIALECTS = {"postgresql": _Postgres(), "sqlite": _Generic()}


def _statement(sql: str):
    from sqlalchemy import bindparam, text

    from chatctl.storage.models import UTCDateTime

    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))


def first_response(connection: Connection, edges: Sequence[dt.datetime]) -> list[Summary]:
    """First-response times of the chats started in each ``[edges[i], edges[i+1])``; ``timed`` = answered."""
    dialect = DIALECTS[connection.dialect.name]
    return dialect.summarise(connection, FIRST_RESPONSE.format(seconds=dialect.seconds("f.first_in", FIRST_REPLY)),
                             edges)


def time_to_close(connection: Connection, edges: Sequence[dt.datetime]) -> list[Summary]:
    """Start-to-close times of the chats closed in each ``[edges[i], edges[i+1])``."""
    dialect = DIALECTS[connection.dialect.name]
    return dialect.summarise(connection, TIME_TO_CLOSE.format(seconds=dialect.seconds("c.created_at", "c.closed_at")),
                             edges)
