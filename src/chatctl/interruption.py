"""Stopping bulk work cleanly on SIGINT and SIGTERM (SPEC D11).

A signal during a mutation or a sweep must leave the desk consistent and let
the process go promptly: the batch in flight commits or rolls back whole, no
batch starts after it, the run is recorded as interrupted, locks and leases
are released (by the runners' ``finally``), and the exit code is 130 (SIGINT)
or 143 (SIGTERM) - with or without a terminal.

Two things make this harder than catching KeyboardInterrupt:

* A KeyboardInterrupt raised inside the database driver leaves SQLAlchemy's
  connection half-closed; on SQLite the interrupted transaction then keeps
  the write lock, and the run's own bookkeeping waits 30 s for it, twice.
  So the handler only records the request; the runners check it between
  batches.
* Python runs a signal handler only when the main thread is back in Python
  code, and a batch can sit for many seconds inside the driver (SQLite's busy
  wait, a PostgreSQL lock wait).  A watcher thread, woken at once through
  ``signal.set_wakeup_fd``, cancels the statement in flight when the batch has
  not finished ``GRACE_SECONDS`` after the signal (at once on a second
  signal); the driver raises and the runner rolls that batch back.

Only the main thread can own signals: anywhere else (a test driving a sweep
from a thread) the stop is never requested.  A SIGINT that was ignored when
chatctl started (a background job of a script) stays ignored.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from chatctl.errors import Interrupted

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

GRACE_SECONDS = 1.0
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Whether a stop was asked for, and the statement that may be cancelled meanwhile."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._lock = threading.Lock()
        self._cancel: Callable[[], None] | None = None
        self._deadline: float | None = None
        self._waiting = False

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def check(self) -> None:
        """Raise ``Interrupted`` if a stop was asked for: called before each batch."""
        if self.signal is not None:
            raise Interrupted(self.signal)

    @contextlib.contextmanager
    def waiting_for_input(self) -> Iterator[None]:
        """A read of more input (a pipe that may stay silent for hours) that a stop ends at once.

        Nothing is open meanwhile - no transaction, no statement - so the
        handler raises ``Interrupted`` right where the main thread waits, and
        the read is given up instead of resumed.
        """
        self.check()
        self._waiting = True
        try:
            yield
        finally:
            self._waiting = False

    @contextlib.contextmanager
    def cancellable(self, connection: Connection) -> Iterator[None]:
        """Statements run inside may be cancelled by a stop; a failure after a stop is the stop.

        The caller's transaction rolls back on the ``Interrupted`` this raises,
        so a cancelled batch leaves nothing behind.  Keep the commit outside.
        """
        from chatctl.storage.engine import statement_canceller

        self.check()  # a stop asked for just before the batch: don't start it
        with self._lock:
            self._cancel = statement_canceller(connection)
        try:
            yield
        except Exception:
            if self.signal is not None:
                raise Interrupted(self.signal) from None
            raise
        finally:
            with self._lock:
                self._cancel = None

    # -- called by the handler and the watcher --------------------------------------------
    def _noted(self, signum: int) -> None:
        """The main thread's handler: make the request visible to the next check (or, while
        waiting for input, stop the wait)."""
        with self._lock:
            if self.signal is None:
                self.signal = signum
        if self._waiting:
            self._waiting = False
            raise Interrupted(self.signal)

    def _heard(self, signum: int, first: bool) -> None:
        """The watcher: start the grace period on the first signal, cancel at once on the next."""
        if first:
            with self._lock:
                if self.signal is None:
                    self.signal = signum
                self._deadline = time.monotonic() + GRACE_SECONDS
            return
        self._cancel_now()

    def _cancel_now(self) -> None:
        with self._lock:
            self._deadline = None
            if self._cancel is not None:
                try:
                    self._cancel()
                except Exception:  # noqa: BLE001 - a connection already gone has nothing to cancel
                    pass

    def _watch(self, reader: socket.socket) -> None:
        heard = 0
        while True:
            deadline = self._deadline
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([reader], [], [], timeout)
            if not ready:
                self._cancel_now()
                continue
            try:
                data = reader.recv(64)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            if not data:
                return  # the stop context ended
            for signum in data:
                if signum in SIGNALS:
                    self._heard(signum, first=heard == 0)
                    heard += 1


_active: StopRequest | None = None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn SIGINT and SIGTERM into a stop request for the duration of the block.

    Nested uses share the outer request.  Outside the main thread the request
    is never set (signals belong to the main thread).
    """
    global _active
    if _active is not None:
        yield _active
        return
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    handled = [number for number in SIGNALS if signal.getsignal(number) is not signal.SIG_IGN]
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    previous_handlers = {number: signal.getsignal(number) for number in handled}
    previous_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
    watcher = threading.Thread(target=stop._watch, args=(reader,), name="chatctl-stop", daemon=True)
    watcher.start()
    for number in handled:
        # The watcher hears the signal through the wakeup fd even while the main
        # thread is inside the driver; this handler makes the request visible to
        # the main thread's next check even if the watcher has not run yet.
        signal.signal(number, lambda signum, frame: stop._noted(signum))
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        for number, handler in previous_handlers.items():
            signal.signal(number, handler)
        signal.set_wakeup_fd(previous_fd)
        writer.close()
        watcher.join(timeout=5)
        reader.close()
