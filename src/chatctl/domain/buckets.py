"""Figures per stretch of time: counts, and percentiles of durations, per bucket.

A period is cut into buckets at ``edges`` (``day_or_hour_edges``: local
midnights or hours in the display time zone, so a day is the desk's day).
A statement gives one row per event, ``at`` (when it happened), an optional
``key`` (what kind of event) and an optional ``seconds`` (a duration);
``summarise`` counts them per bucket (and key) and takes the 50th and 90th
percentiles of the durations, interpolated between the two nearest values
(PostgreSQL's ``percentile_cont``).

What differs by database is a class per dialect (``DIALECTS``): PostgreSQL
buckets with ``width_bucket`` and takes the percentiles in the statement, so
one row per bucket comes back however busy the period was; SQLite returns the
rows and Python does the same sums.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, text

from chatctl.errors import UsageError
from chatctl.storage.models import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

PERCENTILES = (0.5, 0.9)
BUCKET_SIZES = ("day", "hour")
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class Summary:
    """One bucket: how many events, how many of them have a duration, and its percentiles (seconds)."""

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


def day_or_hour_edges(since: dt.datetime, until: dt.datetime, by: str, tz: dt.tzinfo) -> list[dt.datetime]:
    """The bucket edges (UTC) from the start of ``since``'s day or hour in ``tz`` to ``until``.

    The last bucket ends at ``until`` (today so far).  Days follow the zone's
    calendar, so a day with a clock change is 23 or 25 hours long.
    """
    if by not in BUCKET_SIZES:
        raise UsageError(f"bad bucket '{by}': use day or hour")
    if since >= until:
        raise UsageError("the period is empty: --since must be before now")
    local = since.astimezone(tz)
    if by == "day":
        day = local.date()
        start = dt.datetime(day.year, day.month, day.day, tzinfo=tz)
    else:
        start = local.replace(minute=0, second=0, microsecond=0)
    edges = [start.astimezone(dt.timezone.utc)]
    while edges[-1] < until:
        if len(edges) > MAX_BUCKETS:
            raise UsageError(f"more than {MAX_BUCKETS} buckets: a shorter --since or --by day")
        if by == "day":
            day = edges[-1].astimezone(tz).date() + dt.timedelta(days=1)
            edges.append(dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.timezone.utc))
        else:
            edges.append(edges[-1] + dt.timedelta(hours=1))
    edges[-1] = until
    return edges


# -- per database ------------------------------------------------------------------------------
class _Generic:
    """The rows come back; buckets, counts and percentiles are Python's."""

    def seconds(self, start: str, end: str) -> str:
        return f"(julianday({end}) - julianday({start})) * 86400.0"

    def summarise(self, connection: Connection, sql: str, edges: Sequence[dt.datetime], *, keyed: bool,
                  timed: bool, params: dict[str, Any]) -> dict[Any, list[Summary]]:
        to_utc = UTCDateTime().process_result_value
        found: dict[Any, list[list[float | None]]] = {}
        for row in connection.execute(statement(sql), {**params, "since": edges[0], "until": edges[-1]}):
            index = bisect.bisect_right(edges, to_utc(row.at, None)) - 1
            if 0 <= index < len(edges) - 1:
                # julianday() is a day count in a double: round off its last microseconds.
                seconds = round(row.seconds, 3) if timed and row.seconds is not None else None
                buckets = found.setdefault(row.key if keyed else None, [[] for _ in edges[1:]])
                buckets[index].append(seconds)
        return {key: [_summary(values) for values in buckets] for key, buckets in found.items()}


def _summary(values: list[float | None]) -> Summary:
    timed = sorted(value for value in values if value is not None)
    return Summary(len(values), len(timed), *(percentile(timed, q) for q in PERCENTILES))


class _Postgres(_Generic):
    """One row per bucket (and key): ``width_bucket`` over the edges, ``percentile_cont`` over the durations."""

    def seconds(self, start: str, end: str) -> str:
        return f"CAST(EXTRACT(EPOCH FROM ({end} - {start})) AS double precision)"

    def summarise(self, connection: Connection, sql: str, edges: Sequence[dt.datetime], *, keyed: bool,
                  timed: bool, params: dict[str, Any]) -> dict[Any, list[Summary]]:
        key = "x.key" if keyed else "NULL"
        figures = ("count(x.seconds) AS timed, percentile_cont(CAST(:fractions AS double precision[])) "
                   "WITHIN GROUP (ORDER BY x.seconds) AS p") if timed else "0 AS timed, NULL AS p"
        grouped = (f"SELECT width_bucket(x.at, CAST(:edges AS timestamptz[])) AS bucket, {key} AS key, "
                   f"count(*) AS count, {figures} FROM ({sql}) x GROUP BY 1, 2")
        found: dict[Any, list[Summary]] = {}
        for row in connection.execute(statement(grouped), {**params, "since": edges[0], "until": edges[-1],
                                                            "edges": list(edges), "fractions": list(PERCENTILES)}):
            if 1 <= row.bucket < len(edges):
                buckets = found.setdefault(row.key, [Summary() for _ in edges[1:]])
                buckets[row.bucket - 1] = Summary(row.count, row.timed, *(row.p if row.timed else (None, None)))
        return found


DIALECTS = {"postgresql": _Postgres(), "sqlite": _Generic()}


def dialect(connection: Connection) -> _Generic:
    return DIALECTS[connection.dialect.name]


def statement(sql: str):
    """``text(sql)`` with ``:since`` and ``:until`` bound as UTC timestamps (fixed-width text on SQLite)."""

    return text(sql).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))


def counts(connection: Connection, sql: str, edges: Sequence[dt.datetime]) -> list[int]:
    """Events per bucket; ``sql`` selects ``at`` in ``[:since, :until)``."""
    found = dialect(connection).summarise(connection, sql, edges, keyed=False, timed=False, params={})
    return [summary.count for summary in found.get(None, [Summary() for _ in edges[1:]])]


def keyed_counts(connection: Connection, sql: str, edges: Sequence[dt.datetime]) -> dict[Any, list[int]]:
    """Events per key and bucket; ``sql`` selects ``at`` and ``key``."""
    found = dialect(connection).summarise(connection, sql, edges, keyed=True, timed=False, params={})
    return {key: [summary.count for summary in buckets] for key, buckets in found.items()}


def durations(connection: Connection, sql: str, edges: Sequence[dt.datetime],
              params: dict[str, Any] | None = None) -> list[Summary]:
    """Counts and duration percentiles per bucket; ``sql`` selects ``at`` and ``seconds``
    (written with ``dialect(connection).seconds(start, end)``; NULL: no duration)."""
    found = dialect(connection).summarise(connection, sql, edges, keyed=False, timed=True, params=params or {})
    return found.get(None, [Summary() for _ in edges[1:]])
