"""The schema's life cycle: Alembic upgrade/downgrade/status and the
at-head check every other command makes before touching the database.

The check runs before every command's first query, so it reads the version
table directly and compares it with ``HEAD``, the newest revision shipped in
the package: importing Alembic to compute the head costs a quarter of a
second.  A new revision bumps ``HEAD`` (a test compares it with Alembic's head).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text

from chatctl.errors import DatabaseError, UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; tests/test_schema.py holds it equal to Alembic's head.
HEAD = "0010"
VERSION_TABLE = "alembic_version"


def alembic_config(connection: Connection | None = None):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database without chatctl's schema."""

    if not connection.dialect.has_table(connection, VERSION_TABLE):
        return None
    return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    from alembic import command
    from alembic.util import CommandError

    with engine.begin() as connection:
        before = current_revision(connection)
        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise UsageError(f"cannot upgrade to '{revision}': {error}") from None
        after = current_revision(connection)
    return before, after


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    from alembic import command
    from alembic.util import CommandError

    with engine.begin() as connection:
        before = current_revision(connection)
        try:
            command.downgrade(alembic_config(connection), revision)
        except CommandError as error:
            raise UsageError(f"cannot downgrade to '{revision}': {error}") from None
        after = current_revision(connection)
    return before, after


def require_head(connection: Connection) -> None:
    """Refuse a database whose schema is missing or not at head (exit 3)."""
    current = current_revision(connection)
    head = HEAD
    if current == head:
        return
    if current is None:
        raise DatabaseError("the database has no chatctl schema", hint="run `chatctl db upgrade`")
    raise DatabaseError(
        f"the database schema is at {current}, chatctl needs {head}",
        hint="run `chatctl db upgrade`",
    )
