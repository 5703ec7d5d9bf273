"""Where chatctl finds the desk: config file, profiles, environment, the embedded default."""

from __future__ import annotations

import os
import stat

import pytest


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


def test_db_status_names_the_environment_as_the_source(tmp_path, bare_cli, monkeypatch):
    monkeypatch.setenv("CHATCTL_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert bare_cli(["db", "init"]).exit_code == 0
    assert bare_cli(["db", "status", "-o", "json"]).json()["source"] == "CHATCTL_DATABASE_URL"


def test_db_status_names_the_flag_when_flag_and_environment_agree(tmp_path, bare_cli, monkeypatch):
    """Where the URL came from is what Click saw, not a guess from comparing values."""
    url = f"sqlite:///{tmp_path / 'both.db'}"
    monkeypatch.setenv("CHATCTL_DATABASE_URL", url)
    assert bare_cli(["db", "init"]).exit_code == 0
    assert bare_cli(["--database-url", url, "db", "status", "-o", "json"]).json()["source"] == "--database-url"


def test_sweep_settings_from_the_environment_are_read_by_config():
    from chatctl import config

    assert config.sweep_lease_seconds({}) == config.DEFAULT_SWEEP_LEASE_SECONDS
    assert config.sweep_lease_seconds({"CHATCTL_SWEEP_LEASE_SECONDS": "7"}) == 7
    assert config.sweep_lease_seconds({"CHATCTL_SWEEP_LEASE_SECONDS": "soon"}) == config.DEFAULT_SWEEP_LEASE_SECONDS
    assert config.sweep_lock_disabled({"CHATCTL_SWEEP_NO_LOCK": "1"}) and not config.sweep_lock_disabled({})


def test_only_config_reads_environment_variables():
    """One place decides what the environment means: config (and the terminal's own NO_COLOR/TERM)."""
    import re
    from pathlib import Path

    import chatctl

    readers = []
    for source in Path(chatctl.__file__).parent.rglob("*.py"):
        if source.name in ("config.py", "context.py"):
            continue
        if re.search(r"os\.environ|os\.getenv|getenv\(", source.read_text()):
            readers.append(source.name)
    assert readers == []
