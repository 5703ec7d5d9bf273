"""Trends (``chatctl report``): what happened on the desk, day by day or hour by hour.

Per bucket (``domain.buckets``: days or hours of the display time zone):

* chats started (created), and chats closed by whom and why (those still
  closed: a chat reopened since counts where it is now);
* chats converted to tickets (tickets created, by reason), tickets closed
  and tickets archived;
* what the sweeps changed (runs started in the bucket, dry runs left out);
* first-response and time-to-close percentiles (``domain.response_times``;
  first responses from an evenly spread sample of at most 50,000 chats of the
  period, said by ``sampled_every``).

Each figure is one statement over the period, grouped per bucket by the
database; the cutoffs are bound parameters computed from ``since`` and
``until``.  The JSON shape is in docs/glance.md.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from chatctl.domain.buckets import counts, day_or_hour_edges, keyed_counts
from chatctl.domain.response_times import STARTED_IN_PERIOD, first_response, time_to_close
from chatctl.storage.models import SweepRun
from chatctl.vocabulary import CLOSED_BY, SWEEP_JOBS, TICKET_REASONS

# Response times over the whole period come from at most this many chats (every k-th chat id).
RESPONSE_SAMPLE = 50_000

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

STARTED = f"SELECT c.created_at AS at FROM chats c WHERE {STARTED_IN_PERIOD}"
CLOSED = ("SELECT c.closed_at AS at, c.closed_by AS key FROM chats c "
          "WHERE c.status = 'closed' AND c.closed_at >= :since AND c.closed_at < :until")
CLOSE_REASONS = ("SELECT c.closed_at AS at, c.close_reason AS key FROM chats c "
                 "WHERE c.status = 'closed' AND c.closed_at >= :since AND c.closed_at < :until")
CONVERTED = ("SELECT t.created_at AS at, t.reason AS key FROM tickets t "
             "WHERE t.created_at >= :since AND t.created_at < :until")
TICKETS_CLOSED = ("SELECT t.closed_at AS at FROM tickets t "
                  "WHERE t.status = 'closed' AND t.closed_at >= :since AND t.closed_at < :until")
TICKETS_ARCHIVED = ("SELECT t.archived_at AS at FROM tickets t "
                    "WHERE t.archived_at >= :since AND t.archived_at < :until")


def desk_report(connection: Connection, *, since: dt.datetime, until: dt.datetime, by: str,
                tz: dt.tzinfo) -> dict[str, Any]:
    """The report document: the period, its buckets, and totals over the whole period."""

    edges = day_or_hour_edges(since, until, by, tz)
    buckets = len(edges) - 1
    empty = [0] * buckets
    started = counts(connection, STARTED, edges)
    closed_by = keyed_counts(connection, CLOSED, edges)
    reasons = keyed_counts(connection, CLOSE_REASONS, edges)
    converted = keyed_counts(connection, CONVERTED, edges)
    tickets_closed = counts(connection, TICKETS_CLOSED, edges)
    archived = counts(connection, TICKETS_ARCHIVED, edges)
    swept = _sweep_changes(connection, edges)
    responses, every = first_response(connection, edges, sample=RESPONSE_SAMPLE)
    closings = time_to_close(connection, edges)
    whole = [edges[0], edges[-1]]
    (response_total,), _ = first_response(connection, whole, sample=RESPONSE_SAMPLE)
    closing_total, = time_to_close(connection, whole)

    def per(mapping: dict[Any, list[int]], names: Sequence[str], index: int | None) -> dict[str, int]:
        """``{name: count}`` for one bucket (or the whole period); known names first, then the others."""
        others = sorted(str(key) for key in mapping if key not in names and key is not None)
        pick = (lambda values: values[index]) if index is not None else sum
        return {name: pick(mapping.get(name, empty)) for name in [*names, *others]}

    def figures(index: int | None) -> dict[str, Any]:
        pick = (lambda values: values[index]) if index is not None else sum
        by_who = per(closed_by, CLOSED_BY, index)
        by_reason = per(converted, TICKET_REASONS, index)
        by_job = per(swept, SWEEP_JOBS, index)
        response = responses[index] if index is not None else response_total
        closing = closings[index] if index is not None else closing_total
        first = {"chats": response.count, "answered": response.timed, **response.percentiles(),
                 "sampled_every": every}
        return {
            "chats_started": pick(started),
            "chats_closed": sum(by_who.values()), "closed_by": by_who,
            "close_reasons": {reason: count for reason, count in per(reasons, (), index).items() if count},
            "converted": sum(by_reason.values()), "converted_by_reason": by_reason,
            "tickets_closed": pick(tickets_closed), "tickets_archived": pick(archived),
            "sweep_changes": sum(by_job.values()), "sweep_changes_by_job": by_job,
            "first_response": first,
            "time_to_close": {"closed": closing.count, **closing.percentiles()},
        }

    return {
        "since": edges[0], "until": edges[-1], "by": by, "timezone": str(tz),
        "buckets": [{"start": edges[index], "end": edges[index + 1], **figures(index)} for index in range(buckets)],
        "totals": figures(None),
    }


def _sweep_changes(connection: Connection, edges: Sequence[dt.datetime]) -> dict[str, list[int]]:
    """Rows each job changed, per bucket of the runs' start (a run row per sweep: few enough to add up here)."""

    found: dict[str, list[int]] = {}
    for started_at, run_counts in connection.execute(
            select(SweepRun.started_at, SweepRun.counts)
            .where(SweepRun.dry_run.is_(False), SweepRun.started_at >= edges[0], SweepRun.started_at < edges[-1])):
        index = bisect.bisect_right(edges, started_at) - 1
        for job, figures in ((run_counts or {}).get("jobs") or {}).items():
            found.setdefault(job, [0] * (len(edges) - 1))[index] += figures.get("changed", 0)
    return found
