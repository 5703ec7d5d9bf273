"""The same sweep from several hosts at once (docs/scaling.md): separate
``chatctl sweep run`` processes against one PostgreSQL database -- sharded,
unsharded, and with the run lock bypassed -- change each eligible chat
exactly once, with exactly one audit row.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid

import psycopg
import pytest
import sqlalchemy as sa

from chatctl.storage.engine import create_engine
from chatctl.storage.models import Chat, Customer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.timezone.utc)
CHATS = 600


@pytest.fixture
def pg_url(pg_server, pg_template):
    name = f"scale_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield f"{pg_server}/{name}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# The named subset run through PgBouncer: ``pytest -m pgbouncer_concurrency`` (docs/scaling.md, section 4).
THROUGH_PGBOUNCER = pytest.param("pgbouncer", marks=pytest.mark.pgbouncer_concurrency)
# Advisory locks held in this test's database (the server is shared with other tests).
ADVISORY_LOCKS_HERE = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


def seed_idle_chats(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.insert(Customer).values(id=1, display_name="C", address="+27820000001", created_at=T0))
        connection.execute(sa.insert(Chat), [
            {"id": i, "customer_id": 1, "channel": "webchat", "status": "live", "created_at": T0,
             "last_customer_message_at": T0, "last_agent_message_at": T0, "last_activity_at": T0,
             "flagged": False, "reassign_count": 0} for i in range(1, CHATS + 1)])
    engine.dispose()


@pytest.mark.parametrize("route", ["direct", THROUGH_PGBOUNCER])
def test_several_sweepers_change_each_chat_exactly_once(pg_url, tmp_path, route, request):
    """Through PgBouncer (transaction pooling) the run lock is a lease; directly it is an advisory lock."""
    seed_idle_chats(pg_url)
    as_of = (T0 + dt.timedelta(hours=3)).isoformat()
    url = pg_url if route == "direct" else request.getfixturevalue("pgbouncer").route(pg_url)
    base = [sys.executable, "-m", "chatctl", "--database-url", url, "-q", "sweep", "run", "inactivity",
            "--as-of", as_of, "--batch-size", "25"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATCTL_") or k.startswith("CHATCTL_TEST_")}
    if route == "pgbouncer":
        env["CHATCTL_POOLER"] = "transaction"
    hosts = [
        (base + ["--shard", "1/2"], {}),
        (base + ["--shard", "2/2"], {}),
        (base, {"CHATCTL_SWEEP_NO_LOCK": "1"}),   # lock bypassed: only the claims keep them apart
        (base, {"CHATCTL_SWEEP_NO_LOCK": "1"}),
        (base + ["--skip-if-locked"], {}),
    ]
    processes = [subprocess.Popen(args, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for args, extra in hosts]
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in processes]
    for code, stderr in outcomes:
        assert code == 0, stderr
        assert "Traceback" not in stderr and "prepared statement" not in stderr

    engine = create_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM chats WHERE status = 'closed'")).scalar() == CHATS
        per_chat = connection.execute(sa.text(
            "SELECT entity_id, count(*) FROM audit_events WHERE entity_type = 'chat' GROUP BY entity_id")).all()
        runs = connection.execute(sa.text("SELECT count(*) FROM sweep_runs WHERE status = 'ok'")).scalar()
        leases = connection.execute(sa.text("SELECT count(*) FROM sweep_leases")).scalar()
        advisory = connection.execute(sa.text(ADVISORY_LOCKS_HERE)).scalar()
    engine.dispose()
    assert len(per_chat) == CHATS
    assert {count for _, count in per_chat} == {1}      # none doubled, none lost
    assert runs == len(hosts)
    assert leases == 0 and advisory == 0, "a run lock left behind"
