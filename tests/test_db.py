"""The schema and the database: init, status, upgrade and downgrade, check, unreachable servers."""

from __future__ import annotations

from chatctl.storage import schema


def test_db_init_twice_is_harmless(cli):
    first = cli("db", "init")
    second = cli("db", "init")
    assert first.exit_code == 0 and second.exit_code == 0, (first, second)
    assert "already at" in second.stderr


def test_db_status_json(cli):
    result = cli("db", "status", "-o", "json")
    assert result.exit_code == 0, result
    status = result.json()
    assert status["at_head"] is True
    assert status["revision"] == status["head"]


def test_commands_refuse_database_without_schema(tmp_path, bare_cli):
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()  # a database file, without chatctl's tables
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = bare_cli(["--database-url", url, "agents", "list"])
    assert result.exit_code == 3
    assert "chatctl db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_downgrade_and_upgrade_keep_data(cli):
    """The round trip on both backends: down to base (nothing usable: exit 3), up again, data written after
    the first upgrade kept by the next one."""
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    assert cli("db", "downgrade", "base").exit_code == 0
    assert cli("agents", "list").exit_code == 3
    assert cli("db", "upgrade").exit_code == 0
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    again = cli("db", "upgrade")
    assert again.exit_code == 0
    listed = cli("agents", "list", "-o", "json")
    assert [agent["handle"] for agent in listed.json()] == ["alice"]
    assert cli("db", "status", "-o", "json").json()["at_head"] is True


def test_unreachable_server_exit_3_without_password(bare_cli):  # port 1: no server needed
    result = bare_cli(["--database-url", "postgresql://ops:s3cr3t-pw@127.0.0.1:1/desk", "agents", "list"])
    assert result.exit_code == 3
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "***" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_url_exit_3(bare_cli):
    result = bare_cli(["--database-url", "mysql://root:hunter2@db/x", "agents", "list"])
    assert result.exit_code == 3
    assert "hunter2" not in result.stderr
    garbage = bare_cli(["--database-url", "not a url", "agents", "list"])
    assert garbage.exit_code == 3 and "Traceback" not in garbage.stderr


def test_db_check_finds_violations(cli, engine):
    import datetime as dt

    from sqlalchemy import insert

    from chatctl.storage.models import Agent, Chat, Comment, Customer

    now = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
    assert cli("db", "check").exit_code == 0
    with engine.begin() as connection:
        connection.execute(insert(Agent).values(id=1, handle="a", name="A", role="agent", presence="online",
                                                active=True, created_at=now))
        connection.execute(insert(Customer).values(id=1, display_name="C", address="+1", created_at=now))
        connection.execute(insert(Chat).values(id=7, customer_id=1, channel="sms", status="closed", created_at=now,
                                               last_activity_at=now, closed_at=now, closed_by="agent"))
        connection.execute(insert(Comment).values(chat_id=7, agent_id=1, body="left behind", created_at=now))
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 1
    broken = [row for row in result.json() if row["violations"]]
    assert broken[0]["examples"] == [1] and broken[0]["check"] == "comments on closed or converted chats"


def test_db_check_reports_words_outside_the_vocabulary(cli, engine):
    import datetime as dt

    from sqlalchemy import insert

    from chatctl.storage.models import Agent, Chat, Customer, Message, Ticket

    now = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
    with engine.begin() as connection:
        connection.execute(insert(Agent).values(id=1, handle="a", name="A", role="boss", presence="online",
                                                active=True, created_at=now))
        connection.execute(insert(Customer).values(id=1, display_name="C", address="+1", created_at=now))
        connection.execute(insert(Chat).values(id=7, customer_id=1, channel="sms", status="limbo", created_at=now,
                                               last_activity_at=now))
        connection.execute(insert(Chat).values(id=8, customer_id=1, channel="sms", status="closed", created_at=now,
                                               last_activity_at=now, closed_at=now, closed_by="robot"))
        connection.execute(insert(Ticket).values(id=3, chat_id=8, status="open", reason="lost", created_at=now))
        connection.execute(insert(Message).values(id=5, chat_id=8, direction="inbound", kind="sticker", body="",
                                                  created_at=now))
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 1
    broken = {row["check"]: row["examples"] for row in result.json() if row["violations"]}
    assert broken == {
        "chats in an unknown status": [7],
        "chats closed by an unknown party": [8],
        "tickets in an unknown status or with an unknown reason": [3],
        "agents with an unknown role or presence": [1],
        "messages with an unknown direction or kind": [5],
    }


# -- the at-head check every command makes ----------------------------------------------
def test_head_constant_is_alembic_head():
    # Commands compare the database with schema.HEAD without importing Alembic;
    # a new revision must move it.
    from alembic.script import ScriptDirectory

    assert schema.HEAD == ScriptDirectory.from_config(schema.alembic_config()).get_current_head()


def test_tables_describe_the_migrated_schema(engine):
    """The Core tables chatctl queries through are exactly what the revisions create."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from chatctl.storage.models import metadata

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_current_revision_reads_the_version_table(engine):
    with engine.connect() as connection:
        assert schema.current_revision(connection) == schema.HEAD


def test_a_database_behind_head_is_refused_with_the_fix(cli, engine):
    schema.downgrade(engine, "0003")
    result = cli("chats", "list", "live")
    assert result.exit_code == 3
    assert f"the database schema is at 0003, chatctl needs {schema.HEAD}" in result.stderr
    assert "chatctl db upgrade" in result.stderr
    assert cli("db", "upgrade").exit_code == 0
    assert cli("chats", "list", "live").exit_code == 0
