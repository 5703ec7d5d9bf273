"""Engines for the desk's database: URL handling, per-backend session setup,
schema-at-head checks, and the translation of driver failures into exit 3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from chatctl.config import redact
from chatctl.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Ops safety on PostgreSQL: a forgotten terminal must not hold locks for hours,
# and one runaway statement must not run forever.  Override in the profile or
# with CHATCTL_STATEMENT_TIMEOUT and friends.
DEFAULT_SESSION = {
    "statement_timeout": "15min",
    "lock_timeout": "10s",
    "idle_in_transaction_session_timeout": "5min",
}
# Not a knob: timestamps then arrive in UTC, which psycopg loads twice as fast as
# a named zone, and chatctl converts them for display itself (--tz, the desk's
# timezone preference).  No statement depends on the session's zone.
FIXED_SESSION = {"TimeZone": "UTC"}
SQLITE_BUSY_TIMEOUT_MS = 30_000
READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: a standby, or default_transaction_read_only
INSUFFICIENT_PRIVILEGE_SQLSTATE = "42501"  # e.g. a read-only role asked to write
READS_ONLY = "chatctl_reads_only"  # an execution option: see reading()


def normalise_url(url: str):
    """Parse ``url``; ``postgresql://`` and ``postgres://`` use psycopg 3."""

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"bad database URL '{redact(url)}'",
            hint="use postgresql://user@host/dbname or sqlite:///path/to/file.db",
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise ConfigError(
            f"unsupported database '{parsed.get_backend_name()}' in '{redact(url)}'",
            hint="chatctl speaks postgresql:// and sqlite://",
        )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        raise ConfigError(f"unsupported driver '{parsed.drivername}'", hint="use postgresql://")
    return parsed


def display_url(url: str) -> str:
    try:
        # redact() too: a password can also ride in the query (?password=...).
        return redact(normalise_url(url).render_as_string(hide_password=True))
    except ConfigError:
        return redact(url)


def create_engine(
    url: str,
    *,
    session: dict[str, str] | None = None,
    create: bool = True,
    for_writes: bool = True,
    pooler: str | None = None,
) -> Engine:
    """An engine for ``url``; ``pooler="transaction"`` when PgBouncer (or any
    pooler in transaction mode) stands between chatctl and PostgreSQL.

    A SQLite file that does not exist is created (with its directory) only
    with ``create``; otherwise it is exit 3 naming the file and ``db init``.
    """

    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise DatabaseError(f"database file {path} does not exist",
                                    hint="create it with `chatctl db init`, or check the URL")
        from chatctl.storage.sql import json_param

        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            # JSON columns as SQLite's JSON functions write them (not json.dumps's spaced, ASCII-only text).
            json_serializer=json_param,
        )
        _setup_sqlite(engine, for_writes=for_writes)
        return engine

    settings = {**DEFAULT_SESSION, **(session or {}), **FIXED_SESSION}
    strategy = SESSION_STRATEGIES[pooler or "none"]
    engine = sa.create_engine(
        parsed,
        connect_args={"application_name": "chatctl", **strategy.connect_args(settings)},
        pool_pre_ping=False,
        use_native_hstore=False,  # no hstore columns: skip the type look-up on every start
    )
    engine.update_execution_options(chatctl_pooler=pooler)
    strategy.install(engine, settings)
    return engine


class DirectSession:
    """A connection of its own to PostgreSQL: the settings ride in the startup
    packet (``options=-c ...``) and last as long as the session."""

    @staticmethod
    def connect_args(settings: dict[str, str]) -> dict:
        return {"options": " ".join(f"-c {key}={value}" for key, value in settings.items())}

    @staticmethod
    def install(engine: Engine, settings: dict[str, str]) -> None:
        pass


class TransactionPooledSession:
    """Behind a pooler in transaction mode (PgBouncer ``pool_mode = transaction``)
    each transaction may run on a different server session shared with other
    clients.  PgBouncer refuses the startup ``options`` parameter, a plain
    ``SET`` would leak to whoever gets the session next, and a prepared
    statement may be missing on the next transaction's session.  So the
    settings are made ``SET LOCAL`` (``set_config(..., true)``) at the start
    of every transaction, in one round trip, and psycopg never prepares."""

    @staticmethod
    def connect_args(settings: dict[str, str]) -> dict:
        return {"prepare_threshold": None}

    @staticmethod
    def install(engine: Engine, settings: dict[str, str]) -> None:
        names = list(settings)
        statement = "SELECT " + ", ".join(f"set_config(%(name{i})s, %(value{i})s, true)" for i in range(len(names)))
        parameters = {}
        for i, name in enumerate(names):
            parameters[f"name{i}"], parameters[f"value{i}"] = name, settings[name]

        @event.listens_for(engine, "begin")
        def _on_begin(connection):  # pragma: no cover - exercised by every pooled test
            connection.exec_driver_sql(statement, parameters)


SESSION_STRATEGIES = {"none": DirectSession, "transaction": TransactionPooledSession}


def behind_transaction_pooler(engine: Engine) -> bool:
    return engine.get_execution_options().get("chatctl_pooler") == "transaction"


# -- which server: chosen once per engine from SELECT version() ------------------------------------
class Server:
    """What chatctl must know about the server behind an engine.  Subclasses
    are matched against ``SELECT version()`` once per engine (``server_of``);
    the logic asks the chosen class, never the version string."""

    name = "postgresql"
    # pg_try_advisory_lock really excludes another session (CockroachDB has
    # no-op stubs; older YugabyteDB releases have none).
    session_advisory_locks = True

    @staticmethod
    def matches(version: str) -> bool:
        return version.startswith("PostgreSQL")


class CockroachDB(Server):
    name = "cockroachdb"
    session_advisory_locks = False

    @staticmethod
    def matches(version: str) -> bool:
        return version.startswith("CockroachDB")


class YugabyteDB(Server):
    name = "yugabytedb"
    session_advisory_locks = False

    @staticmethod
    def matches(version: str) -> bool:
        # "PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64-pc-linux-gnu, ..."
        return "-YB-" in version


class SQLiteServer(Server):
    name = "sqlite"
    session_advisory_locks = False


# Most specific first: YugabyteDB's version also starts with "PostgreSQL".
SERVERS: tuple[type[Server], ...] = (CockroachDB, YugabyteDB, Server)


def server_from_version(version: str) -> type[Server]:
    """The server class for a ``SELECT version()`` string; an unknown one is treated as PostgreSQL."""
    for server in SERVERS:
        if server.matches(version.strip()):
            return server
    return Server


def server_of(engine: Engine) -> type[Server]:
    """The server behind ``engine``, asked once (``SELECT version()``) and remembered on the engine."""
    known = engine.get_execution_options().get("chatctl_server")
    if known is not None:
        return known
    if engine.dialect.name == "sqlite":
        server: type[Server] = SQLiteServer
    else:
        from sqlalchemy import text

        with engine.connect() as connection:
            server = server_from_version(connection.execute(text("SELECT version()")).scalar_one())
            connection.rollback()
    engine.update_execution_options(chatctl_server=server)
    return server


def _setup_sqlite(engine: Engine, *, for_writes: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised by every test
        # Take over transaction control so BEGIN IMMEDIATE works (the
        # pysqlite default defers BEGIN and breaks SERIALIZABLE-ish writes).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # pragma: no cover - exercised by every test
        # Writers queue on the busy timeout instead of failing at COMMIT with
        # "database is locked" after having read stale rows.
        writes = for_writes and not connection.get_execution_options().get(READS_ONLY, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def reading(engine: Engine) -> Engine:
    """``engine`` for transactions that only read: same pool, no write lock taken on SQLite."""
    return engine.execution_options(**{READS_ONLY: True})


# How to stop the statement a connection is running, from another thread:
# SQLite's sqlite3_interrupt, PostgreSQL's cancel request.
_CANCEL_METHOD = {"sqlite": "interrupt", "postgresql": "cancel"}


def statement_canceller(connection):
    """A function that cancels whatever statement ``connection`` is running (thread-safe)."""
    raw = connection.connection.dbapi_connection
    return getattr(raw, _CANCEL_METHOD[connection.dialect.name])


def is_postgres(bind) -> bool:
    return bind.dialect.name == "postgresql"


# One consistent view of the desk across several statements.  PostgreSQL's
# default READ COMMITTED takes a fresh snapshot per statement, so counts read
# one after the other could disagree; REPEATABLE READ READ ONLY keeps the first
# statement's snapshot to the end (and never waits for a writer).  A SQLite
# read transaction (BEGIN, deferred) already reads one snapshot of the WAL.
SNAPSHOT_OPTIONS = {
    "postgresql": {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True},
    "sqlite": {},
}


@contextlib.contextmanager
def read_snapshot(engine: Engine) -> Iterator:
    """A connection inside one read-only transaction: every statement sees the same desk."""
    with engine.connect() as connection:
        connection = connection.execution_options(**SNAPSHOT_OPTIONS[engine.dialect.name])
        with connection.begin():
            yield connection


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Turn driver failures into one clean line (exit 3), without the password."""

    try:
        yield
    except exc.OperationalError as error:
        raise DatabaseError(_describe(error, url)) from None
    except exc.InterfaceError as error:
        raise DatabaseError(_describe(error, url)) from None
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise DatabaseError(_describe(error, url)) from None
        if getattr(error.orig, "sqlstate", None) == READ_ONLY_SQLSTATE:
            raise DatabaseError(
                f"database {display_url(url)} is read-only (a hot standby, or a read-only role or "
                "transaction): writes and sweeps need the primary; point --database-url at it and keep "
                "replicas for --read-url"
            ) from None
        if getattr(error.orig, "sqlstate", None) == INSUFFICIENT_PRIVILEGE_SQLSTATE:
            raise DatabaseError(
                f"{_describe(error, url)} (the database role lacks a privilege this command needs: "
                "writes need the read-write role, see docs/security.md)"
            ) from None
        raise


def _describe(error, url: str) -> str:
    original = getattr(error, "orig", None)
    detail = str(original if original is not None else error).strip().splitlines()
    first = detail[0] if detail else type(error).__name__
    first = redact(first)
    if "unsupported startup parameter" in first:
        # PgBouncer in transaction mode refuses the session settings chatctl sends at start-up.
        return (f"cannot use database {display_url(url)}: {first} (a connection pooler in transaction mode? "
                "set pooler = \"transaction\" in the profile or CHATCTL_POOLER=transaction)")
    if "database is locked" in first:
        return f"database {display_url(url)} stayed locked for {SQLITE_BUSY_TIMEOUT_MS // 1000}s: {first}"
    for setting in ("lock_timeout", "statement_timeout"):
        if f"due to {setting.replace('_', ' ')}" in first:
            # The session settings did their job; say which knob it was.
            return (f"gave up on database {display_url(url)}: {first} (another session holds the rows, or "
                    f"the statement ran too long; its transaction was rolled back; retry, or raise "
                    f"{setting} in the profile or CHATCTL_{setting.upper()})")
    return f"cannot use database {display_url(url)}: {first}"
