"""chatctl db: create, migrate and check the desk's schema."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import OutputOpt, YesOpt, confirm_selection, desk, fmt
from chatctl.errors import ExitCode

app = typer.Typer(
    help="Create, migrate and check the desk's schema (Alembic revisions shipped with chatctl).\n\n"
    "Example:\n\n\b\n    chatctl db init && chatctl db status",
    no_args_is_help=True,
)


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the schema, or bring it to head; harmless on a database that has it.

    Example: chatctl --database-url postgresql://chatctl@db/desk db init
    """
    _upgrade(ctx, "head")


@app.command("upgrade")
def upgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default head), keeping the data.

    Example: chatctl db upgrade
    """
    _upgrade(ctx, revision)


def _upgrade(ctx: typer.Context, revision: str) -> None:
    from chatctl.storage import schema

    the_desk = desk(ctx)
    with the_desk.errors():
        before, after = schema.upgrade(the_desk.engine(check_schema=False, create=True), revision)
    url = _url(the_desk)
    if before == after:
        the_desk.env.note(f"{url}: schema already at {after}")
    else:
        the_desk.env.note(f"{url}: schema upgraded from {before or 'empty'} to {after}")


@app.command("downgrade")
def downgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument(help="Target revision (base = empty).")],
              yes: YesOpt = False) -> None:
    """Revert migrations down to REVISION.  Dropping tables loses their data.

    It needs --yes, or a confirmation typed at a terminal.

    Example: chatctl db downgrade base --yes
    """
    from chatctl.storage import schema

    the_desk = desk(ctx)
    confirm_selection(the_desk, yes, f"downgrade {_url(the_desk)} to {revision}, dropping what later revisions "
                      "added with its data")
    with the_desk.errors():
        before, after = schema.downgrade(the_desk.engine(check_schema=False), revision)
    the_desk.env.note(f"{_url(the_desk)}: schema downgraded from {before or 'empty'} to {after or 'empty'}")


@app.command("status")
def status(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show the database, its schema revision and whether it is at head.

    Example: chatctl db status -o json
    """
    from chatctl.output import render_record
    from chatctl.storage import schema

    the_desk = desk(ctx)
    engine = the_desk.engine(check_schema=False)
    with the_desk.errors(), engine.connect() as connection:
        current = schema.current_revision(connection)
    head = schema.HEAD
    record = {
        "database": _url(the_desk),
        "source": the_desk.settings.url_source,
        "backend": engine.dialect.name,
        "revision": current,
        "head": head,
        "at_head": current == head,
        "read_url": _url(the_desk, read=True),
    }
    render_record(the_desk.env, record, fmt(output), id_key="database")
    if current != head:
        the_desk.env.note("run `chatctl db upgrade`")
        raise typer.Exit(ExitCode.DATABASE)


@app.command("check")
def check(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Look for invariant violations (comments on closed chats, tickets without chats, ...).

    Exits 1 when any is found.

    Example: chatctl db check || alert "desk invariants broken"
    """
    from chatctl.domain.invariants import check as run_checks
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    with the_desk.errors(), the_desk.engine().connect() as connection:
        rows = run_checks(connection)
    render_rows(the_desk.env, rows, ["check", "violations", "examples"], fmt(output), id_key="check")
    broken = sum(1 for row in rows if row["violations"])
    if broken:
        the_desk.env.note(f"{broken} invariant(s) violated")
        raise typer.Exit(ExitCode.PARTIAL)
    the_desk.env.note("all invariants hold")


def _url(the_desk, *, read: bool = False) -> Optional[str]:
    from chatctl.storage.engine import display_url

    url = the_desk.settings.read_url if read else the_desk.settings.database_url
    return display_url(url) if url else None
