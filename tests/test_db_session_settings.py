"""Session settings for ops safety on PostgreSQL: statement_timeout, lock_timeout,
idle_in_transaction_session_timeout -- defaults, config profile keys,
CHATCTL_* environment overrides, and what a held lock does to a write.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg
import pytest

from chatctl import config
from chatctl.context import Desk, Environment
from chatctl.storage.engine import DEFAULT_SESSION

pytestmark = pytest.mark.postgres
SETTINGS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


@pytest.fixture
def pg_url(pg_server, pg_template):
    name = f"session_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    yield f"{pg_server}/{name}"
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def shown(engine) -> dict[str, str]:
    import sqlalchemy as sa

    with engine.connect() as connection:
        return {name: connection.execute(sa.text(f"SHOW {name}")).scalar() for name in SETTINGS}


def desk_for(url: str, *, environ: dict | None = None, config_path=None, read_url: str | None = None) -> Desk:
    settings = config.resolve(database_url=None, read_url=read_url, profile=None,
                              config=str(config_path) if config_path else None, actor=None, tz=None,
                              environ={"CHATCTL_DATABASE_URL": url, **(environ or {})})
    return Desk(settings, Environment())


def test_defaults_are_applied_to_every_connection(pg_url):
    assert DEFAULT_SESSION == {"statement_timeout": "15min", "lock_timeout": "10s",
                               "idle_in_transaction_session_timeout": "5min"}
    desk = desk_for(pg_url, read_url=pg_url)
    try:
        assert shown(desk.engine()) == DEFAULT_SESSION
        assert shown(desk.read_engine()) == DEFAULT_SESSION
    finally:
        desk.dispose()


def test_config_profile_keys_override_the_defaults(pg_url, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('default_profile = "ops"\n[profiles.ops]\nstatement_timeout = "45s"\n'
                    'lock_timeout = "2s"\nidle_in_transaction_session_timeout = "1min"\n')
    os.chmod(path, 0o600)
    desk = desk_for(pg_url, config_path=path)
    try:
        assert shown(desk.engine()) == {"statement_timeout": "45s", "lock_timeout": "2s",
                                        "idle_in_transaction_session_timeout": "1min"}
    finally:
        desk.dispose()


def test_environment_overrides_beat_the_profile(pg_url, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('default_profile = "ops"\n[profiles.ops]\nstatement_timeout = "45s"\nlock_timeout = "2s"\n')
    os.chmod(path, 0o600)
    desk = desk_for(pg_url, config_path=path, environ={"CHATCTL_STATEMENT_TIMEOUT": "90s",
                                                       "CHATCTL_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30s"})
    try:
        assert shown(desk.engine()) == {"statement_timeout": "90s", "lock_timeout": "2s",
                                        "idle_in_transaction_session_timeout": "30s"}
    finally:
        desk.dispose()


def test_a_bad_setting_value_is_exit_3_in_one_line(pg_url, bare_cli):
    result = bare_cli(["--database-url", pg_url, "agents", "list"], env={"CHATCTL_LOCK_TIMEOUT": "soon"})
    assert result.exit_code == 3, result
    assert "lock_timeout" in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def hold_agent_row(url: str, handle: str) -> psycopg.Connection:
    holder = psycopg.connect(url)
    holder.execute("SELECT id FROM agents WHERE handle = %s FOR UPDATE", (handle,))
    return holder


def test_a_held_lock_makes_a_write_fail_after_lock_timeout(pg_url, bare_cli):
    assert bare_cli(["--database-url", pg_url, "agents", "add", "alice", "--name", "A"]).exit_code == 0
    holder = hold_agent_row(pg_url, "alice")
    try:
        started = time.monotonic()
        result = bare_cli(["--database-url", pg_url, "agents", "set-status", "alice", "online"],
                          env={"CHATCTL_LOCK_TIMEOUT": "300ms"})
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 3, result
    assert "lock timeout" in result.stderr and "CHATCTL_LOCK_TIMEOUT" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert elapsed < 5, elapsed
    listed = bare_cli(["--database-url", pg_url, "agents", "list", "-o", "json"]).json()
    assert listed[0]["presence"] == "offline"  # nothing changed
    assert len(bare_cli(["--database-url", pg_url, "audit", "list", "-o", "json"]).json()) == 1


def test_statement_timeout_stops_a_long_wait(pg_url, bare_cli):
    """With a long lock_timeout, statement_timeout is what ends the wait."""
    assert bare_cli(["--database-url", pg_url, "agents", "add", "alice", "--name", "A"]).exit_code == 0
    holder = hold_agent_row(pg_url, "alice")
    try:
        started = time.monotonic()
        result = bare_cli(["--database-url", pg_url, "agents", "deactivate", "alice"],
                          env={"CHATCTL_LOCK_TIMEOUT": "1min", "CHATCTL_STATEMENT_TIMEOUT": "400ms"})
        elapsed = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    assert result.exit_code == 3, result
    assert "statement timeout" in result.stderr and "CHATCTL_STATEMENT_TIMEOUT" in result.stderr
    assert elapsed < 5, elapsed


def test_idle_in_transaction_timeout_is_enforced_by_the_server(pg_url):
    """A session left idle inside a transaction is ended by the server, releasing its locks."""
    import sqlalchemy as sa

    desk = desk_for(pg_url, environ={"CHATCTL_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "300ms"})
    try:
        with desk.engine().connect() as connection:
            connection.execute(sa.text("SELECT 1"))  # opens the transaction
            time.sleep(1.0)
            with pytest.raises(sa.exc.DBAPIError):
                connection.execute(sa.text("SELECT 1"))
    finally:
        desk.dispose()
