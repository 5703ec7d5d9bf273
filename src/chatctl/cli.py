"""The ``chatctl`` command line: global options, the command groups, and the
one error boundary that maps failures to exit codes (SPEC 2.4).

Exit codes: 0 done · 1 some items not found or refused · 2 usage or bad
input · 3 database or configuration problem · 4 another sweep holds the lock ·
5 a safety limit stopped the run · 130 interrupted (SIGINT) · 143 stopped (SIGTERM).
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Optional

import typer

from chatctl import __version__
from chatctl.commands import (agents, audit, chats, db, demo, events, notifications, prefs, report, status, sweep,
                              tickets)
from chatctl.commands import config as config_group
from chatctl.command_tree import LazyGroups, convert_plain_values_without_pydantic
from chatctl.completion import complete_agent_handle
from chatctl.errors import ChatctlError, CheckUnknown, ExitCode

app = typer.Typer(
    name="chatctl",
    help="Operate a customer-support chat desk straight from its database: views, bulk actions, "
    "sweeps and audit.\n\nExample:\n\n\b\n    chatctl demo load && chatctl sweep run && chatctl chats list live",
    short_help="Operate a customer-support chat desk straight from its database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    cls=LazyGroups,
)
# The commands and groups, built only when the command line names them (see chatctl.command_tree).
LazyGroups.single = {"status": status.app, "report": report.app}
LazyGroups.apps = {
    "db": db.app,
    "demo": demo.app,
    "agents": agents.app,
    "chats": chats.app,
    "events": events.app,
    "notifications": notifications.app,
    "tickets": tickets.app,
    "prefs": prefs.app,
    "sweep": sweep.app,
    "audit": audit.app,
    "config": config_group.app,
}
convert_plain_values_without_pydantic()


class Invocation:
    """Global options, kept raw until a command needs the desk (so ``--help`` stays cheap).

    ``argv`` is the command line as given, recorded (redacted) with the
    operation if the command changes data.
    """

    def __init__(self, argv: list[str] | None = None, **options) -> None:
        self.argv = list(argv or [])
        self.options = options
        self.dry_run = False
        self._desk = None
        self.verbose = options.get("verbose", False)

    def configure(self, **options) -> Invocation:
        self.options = options
        self.verbose = options.get("verbose", False)
        return self

    def desk(self):
        if self._desk is None:
            from chatctl import config
            from chatctl.context import Desk, Environment

            env = Environment.from_system(
                no_color=self.options["no_color"], quiet=self.options["quiet"], verbose=self.verbose
            )
            settings = config.resolve(
                database_url=self.options["database_url"],
                read_url=self.options["read_url"],
                profile=self.options["profile"],
                config=self.options["config"],
                actor=self.options["actor"],
                tz=self.options["tz"],
                from_environment=self.options["from_environment"],
            )
            self._desk = Desk(settings, env, tz_name=settings.timezone, argv=self.argv)
            self._desk.dry_run = self.dry_run
        return self._desk

    def close(self) -> None:
        """The command is done: let the database go, unless its operation is still to be
        finished (``finish`` writes the end on the same connections, then lets go: closing
        first would reconnect, and on SQLite checkpoint twice)."""
        if self._desk is not None and not self._desk.operation_open:
            self._desk.dispose()

    def finish(self, exit_code: int) -> None:
        """Record how the invocation's operation ended, if it had one (D10)."""
        if self._desk is not None:
            try:
                self._desk.finish_operation(exit_code)
            finally:
                self._desk.dispose()


def _version(value: bool) -> None:
    if value:
        print(f"chatctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    database_url: Annotated[Optional[str], typer.Option(
        "--database-url", envvar="CHATCTL_DATABASE_URL", show_envvar=True, show_default=False,
        help="postgresql://user@host/db or sqlite:///file.db (default: the config profile, "
        "else a SQLite file in the user data dir).")] = None,
    read_url: Annotated[Optional[str], typer.Option(
        "--read-url", envvar="CHATCTL_READ_DATABASE_URL", show_envvar=True, show_default=False,
        help="A replica for list/show/filter; writes and sweeps use the primary.")] = None,
    profile: Annotated[Optional[str], typer.Option(
        "--profile", envvar="CHATCTL_PROFILE", show_envvar=True, show_default=False,
        help="Profile of the config file to use.")] = None,
    config: Annotated[Optional[str], typer.Option(
        "--config", envvar="CHATCTL_CONFIG", show_envvar=True, show_default=False,
        help="Config file (default: chatctl/config.toml in the user config dir).")] = None,
    actor: Annotated[Optional[str], typer.Option(
        "--actor", envvar="CHATCTL_ACTOR", show_envvar=True, show_default=False,
        autocompletion=complete_agent_handle,
        help="Act as this agent handle (with its role); default ops:<os user>, an admin.")] = None,
    tz: Annotated[Optional[str], typer.Option(
        "--tz", show_default=False, help="Show times in this IANA zone (default: the desk's timezone).")] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour (NO_COLOR is honoured too).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summaries on stderr; errors only.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More detail on errors.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    from typer._click.core import ParameterSource

    # Click knows whether each value came from the command line or its environment variable.
    from_environment = {name for name in ctx.params if ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT}
    invocation = ctx.obj if isinstance(ctx.obj, Invocation) else Invocation()
    ctx.obj = invocation.configure(
        database_url=database_url, read_url=read_url, profile=profile, config=config, actor=actor,
        tz=tz, no_color=no_color, quiet=quiet, verbose=verbose, from_environment=from_environment,
    )
    ctx.call_on_close(ctx.obj.close)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code: the one error boundary."""
    from chatctl.context import OutputGuard

    args = list(argv if argv is not None else sys.argv[1:])
    invocation = Invocation(args)
    # Every write to standard output, Click's help included, survives `| head`
    # (Click itself would turn a closed pipe into exit 1); so does every write to
    # standard error when it goes down the same pipe (`2>&1 | head`), so that the
    # work still finishes and its operation is still recorded as it ended.
    stdout, sys.stdout = sys.stdout, OutputGuard(sys.stdout)
    stderr, sys.stderr = sys.stderr, OutputGuard(sys.stderr) if sys.stderr is not None else None
    try:
        code = _run(args, invocation)
        try:
            invocation.finish(code)
        except Exception as error:  # noqa: BLE001 - the record stays `running`; the next command marks it failed
            # After a failure (a lost database, most often) the error is already said once.
            if code in (ExitCode.OK, ExitCode.PARTIAL) and sys.stderr is not None:
                _error_line(f"could not record the end of the operation: {error}")
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    return code


def _run(args: list[str], invocation: Invocation) -> int:
    from typer._click import exceptions as click_exceptions

    verbose = any(arg in ("-v", "--verbose") for arg in args)
    try:
        result = app(args=args, prog_name="chatctl", standalone_mode=False, obj=invocation)
        return result if isinstance(result, int) else ExitCode.OK
    except ChatctlError as error:
        _error_line(str(error))
        if isinstance(error, CheckUnknown):
            from chatctl.config import redact

            print(redact(f"UNKNOWN: {error}"), flush=True)
        return error.exit_code
    except typer.Exit as exit_:
        return exit_.exit_code
    except click_exceptions.NoArgsIsHelpError as error:
        print(error.format_message())  # a bare `chatctl` or `chatctl chats` shows its help
        return ExitCode.OK
    except click_exceptions.UsageError as error:
        # One line, like every other failure; the usage text is a `-h` away.
        where = error.ctx.command_path if error.ctx is not None else "chatctl"
        _error_line(f"{plain_choice_error(error.format_message())} (see '{where} -h')")
        return ExitCode.USAGE
    except click_exceptions.ClickException as error:
        _error_line(error.format_message())
        return ExitCode.USAGE
    except (typer.Abort, KeyboardInterrupt):
        _error_line("interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # `chatctl chats list --all | head`: the reader left; that is not an error.
        sys.stderr = None
        return ExitCode.OK
    except Exception as error:  # noqa: BLE001 - the boundary: no traceback unless asked
        from chatctl.config import redact

        if verbose:
            import traceback

            _error_line(redact("".join(traceback.format_exception(error))))
        _error_line(redact(f"unexpected error: {type(error).__name__}: {error}") +
                    ("" if verbose else " (run with -v for details)"))
        return 70


_NOT_A_CHOICE = re.compile(r"^Invalid value for '(?P<name>[^']+)'(?: / '[^']+')?: Value error, "
                           r"'(?P<value>.*)' is not one of (?P<choices>'.*')\.$", re.DOTALL)


def plain_choice_error(message: str) -> str:
    """Typer's words for a value outside a choice, said plainly and with a did-you-mean.

    "Invalid value for 'view': Value error, 'liv' is not one of 'live', ..." becomes
    "bad view 'liv': use one of live, pending, ... (did you mean 'live'?)".
    """
    import difflib

    match = _NOT_A_CHOICE.match(message)
    if match is None:
        return message
    choices = re.findall(r"'([^']*)'", match["choices"])
    nearest = difflib.get_close_matches(match["value"], choices, n=1)
    guess = f" (did you mean '{nearest[0]}'?)" if nearest else ""
    return f"bad {match['name']} '{match['value']}': use one of {', '.join(choices)}{guess}"


def _error_line(message: str) -> None:
    from chatctl.config import redact

    print(f"chatctl: {redact(message)}", file=sys.stderr, flush=True)


def main() -> None:
    code = run()
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(code)
