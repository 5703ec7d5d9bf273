"""How fast the desk answers and closes, computed from the messages themselves.

* **First response**: for a chat started in a bucket, the time from the
  customer's first message to the first agent message after it.  Chats the
  customer never wrote in are left out; chats nobody answered yet count, as
  unanswered (no time).
* **Time to close**: for a chat closed in a bucket (and still closed), from
  its start to its close.

``status`` asks for one bucket, the last 24 hours; ``report`` for one per day
or hour.  Counting and percentiles are ``domain.buckets``'.

First responses need each chat's messages.  When more chats started in the
period than ``sample`` (a busy desk: the 1,000,000-chat demo starts 330,000 in
a day), they are taken from every k-th chat id, k the smallest that keeps
the sample within ``sample`` chats, and the answer says so (``every``): an
evenly spread sample of 5,000 chats puts the 50th and 90th percentiles
within a fraction of a percent of the chats' ranks, at a small, fixed cost.
Times to close need no messages and are never sampled.

Choosing ``k`` needs the number of chats started in the period, a count over
the (status, created_at, id) index.  ``status`` has already read every open
chat (its pass over the open chats' index): it passes their count, and only
the closed and converted chats started in the period are counted here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatctl.domain.buckets import Summary, dialect, durations, statement
from chatctl.vocabulary import CHAT_STATUSES, FINISHED_CHAT_STATUSES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

# The customer's first message and the first agent message after it, per chat
# started in [:since, :until).  One grouped pass over the chats' messages finds
# each chat's first inbound and first outbound message; only a chat whose agent
# wrote before the customer (a rare, agent-started chat) needs a second look
# for the first agent message after the customer's.
# Every status, so that the period is a range of the (status, created_at, id) index.
STARTED_IN_PERIOD = (f"c.status IN ({', '.join(repr(status) for status in CHAT_STATUSES)}) "
                     "AND c.created_at >= :since AND c.created_at < :until")
STARTED = f"SELECT count(*) FROM chats c WHERE {STARTED_IN_PERIOD}"
# The same for the closed and converted chats only: two ranges of the same index.
FINISHED_STARTED = (f"SELECT count(*) FROM chats c WHERE c.status IN "
                    f"({', '.join(repr(status) for status in FINISHED_CHAT_STATUSES)}) "
                    "AND c.created_at >= :since AND c.created_at < :until")
FIRST_RESPONSE = f"""
SELECT f.created_at AS at, {{seconds}} AS seconds
FROM (
    SELECT c.id, c.created_at,
           min(m.created_at) FILTER (WHERE m.direction = 'inbound') AS first_in,
           min(m.created_at) FILTER (WHERE m.direction = 'outbound') AS first_out
    FROM chats c JOIN messages m ON m.chat_id = c.id
    WHERE {STARTED_IN_PERIOD} AND c.id % :every = 0
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


SAMPLE = 5_000


def first_response(connection: Connection, edges: Sequence[dt.datetime], sample: int = SAMPLE, *,
                   open_started: int | None = None) -> tuple[list[Summary], int]:
    """First-response times of the chats started in each bucket (``timed``: answered), and
    ``every``: 1 when every chat was looked at, k when every k-th chat id was.

    ``open_started``: the live and pending chats started in the whole period, when the caller
    has counted them; the closed and converted ones are counted here."""
    period = {"since": edges[0], "until": edges[-1]}
    if open_started is None:
        started = connection.execute(statement(STARTED), period).scalar_one()
    else:
        started = open_started + connection.execute(statement(FINISHED_STARTED), period).scalar_one()
    every = max(1, math.ceil(started / sample))
    seconds = dialect(connection).seconds("f.first_in", FIRST_REPLY)
    return durations(connection, FIRST_RESPONSE.format(seconds=seconds), edges, {"every": every}), every


def time_to_close(connection: Connection, edges: Sequence[dt.datetime]) -> list[Summary]:
    """Start-to-close times of the chats closed in each bucket."""
    seconds = dialect(connection).seconds("c.created_at", "c.closed_at")
    return durations(connection, TIME_TO_CLOSE.format(seconds=seconds), edges)
