"""The foundation: schema, configuration, agents, preferences, errors."""

from __future__ import annotations

import os
import stat

import pytest


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
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = bare_cli(["--database-url", url, "agents", "list"])
    assert result.exit_code == 3
    assert "chatctl db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_keeps_data(tmp_path, bare_cli):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    assert bare_cli(["--database-url", url, "db", "upgrade"]).exit_code == 0
    assert bare_cli(["--database-url", url, "agents", "add", "alice", "--name", "Alice"]).exit_code == 0
    assert bare_cli(["--database-url", url, "db", "downgrade", "base"]).exit_code == 0
    assert bare_cli(["--database-url", url, "agents", "list"]).exit_code == 3
    assert bare_cli(["--database-url", url, "db", "upgrade"]).exit_code == 0
    assert bare_cli(["--database-url", url, "agents", "add", "alice", "--name", "Alice"]).exit_code == 0
    again = bare_cli(["--database-url", url, "db", "upgrade"])
    assert again.exit_code == 0
    listed = bare_cli(["--database-url", url, "agents", "list", "-o", "json"])
    assert [agent["handle"] for agent in listed.json()] == ["alice"]


def test_agents_add_list_presence_deactivate(cli):
    assert cli("agents", "add", "alice", "--name", "Alice", "--role", "supervisor").exit_code == 0
    assert cli("agents", "add", "bob", "--name", "Bob", "--online").exit_code == 0
    assert cli("agents", "set-status", "alice", "online").exit_code == 0
    agents = {a["handle"]: a for a in cli("agents", "list", "-o", "json").json()}
    assert agents["alice"]["presence"] == "online" and agents["alice"]["role"] == "supervisor"
    assert cli("agents", "deactivate", "bob").exit_code == 0
    assert [a["handle"] for a in cli("agents", "list", "-o", "json").json()] == ["alice"]
    everyone = cli("agents", "list", "--all", "-o", "json").json()
    assert {a["handle"]: a["active"] for a in everyone} == {"alice": True, "bob": False}


def test_agents_add_duplicate_and_bad_handle_are_usage_errors(cli):
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    duplicate = cli("agents", "add", "alice", "--name", "Alice")
    assert duplicate.exit_code == 2 and "already exists" in duplicate.stderr
    bad = cli("agents", "add", "Bad Handle!", "--name", "x")
    assert bad.exit_code == 2 and "bad handle" in bad.stderr


def test_r15_agent_changes_are_audited(cli, engine):
    from sqlalchemy import select

    from chatctl.storage.models import AuditEvent

    cli("agents", "add", "alice", "--name", "Alice")
    cli("agents", "set-status", "alice", "online")
    with engine.connect() as connection:
        events = connection.execute(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [event.action for event in events] == ["agents.add", "agents.set-status"]
    assert events[1].before["presence"] == "offline"
    assert events[1].after["presence"] == "online"
    assert events[0].operation_id != events[1].operation_id
    assert all(event.actor == "ops:tester" for event in events)


def test_prefs_defaults_set_get_unset(cli):
    listed = {row["key"]: row for row in cli("prefs", "list", "-o", "json").json()}
    assert listed["inactivity_timeout"]["value"] == "30m"
    assert listed["ticket_archive_after"]["value"] == "90d"
    assert cli("prefs", "set", "inactivity_timeout", "PT45M").exit_code == 0
    got = cli("prefs", "get", "inactivity_timeout")
    assert got.stdout.strip() == "45m"
    assert cli("prefs", "unset", "inactivity_timeout").exit_code == 0
    assert cli("prefs", "get", "inactivity_timeout").stdout.strip() == "30m"


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("inactivity_timeout", "soon", "90s, 30m"),
        ("inactivity_timeout", "0s", "longer than 0s"),
        ("pending_timeout", "PT0S", "longer than 0s"),
        ("inactivity_action", "explode", "close, ticket"),
        ("agent_max_chats", "-1", ">= 0"),
        ("timezone", "Mars/Base", "IANA"),
        ("business_hours", "whenever", "mon-fri"),
        ("holidays", "2026-13-45", "date"),
    ],
)
def test_bad_preference_value_is_refused_and_nothing_written(cli, key, value, fragment):
    before = cli("prefs", "list", "-o", "json").json()
    result = cli("prefs", "set", key, "--", value)
    assert result.exit_code == 2, result
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert cli("prefs", "list", "-o", "json").json() == before


def test_unknown_preference_key_is_usage_error(cli):
    result = cli("prefs", "set", "nope", "1")
    assert result.exit_code == 2


def test_pref_keys_in_cli_match_domain():
    from chatctl.commands.prefs import PreferenceKey
    from chatctl.domain.prefs import PREFERENCES

    assert [key.value for key in PreferenceKey] == list(PREFERENCES)


@pytest.mark.postgres
def test_unreachable_server_exit_3_without_password(bare_cli):
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


def test_config_profile_precedence(tmp_path, bare_cli, monkeypatch):
    profile_db = tmp_path / "profile.db"
    env_db = tmp_path / "env.db"
    config = tmp_path / "config.toml"
    config.write_text(f'default_profile = "lab"\n[profiles.lab]\ndatabase_url = "sqlite:///{profile_db}"\n')
    os.chmod(config, 0o600)
    assert bare_cli(["--config", config, "db", "init"]).exit_code == 0
    assert profile_db.exists()
    monkeypatch.setenv("CHATCTL_DATABASE_URL", f"sqlite:///{env_db}")
    assert bare_cli(["--config", config, "db", "init"]).exit_code == 0
    assert env_db.exists()
    flag_db = tmp_path / "flag.db"
    assert bare_cli(["--config", config, "--database-url", f"sqlite:///{flag_db}", "db", "init"]).exit_code == 0
    assert flag_db.exists()


def test_embedded_default_lives_in_user_data_dir(bare_cli, tmp_path):
    result = bare_cli(["db", "init"])
    assert result.exit_code == 0, result
    status = bare_cli(["db", "status", "-o", "json"]).json()
    assert status["source"] == "default"
    assert status["database"].endswith("chatctl/chatctl.db")


def test_config_readable_by_others_is_refused(tmp_path, bare_cli):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.x]\ndatabase_url = "postgresql://u:pw@h/d"\n')
    os.chmod(config, 0o644)
    result = bare_cli(["--config", config, "--profile", "x", "agents", "list"])
    assert result.exit_code == 3
    assert "chmod 600" in result.stderr
    assert "pw@" not in result.stderr


@pytest.mark.parametrize("content", ["this is = not toml [", 'profiles = "x"'])
def test_bad_config_is_one_line_exit_3(tmp_path, bare_cli, content):
    config = tmp_path / "config.toml"
    config.write_text(content)
    os.chmod(config, stat.S_IRUSR | stat.S_IWUSR)
    result = bare_cli(["--config", config, "agents", "list"])
    assert result.exit_code == 3, result
    assert result.stderr.count("\n") == 1


def test_unknown_profile(tmp_path, bare_cli):
    config = tmp_path / "config.toml"
    config.write_text('[profiles.prod]\ndatabase_url = "sqlite:///x.db"\n')
    os.chmod(config, 0o600)
    result = bare_cli(["--config", config, "--profile", "staging", "agents", "list"])
    assert result.exit_code == 3 and "prod" in result.stderr


def test_redact_hides_passwords():
    from chatctl.config import redact

    assert "pw" not in redact("postgresql://user:pw@host/db")
    assert "secret" not in redact("host=x password=secret dbname=y")
    assert redact("sqlite:///a.db") == "sqlite:///a.db"


def test_unknown_actor_is_refused(cli):
    result = cli("--actor", "ghost", "prefs", "set", "inactivity_timeout", "1h")
    assert result.exit_code == 2 and "unknown actor" in result.stderr


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
    assert broken[0]["examples"] == [1] and "R9" in broken[0]["check"]


def test_db_status_names_the_environment_as_the_source(tmp_path, bare_cli, monkeypatch):
    monkeypatch.setenv("CHATCTL_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert bare_cli(["db", "init"]).exit_code == 0
    assert bare_cli(["db", "status", "-o", "json"]).json()["source"] == "CHATCTL_DATABASE_URL"
