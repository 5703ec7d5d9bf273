"""SQL helpers shared by every statement chatctl builds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def ids_match(connection: Connection, column: Any, ids: Sequence[int]):
    """``column IN ids`` for a batch, as a bound parameter.

    On PostgreSQL the ids travel as one comma-separated text parameter turned
    into an array (``= ANY``): far cheaper to build and send than thousands
    of placeholders or a driver-dumped list.  SQLite has no round trip to
    save and takes the plain ``IN`` list.
    """
    from sqlalchemy import BigInteger, Text, any_, bindparam, cast, func, literal

    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        text = bindparam(None, ",".join(map(str, ids)), type_=Text())
        return column == any_(cast(func.string_to_array(text, cast(literal(","), Text)), ARRAY(BigInteger())))
    return column.in_(list(ids))
