"""Which server is behind the engine, and what follows from it and from the
``pooler`` / ``sweep_lock`` settings: the sweep lock kind and the session
settings strategy.  CockroachDB and YugabyteDB cannot be installed here, so
their detection is tested at its seam, with the strings their
``SELECT version()`` returns.
"""

from __future__ import annotations

import os

import pytest

from chatctl import config
from chatctl.domain.sweeps.locking import AdvisoryLocks, LeaseLocks, lock_kind, run_locks
from chatctl.errors import ConfigError
from chatctl.storage.engine import CockroachDB, Server, YugabyteDB, create_engine, server_from_version, server_of

VERSIONS = {
    "PostgreSQL 15.10 (Debian 15.10-0+deb12u1) on x86_64-pc-linux-gnu, compiled by gcc (Debian 12.2.0-14) "
    "12.2.0, 64-bit": Server,
    "PostgreSQL 16.4 on aarch64-unknown-linux-gnu, compiled by gcc (GCC) 7.3.1 20180712 (Red Hat 7.3.1-6), "
    "64-bit": Server,
    "CockroachDB CCL v23.1.11 (x86_64-pc-linux-gnu, built 2023/09/27 01:53:43, go1.19.10)": CockroachDB,
    "CockroachDB OSS v22.2.0 (aarch64-unknown-linux-gnu, built 2022/12/05 16:37:32, go1.19.1)": CockroachDB,
    "PostgreSQL 11.2-YB-2.20.1.0-b0 on x86_64-pc-linux-gnu, compiled by clang version 16.0.6, 64-bit": YugabyteDB,
    "PostgreSQL 15.2-YB-2.25.0.0-b0 on x86_64-pc-linux-gnu, compiled by clang version 17.0.6, 64-bit": YugabyteDB,
}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_server_is_recognised_from_its_version_string(version):
    assert server_from_version(version) is VERSIONS[version]


def test_an_unknown_server_is_treated_as_postgresql():
    assert server_from_version("EnterpriseDB 15.2.0 on x86_64") is Server


@pytest.mark.parametrize("version", VERSIONS)
def test_leases_on_every_server_without_session_advisory_locks(engine, version):
    """A lock kind chosen by the detected server: leases on CockroachDB and YugabyteDB."""
    if engine.dialect.name == "sqlite":
        assert lock_kind(engine) == "lease"
        return
    engine.update_execution_options(chatctl_server=server_from_version(version))  # what server_of remembers
    expected = "advisory" if VERSIONS[version] is Server else "lease"
    assert lock_kind(engine) == expected
    locks = run_locks(engine, holder="h", clock=lambda: None)
    assert isinstance(locks, AdvisoryLocks if expected == "advisory" else LeaseLocks)


def test_the_real_server_is_detected_once(engine):
    assert server_of(engine).name == ("sqlite" if engine.dialect.name == "sqlite" else "postgresql")
    assert engine.get_execution_options()["chatctl_server"] is server_of(engine)


@pytest.mark.postgres
def test_a_transaction_pooler_means_leases(pg_server, pg_template):
    engine = create_engine(f"{pg_server}/{pg_template}", pooler="transaction")
    try:
        assert lock_kind(engine) == "lease"
        assert lock_kind(engine, "lease") == "lease"
        with pytest.raises(ConfigError, match="transaction pooler"):
            lock_kind(engine, "advisory")
    finally:
        engine.dispose()


def test_an_explicit_setting_wins_over_auto(engine):
    assert lock_kind(engine, "lease") == "lease"
    if engine.dialect.name == "sqlite":
        with pytest.raises(ConfigError, match="SQLite"):
            lock_kind(engine, "advisory")
    else:
        assert lock_kind(engine, "advisory") == "advisory"


# -- the settings --------------------------------------------------------------------------------
def resolve(environ=None, path=None):
    return config.resolve(database_url=None, read_url=None, profile=None, config=str(path) if path else None,
                          actor=None, tz=None, environ=environ or {})


def profile(tmp_path, body: str):
    path = tmp_path / "config.toml"
    path.write_text(f'default_profile = "prod"\n[profiles.prod]\ndatabase_url = "sqlite:///x.db"\n{body}')
    os.chmod(path, 0o600)
    return path


def test_defaults_are_a_direct_connection_and_auto_locks():
    settings = resolve()
    assert settings.pooler is None and settings.sweep_lock == "auto" and settings.audit_retention is None


def test_the_profile_sets_pooler_lock_and_retention(tmp_path):
    path = profile(tmp_path, 'pooler = "transaction"\nsweep_lock = "lease"\naudit_retention = "400d"\n')
    settings = resolve(path=path)
    assert (settings.pooler, settings.sweep_lock, settings.audit_retention) == ("transaction", "lease", "400d")


def test_the_environment_beats_the_profile(tmp_path):
    path = profile(tmp_path, 'pooler = "transaction"\nsweep_lock = "lease"\n')
    settings = resolve({"CHATCTL_POOLER": "none", "CHATCTL_SWEEP_LOCK": "advisory",
                        "CHATCTL_AUDIT_RETENTION": "90d"}, path)
    assert (settings.pooler, settings.sweep_lock, settings.audit_retention) == (None, "advisory", "90d")
    assert {key: settings.sources[key] for key in ("pooler", "sweep_lock", "audit_retention")} == {
        "pooler": "CHATCTL_POOLER", "sweep_lock": "CHATCTL_SWEEP_LOCK", "audit_retention": "CHATCTL_AUDIT_RETENTION"}
    assert resolve(path=path).sources["sweep_lock"] == f"profile prod in {path}"
    assert resolve().sources["pooler"] == "default"


@pytest.mark.parametrize("key,value", [("pooler", "session"), ("sweep_lock", "mutex")])
def test_a_bad_value_names_the_key_and_the_choices(tmp_path, bare_cli, key, value):
    path = profile(tmp_path, f'{key} = "{value}"\n')
    result = bare_cli(["--config", str(path), "agents", "list"])
    assert result.exit_code == 3, result
    assert key in result.stderr and value in result.stderr and str(path) in result.stderr
    assert result.stderr.count("\n") == 1


def test_advisory_on_sqlite_is_refused_before_the_sweep_runs(cli):
    result = cli("sweep", "run", env={"CHATCTL_SWEEP_LOCK": "advisory"})
    if "sqlite" in cli.url:
        assert result.exit_code == 3, result
        assert "sweep_lock = advisory" in result.stderr and result.stderr.count("\n") == 1
        history = cli("sweep", "history", "-o", "json").json()
        assert history[0]["status"] == "failed"   # the run row does not stay "running"
    else:
        assert result.exit_code == 0, result
