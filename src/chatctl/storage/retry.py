"""Retrying a batch that lost a serialization race (SQLSTATE 40001).

PostgreSQL at ``REPEATABLE READ`` or ``SERIALIZABLE`` isolation, CockroachDB
(always serializable) and YugabyteDB abort one of two conflicting
transactions with ``40001 serialization_failure``: the transaction did
nothing, and running it again from the start is the documented remedy.
Every batch writer (bulk actions, sweep batches, revert, ingest chunks) runs
its transaction through ``retry_serialization``: a batch is one transaction,
so a retry repeats it whole, re-reading the rows it decides on.

The retries are bounded (a hot spot must end in exit 3, not spin) and
jittered ("full jitter": a random wait up to an exponentially growing cap),
so two writers that collided do not collide again in lock step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

SERIALIZATION_FAILURE = "40001"
ATTEMPTS = 6
FIRST_WAIT_S = 0.02
LONGEST_WAIT_S = 1.0


def is_serialization_failure(error: BaseException) -> bool:
    """A driver error (wrapped by SQLAlchemy or not) carrying SQLSTATE 40001."""
    original = getattr(error, "orig", None) or error
    return getattr(original, "sqlstate", None) == SERIALIZATION_FAILURE


def backoff(attempt: int, *, draw: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``attempt`` (1, 2, ...): uniform in [0, cap)."""
    return draw() * min(LONGEST_WAIT_S, FIRST_WAIT_S * 2 ** (attempt - 1))


def retry_serialization(
    work: Callable[[], T],
    *,
    attempts: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
    on_retry: Callable[[int, BaseException], None] | None = None,
) -> T:
    """Run ``work`` (one whole transaction, begun and ended inside it) and
    return its result; on a serialization failure wait and run it again, at
    most ``attempts`` (default ``ATTEMPTS``) times in all, then let the last
    failure through."""
    attempts = attempts or ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except Exception as error:
            if attempt == attempts or not is_serialization_failure(error):
                raise
            if on_retry is not None:
                on_retry(attempt, error)
            sleep(backoff(attempt, draw=draw))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
