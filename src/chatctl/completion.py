"""Dynamic shell completion: values that live in the desk's database.

The completion scripts in ``completions/`` call ``chatctl`` with
``_CHATCTL_COMPLETE`` set on every <Tab>, so what is offered always matches
the installed version.  Commands, options and fixed choices (output formats,
tabs, jobs, preference keys) come from the command tree itself; agent handles
and sweep jobs come from here.

A completer runs while the user waits at a prompt, so it must be quick and
must never print an error into their command line: it reads the database
directly (stdlib ``sqlite3``, or psycopg with a short connect timeout - never
SQLAlchemy), opens SQLite read-only so a <Tab> never creates a database file,
and offers nothing at all when the database is missing, unreachable or not
yet migrated.
"""

from __future__ import annotations

import typer

CONNECT_TIMEOUT_SECONDS = 2
MAX_SUGGESTIONS = 200
_AGENT_QUERY = (
    "SELECT handle, name, role, presence FROM agents WHERE active = {true} AND handle LIKE {marker} "
    "ORDER BY handle LIMIT {limit}"
)


def complete_agent_handle(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Active agents' handles starting with ``incomplete``, each with its name, role and presence.

    Use as ``typer.Option(..., autocompletion=complete_agent_handle)``.
    """
    try:
        return [
            (handle, f"{name} ({role}, {presence})")
            for handle, name, role, presence in _agents(ctx, incomplete)
        ]
    except Exception:  # noqa: BLE001 - a <Tab> must never show an error; offer nothing
        return []


def _agents(ctx: typer.Context, incomplete: str) -> list[tuple[str, str, str, str]]:
    url = _database_url(ctx)
    prefix = incomplete.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    if url.startswith("sqlite:"):
        return _sqlite_agents(url, prefix)
    if url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres"):
        return _postgres_agents(url, prefix)
    return []


def _database_url(ctx: typer.Context) -> str:
    """The URL a read would use, from the global options already on the command line."""
    from chatctl import config

    params = ctx.find_root().params
    settings = config.resolve(
        database_url=params.get("database_url"),
        read_url=params.get("read_url"),
        profile=params.get("profile"),
        config=params.get("config"),
        actor=None,
        tz=None,
    )
    return settings.read_url or settings.database_url


def _sqlite_agents(url: str, prefix: str) -> list[tuple[str, str, str, str]]:
    import sqlite3
    from pathlib import Path
    from urllib.parse import quote

    path = url.split("://", 1)[1].split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path  # sqlite:///rel.db, sqlite:////abs.db
    if not path or path == ":memory:" or not Path(path).is_file():
        return []
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        query = _AGENT_QUERY.format(true="1", marker="? ESCAPE '\\'", limit=MAX_SUGGESTIONS)
        return [tuple(row) for row in connection.execute(query, (prefix,))]
    finally:
        connection.close()


def _postgres_agents(url: str, prefix: str) -> list[tuple[str, str, str, str]]:
    import psycopg

    libpq_url = "postgresql:" + url.split(":", 1)[1]  # postgresql+psycopg:// -> postgresql://
    with psycopg.connect(
        libpq_url,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        options=f"-c statement_timeout={CONNECT_TIMEOUT_SECONDS * 1000}",
        autocommit=True,
    ) as connection:
        query = _AGENT_QUERY.format(true="true", marker="%s", limit=MAX_SUGGESTIONS)
        return [tuple(row) for row in connection.execute(query, (prefix,)).fetchall()]


def complete_channel(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    """The known channels starting with ``incomplete`` (any other lower-case word works too).

    Use as ``typer.Option(..., autocompletion=complete_channel)`` on ``--channel``.
    """
    from chatctl.vocabulary import CHANNELS

    return [channel for channel in CHANNELS if channel.startswith(incomplete)]


def complete_sweep_job(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    """Sweep job names starting with ``incomplete``, in run order, leaving out those already given.

    Use as ``typer.Argument(..., autocompletion=complete_sweep_job)`` on ``sweep run [JOB]...``.
    """
    try:
        from chatctl.vocabulary import SWEEP_JOBS

        given = set(ctx.params.get("jobs") or ()) | set(args)
        return [job for job in SWEEP_JOBS if job.startswith(incomplete) and job not in given]
    except Exception:  # noqa: BLE001 - a <Tab> must never show an error
        return []
