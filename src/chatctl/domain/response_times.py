"""How fast the desk answers and closes, computed from the messages themselves.

* **First response**: for a chat started in a bucket, the time from the
  customer's first message to the first agent message after it.  Chats the
  customer never wrote in are left out; chats nobody answered yet count, as
  unanswered (no time).
* **Time to close**: for a chat closed in a bucket (and still closed), from
  its start to its close.

``status`` asks for one bucket, the last 24 hours; ``report`` for one per day
or hour.  Counting and percentiles are ``domain.buckets``'.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatctl.domain.buckets import Summary, dialect, durations

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

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


def first_response(connection: Connection, edges: Sequence[dt.datetime]) -> list[Summary]:
    """First-response times of the chats started in each bucket; ``timed`` = answered."""
    seconds = dialect(connection).seconds("f.first_in", FIRST_REPLY)
    return durations(connection, FIRST_RESPONSE.format(seconds=seconds), edges)


def time_to_close(connection: Connection, edges: Sequence[dt.datetime]) -> list[Summary]:
    """Start-to-close times of the chats closed in each bucket."""
    seconds = dialect(connection).seconds("c.created_at", "c.closed_at")
    return durations(connection, TIME_TO_CLOSE.format(seconds=seconds), edges)
