"""Keyset paging: the one pager and the one cursor format of every list.

A list reads its query newest first by a key column, then by id, in batches
of ``batch_sizes.READ`` rows; each batch is one index range scan continuing
strictly after the last row of the one before (never an OFFSET, so page 1000
costs what page 1 does).  ``--all`` reads each segment with one statement
through a server-side cursor, ``READ`` rows at a time: a million rows stream
with flat memory and without a statement per batch.  A page of ``limit`` rows that has more after it ends with a
cursor; handing the cursor back continues exactly after that row.

The cursor is opaque to people: URL-safe base64 of the JSON
``[list, ordering, segment, key, id]``.  The list and ordering names keep a
cursor of one list from being replayed against another.  A nullable key is
read in two segments, rows with a value then rows without, so that each
segment is one backward range scan of an index on both backends.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_

from chatctl.batch_sizes import READ
from chatctl.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql import Select

Decorate = Callable[["Connection", Sequence[Any]], Sequence[Any]]


@dataclass(frozen=True)
class Ordering:
    """Newest first by ``key`` (a timestamp column), then by ``id_column``;
    by ``id_column`` alone when ``key`` is None."""

    name: str
    key: Any
    id_column: Any
    nullable: bool = False

    def segments(self) -> int:
        return 2 if self.nullable else 1

    def key_of(self, row: Any) -> Any:
        return None if self.key is None else getattr(row, self.key.key)

    def clauses(self, segment: int, after: tuple | None) -> tuple[list, list]:
        """(WHERE clauses, ORDER BY) of ``segment``, continuing after ``(key, id)``."""
        if self.key is None or segment == 1:
            where = [] if self.key is None else [self.key.is_(None)]
            if after is not None:
                where.append(self.id_column < after[1])
            return where, [self.id_column.desc()]
        where = [self.key.is_not(None)] if self.nullable else []
        if after is not None:
            value, last_id = after
            # "key <= value" is the index range; the OR only trims the ties.
            where.append(and_(self.key <= value, or_(self.key < value, self.id_column < last_id)))
        return where, [self.key.desc(), self.id_column.desc()]


def encode_cursor(list_name: str, ordering: Ordering, segment: int, key: Any, last_id: int) -> str:
    value = key.astimezone(dt.timezone.utc).isoformat() if isinstance(key, dt.datetime) else key
    raw = json.dumps([list_name, ordering.name, segment, value, last_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, list_name: str, ordering: Ordering) -> tuple[int, tuple]:
    """``(segment, (key, id))`` of a cursor ``encode_cursor`` made for this list and ordering."""
    bad = UsageError(f"bad cursor '{text}': give the cursor printed after a full page")
    try:
        cursor_list, name, segment, value, last_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, UnicodeDecodeError):  # json.JSONDecodeError is a ValueError
        raise bad from None
    if (cursor_list, name) != (list_name, ordering.name):
        raise UsageError(f"cursor '{text}' continues the {cursor_list} list sorted by {name}, "
                         f"not the {list_name} list sorted by {ordering.name}")
    if type(last_id) is not int or segment not in range(ordering.segments()):
        raise bad
    if segment == 1 or ordering.key is None:
        return segment, (None, last_id)
    try:  # a position on the key: an aware timestamp
        value = dt.datetime.fromisoformat(value)
    except (ValueError, TypeError):
        raise bad from None
    if value.tzinfo is None:
        raise bad
    return segment, (value, last_id)


@dataclass
class Page:
    """Rows streamed by ``rows``; once they are consumed, ``next_cursor`` is set if more exist."""

    rows: Iterator[Any]
    next_cursor: str | None = None


def keyset_page(connection: Connection, query: Select, ordering: Ordering, *, list_name: str,
                after: str | None, limit: int | None, decorate: Decorate | None = None) -> Page:
    """Stream rows of ``query`` newest first, continuing after the cursor ``after``.

    ``limit=None`` streams every row.  ``decorate(connection, batch)`` turns a
    batch of result rows into what the page yields (JSON objects, extra
    columns read for the whole batch at once).
    """
    segment, position = decode_cursor(after, list_name, ordering) if after else (0, None)
    page = Page(rows=iter(()))

    def finish(rows: Sequence[Any]) -> Iterator[Any]:
        return iter(decorate(connection, rows) if decorate else rows)

    def stream() -> Iterator[Any]:
        # Every row (--all): one statement per segment, read through a server-side
        # cursor on PostgreSQL (SQLite steps its cursor lazily anyway), batch by batch.
        for current in range(segment, ordering.segments()):
            where, order = ordering.clauses(current, position if current == segment else None)
            statement = query.where(*where).order_by(*order).execution_options(stream_results=True, yield_per=READ)
            for batch in connection.execute(statement).partitions():
                yield from finish(batch)

    def generate() -> Iterator[Any]:
        nonlocal segment, position
        remaining = limit
        if remaining is None:
            yield from stream()
            return
        if remaining < 1:
            return
        while segment < ordering.segments():
            # One row past the page's end says whether a next page exists.
            size = READ if remaining is None else min(READ, remaining + 1)
            where, order = ordering.clauses(segment, position)
            batch = connection.execute(query.where(*where).order_by(*order).limit(size)).all()
            if remaining is not None and len(batch) > remaining:
                batch = batch[:remaining]
                last = batch[-1]
                page.next_cursor = encode_cursor(list_name, ordering, segment, ordering.key_of(last), last.id)
                yield from finish(batch)
                return
            if batch:
                last = batch[-1]
                position = (ordering.key_of(last), last.id)
                yield from finish(batch)
                if remaining is not None:
                    remaining -= len(batch)
                    if remaining == 0:
                        if _more(connection, query, ordering, segment, position):
                            page.next_cursor = encode_cursor(list_name, ordering, segment, *position)
                        return
            if len(batch) < size:
                segment += 1
                position = None

    page.rows = generate()
    return page


def _more(connection: Connection, query: Select, ordering: Ordering, segment: int, position: tuple) -> bool:
    """Does any row follow ``position`` (in this segment or the next)?"""
    where, order = ordering.clauses(segment, position)
    if connection.execute(query.where(*where).order_by(*order).limit(1)).first() is not None:
        return True
    if segment == 0 and ordering.nullable:
        where, order = ordering.clauses(1, None)
        return connection.execute(query.where(*where).order_by(*order).limit(1)).first() is not None
    return False
