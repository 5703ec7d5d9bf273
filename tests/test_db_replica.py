"""Read replicas (SPEC 2.1 ``--read-url``) against a real PostgreSQL 15 streaming
replica: a primary and a hot standby cloned from it with ``pg_basebackup -R``,
both started by this module on loopback.

* lists read from the standby: with replay paused, a change committed on the
  primary is invisible through ``--read-url`` and visible without it;
* every write goes to the primary, and a write aimed at the standby is exit 3
  with a clear message;
* a lagging standby never feeds a sweep's decisions: the sweep reads and
  writes the primary only.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))

from conftest import on_postgres  # noqa: E402
from pgcluster import ConfiguredServer, Standby, wait_for_replay  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def cluster(bare_cli_module):
    primary = ConfiguredServer(replication=True)
    standby = None
    try:
        primary.start()
        primary.execute("CREATE DATABASE desk")
        result = bare_cli_module(["--database-url", primary.url("desk"), "db", "init"])
        assert result.exit_code == 0, result
        standby = Standby.from_primary(primary)
        wait_for_replay(primary, standby, "desk")
    except Exception as error:
        if standby is not None:
            standby.stop()
        primary.stop()
        pytest.fail(f"cannot start the primary and standby: {error}", pytrace=False)
    yield primary, standby
    standby.stop()
    primary.stop()


@pytest.fixture(scope="module")
def bare_cli_module():
    from conftest import invoke

    return invoke


@pytest.fixture
def pair(cluster, bare_cli, request):
    """The primary and standby with replay running and caught up, and a clean desk."""
    on_postgres(request)
    primary, standby = cluster
    standby.execute("SELECT pg_wal_replay_resume()")
    primary.execute("TRUNCATE audit_events, comment_mentions, comments, notifications, messages, tickets, chats, "
                    "customers, agents, preferences, sweep_runs, sweep_leases CASCADE", "desk")
    wait_for_replay(primary, standby, "desk")
    yield primary, standby
    standby.execute("SELECT pg_wal_replay_resume()")


def run(cli, primary, standby, *args, read=True):
    options = ["--database-url", primary.url("desk")]
    if read:
        options += ["--read-url", standby.url("desk")]
    return cli([*options, *args])


def test_the_read_engine_is_the_standby_and_the_engine_the_primary(pair):
    from chatctl import config
    from chatctl.context import Desk, Environment

    primary, standby = pair
    settings = config.resolve(database_url=primary.url("desk"), read_url=standby.url("desk"), profile=None,
                              config=None, actor=None, tz=None, environ={})
    desk = Desk(settings, Environment())
    try:
        with desk.read_engine().connect() as connection:
            assert connection.execute(sa.text("SELECT pg_is_in_recovery()")).scalar() is True
        with desk.engine().connect() as connection:
            assert connection.execute(sa.text("SELECT pg_is_in_recovery()")).scalar() is False
    finally:
        desk.dispose()


def test_lists_read_from_the_standby_writes_go_to_the_primary(pair, bare_cli):
    primary, standby = pair
    assert run(bare_cli, primary, standby, "agents", "add", "alice", "--name", "A").exit_code == 0
    wait_for_replay(primary, standby, "desk")
    standby.execute("SELECT pg_wal_replay_pause()")

    # A write with --read-url set succeeds: it went to the primary.
    added = run(bare_cli, primary, standby, "agents", "add", "bob", "--name", "B")
    assert added.exit_code == 0, added
    assert run(bare_cli, primary, standby, "prefs", "set", "inactivity_timeout", "45m").exit_code == 0

    # The paused standby does not have it yet; the primary does.
    from_standby = run(bare_cli, primary, standby, "agents", "list", "-o", "json").json()
    from_primary = run(bare_cli, primary, standby, "agents", "list", "-o", "json", read=False).json()
    assert [a["handle"] for a in from_standby] == ["alice"]
    assert sorted(a["handle"] for a in from_primary) == ["alice", "bob"]
    assert len(run(bare_cli, primary, standby, "audit", "list", "-o", "json").json()) == 1
    assert len(run(bare_cli, primary, standby, "audit", "list", "-o", "json", read=False).json()) == 3
    assert run(bare_cli, primary, standby, "prefs", "get", "inactivity_timeout").stdout.strip() == "30m"

    standby.execute("SELECT pg_wal_replay_resume()")
    wait_for_replay(primary, standby, "desk")
    assert sorted(a["handle"] for a in run(bare_cli, primary, standby, "agents", "list", "-o", "json").json()) == [
        "alice", "bob"]
    assert run(bare_cli, primary, standby, "prefs", "get", "inactivity_timeout").stdout.strip() == "45m"


def test_a_write_aimed_at_the_standby_is_exit_3(pair, bare_cli):
    primary, standby = pair
    for args in (["agents", "add", "carol", "--name", "C"], ["prefs", "set", "inactivity_timeout", "1h"],
                 ["sweep", "run"]):
        result = bare_cli(["--database-url", standby.url("desk"), *args])
        assert result.exit_code == 3, result
        assert "read-only" in result.stderr and "primary" in result.stderr, result
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert run(bare_cli, primary, standby, "agents", "list", "-o", "json", read=False).json() == []


def seed_chats(primary, ids, *, last_activity):
    engine = sa.create_engine(primary.url("desk").replace("postgresql://", "postgresql+psycopg://"))
    from chatctl.storage.models import Chat, Customer

    with engine.begin() as connection:
        connection.execute(sa.insert(Customer).values(id=ids[0], display_name="C", address=f"+2782{ids[0]:07d}",
                                                      created_at=T0))
        connection.execute(sa.insert(Chat), [
            {"id": i, "customer_id": ids[0], "channel": "webchat", "status": "live", "created_at": T0,
             "last_customer_message_at": last_activity, "last_agent_message_at": last_activity,
             "last_activity_at": last_activity, "flagged": False, "reassign_count": 0} for i in ids])
    engine.dispose()


def test_a_lagging_standby_never_feeds_a_sweep(pair, bare_cli):
    primary, standby = pair
    # Chats 1-3 are idle on both servers before replay stops.
    seed_chats(primary, [1, 2, 3], last_activity=T0)
    wait_for_replay(primary, standby, "desk")
    standby.execute("SELECT pg_wal_replay_pause()")
    # On the primary only: chats 11-14 become idle, and chat 1 gets fresh activity.
    seed_chats(primary, [11, 12, 13, 14], last_activity=T0)
    fresh = T0 + dt.timedelta(hours=2)
    primary.execute(f"UPDATE chats SET last_customer_message_at = '{fresh.isoformat()}', "
                    f"last_activity_at = '{fresh.isoformat()}' WHERE id = 1", "desk")

    as_of = (T0 + dt.timedelta(hours=2, minutes=10)).isoformat()
    dry = run(bare_cli, primary, standby, "sweep", "run", "inactivity", "--as-of", as_of, "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry
    assert dry.json()["jobs"]["inactivity"]["would_change"] == 6
    result = run(bare_cli, primary, standby, "sweep", "run", "inactivity", "--as-of", as_of, "-o", "json")
    assert result.exit_code == 0, result
    assert result.json()["jobs"]["inactivity"]["changed"] == 6

    closed = {chat_id for (chat_id,) in primary.execute("SELECT id FROM chats WHERE status = 'closed'", "desk")}
    assert closed == {2, 3, 11, 12, 13, 14}          # chat 1 was active on the primary: it stays live
    # The standby is still paused before all of it: a sweep reading it would have closed 1 and missed 11-14.
    assert standby.execute("SELECT count(*) FROM chats", "desk") == [(3,)]
    assert standby.execute("SELECT count(*) FROM chats WHERE status = 'closed'", "desk") == [(0,)]

    # The audit rows of the run, listed through the primary, name every change once.
    events = run(bare_cli, primary, standby, "audit", "list", "--operation", result.json()["run_id"], "--all",
                 "-o", "json", read=False).json()
    assert sorted(int(e["entity_id"]) for e in events) == [2, 3, 11, 12, 13, 14]
