"""chatctl config: which desk chatctl would use, as whom, and why."""

from __future__ import annotations

import typer

from chatctl.commands.common import OutputOpt, desk, fmt

app = typer.Typer(
    help="Where chatctl finds the desk and who it acts as: the settings in effect and where each came from.\n\n"
    "Example:\n\n\b\n    chatctl config show\n    chatctl --profile prod config show -o json",
    no_args_is_help=True,
)


@app.command("show")
def show(ctx: typer.Context, output: OutputOpt = None) -> None:
    """Show every setting in effect - database, read URL, profile, actor, time zone, session
    settings, pooler, sweep lock - and where each came from: a flag, an environment
    variable, the config file's profile, or the default.

    Passwords are never shown.  When no time zone is set here, the desk's own timezone
    preference is read from the database (the primary), if it can be reached.  A config file with an
    unknown key, or a profile without a database_url, is refused (exit 3) as it is for
    every command.

    Example: chatctl --profile prod config show -o json
    """
    from chatctl.config import effective_settings
    from chatctl.errors import ChatctlError
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    desk_zone = None
    if not the_desk.settings.timezone:
        try:
            with the_desk.errors(), the_desk.engine().connect() as connection:
                desk_zone = str(the_desk.tz(connection))
        except ChatctlError as error:
            desk_zone = f"(not read: {error.message})"
    render_rows(the_desk.env, effective_settings(the_desk.settings, desk_timezone=desk_zone),
                ["setting", "value", "source"], fmt(output), id_key="setting")
