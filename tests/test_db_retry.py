"""Batches that lose a serialization race (SQLSTATE 40001) are run again whole.

PostgreSQL at ``SERIALIZABLE`` raises the same error CockroachDB and
YugabyteDB do.  Each test makes the test's database serializable
(``ALTER DATABASE ... SET default_transaction_isolation``), then two writers
conflict for real: the test's own transaction updates a row and holds it;
chatctl's batch, on its way to the same row, waits for it (seen in
``pg_stat_activity``); the test commits; chatctl's batch fails with
"could not serialize access due to concurrent update", is retried, and the
command finishes as if nothing had happened -- every change once, with one
audit row, on top of the other writer's change.  One test per batch writer:
bulk actions, sweep batches, revert, ingest chunks.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from sqlalchemy import select, text
from sweep_helpers import T0, add_agent, add_chat, add_comment, audit_rows, chat, minutes

import chatctl.storage.retry as retry
from chatctl.storage.models import Chat, Notification
from chatctl.storage.retry import backoff, is_serialization_failure, retry_serialization

pytestmark = pytest.mark.postgres
SERIALIZATION_ERROR = "could not serialize access"


# -- the helper itself ---------------------------------------------------------------------------
class Failure(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"SQLSTATE {sqlstate}")
        self.sqlstate = sqlstate


def test_40001_is_retried_until_the_work_succeeds():
    calls, waits = [], []

    def work():
        calls.append(1)
        if len(calls) < 3:
            raise Failure("40001")
        return "done"

    assert retry_serialization(work, sleep=waits.append, draw=lambda: 1.0) == "done"
    assert len(calls) == 3 and waits == [backoff(1, draw=lambda: 1.0), backoff(2, draw=lambda: 1.0)]


def test_retries_are_bounded_and_the_last_failure_goes_through():
    calls = []

    def work():
        calls.append(1)
        raise Failure("40001")

    with pytest.raises(Failure):
        retry_serialization(work, attempts=4, sleep=lambda s: None)
    assert len(calls) == 4


@pytest.mark.parametrize("sqlstate", ["40P01", "23505", "57P01", None])
def test_other_failures_are_not_retried(sqlstate):
    calls = []

    def work():
        calls.append(1)
        raise Failure(sqlstate) if sqlstate else ValueError("no")

    with pytest.raises((Failure, ValueError)):
        retry_serialization(work, sleep=lambda s: None)
    assert len(calls) == 1


def test_the_wait_is_jittered_below_a_growing_cap():
    for attempt in range(1, 12):
        cap = min(retry.LONGEST_WAIT_S, retry.FIRST_WAIT_S * 2 ** (attempt - 1))
        assert backoff(attempt, draw=lambda: 0.0) == 0.0
        assert backoff(attempt, draw=lambda: 0.999) == pytest.approx(0.999 * cap)
    assert backoff(30, draw=lambda: 0.999) < retry.LONGEST_WAIT_S


def test_a_wrapped_driver_error_is_recognised():
    class Wrapped(Exception):
        orig = Failure("40001")

    assert is_serialization_failure(Wrapped()) and not is_serialization_failure(ValueError())


# -- two conflicting writers under SERIALIZABLE --------------------------------------------------
@pytest.fixture
def serializable(backend, database_url, engine):
    assert backend == "postgresql"
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'")
    engine.dispose()  # new sessions pick the setting up
    with engine.connect() as connection:
        assert connection.execute(text("SHOW transaction_isolation")).scalar() == "serializable"
    return engine


@pytest.fixture
def retries(monkeypatch):
    """The attempts after which chatctl waited to retry (every retry goes through ``backoff``)."""
    seen: list[int] = []

    def counted(attempt, **kwargs):
        seen.append(attempt)
        return backoff(attempt, **kwargs)

    monkeypatch.setattr(retry, "backoff", counted)
    return seen


def run_while_holding(engine, cli, hold: str, parameters: dict, *args, input: str | None = None):
    """Hold a row with ``hold`` in a serializable transaction, start chatctl, wait until it
    waits for that row, commit, and return chatctl's result."""
    holder = engine.connect()
    holder.execute(text(hold), parameters)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("result", cli(*args, input=input)))
    worker.start()
    try:
        assert wait_for_lock_wait(engine), "chatctl never waited for the held row"
    finally:
        holder.commit()
        holder.close()
        worker.join(timeout=120)
    assert not worker.is_alive()
    return outcome["result"]


def wait_for_lock_wait(engine, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar()
            watcher.rollback()
            if waiting:
                return True
            time.sleep(0.02)
    return False


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_r15_bulk_close_retried_after_a_serialization_failure(serializable, cli, retries):
    engine = serializable
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice) for _ in range(3)]
    result = run_while_holding(engine, cli, "UPDATE chats SET last_agent_message_at = :at WHERE id = :id",
                               {"at": T0, "id": chats[1]}, "chats", "close", *chats, "-o", "json")
    assert result.exit_code == 0, result
    assert retries == [1]
    assert {item["result"] for item in result.json()["results"]} == {"changed"}
    assert all(chat(engine, chat_id).status == "closed" for chat_id in chats)
    assert chat(engine, chats[1]).last_agent_message_at == T0      # the other writer's change stays
    closes = [row for row in audit_rows(engine, entity_type="chat") if row.action == "chats.close"]
    assert sorted(int(row.entity_id) for row in closes) == sorted(chats)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_r9_sweep_batch_retried_after_a_serialization_failure(serializable, cli, retries):
    """An agent reads a tag notification while the inactivity sweep closes that chat (and marks it read)."""
    engine = serializable
    alice, bob = add_agent(engine, "alice"), add_agent(engine, "bob")
    idle = [add_chat(engine, agent=alice, created=T0 - minutes(90), agent_at=T0 - minutes(60)) for _ in range(3)]
    add_comment(engine, idle[1], alice, tagged=bob)
    with engine.connect() as connection:
        notification = connection.execute(select(Notification.id).where(Notification.chat_id == idle[1])).scalar()
    read_at = T0 - minutes(1)
    result = run_while_holding(engine, cli, "UPDATE notifications SET read_at = :at WHERE id = :id",
                               {"at": read_at, "id": notification},
                               "sweep", "run", "inactivity", "--as-of", T0.isoformat(), "-o", "json")
    assert result.exit_code == 0, result
    assert retries and retries[0] == 1
    assert result.json()["jobs"]["inactivity"]["changed"] == 3
    assert all(chat(engine, chat_id).status == "closed" for chat_id in idle)
    with engine.connect() as connection:
        assert connection.execute(select(Notification.read_at).where(Notification.id == notification)).scalar() \
            == read_at
    swept = [row for row in audit_rows(engine, entity_type="chat") if row.action.startswith("sweep.")]
    assert sorted(int(row.entity_id) for row in swept) == sorted(idle)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_r15_revert_retried_after_a_serialization_failure(serializable, cli, retries):
    engine = serializable
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice) for _ in range(3)]
    closed = cli("chats", "close", *chats, "-o", "json")
    assert closed.exit_code == 0, closed
    operation = closed.json()["operation"]
    result = run_while_holding(engine, cli, "UPDATE chats SET last_agent_message_at = :at WHERE id = :id",
                               {"at": T0, "id": chats[2]}, "audit", "revert", operation, "--yes", "-o", "json")
    assert result.exit_code == 0, result
    assert retries == [1]
    assert all(chat(engine, chat_id).status == "live" for chat_id in chats)
    assert chat(engine, chats[2]).last_agent_message_at == T0
    reverts = [row for row in audit_rows(engine, entity_type="chat") if row.operation_id == result.json()["operation"]]
    assert sorted(int(row.entity_id) for row in reverts) == sorted(chats)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_ingest_chunk_retried_after_a_serialization_failure(serializable, cli, retries):
    engine = serializable
    alice = add_agent(engine, "alice")
    target = add_chat(engine, agent=alice, created=T0 - minutes(30))
    at = (T0 + minutes(1)).isoformat()
    lines = "".join(f'{{"type": "customer_message", "chat": {target}, "text": "hello {n}", "at": "{at}"}}\n'
                    for n in range(2))
    result = run_while_holding(engine, cli, "UPDATE chats SET agent_seen_at = :at WHERE id = :id",
                               {"at": T0, "id": target}, "events", "ingest", "-", "-o", "json", input=lines)
    assert result.exit_code == 0, result
    assert retries == [1]
    assert result.json()["events"]["customer_message"] == 2     # counted once, not once per attempt
    with engine.connect() as connection:
        row = connection.execute(select(Chat.agent_seen_at, Chat.last_customer_message_at)
                                 .where(Chat.id == target)).one()
        messages = connection.execute(text("SELECT count(*) FROM messages WHERE chat_id = :id"),
                                      {"id": target}).scalar()
    assert row.agent_seen_at == T0 and row.last_customer_message_at == T0 + minutes(1)
    assert messages == 2


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_conflict_that_never_ends_is_exit_3_in_one_line(serializable, cli, monkeypatch):
    """Bounded: when every attempt loses, the command stops with the database error, nothing half-done."""
    engine = serializable
    alice = add_agent(engine, "alice")
    chats = [add_chat(engine, agent=alice) for _ in range(2)]
    monkeypatch.setattr(retry, "ATTEMPTS", 1)
    result = run_while_holding(engine, cli, "UPDATE chats SET last_agent_message_at = :at WHERE id = :id",
                               {"at": T0, "id": chats[0]}, "chats", "close", *chats)
    assert result.exit_code == 3, result
    assert SERIALIZATION_ERROR in result.stderr and result.stderr.count("\n") <= 2
    assert all(chat(engine, chat_id).status == "live" for chat_id in chats)
    assert audit_rows(engine, entity_type="chat") == []
