"""What differs between the databases chatctl speaks, one class per dialect.

Like alembic's ``DefaultImpl``/``PostgresqlImpl``: the logic asks the
connection's dialect object for the spelling it needs (a row lock, a batch of
ids as one parameter, rows unpacked from a JSON document) and never tests the
dialect's name itself.  ``Dialect`` is the portable spelling, which SQLite
runs; ``PostgresqlDialect`` overrides what PostgreSQL does better.

``Registry`` does the same for anything larger than a spelling - a whole
strategy of a transition (a one-statement PostgreSQL form beside the portable
one), the audit writer's insert: a portable implementation and per-dialect
overrides, chosen once per call from the connection.

Each database's SQLAlchemy dialect module is imported inside the methods
that need it: a command on SQLite never loads PostgreSQL's (tests/test_startup.py),
nor a command on PostgreSQL SQLite's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import JSON, BigInteger, Integer, Table, Text, any_, bindparam, cast, func, insert, literal, select, text, update
from sqlalchemy.engine import Connection

T = TypeVar("T")


class Dialect:
    """The portable spelling: plain SQL that SQLite (and PostgreSQL) run.

    SQLite has no row locks: a writing transaction begins with ``BEGIN
    IMMEDIATE`` (storage.engine), so the rows it reads stay as read until it
    ends, and the lock clauses are empty.
    """

    name = "portable"

    def lock(self, *, skip_locked: bool = False, of: str | None = None) -> str:
        """The clause that locks the rows a SELECT reads until the transaction ends."""
        return ""

    def locked(self, query: Any, of: Any) -> Any:
        """``lock`` for a SQLAlchemy SELECT: the rows of ``of`` it reads stay locked."""
        return query

    def ids_in(self, column: str, parameter: str = "ids") -> str:
        """``column`` is one of the batch's ids, given as parameter ``parameter`` (see ``ids_value``).

        The ids are read as a JSON array: a list of placeholders instead costs
        SQLAlchemy about 5 ms per 3,000 ids to expand, in every statement.
        """
        return f"{column} IN (SELECT value FROM json_each('[' || :{parameter} || ']'))"

    def ids_value(self, ids: Sequence[int]) -> Any:
        """The value of the ids parameter: one text of comma-separated ids."""
        return ",".join(map(str, ids))

    def ids_of(self, column: str) -> str:
        """An aggregate of the rows' ``column`` (ids) as an ids parameter's value (``ids_value``),
        to hand a batch from one statement to the next without a row per id in Python."""
        return f"group_concat({column})"

    def ids_match(self, column: Any, ids: Sequence[Any]) -> Any:
        """``ids_in`` as a SQLAlchemy condition on ``column``, the ids bound; ``ids`` may
        also be text keys (a customer's address)."""
        return column.in_(list(ids))

    def by_id(self, table: str) -> str:
        """``table`` as an UPDATE or a SELECT names it that reaches the batch's rows by their ids."""
        # SQLite would otherwise walk an index of the eligibility (the status index the UPDATE
        # is rewriting, say) instead of looking the ids up by rowid.
        return f"{table} NOT INDEXED"

    def returning(self, table: str, columns: Sequence[str]) -> str:
        """SQLite's RETURNING names the updated table's columns bare."""
        return ", ".join(columns)

    def json_rows(self, parameter: str, columns: Mapping[str, str], alias: str) -> str:
        """Rows unpacked from a JSON array of objects, as a FROM item named ``alias``
        (``columns``: name -> SQL type)."""
        picked = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name in columns)
        # LIMIT -1 (no limit) keeps the rows a subquery of their own, read once: flattened into a
        # join, json_each would parse the whole document again for each row of the other table.
        return f"(SELECT {picked} FROM json_each(:{parameter}) LIMIT -1) AS {alias}"

    def iso_utc(self, expression: str) -> str:
        """SQL rendering the timestamp column ``expression`` as ISO 8601 text in UTC, character for
        character as Python's ``isoformat()`` renders the same instant (``audit.jsonable``):
        microseconds only when not zero, then ``+00:00``.  NULL stays NULL.

        SQLite holds a timestamp as naive UTC text of one fixed width (``UTCDateTime``:
        ``2026-11-25 10:00:00.000000``): the space becomes ``T`` and ``.000000``, which only
        zero microseconds can spell, goes.
        """
        return f"(replace(replace({expression}, ' ', 'T'), '.000000', '') || '+00:00')"

    def insert(self, table: Any) -> Any:
        """An INSERT with ``on_conflict_do_nothing`` (rows whose unique key exists are skipped)."""
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def insert_rows(self, connection: Connection, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Many rows (tuples in ``columns`` order) into ``table`` at once: executemany, as
        SQLite's per-row cost is a function call, not a round trip.

        The driver's own executemany, each value through its column type's
        conversion (chosen once per column): SQLAlchemy's would rebuild the
        parameters of every row, several times the cost of the insert itself.
        """
        if not rows:
            return
        convert = [table.c[name].type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
                   for name in columns]
        if any(convert):
            rows = [tuple(value if step is None else step(value) for step, value in zip(convert, row))
                    for row in rows]
        connection.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) "
                                   f"VALUES ({', '.join('?' for _ in columns)})", rows)

    def insert_returning(self, connection: Connection, table: Table, columns: Sequence[str],
                         rows: Sequence[Sequence[Any]], returning: Sequence[str], *,
                         skip_existing: Sequence[str] = ()) -> list[Any]:
        """``insert_rows`` in one statement that returns ``returning`` of each row written (the
        ids the database gave them).  With ``skip_existing`` (the columns of a unique key) a
        row whose key is already taken is skipped, and not returned."""
        if not rows:
            return []
        statement = self.insert(table)
        if skip_existing:
            statement = statement.on_conflict_do_nothing(index_elements=list(skip_existing))
        return connection.execute(statement.returning(*(table.c[name] for name in returning)),
                                  [dict(zip(columns, row)) for row in rows]).all()

    def update_rows(self, connection: Connection, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Set ``columns`` of many rows at once; each row is ``(id, *values in columns order)``."""
        if rows:
            statement = (update(table).where(table.c.id == bindparam("row_id"))
                         .values({name: bindparam(f"new_{name}") for name in columns}))
            connection.execute(statement, [{"row_id": row[0], **{f"new_{name}": value for name, value
                                                                 in zip(columns, row[1:])}} for row in rows])

    def reserve_ids(self, connection: Connection, table: Table, count: int, *, above: int = 0) -> list[int]:
        """``count`` new ids for ``table``, higher than ``above`` and than any id it holds or
        will hand out, so explicit and generated ids never collide.

        SQLite: the transaction holds the database's write lock (BEGIN
        IMMEDIATE), so max(id) stays ours until it ends.
        """
        if not count:
            return []
        top = connection.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
        first = max(top, above) + 1
        return list(range(first, first + count))


class PostgresqlDialect(Dialect):
    name = "postgresql"

    def lock(self, *, skip_locked: bool = False, of: str | None = None) -> str:
        return " FOR UPDATE" + (f" OF {of}" if of else "") + (" SKIP LOCKED" if skip_locked else "")

    def locked(self, query: Any, of: Any) -> Any:
        return query.with_for_update(of=of)

    def ids_in(self, column: str, parameter: str = "ids") -> str:
        # One text parameter turned into an array: far cheaper to build and send
        # than thousands of placeholders or a driver-dumped list.
        return f"{column} = ANY(CAST(string_to_array(:{parameter}, ',') AS bigint[]))"

    def ids_match(self, column: Any, ids: Sequence[Any]) -> Any:
        from sqlalchemy.dialects.postgresql import ARRAY

        if not isinstance(column.type, Integer):
            # Text keys may hold any character, commas too: one array parameter.
            return column == any_(bindparam(None, list(ids), type_=ARRAY(Text())))
        ids_text = bindparam(None, self.ids_value(ids), type_=Text())
        return column == any_(cast(func.string_to_array(ids_text, cast(literal(","), Text)), ARRAY(BigInteger())))

    def by_id(self, table: str) -> str:
        return table

    def returning(self, table: str, columns: Sequence[str]) -> str:
        # With a FROM list, a bare column name may be ambiguous.
        return ", ".join(f"{table}.{column}" for column in columns)

    def json_rows(self, parameter: str, columns: Mapping[str, str], alias: str) -> str:
        fields = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        return f"jsonb_to_recordset(CAST(:{parameter} AS jsonb)) AS {alias}({fields})"

    def iso_utc(self, expression: str) -> str:
        # One to_char per value (it runs once per audited row): the microseconds are
        # always printed, and ``.000000`` is taken out again.
        return (f"""(replace(to_char(({expression}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), """
                f"""'.000000', '') || '+00:00')""")

    def insert(self, table: Any) -> Any:
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)

    def insert_rows(self, connection: Connection, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Binary COPY through the raw psycopg connection, inside the caller's transaction: the
        fastest way in, one stream whatever the number of rows, no value turned into text
        and parsed back."""
        # psycopg only on this path: a SQLite user's commands never load it.
        from psycopg.types.json import Jsonb

        if not rows:
            return
        # A JSON column may be declared through a TypeDecorator over JSON (models.JSONValue).
        documents = [index for index, name in enumerate(columns)
                     if isinstance(getattr(table.c[name].type, "impl_instance", table.c[name].type), JSON)]
        # Binary COPY needs each column's exact type: the database's own, not the model's idea of it.
        types = dict(connection.execute(
            text("SELECT attname, CAST(atttypid AS integer) FROM pg_attribute "
                 "WHERE attrelid = CAST(CAST(:table AS text) AS regclass) AND attnum > 0 AND NOT attisdropped"),
            {"table": table.name}).all())
        raw = connection.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(
                f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[name] for name in columns])
            if not documents:
                for row in rows:
                    copy.write_row(row)
                return
            for row in rows:
                row = list(row)
                for index in documents:
                    if row[index] is not None:
                        row[index] = Jsonb(row[index])
                copy.write_row(row)

    def insert_returning(self, connection: Connection, table: Table, columns: Sequence[str],
                         rows: Sequence[Sequence[Any]], returning: Sequence[str], *,
                         skip_existing: Sequence[str] = ()) -> list[Any]:
        """One INSERT from ``unnest`` of one array per column (see ``update_rows``): a
        statement of constant size, whatever the number of rows."""
        if not rows:
            return []
        conflict = f" ON CONFLICT ({', '.join(skip_existing)}) DO NOTHING" if skip_existing else ""
        return connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM "
            f"unnest({self._arrays(connection, table, columns)}){conflict} RETURNING {', '.join(returning)}",
            {name: [row[index] for row in rows] for index, name in enumerate(columns)}).all()

    def update_rows(self, connection: Connection, table: Table, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """One UPDATE joined to the new values, sent as one array per column."""
        if not rows:
            return
        names = ("id", *columns)
        assignments = ", ".join(f"{name} = v.{name}" for name in columns)
        connection.exec_driver_sql(
            f"UPDATE {table.name} SET {assignments} FROM unnest({self._arrays(connection, table, names)}) "
            f"AS v({', '.join(names)}) WHERE {table.name}.id = v.id",
            {name: [row[index] for row in rows] for index, name in enumerate(names)})

    @staticmethod
    def _arrays(connection: Connection, table: Table, columns: Sequence[str]) -> str:
        """The driver's parameters named after ``columns``, each an array of that column's type.

        Sent in binary (psycopg's ``%(name)b``): psycopg spells a list as text
        one element at a time in Python, many times slower than its binary form.
        """
        return ", ".join(f"CAST(%({name})b AS {table.c[name].type.compile(dialect=connection.dialect)}[])"
                         for name in columns)

    def reserve_ids(self, connection: Connection, table: Table, count: int, *, above: int = 0) -> list[int]:
        sequence = f"pg_get_serial_sequence('{table.name}', 'id')"
        if above:
            # Move the sequence past explicit ids (only ever forward) so generated
            # ids - ours, later runs', other writers' - never collide with them.
            connection.execute(text(
                f"SELECT setval(s, :top) FROM (SELECT {sequence} AS s) AS q "
                "WHERE :top > COALESCE(pg_sequence_last_value(s::regclass), 0)"), {"top": above})
        if not count:
            return []
        return list(connection.execute(text(f"SELECT nextval({sequence}) FROM generate_series(1, :n)"),
                                       {"n": count}).scalars())


class Registry(Generic[T]):
    """A portable implementation of one thing and its per-dialect overrides."""

    def __init__(self, portable: T, **by_dialect: T) -> None:
        self.portable = portable
        self.by_dialect = by_dialect

    def __call__(self, bind: Any) -> T:
        """The implementation for ``bind``'s dialect (a Connection or an Engine)."""
        return self.by_dialect.get(bind.dialect.name, self.portable)


POSTGRESQL = PostgresqlDialect()
"""PostgreSQL's spelling, for SQL that only PostgreSQL runs (the one-statement transitions)."""
DIALECTS: Registry[Dialect] = Registry(Dialect(), postgresql=POSTGRESQL)


def dialect(bind: Any) -> Dialect:
    """The SQL spelling for ``bind`` (a Connection or an Engine)."""
    return DIALECTS(bind)
