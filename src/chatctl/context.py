"""The invocation's world: streams and terminal flags (``Environment``) and
the desk it talks to (``Desk``: settings, engines, actor, clock, operation id).

Tests build these directly to simulate a terminal or a pipe.  Only
``Desk.now`` reads the clock, and only the CLI edge builds a ``Desk``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from chatctl.config import Settings

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import Connection, Engine

    from chatctl.domain.actors import Actor


class OutputGuard:
    """Standard output (or error) that outlives its reader (``chatctl ... | head``, ``2>&1 | head``).

    When the reader closes the pipe, writes stop raising: from then on they go
    to ``/dev/null`` (the file descriptor itself is pointed there, so Python's
    final flush is quiet too) and ``reader_gone`` is set.  A read command stops
    producing rows and exits 0; a mutation finishes its work, prints no more
    item lines, and its summary still reaches stderr (SPEC D11).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_left()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_left()

    def _reader_left(self) -> None:
        self.reader_gone = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's StringIO): nothing to point away
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@dataclass
class Environment:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout_isatty: bool = False
    stderr_isatty: bool = False
    stdin_isatty: bool = False
    color: bool = False
    quiet: bool = False
    verbose: bool = False
    width: int | None = None
    """Columns of the output; None: the terminal's (or 200 off a terminal)."""

    @classmethod
    def from_system(cls, *, no_color: bool = False, quiet: bool = False, verbose: bool = False) -> Environment:
        def isatty(stream) -> bool:
            try:
                return stream.isatty()
            except (AttributeError, ValueError):
                return False

        stdout_isatty = isatty(sys.stdout)
        color = stdout_isatty and not no_color and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        return cls(
            stdout_isatty=stdout_isatty,
            stderr_isatty=isatty(sys.stderr),
            stdin_isatty=isatty(sys.stdin),
            color=color,
            quiet=quiet,
            verbose=verbose,
        )

    @property
    def reader_gone(self) -> bool:
        """Whoever read standard output has left (``| head``): stop producing rows."""
        return getattr(self.stdout, "reader_gone", False)

    def note(self, message: str) -> None:
        """A human line on stderr (summaries, hints); silenced by ``-q``."""
        if not self.quiet:
            print(message, file=self.stderr, flush=True)

    def warn(self, message: str) -> None:
        print(message, file=self.stderr, flush=True)


class Desk:
    """The database side of one invocation, created lazily on first use."""

    def __init__(self, settings: Settings, env: Environment, tz_name: str | None = None,
                 argv: list[str] | None = None) -> None:
        self.settings = settings
        self.env = env
        self.argv = list(argv or [])
        # Set by --dry-run as it is parsed: a dry run changes nothing and records no operation.
        self.dry_run = False
        # Item counts the bulk runner reports, kept with the operation record.
        self.operation_counts: dict[str, int] | None = None
        self._tz_name = tz_name
        self._engine: Engine | None = None
        self._read_engine: Engine | None = None
        self._operation_id: str | None = None
        self._operation_recorded = False
        self._lease_renewed: float = 0.0
        self._actor: Actor | None = None
        self._tz: ZoneInfo | None = None

    # -- clock -------------------------------------------------------------
    @staticmethod
    def now() -> dt.datetime:
        """The one place chatctl reads the clock (freezegun patches it in tests)."""
        return dt.datetime.now(dt.timezone.utc)

    # -- engines -----------------------------------------------------------
    def engine(self, *, check_schema: bool = True, create: bool = False) -> Engine:
        """The primary.  Only ``create`` (``db init``, ``db upgrade``) may create a
        SQLite file or its directory; anything else names the missing file (D12)."""
        from chatctl.storage.engine import create_engine

        if self._engine is None:
            self._engine = create_engine(self.settings.database_url, session=self.settings.session,
                                         pooler=self.settings.pooler, create=create)
            if check_schema:
                self._require_head(self._engine, self.settings.database_url)
        return self._engine

    @staticmethod
    def _require_head(engine: Engine, url: str) -> None:
        from chatctl.errors import DatabaseError
        from chatctl.storage.engine import display_url, translate_errors
        from chatctl.storage.schema import require_head

        try:
            with translate_errors(url), engine.connect() as connection:
                require_head(connection)
        except DatabaseError as error:
            shown = display_url(url)
            if shown in error.message:
                raise
            raise DatabaseError(f"database {shown}: {error.message}", hint=error.hint) from None

    def read_engine(self) -> Engine:
        """The replica for list/show/filter/export when ``--read-url`` is set."""
        from chatctl.storage.engine import create_engine, reading

        if not self.settings.read_url:
            if self._read_engine is None:
                # The primary's engine, its pool and its one schema check, with transactions
                # that read only (no write lock on SQLite).
                self._read_engine = reading(self.engine())
            return self._read_engine
        if self._read_engine is None:
            self._read_engine = create_engine(
                self.settings.read_url, session=self.settings.session, for_writes=False,
                pooler=self.settings.pooler,
            )
            self._require_head(self._read_engine, self.settings.read_url)
        return self._read_engine

    def errors(self, *, read: bool = False):
        """Context manager mapping driver failures to exit 3 with a redacted URL."""
        from chatctl.storage.engine import translate_errors

        url = self.settings.read_url if read and self.settings.read_url else self.settings.database_url
        return translate_errors(url)

    def dispose(self) -> None:
        for engine in (self._engine, self._read_engine):
            if engine is not None:
                engine.dispose()

    # -- who and when ------------------------------------------------------
    @property
    def operation_id(self) -> str:
        """This invocation's operation id; the first ask records the operation (D10), unless a dry run.

        Ask for it before opening a write transaction: on SQLite the record is
        written through its own connection and would wait for that one.
        """
        from chatctl.domain.audit.writer import new_operation_id

        if self._operation_id is None:
            self._operation_id = new_operation_id(self.now())
            if not self.dry_run:
                self._start_operation()
        return self._operation_id

    def _start_operation(self) -> None:
        import time

        from chatctl.domain.audit import operations

        with self.errors(), self.engine().begin() as connection:
            operations.start(connection, self._operation_id, command=operations.command_line(self.argv),
                             actor=self.actor(connection).name, now=self.now(),
                             process=operations.Process.current())
        self._operation_recorded = True
        self._lease_renewed = time.monotonic()

    def keep_operation_alive(self) -> None:
        """Renew the running operation's lease now and then (call between batches, outside a transaction)."""
        import time

        from chatctl.domain.audit import operations

        if not self._operation_recorded:
            return
        if time.monotonic() - self._lease_renewed < operations.RENEW_AFTER.total_seconds():
            return
        with self.errors(), self.engine().begin() as connection:
            operations.renew(connection, self._operation_id, now=self.now())
        self._lease_renewed = time.monotonic()

    @property
    def operation_open(self) -> bool:
        """An operation was recorded and its end not yet (``finish_operation``)."""
        return self._operation_recorded

    def finish_operation(self, exit_code: int) -> None:
        """Close the operation record with the outcome (the CLI's error boundary calls this)."""
        from chatctl.domain.audit import operations

        if not self._operation_recorded:
            return
        self._operation_recorded = False
        with self.errors(), self.engine().begin() as connection:
            operations.finish(connection, self._operation_id, exit_code=exit_code, now=self.now(),
                              counts=self.operation_counts)

    def actor(self, connection: Connection | None = None) -> Actor:
        if self._actor is None:
            if connection is None:
                with self.errors(), self.engine().connect() as fresh:
                    self._actor = self._resolve_actor(fresh)
            else:
                self._actor = self._resolve_actor(connection)
        return self._actor

    def _resolve_actor(self, connection: Connection) -> Actor:
        from chatctl.domain.actors import resolve_actor
        from chatctl.errors import ConfigError, UsageError

        try:
            return resolve_actor(connection, self.settings.actor)
        except UsageError as error:
            source = self.settings.sources.get("actor", "--actor")
            if source == "--actor":
                raise
            # Not typed on this command line: name where it was set (D12).
            raise ConfigError(f"{error.message}, set by {source}", hint=error.hint) from None

    def tz(self, connection: Connection | None = None, *, preference: ZoneInfo | None = None) -> ZoneInfo:
        """``--tz`` when given, else the desk's ``timezone`` preference (``preference``: its value,
        when the caller has read it already)."""
        from chatctl.parsing.timeparse import parse_zone

        if self._tz is None:
            if self._tz_name:
                self._tz = parse_zone(self._tz_name)
            elif preference is not None:
                self._tz = preference
            else:
                from chatctl.domain.prefs import get_preference

                if connection is None:
                    with self.errors(read=True), self.read_engine().connect() as fresh:
                        self._tz = get_preference(fresh, "timezone")
                else:
                    self._tz = get_preference(connection, "timezone")
        return self._tz
