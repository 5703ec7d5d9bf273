"""chatctl prefs: the desk's settings (timeouts, hours, time zone)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from chatctl.commands.common import OutputOpt, desk, fmt

app = typer.Typer(
    help="The desk's settings: typed, validated, with defaults.\n\n"
    "Example:\n\n\b\n    chatctl prefs set inactivity_timeout 45m\n    chatctl prefs set business_hours "
    "'mon-fri 08:00-17:00; sat 09:00-13:00'",
    no_args_is_help=True,
)

# Kept in step with chatctl.domain.prefs.PREFERENCES by a test; listed here so
# completion and --help need no database code.
PreferenceKey = Enum("PreferenceKey", {key: key for key in (
    "inactivity_timeout", "inactivity_action", "agent_chat_timeout", "agent_max_chats",
    "agent_max_reassignments", "pending_timeout", "closed_reply_window", "ticket_archive_after",
    "timezone", "business_hours", "holidays")}, type=str)
KeyArg = Annotated[PreferenceKey, typer.Argument(help="The preference key.", show_default=False)]


@app.command("list")
def list_(ctx: typer.Context, output: OutputOpt = None) -> None:
    """List every preference with its value, default and type.

    Example: chatctl prefs list -o json
    """
    from chatctl.domain.prefs import list_preferences
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        rows = list_preferences(connection)
    render_rows(the_desk.env, rows, ["key", "value", "default", "type", "updated_by"], fmt(output),
                id_key="key", tz=the_desk.tz())


@app.command("get")
def get(ctx: typer.Context, key: KeyArg, output: OutputOpt = None) -> None:
    """Print one preference's value (the default when unset).

    Without -o, just the value, for scripts; with -o, the whole preference
    (key, value, default, type, who set it and when) in that format.

    Example: chatctl prefs get inactivity_timeout
    """
    from chatctl.domain.prefs import list_preferences
    from chatctl.output import render_record

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        row = next(row for row in list_preferences(connection) if row["key"] == key.value)
        if output is not None:
            render_record(the_desk.env, row, fmt(output), tz=the_desk.tz(connection), id_key="key")
            return
    the_desk.env.stdout.write(f"{row['value']}\n")


@app.command("set")
def set_(ctx: typer.Context, key: KeyArg,
         value: Annotated[str, typer.Argument(help="The new value (validated).", show_default=False)]) -> None:
    """Set a preference; a bad value is refused with the accepted forms.

    Durations: 90s, 30m, 2h, 1d12h, 90d or ISO 8601 (PT30M, P90D).

    Example: chatctl prefs set pending_timeout 2d
    """
    from chatctl.domain.prefs import set_preference

    _write(ctx, key.value, lambda connection, **kw: set_preference(connection, key.value, value, **kw))


@app.command("unset")
def unset(ctx: typer.Context, key: KeyArg) -> None:
    """Return a preference to its default.

    Example: chatctl prefs unset inactivity_timeout
    """
    from chatctl.domain.prefs import unset_preference

    _write(ctx, key.value, lambda connection, **kw: unset_preference(connection, key.value, **kw))


def _write(ctx: typer.Context, key: str, change) -> None:
    the_desk = desk(ctx)
    operation_id = the_desk.operation_id  # before the transaction: recording it writes too
    with the_desk.errors(), the_desk.engine().begin() as connection:
        actor = the_desk.actor(connection)
        result = change(connection, actor=actor.name, operation_id=operation_id, now=the_desk.now())
    if result["changed"]:
        the_desk.env.note(f"{key}: {result['before'] or '(default)'} -> {result['after']}")
    else:
        the_desk.env.note(f"{key}: unchanged ({result['after']})")
