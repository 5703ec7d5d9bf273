"""Credentials and hostile values (docs/security.md).

The credential tests run against a private PostgreSQL server that really
checks passwords (scram-sha-256 over TCP), so "it connected" proves the
password came from where the test says: the URL, ``CHATCTL_DATABASE_URL``, a
config profile, a ``.pgpass`` file or a ``pg_service.conf`` entry.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgcluster import ConfiguredServer  # noqa: E402

PASSWORD = "Pw-7f3c9e1d-s3cret"


@pytest.fixture(scope="module")
def scram_server():
    server = ConfiguredServer(auth="scram-sha-256", password=PASSWORD)
    try:
        server.start()
    except Exception as error:
        server.stop()
        pytest.fail(f"cannot start the password-checking PostgreSQL: {error}", pytrace=False)
    server.execute("CREATE DATABASE desk")
    yield server
    server.stop()


@pytest.fixture
def desk_url(scram_server, bare_cli, request):
    """A fresh database at head on the password server; the URL carries no password."""
    import uuid

    name = f"desk_{uuid.uuid4().hex[:8]}"
    scram_server.execute(f"CREATE DATABASE {name}")
    result = bare_cli(["--database-url", scram_server.url(name, password=PASSWORD), "db", "init"])
    assert result.exit_code == 0, result
    yield scram_server.url(name)
    scram_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def assert_no_password(*results) -> None:
    for result in results:
        assert PASSWORD not in result.stdout, result
        assert PASSWORD not in result.stderr, result


def audit_and_runs_text(server: ConfiguredServer, url: str) -> str:
    database = url.rsplit("/", 1)[1]
    rows = server.execute("SELECT row_to_json(a)::text FROM audit_events a", database)
    rows += server.execute("SELECT row_to_json(s)::text FROM sweep_runs s", database)
    rows += server.execute("SELECT row_to_json(p)::text FROM preferences p", database)
    return "\n".join(text for (text,) in rows)


# Commands that succeed, then commands that fail in various ways (exit 1, 2, 3, 70), all with -v too.
def exercise(run) -> list:
    results = [
        run("db", "status"),
        run("db", "status", "-o", "json"),
        run("-v", "db", "status", "-o", "json"),
        run("agents", "add", "alice", "--name", "Alice", "--online"),
        run("agents", "list", "-o", "json"),
        run("prefs", "set", "inactivity_timeout", "45m"),
        run("audit", "list", "-o", "json"),
        run("audit", "list", "-o", "table"),
        run("prefs", "set", "inactivity_timeout", "forever"),            # exit 2
        run("-v", "prefs", "set", "inactivity_timeout", "forever"),
        run("--actor", "nobody", "agents", "set-status", "alice", "offline"),  # unknown actor
        run("audit", "revert", "NOSUCHOPERATION", "--yes"),                 # exit 1
        run("--read-url", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/desk", "audit", "list"),  # exit 3
        run("-v", "--read-url", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/desk", "audit", "list"),
        run("--read-url", f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/desk", "db", "status"),
    ]
    assert results[0].exit_code == 0 and results[3].exit_code == 0 and results[5].exit_code == 0, results
    assert results[8].exit_code == 2 and results[11].exit_code == 1 and results[12].exit_code == 3, results
    return results


def test_password_in_database_url_appears_nowhere(scram_server, desk_url, bare_cli):
    url = with_password(desk_url)
    results = exercise(lambda *args: bare_cli(["--database-url", url, *args]))
    assert_no_password(*results)
    assert "postgres:***@" in results[1].json()["database"]
    assert PASSWORD not in audit_and_runs_text(scram_server, desk_url)


def test_password_in_environment_url_appears_nowhere(scram_server, desk_url, bare_cli):
    env = {"CHATCTL_DATABASE_URL": with_password(desk_url)}
    results = exercise(lambda *args: bare_cli(list(args), env=env))
    assert_no_password(*results)
    assert "postgres:***@" in results[1].json()["database"]
    helps = [bare_cli(["--help"], env=env), bare_cli(["audit", "list", "--help"], env=env)]
    assert_no_password(*helps)
    assert PASSWORD not in audit_and_runs_text(scram_server, desk_url)


def test_password_in_config_profile_appears_nowhere(scram_server, desk_url, bare_cli, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'default_profile = "prod"\n[profiles.prod]\ndatabase_url = "{with_password(desk_url)}"\n')
    os.chmod(config, 0o600)
    results = exercise(lambda *args: bare_cli(["--config", config, *args]))
    assert_no_password(*results)
    assert results[1].json()["source"] == "profile prod"
    assert PASSWORD not in audit_and_runs_text(scram_server, desk_url)


def test_wrong_password_is_exit_3_and_not_echoed(desk_url, bare_cli):
    wrong = desk_url.replace("postgres@", "postgres:Wrong-0ther-pass@", 1)
    for args in (["agents", "list"], ["-v", "agents", "list"], ["db", "status"]):
        result = bare_cli(["--database-url", wrong, *args])
        assert result.exit_code == 3, result
        assert "Wrong-0ther-pass" not in result.stdout + result.stderr
        assert "password authentication failed" in result.stderr
        assert result.stderr.count("\n") == 1


def test_password_as_url_query_parameter_is_redacted(scram_server, desk_url, bare_cli):
    url = f"{desk_url}?password={PASSWORD}&application_name=x"
    status = bare_cli(["--database-url", url, "db", "status", "-o", "json"])
    assert status.exit_code == 0, status
    assert "password=***" in status.json()["database"]
    broken = bare_cli(["--database-url", f"{desk_url}?password={PASSWORD}&sslmode=bogus", "agents", "list"])
    assert broken.exit_code == 3
    assert_no_password(status, broken)


def test_malformed_url_with_password_is_exit_3(bare_cli):
    for url in (f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/desk",
                f"postgresql://postgres:{PASSWORD}@127.0.0.1:99999/desk",
                f"mysql://root:{PASSWORD}@db/x"):
        result = bare_cli(["-v", "--database-url", url, "agents", "list"])
        assert result.exit_code == 3, result
        assert_no_password(result)


def test_pgpassfile_supplies_the_password(desk_url, bare_cli, tmp_path):
    without = bare_cli(["--database-url", desk_url, "agents", "list"])
    assert without.exit_code == 3 and "no password supplied" in without.stderr, without
    passfile = tmp_path / "pgpass"
    host_port = desk_url.split("@", 1)[1].split("/", 1)[0]
    passfile.write_text(f"{host_port}:*:postgres:{PASSWORD}\n")
    os.chmod(passfile, 0o600)
    result = bare_cli(["--database-url", desk_url, "agents", "list", "-o", "json"], env={"PGPASSFILE": str(passfile)})
    assert result.exit_code == 0, result
    assert result.json() == []


def test_dot_pgpass_in_home_supplies_the_password(desk_url, bare_cli):
    """``~/.pgpass`` (HOME is a fresh directory in every test)."""
    host_port = desk_url.split("@", 1)[1].split("/", 1)[0]
    pgpass = Path(os.environ["HOME"]) / ".pgpass"
    pgpass.write_text(f"{host_port}:*:postgres:{PASSWORD}\n")
    os.chmod(pgpass, 0o600)
    result = bare_cli(["--database-url", desk_url, "db", "status", "-o", "json"], env={"PGPASSFILE": None})
    assert result.exit_code == 0, result
    assert result.json()["at_head"] is True


@pytest.mark.parametrize("form", ["query", "environment"])
def test_pgservice_names_the_database(desk_url, bare_cli, tmp_path, form):
    """``postgresql:///?service=desk`` or ``PGSERVICE=desk`` with the URL ``postgresql://``."""
    host_port, database = desk_url.split("@", 1)[1].split("/", 1)
    host, port = host_port.split(":")
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[desk]\nhost={host}\nport={port}\nuser=postgres\ndbname={database}\n")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{host}:{port}:*:postgres:{PASSWORD}\n")
    os.chmod(passfile, 0o600)
    env = {"PGSERVICEFILE": str(services), "PGPASSFILE": str(passfile)}
    if form == "query":
        url = "postgresql:///?service=desk"
    else:
        url, env["PGSERVICE"] = "postgresql://", "desk"
    result = bare_cli(["--database-url", url, "prefs", "set", "timezone", "Europe/Paris"], env=env)
    assert result.exit_code == 0, result
    status = bare_cli(["--database-url", url, "db", "status", "-o", "json"], env=env)
    assert status.json()["at_head"] is True and status.json()["backend"] == "postgresql"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
def test_config_file_other_users_can_read_or_write_is_refused(tmp_path, bare_cli, mode):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.prod]\ndatabase_url = "postgresql://postgres:{PASSWORD}@127.0.0.1:1/desk"\n')
    os.chmod(config, mode)
    result = bare_cli(["--config", config, "--profile", "prod", "agents", "list"])
    assert result.exit_code == 3, result
    assert "chmod 600" in result.stderr
    assert_no_password(result)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_config_file_is_accepted(tmp_path, bare_cli, mode):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.lab]\ndatabase_url = "sqlite:///{tmp_path / "lab.db"}"\n')
    os.chmod(config, mode)
    assert bare_cli(["--config", config, "--profile", "lab", "db", "init"]).exit_code == 0


def test_tracebacks_never_show_locals():
    from chatctl.cli import app

    assert app.pretty_exceptions_show_locals is False


def test_unexpected_error_with_verbose_shows_no_password(scram_server, desk_url, bare_cli):
    """A database that lost a table: the boundary reports it (exit 70), -v adds a redacted traceback."""
    database = desk_url.rsplit("/", 1)[1]
    scram_server.execute("DROP TABLE preferences", database)
    url = with_password(desk_url)
    result = bare_cli(["-v", "--database-url", url, "prefs", "list"])
    assert result.exit_code == 70, result
    assert "Traceback" in result.stderr and PASSWORD not in result.stdout + result.stderr
    quiet = bare_cli(["--database-url", url, "prefs", "list"])
    assert quiet.exit_code == 70, quiet
    assert "Traceback" not in quiet.stderr and PASSWORD not in quiet.stdout + quiet.stderr


# -- SQL-looking values are data --------------------------------------------------------------
HOSTILE = ["x' OR '1'='1", "'; DROP TABLE chats; --", "\" OR 1=1 --", "alice'); DELETE FROM agents; --",
           "%", "_", "\\", "$1", "1; SELECT pg_sleep(10)"]


@pytest.mark.parametrize("value", HOSTILE)
def test_sql_looking_values_are_inert(cli, engine, value):
    import sqlalchemy as sa

    assert cli("agents", "add", "alice", "--name", value).exit_code == 0
    [agent] = cli("agents", "list", "-o", "json").json()
    assert agent["name"] == value                              # stored as typed
    assert cli("audit", "list", "--actor", value, "-o", "json").json() == []
    assert cli("audit", "list", "--entity", f"agent:{value}", "-o", "json").json() == []
    assert cli("audit", "list", "--entity", f"preference:{value}", "-o", "json").json() == []
    rejected = cli("prefs", "set", "timezone", value)
    assert rejected.exit_code == 2 and "Traceback" not in rejected.stderr
    with engine.connect() as connection:
        tables = set(sa.inspect(connection).get_table_names())
        assert {"chats", "agents", "audit_events"} <= tables
        assert connection.execute(sa.text("SELECT count(*) FROM agents")).scalar() == 1


@pytest.mark.parametrize("value", HOSTILE[:4])
def test_sql_looking_filter_values_are_inert(cli, engine, value):
    import sqlalchemy as sa

    result = cli("chats", "filter", f"customer~{value}", "-o", "json")
    assert result.exit_code in (0, 2), result
    if result.exit_code == 0:
        assert json.loads(result.stdout) == []
    with engine.connect() as connection:
        assert "chats" in set(sa.inspect(connection).get_table_names())


# -- database roles ----------------------------------------------------------------------------
def test_read_only_role_serves_read_url_and_cannot_write(pg_server, pg_template, bare_cli):
    """The recommended replica/reporting role: SELECT only, read-only transactions."""
    import uuid

    import psycopg

    suffix = uuid.uuid4().hex[:8]
    database, reader = f"ro_{suffix}", f"desk_reader_{suffix}"
    statements = [f"CREATE DATABASE {database} TEMPLATE {pg_template}", f"CREATE ROLE {reader} LOGIN",
                  f"ALTER ROLE {reader} SET default_transaction_read_only = on"]
    with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)
    try:
        with psycopg.connect(f"{pg_server}/{database}", autocommit=True) as owner:
            owner.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {reader}")
        writer_url = f"{pg_server}/{database}"
        reader_url = writer_url.replace("postgres@", f"{reader}@", 1)
        assert bare_cli(["--database-url", writer_url, "agents", "add", "alice", "--name", "A"]).exit_code == 0
        listed = bare_cli(["--database-url", writer_url, "--read-url", reader_url, "agents", "list", "-o", "json"])
        assert listed.exit_code == 0 and [a["handle"] for a in listed.json()] == ["alice"], listed
        for args in (["agents", "add", "bob", "--name", "B"], ["prefs", "set", "timezone", "UTC"]):
            refused = bare_cli(["--database-url", reader_url, *args])
            assert refused.exit_code == 3, refused
            assert "read-only" in refused.stderr and refused.stderr.count("\n") == 1
        with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
            admin.execute(f"ALTER ROLE {reader} RESET default_transaction_read_only")
        denied = bare_cli(["--database-url", reader_url, "agents", "add", "bob", "--name", "B"])
        assert denied.exit_code == 3 and "permission denied" in denied.stderr and "privilege" in denied.stderr
    finally:
        with psycopg.connect(pg_server + "/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {reader}")
