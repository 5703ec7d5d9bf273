"""Configuration fails loudly (SPEC D12), and ``chatctl config show`` says what is in effect and why."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _config(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def _desk(tmp_path, bare_cli, name: str = "desk.db") -> str:
    url = f"sqlite:///{tmp_path / name}"
    assert bare_cli(["--database-url", url, "db", "init"]).exit_code == 0
    return url


def test_d12_unknown_key_in_a_profile_names_key_file_and_nearest_key(tmp_path, bare_cli):
    url = _desk(tmp_path, bare_cli)
    path = _config(tmp_path, f'default_profile = "prod"\n[profiles.prod]\ndatabse_url = "{url}"\n')
    for args in (["db", "status"], ["chats", "filter", "status=live", "--count"], ["config", "show"]):
        result = bare_cli(["--config", path, *args])
        assert result.exit_code == 3, (args, result)
        assert "'databse_url'" in result.stderr and str(path) in result.stderr, result
        assert "did you mean 'database_url'" in result.stderr, result
        assert result.stdout == ""


def test_d12_unknown_top_level_key_and_a_typo_in_another_profile_fail_too(tmp_path, bare_cli):
    url = _desk(tmp_path, bare_cli)
    top = _config(tmp_path, f'default_profil = "prod"\n[profiles.prod]\ndatabase_url = "{url}"\n')
    result = bare_cli(["--config", top, "agents", "list"])
    assert result.exit_code == 3 and "did you mean 'default_profile'" in result.stderr, result
    other = _config(tmp_path, f'[profiles.prod]\ndatabase_url = "{url}"\n[profiles.lab]\nactr = "bob"\n')
    result = bare_cli(["--config", other, "--profile", "prod", "agents", "list"])
    assert result.exit_code == 3 and "'actr'" in result.stderr and "profile 'lab'" in result.stderr, result


def test_d12_selected_profile_without_database_url_is_exit_3_not_the_embedded_file(tmp_path, bare_cli, monkeypatch):
    monkeypatch.delenv("CHATCTL_ACTOR")
    path = _config(tmp_path, '[profiles.prod]\nactor = "ops:night"\n')
    result = bare_cli(["--config", path, "--profile", "prod", "db", "status"])
    assert result.exit_code == 3, result
    assert "profile 'prod'" in result.stderr and "database_url" in result.stderr
    assert not (tmp_path / "home").exists() and "chatctl.db" not in result.stdout
    # A URL given another way is fine: the profile still gives the actor.
    url = _desk(tmp_path, bare_cli)
    shown = bare_cli(["--config", path, "--profile", "prod", "--database-url", url, "config", "show", "-o", "json"])
    assert shown.exit_code == 0, shown
    assert {row["setting"]: row["value"] for row in shown.json()}["actor"] == "ops:night"


@pytest.mark.parametrize("args", [["chats", "list"], ["db", "status"], ["tickets", "list"], ["agents", "list"],
                                  ["sweep", "history"], ["prefs", "list"], ["chats", "close", "1"]])
def test_d12_no_command_but_db_init_creates_a_database_file_or_directory(tmp_path, bare_cli, args):
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    result = bare_cli(["--database-url", f"sqlite:///{missing}", *args])
    assert result.exit_code == 3, result
    assert str(missing) in result.stderr and "db init" in result.stderr
    assert not (tmp_path / "no").exists(), "a directory was created"


def test_d12_the_embedded_default_is_not_created_by_a_read_command(bare_cli, tmp_path):
    result = bare_cli(["chats", "list"])
    assert result.exit_code == 3 and "chatctl.db" in result.stderr and "db init" in result.stderr
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "chatctl").exists(), "the data directory was created"
    assert bare_cli(["db", "init"]).exit_code == 0
    assert bare_cli(["chats", "list"]).exit_code == 0


def test_d12_schema_errors_name_the_database(tmp_path, bare_cli):
    import sqlite3

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = bare_cli(["--database-url", f"sqlite:///{empty}", "chats", "list"])
    assert result.exit_code == 3 and str(empty) in result.stderr and "no chatctl schema" in result.stderr, result
    replica = bare_cli(["--database-url", _desk(tmp_path, bare_cli), "--read-url", f"sqlite:///{empty}",
                        "chats", "list"])
    assert replica.exit_code == 3 and str(empty) in replica.stderr, replica


def test_d12_unknown_actor_from_a_profile_names_the_profile(tmp_path, bare_cli, monkeypatch):
    monkeypatch.delenv("CHATCTL_ACTOR")
    url = _desk(tmp_path, bare_cli)
    path = _config(tmp_path, f'[profiles.prod]\ndatabase_url = "{url}"\nactor = "bob"\n')
    result = bare_cli(["--config", path, "--profile", "prod", "chats", "close", "1"])
    assert result.exit_code == 3, result
    assert "unknown actor 'bob'" in result.stderr and "profile prod" in result.stderr and str(path) in result.stderr
    typed = bare_cli(["--config", path, "--profile", "prod", "--actor", "carol", "chats", "close", "1"])
    assert typed.exit_code == 2 and "unknown actor 'carol'" in typed.stderr and "profile" not in typed.stderr


def test_d12_config_show_says_where_each_setting_came_from(tmp_path, bare_cli, monkeypatch):
    monkeypatch.delenv("CHATCTL_ACTOR")
    url = _desk(tmp_path, bare_cli)
    assert bare_cli(["--database-url", url, "prefs", "set", "timezone", "Africa/Johannesburg"]).exit_code == 0
    path = _config(tmp_path, f'default_profile = "prod"\n[profiles.prod]\ndatabase_url = "{url}"\n'
                             'read_url = "postgresql://reader:s3cret@replica/desk"\nlock_timeout = "3s"\n'
                             'sweep_lock = "lease"\n')
    monkeypatch.setenv("CHATCTL_STATEMENT_TIMEOUT", "2min")
    result = bare_cli(["--config", path, "--actor", "ops:me", "config", "show", "-o", "json"])
    assert result.exit_code == 0, result
    shown = {row["setting"]: (row["value"], row["source"]) for row in result.json()}
    assert shown["config"] == (str(path), "--config")
    assert shown["profile"] == ("prod", f"default_profile in {path}")
    assert shown["database_url"] == (url, "profile prod")
    assert shown["read_url"] == ("postgresql+psycopg://reader:***@replica/desk", f"profile prod in {path}")
    assert shown["actor"] == ("ops:me", "--actor")
    assert shown["timezone"] == ("Africa/Johannesburg", "the desk's timezone preference")
    assert shown["statement_timeout"] == ("2min", "CHATCTL_STATEMENT_TIMEOUT")
    assert shown["lock_timeout"] == ("3s", f"profile prod in {path}")
    assert shown["idle_in_transaction_session_timeout"] == ("5min", "default")
    assert shown["sweep_lock"] == ("lease", f"profile prod in {path}")
    assert shown["pooler"] == ("none", "default")
    assert "s3cret" not in result.stdout
    monkeypatch.setenv("CHATCTL_PROFILE", "prod")
    by_env = {row["setting"]: row["source"] for row in bare_cli(
        ["--config", path, "--tz", "UTC", "config", "show", "-o", "json"]).json()}
    assert by_env["profile"] == "CHATCTL_PROFILE" and by_env["timezone"] == "--tz" and by_env["actor"] == "default"
