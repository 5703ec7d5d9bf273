"""chatctl through PgBouncer in ``pool_mode = transaction`` (Debian's 1.18, an
ordinary configuration: no ``ignore_startup_parameters``, no prepared
statement support).

* every command group works through it with ``pooler = transaction``;
* without that setting the refusal is one line that says what to set;
* the session settings are ``SET LOCAL`` per transaction: chatctl's
  transactions have them, the next client of the same server session does not;
* psycopg's automatic prepared statements would break on a shared server
  session (shown with a control); chatctl's do not.

The concurrency tests run through it too: ``test_sweeps_concurrency.py`` and
``test_sweeps_shards.py`` (parametrised ``route=pgbouncer``).
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from pgbouncer import PgBouncer
from sqlalchemy import text

from chatctl.storage.engine import create_engine

pytestmark = pytest.mark.postgres
POOLED = {"CHATCTL_POOLER": "transaction"}
NOW = "2026-11-30T10:00:00Z"


@pytest.fixture
def database(pg_server):
    """A fresh, empty database on the suite's server; yields its direct URL."""
    name = f"bouncer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield f"{pg_server}/{name}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def small_bouncer(pg_server):
    """A PgBouncer of its own with one server connection per database: every client shares it."""
    from urllib.parse import urlsplit

    upstream = urlsplit(pg_server)
    bouncer = PgBouncer(upstream.hostname, upstream.port, pool_size=1)
    bouncer.start()
    yield bouncer
    bouncer.stop()


def test_without_the_pooler_setting_the_refusal_says_what_to_set(pgbouncer, database, bare_cli):
    result = bare_cli(["--database-url", pgbouncer.route(database), "db", "init"])
    assert result.exit_code == 3, result
    assert "unsupported startup parameter" in result.stderr and "CHATCTL_POOLER=transaction" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_every_command_group_works_through_pgbouncer(pgbouncer, database, bare_cli, tmp_path):
    url = pgbouncer.route(database)
    errors: list[str] = []

    def run(*args, input: str | None = None, expect: int = 0):
        result = bare_cli(["--database-url", url, *args], input=input, env=POOLED)
        assert result.exit_code == expect, (args, result)
        errors.append(result.stderr)
        return result

    run("db", "init")
    assert run("db", "status", "-o", "json").json()["revision"]
    run("demo", "load", "--chats", "400", "--now", NOW, "--seed", "3")
    run("agents", "add", "zed", "--name", "Zed", "--role", "supervisor")
    run("agents", "set-status", "zed", "online")
    run("agents", "list", "-o", "json")
    run("prefs", "set", "inactivity_timeout", "45m")
    assert run("prefs", "get", "inactivity_timeout").stdout.strip() == "45m"
    live = [row["id"] for row in run("chats", "list", "live", "--not-flagged", "--all", "-o", "json").json()]
    assert len(live) > 10
    run("chats", "filter", "status=live", "--count")
    run("chats", "show", str(live[0]), "-o", "json")
    run("chats", "flag", str(live[0]), "--note", "through the pooler")
    run("chats", "comment", str(live[1]), "--as", "zed", "--text", "@zed look")
    run("notifications", "list", "--agent", "zed", "-o", "json")
    run("notifications", "read", "--agent", "zed", "--all")
    run("chats", "pending", str(live[2]))
    closed = run("chats", "close", "-", "--reason", "pooled", "-o", "json",
                 input="\n".join(map(str, live[3:10])) + "\n").json()
    assert closed["summary"]["changed"] == 7
    run("chats", "reopen", str(live[3]), "--agent", "zed")
    run("chats", "convert", str(live[10]))
    run("tickets", "list", "-o", "json")
    run("tickets", "close", "--where", "status=open", "age>30d", "--yes")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(
        json.dumps({"type": "chat_started", "customer": f"+2783{n:07d}", "channel": "webchat",
                    "at": "2026-11-30T09:00:00Z", "text": "hi"}) + "\n" for n in range(50)))
    run("events", "ingest", str(events))
    run("agents", "drain", "zed", "--dry-run")
    # more statements than psycopg's prepare threshold (5) on each connection
    for _ in range(3):
        sweep = run("sweep", "run", "--as-of", "2026-12-02T00:00:00Z", "--batch-size", "7", "-o", "json").json()
    assert all(job["changed"] == 0 for job in sweep["jobs"].values())  # the first run did it all
    run_id = run("sweep", "history", "-o", "json").json()[0]["run_id"]
    run("sweep", "show", run_id, "-o", "json")
    run("sweep", "explain", str(live[0]), "-o", "json")
    run("audit", "list", "--operation", closed["operation"], "-o", "json")
    run("audit", "revert", closed["operation"], "--yes", expect=1)  # the reopened chat is refused
    run("db", "check")
    joined = "\n".join(errors)
    assert "prepared statement" not in joined and "Traceback" not in joined


def test_session_settings_are_per_transaction_and_do_not_leak(small_bouncer, database):
    """One server session shared by chatctl and another client: chatctl's settings stay in its transactions."""
    url = small_bouncer.route(database)
    engine = create_engine(url, pooler="transaction",
                           session={"statement_timeout": "45s", "lock_timeout": "2s"})
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
            shown = {name: connection.execute(text(f"SHOW {name}")).scalar()
                     for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")}
        assert shown == {"statement_timeout": "45s", "lock_timeout": "2s",
                         "idle_in_transaction_session_timeout": "5min"}
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as other:
            assert other.execute("SELECT pg_backend_pid()").fetchone()[0] == pid   # the same server session
            assert other.execute("SHOW statement_timeout").fetchone()[0] == "0"
            assert other.execute("SHOW lock_timeout").fetchone()[0] == "0"
    finally:
        engine.dispose()


def test_automatic_prepared_statements_would_break_and_chatctl_makes_none(small_bouncer, database):
    url = small_bouncer.route(database)
    # The control: two clients that prepare on a shared server session collide.
    with psycopg.connect(url, prepare_threshold=0) as first, psycopg.connect(url, prepare_threshold=0) as second:
        first.execute("SELECT 1").fetchone()
        first.commit()
        with pytest.raises(psycopg.errors.DuplicatePreparedStatement):
            for _ in range(3):
                second.execute("SELECT 2").fetchone()
                second.commit()
    # chatctl: two engines, the same statement far past psycopg's threshold, interleaved.
    engines = [create_engine(url, pooler="transaction") for _ in range(2)]
    prepared = "SELECT count(*) FROM pg_prepared_statements"  # the control's one is still on the session
    try:
        with engines[0].connect() as connection:
            before = connection.execute(text(prepared)).scalar()
        for round_ in range(12):
            for engine in engines:
                with engine.connect() as connection:
                    assert connection.execute(text("SELECT :n + 1"), {"n": round_}).scalar() == round_ + 1
        with engines[0].connect() as connection:
            assert connection.execute(text(prepared)).scalar() == before
    finally:
        for engine in engines:
            engine.dispose()
