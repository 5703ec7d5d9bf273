"""SQL helpers shared by every statement chatctl builds: typed parameters for
textual SQL, typed result rows, batches of ids as one parameter, JSON
parameters.

Values always travel as bound parameters; what differs by database comes
from ``storage.dialects``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Boolean, bindparam, text
from sqlalchemy.engine import Connection, Result
from sqlalchemy.sql.elements import TextClause

from chatctl.storage.dialects import dialect
from chatctl.storage.models import UTCDateTime, metadata

# Columns of the desk's tables by type, for rows read with textual SQL.
TIMESTAMP_COLUMNS = frozenset(column.name for table in metadata.tables.values() for column in table.columns
                              if isinstance(column.type, UTCDateTime))
BOOLEAN_COLUMNS = frozenset(column.name for table in metadata.tables.values() for column in table.columns
                            if isinstance(column.type, Boolean))
_TIMESTAMP = UTCDateTime()


def bind(sql: str, params: Mapping[str, Any]) -> TextClause:
    """``text(sql)`` with its parameters typed by their values.

    Timestamps become ``UTCDateTime`` (fixed-width UTC text on SQLite, like
    the stored values they are compared with); lists are expanded
    (``IN :ids``).
    """
    typed = []
    for name, value in params.items():
        if f":{name}" not in sql:
            continue
        if isinstance(value, dt.datetime):
            typed.append(bindparam(name, type_=_TIMESTAMP))
        elif isinstance(value, (list, tuple)):
            typed.append(bindparam(name, expanding=True))
    statement = text(sql)
    return statement.bindparams(*typed) if typed else statement


def execute(connection: Connection, sql: str, params: Mapping[str, Any]) -> Result:
    """Run textual ``sql`` with ``params`` typed by ``bind``."""
    used = {name: value for name, value in params.items() if f":{name}" in sql}
    return connection.execute(bind(sql, used), used)


def typed_rows(result: Result) -> list[dict[str, Any]]:
    """Rows of a textual SELECT as dicts, with timestamps as aware UTC datetimes and
    booleans as ``bool`` on every backend (SQLite returns text and integers).

    The conversion of each column is chosen once per result (``result_processor``),
    as for the columns of a table.
    """
    keys = list(result.keys())
    rows = [dict(zip(keys, row)) for row in result.all()]
    if rows:
        convert = _TIMESTAMP.result_processor(result.context.dialect, None)
        stamps = [key for key in keys if key in TIMESTAMP_COLUMNS]
        flags = [key for key in keys if key in BOOLEAN_COLUMNS]
        for row in rows:
            for key in stamps:
                row[key] = convert(row[key])
            for key in flags:
                if row[key] is not None:
                    row[key] = bool(row[key])
    return rows


def ids_match(connection: Connection, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids`` for a batch, as a SQLAlchemy condition with the ids bound.

    On PostgreSQL the ids travel as one comma-separated text parameter turned
    into an array (``= ANY``); SQLite has no round trip to save and takes the
    plain ``IN`` list.
    """
    return dialect(connection).ids_match(column, ids)


# Compact, every character as it is: the very text SQLite's own JSON functions write.
_JSON_TEXT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def json_param(value: Any) -> str:
    """A JSON document as text: one bound parameter, or what a JSON column holds on SQLite.

    SQLite stores a JSON column as this text (``storage.engine``), the text its
    ``json_object`` and ``json_quote`` write: the audit events a statement
    builds in SQL are then the same bytes as those written from Python.
    """
    return _JSON_TEXT(value)
