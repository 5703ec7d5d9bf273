"""The test rig: every database test runs on SQLite and on a real PostgreSQL.

* ``database_url`` is parametrised over ``sqlite`` and ``postgresql``: a fresh
  database at schema head for each test (a copied SQLite file / a PostgreSQL
  database cloned from a migrated template).
* ``cli`` runs chatctl through its real error boundary and returns exit code,
  stdout and stderr separately.
* ``engine`` is a SQLAlchemy engine on the test's database for domain tests.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pgserver import PostgresServer  # noqa: E402

try:  # every property test draws its examples from a fixed seed, so a failure reproduces
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("chatctl", derandomize=True, database=None)
    _hypothesis_settings.load_profile("chatctl")
except ImportError:  # hypothesis is a test dependency; without it the property tests fail to import
    pass

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """No test reads the developer's config or writes their data dir."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for name in list(os.environ):
        if name.startswith("CHATCTL_") and not name.startswith("CHATCTL_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("CHATCTL_ACTOR", "ops:tester")


# -- PostgreSQL -------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():
    external = os.environ.get("CHATCTL_TEST_PG_URL")
    if external:
        yield external.rsplit("/", 1)[0]
        return
    server = PostgresServer()
    try:
        server.start()
    except Exception as error:  # the suite fails here rather than skipping
        server.stop()
        pytest.fail(f"cannot start PostgreSQL for the tests: {error}", pytrace=False)
    yield server.url("").rstrip("/")
    server.stop()


@pytest.fixture(scope="session")
def pgbouncer(pg_server):
    """A PgBouncer in transaction pooling mode in front of the suite's server (``tests/pgbouncer.py``)."""
    from urllib.parse import urlsplit

    from pgbouncer import PgBouncer

    upstream = urlsplit(pg_server)
    bouncer = PgBouncer(upstream.hostname or "127.0.0.1", upstream.port or 5432)
    try:
        bouncer.start()
    except Exception as error:  # like the server: fail, never skip
        bouncer.stop()
        pytest.fail(f"cannot start PgBouncer for the tests: {error}", pytrace=False)
    yield bouncer
    bouncer.stop()


def _admin_execute(base_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(base_url + "/postgres", autocommit=True) as connection:
        connection.execute(statement)


@pytest.fixture(scope="session")
def pg_template(pg_server):
    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    name = f"chatctl_template_{os.getpid()}"
    _admin_execute(pg_server, f"DROP DATABASE IF EXISTS {name}")
    _admin_execute(pg_server, f"CREATE DATABASE {name}")
    engine = create_engine(f"{pg_server}/{name}")
    schema.upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    from chatctl.storage import schema
    from chatctl.storage.engine import create_engine

    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_engine(f"sqlite:///{path}")
    schema.upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


_counter = itertools.count()


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


def on_postgres(request) -> None:
    """Record that this test got a database on a PostgreSQL server the suite started.

    Called where a fixture hands a test its URL, so a test counts whether it then talks to
    the server in-process or through a chatctl subprocess.  The CI gate counts these."""
    if ("postgres", True) not in request.node.user_properties:
        request.node.user_properties.append(("postgres", True))


@pytest.fixture(autouse=True)
def _count_postgres_servers(request):
    if POSTGRES_FIXTURES.intersection(request.fixturenames):
        on_postgres(request)


@pytest.fixture
def database_url(backend, request, tmp_path):
    """A fresh database at schema head on the parametrised backend."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "desk.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    server = request.getfixturevalue("pg_server")
    template = request.getfixturevalue("pg_template")
    name = f"t_{os.getpid()}_{next(_counter)}"
    _admin_execute(server, f"CREATE DATABASE {name} TEMPLATE {template}")
    on_postgres(request)
    yield f"{server}/{name}"
    _admin_execute(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def engine(database_url):
    from chatctl.storage.engine import create_engine

    engine = create_engine(database_url)
    yield engine
    engine.dispose()


# -- running the CLI ------------------------------------------------------------------
@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def jsonl(self):
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]

    def __repr__(self) -> str:  # readable assertion failures
        return f"Result(exit_code={self.exit_code}, stdout={self.stdout[:2000]!r}, stderr={self.stderr[:2000]!r})"


class _Stream(io.StringIO):
    def __init__(self, value: str = "", tty: bool = False) -> None:
        super().__init__(value)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def invoke(args, *, input: str | None = None, tty: bool = False, env: dict | None = None) -> Result:
    from chatctl.cli import run

    stdout, stderr = _Stream(tty=tty), _Stream(tty=tty)
    stdin = _Stream(input or "", tty=tty and input is None)
    saved_env = {}
    for key, value in (env or {}).items():
        saved_env[key] = os.environ.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    saved = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = run([str(arg) for arg in args])
    finally:
        sys.stdin = saved
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Result(code, stdout.getvalue(), stderr.getvalue())


@pytest.fixture
def cli(database_url):
    """Run chatctl against the test's database: ``cli("chats", "list", input=..., tty=...)``."""

    def run_cli(*args, input: str | None = None, tty: bool = False, env: dict | None = None) -> Result:
        return invoke(["--database-url", database_url, *args], input=input, tty=tty, env=env)

    run_cli.url = database_url
    return run_cli


@pytest.fixture
def bare_cli():
    """Run chatctl with no database option (configuration tests)."""
    return invoke


# -- proof that PostgreSQL really ran --------------------------------------------------
# Fixtures that hand a test a server the suite started (the parametrised ``backend`` is the other way in).
POSTGRES_FIXTURES = {"pg_server", "scram_server"}
FLOOR_FILE = Path(__file__).parent / "postgres_floor.txt"
_postgres_outcomes = {"passed": 0, "failed": 0, "skipped": 0}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the marker must already be there
def pytest_collection_modifyitems(config, items):
    """Mark ``postgres`` every test that gets a PostgreSQL database, so `-m postgres` selects them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and callspec.params.get("backend") == "postgresql") or \
                POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)


def postgres_floor() -> int:
    """The least number of passing tests on PostgreSQL a CI run accepts (first number in the file)."""
    for line in FLOOR_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return int(line.split()[0])
    raise ValueError(f"{FLOOR_FILE} holds no number")


def pytest_runtest_logreport(report):
    if ("postgres", True) not in report.user_properties:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _postgres_outcomes[report.outcome] += 1


def _is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_terminal_summary(terminalreporter):
    counts = ", ".join(f"{number} {outcome}" for outcome, number in _postgres_outcomes.items())
    line = f"tests whose database was on the suite's PostgreSQL server: {counts}"
    if _is_ci():
        line += f" (CI floor: {postgres_floor()} passed, from {FLOOR_FILE.name})"
    terminalreporter.write_line(line)


def pytest_sessionfinish(session, exitstatus):
    # In CI, fewer passing PostgreSQL tests than the floor, or any skipped, fails the run.
    if not _is_ci() or not session.testscollected or hasattr(session.config, "workerinput"):
        return  # the xdist controller decides, from every worker's reports
    if _postgres_outcomes["passed"] < postgres_floor() or _postgres_outcomes["skipped"]:
        session.exitstatus = 1
