"""How many rows chatctl handles at a time by default: every batch size, once.

A bulk action or a sweep changes one batch per transaction; a list or a
stream reads one keyset batch per statement.  ``--batch-size`` overrides the
transaction sizes for one run.  Each figure was chosen by a benchmark
(``bench/``, results in ``docs/benchmarks.md``).  Standard library only:
command modules show these figures as their option defaults at start-up.
"""

from __future__ import annotations

# Chats per transaction of a bulk chat action (flag, close, convert, ...):
# 2000 measured best for a 100,000-chat close.
CHAT_ACTION = 2000

# Tickets per transaction (close, reopen, archive, assign, close --where):
# 1000 hold their row locks for ~0.1 s; larger batches gain nothing
# measurable and hold them longer (5000: over a second under load).
TICKET_ACTION = 1000

# Audit events restored per transaction by ``audit revert``, by database.  On
# PostgreSQL the plain changes of a batch are one statement per table: 5000
# pays its fixed costs (planning, the page query, the commit) a fifth as often
# as 1000 (20,000 events: 12.0 s against 13.5 s) and holds its row locks well
# under a second on an idle server.  SQLite reverts in Python while holding the
# whole database: 1000 keeps that wait for other writers short.
REVERT = {"postgresql": 5000, "sqlite": 1000}
REVERT_OTHER_DATABASES = 1000

# Audit events removed per transaction by ``audit prune`` (a range of the
# ``at`` index): about 0.1 s of locks per batch (bench/audit_retention.py).
PRUNE = 10_000

# Any other bulk action (notifications read, agents drain).
OTHER_ACTION = 2000

# Rows per transaction of a sweep job, by database.  On PostgreSQL 1000
# matches one hand-written statement at 1M chats; SQLite has no per-statement
# round trip to amortise but a per-transaction fsync and lock hand-over, so
# bigger batches win there (5000: 1.5x the floor at 100k chats, longest
# batch 0.4 s).
SWEEP = {"postgresql": 1000, "sqlite": 5000}
SWEEP_OTHER_DATABASES = 1000

# Rows read per statement by a list, ``chats filter`` or any stream.
READ = 1000

# Event lines applied per transaction by ``events ingest``.  A chunk costs a
# fixed dozen statements and rewrites each existing chat it touches once, so
# fewer, larger chunks write less: on PostgreSQL 100,000 events took 4.44 s in
# process at 20,000 against 4.78 s at 10,000 (bench section ``ingest``), and
# used 2.5 s of CPU against 3.5 s at 5,000 (SQLite: 5.1 s against 6.2 s).
# Memory stays flat: 300,000 lines on SQLite peak at 90 MB RSS
# (tests/test_input_validation.py).
INGEST = 20_000

# Chats generated and written per transaction by ``demo load``.
DEMO = 20_000


def revert_batch_size(dialect_name: str) -> int:
    """The ``audit revert`` batch for a database (``engine.dialect.name``)."""
    return REVERT.get(dialect_name, REVERT_OTHER_DATABASES)


def sweep_batch_size(dialect_name: str) -> int:
    """The sweep batch for a database (``engine.dialect.name``)."""
    return SWEEP.get(dialect_name, SWEEP_OTHER_DATABASES)
