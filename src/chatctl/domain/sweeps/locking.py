"""One run at a time per job and shard.

Which kind is the ``sweep_lock`` setting: ``advisory``, ``lease``, or
``auto`` (the default): advisory on PostgreSQL reached directly, a lease
everywhere a session advisory lock means nothing -- SQLite, a transaction
pooler (PgBouncer ``pool_mode = transaction`` hands the locked session to
other clients once the transaction ends), CockroachDB and YugabyteDB (see
``chatctl.storage.engine.Server``).

* advisory: a session advisory lock per ``job:shard`` on a connection held for
  the run (``pg_try_advisory_lock`` on a stable 64-bit hash of the name).  It
  dies with the session, so a killed run leaves nothing behind.
* lease: a row in ``sweep_leases``
  with an expiry, renewed while the run makes progress.  A crashed holder
  blocks the next run for at most the lease (``CHATCTL_SWEEP_LEASE_SECONDS``,
  default 300); one that was a process of this host is taken over at once.

The lock only keeps overlapping cron runs from doing the same work twice over;
correctness never depends on it (claims and the re-checked predicate do that),
which is why tests can bypass it with ``--no-lock`` / ``CHATCTL_SWEEP_NO_LOCK=1``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from chatctl.config import sweep_lease_seconds
from chatctl.domain.audit.operations import pid_alive
from chatctl.errors import ConfigError, LockedError
from chatctl.storage.engine import behind_transaction_pooler, server_of
from chatctl.storage.models import SweepLease

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock``."""
    digest = hashlib.blake2b(f"chatctl.sweep:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def holder_name(run_id: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{run_id}"


def holder_is_dead(holder: str) -> bool:
    """A lease holder (``host:pid:run``) that was a process of this host which has ended."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def _locked(name: str, detail: str = "") -> LockedError:
    job, shard = name.split(":", 1)
    return LockedError(f"another sweep holds the lock for job {job} (shard {shard}){detail}",
                       hint="it is still running")


class AdvisoryLocks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None
        self._held: list[int] = []

    def acquire(self, names: Sequence[str]) -> None:
        self._connection = self._engine.connect()
        try:
            for name in names:
                key = lock_key(name)
                got = self._connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar()
                # Session locks outlive the transaction; ending it keeps the
                # idle-in-transaction timeout from killing the session.
                self._connection.commit()
                if not got:
                    raise _locked(name)
                self._held.append(key)
        except BaseException:
            self.release()
            raise

    def renew(self) -> None:
        pass

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            for key in self._held:
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            self._connection.commit()
        finally:
            self._held = []
            self._connection.close()
            self._connection = None


class LeaseLocks:
    def __init__(self, engine: Engine, holder: str, clock: Callable[[], dt.datetime]) -> None:
        self._engine = engine
        self._holder = holder
        self._clock = clock
        self._held: list[str] = []
        self._renewed_at: dt.datetime | None = None
        self._seconds = sweep_lease_seconds()

    def acquire(self, names: Sequence[str]) -> None:
        try:
            for name in names:
                self._take(name)
                self._held.append(name)
        except BaseException:
            self.release()
            raise
        self._renewed_at = self._clock()

    def _take(self, name: str) -> None:
        now = self._clock()
        try:
            with self._engine.begin() as connection:
                connection.execute(delete(SweepLease).where(SweepLease.name == name, SweepLease.expires_at <= now))
                current = connection.execute(select(SweepLease).where(SweepLease.name == name)).first()
                if current is not None and holder_is_dead(current.holder):
                    # Its run was killed or lost its connection and could not release it: take it over now.
                    connection.execute(delete(SweepLease).where(SweepLease.name == name,
                                                                SweepLease.holder == current.holder))
                    current = None
                if current is not None:
                    raise _locked(name, f": {current.holder} until {current.expires_at.isoformat()}")
                connection.execute(insert(SweepLease).values(
                    name=name, holder=self._holder, acquired_at=now,
                    expires_at=now + dt.timedelta(seconds=self._seconds)))
        except IntegrityError:
            # Another run inserted the same lease between our look and our insert: it holds it.
            raise _locked(name, ": taken at the same moment by another run") from None

    def renew(self) -> None:
        """Push the expiry out again once a third of the lease has gone by."""

        now = self._clock()
        if not self._held or (self._renewed_at and now - self._renewed_at < dt.timedelta(seconds=self._seconds / 3)):
            return
        with self._engine.begin() as connection:
            connection.execute(update(SweepLease).where(SweepLease.name.in_(self._held),
                                                        SweepLease.holder == self._holder)
                               .values(expires_at=now + dt.timedelta(seconds=self._seconds)))
        self._renewed_at = now

    def release(self) -> None:
        if not self._held:
            return
        with self._engine.begin() as connection:
            connection.execute(delete(SweepLease).where(SweepLease.name.in_(self._held),
                                                        SweepLease.holder == self._holder))
        self._held = []


class NoLocks:
    def acquire(self, names: Sequence[str]) -> None:
        pass

    def renew(self) -> None:
        pass

    def release(self) -> None:
        pass


def lock_kind(engine: Engine, setting: str = "auto") -> str:
    """``advisory`` or ``lease``: the ``sweep_lock`` setting, with ``auto`` resolved for this engine."""

    if setting == "advisory" and (engine.dialect.name != "postgresql" or behind_transaction_pooler(engine)):
        where = "through a transaction pooler" if engine.dialect.name == "postgresql" else "on SQLite"
        raise ConfigError(f"sweep_lock = advisory cannot work {where}: a session advisory lock would not "
                          "keep another run out", hint="use sweep_lock = lease or auto")
    if setting != "auto":
        return setting
    if behind_transaction_pooler(engine) or not server_of(engine).session_advisory_locks:
        return "lease"
    return "advisory"


def run_locks(engine: Engine, *, holder: str, clock: Callable[[], dt.datetime], enabled: bool = True,
              setting: str = "auto"):
    """The run lock for this engine and ``sweep_lock`` setting (module docstring)."""
    if not enabled:
        return NoLocks()
    if lock_kind(engine, setting) == "advisory":
        return AdvisoryLocks(engine)
    return LeaseLocks(engine, holder, clock)
