"""chatctl config: which desk chatctl would use, as whom, and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from chatctl.commands.common import OutputOpt, desk, fmt

if TYPE_CHECKING:
    from chatctl.config import Settings

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
    render_rows(the_desk.env, _effective_settings(the_desk.settings, desk_timezone=desk_zone),
                ["setting", "value", "source"], fmt(output), id_key="setting")


def _effective_settings(settings: Settings, *, desk_timezone: str | None = None) -> list[dict[str, object]]:
    """The settings in effect, one row each, with where it came from (``chatctl config show``).

    URLs are shown redacted.  ``desk_timezone`` is the desk's own preference,
    shown when no time zone is set by a flag, a variable or the profile.
    """
    from chatctl.config import SESSION_KEYS
    from chatctl.storage.engine import DEFAULT_SESSION, display_url

    sources = settings.sources
    in_profile = f"profile {settings.profile} in {settings.config_path}"
    rows = [
        ("config", settings.config_path, sources.get("config", "default")),
        ("profile", settings.profile, sources.get("profile", "default")),
        ("database_url", display_url(settings.database_url), sources.get("database_url", settings.url_source)),
        ("read_url", display_url(settings.read_url) if settings.read_url else None,
         sources.get("read_url", "default (reads use the database)")),
        ("actor", settings.actor, sources.get("actor", "default")),
        ("timezone", settings.timezone or desk_timezone, sources.get("timezone", "default")),
        *((key, settings.session.get(key, DEFAULT_SESSION[key]), sources.get(key, "default"))
          for key in SESSION_KEYS),
        ("pooler", settings.pooler or "none", sources.get("pooler", "default")),
        ("sweep_lock", settings.sweep_lock, sources.get("sweep_lock", "default")),
        ("audit_retention", settings.audit_retention, sources.get("audit_retention", "default")),
        *((key, value, in_profile) for key, value in settings.status.items()),
    ]
    return [{"setting": key, "value": str(value) if value is not None else None, "source": source}
            for key, value, source in rows]
