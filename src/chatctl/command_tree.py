"""How chatctl's Typer app becomes its Click command tree: lazily and cheaply.

Typer builds the Click command of every command of every group - inspecting
each function's signature and evaluating its annotations - before it parses a
single argument, and it coerces every option value through Pydantic, the
unset ones included.  With dozens of commands that was most of the time
``chatctl --help`` took, and it grew with every command added.  So:

* ``LazyGroups``, the root command, builds a group's commands only when the
  command line names that group.  Listings (the root ``--help``, completing
  ``chatctl <Tab>``) use each group's help text instead of building it.
* An option or argument that was not given, or a text value of a ``str``
  parameter, is not handed to Pydantic (its value stays as it is), so
  ``chatctl chats --help`` and a <Tab> load no Pydantic at all.

The first is Click's documented pattern for lazily loaded subcommands
(``list_commands``/``get_command`` on the group class; Typer's vendored
Click has no ``Group`` of its own, so the base is ``TyperGroup``).  The
second replaces a method of a private Typer class for the whole process, so
``pyproject.toml`` pins Typer to the minor version the tests ran on.  Help
paragraphs that must keep their lines (the ``Example:`` commands) carry
Click's ``\b`` marker instead of a patched ``wrap_text``.

``tests/test_startup.py`` holds these to account.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from enum import Enum

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


class LazyGroups(TyperGroup):
    """The root command: groups (``chatctl <group> ...``) are built on first use.

    ``apps`` maps each group name to its Typer app, in the order ``--help`` lists them;
    ``single`` maps a top-level command (``chatctl status``) to the app holding just that
    command (listed before the groups).
    """

    apps: dict[str, typer.Typer] = {}
    single: dict[str, typer.Typer] = {}

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*self.single, *self.apps, *self.commands]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name in self.single:
            return self._single(name)
        app = self.apps.get(name)
        if app is None:
            return None
        if self._listing:
            return _summary(name, app)
        from typer.main import get_group_from_info
        from typer.models import TyperInfo

        group = get_group_from_info(
            TyperInfo(app, name=name),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=self.suggest_commands,
            rich_markup_mode=self.rich_markup_mode,  # the root's, as add_typer would pass down
        )
        for command in (group, *group.commands.values()):
            command.short_help = command.short_help or summary_of(command.help)
        self.commands[name] = group
        return group

    def _single(self, name: str) -> click.Command:
        app = self.single[name]
        if self._listing:
            return _command_summary(name, app)
        from typer.main import get_command_from_info

        info, = app.registered_commands
        command = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                        rich_markup_mode=self.rich_markup_mode)
        command.name = name
        command.short_help = command.short_help or summary_of(command.help)
        self.commands[name] = command
        return command

    @contextlib.contextmanager
    def _summaries(self) -> Iterator[None]:
        self._listing = True
        try:
            yield
        finally:
            self._listing = False

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._summaries():
            super().format_commands(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str):
        with self._summaries():
            return super().shell_complete(ctx, incomplete)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.UsageError as error:
            if args and "Did you mean" not in error.message:  # Typer suggests only among built groups
                matches = difflib.get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


def summary_of(help_text: str | None) -> str | None:
    """A command's line in a listing: the first sentence of its help, whole.

    Click would cut it to the listing's column and end it with "..."; its help
    formatter wraps a long summary instead, so every summary reads in full.
    """
    if not help_text:
        return None
    paragraph = " ".join(help_text.strip().split("\n\n", 1)[0].replace("\b", "").split())
    end = paragraph.find(". ")
    return paragraph if end < 0 else paragraph[:end + 1]


def _summary(name: str, app: typer.Typer) -> click.Command:
    """A stand-in carrying only what a listing shows: the group's name, help and visibility."""
    from typer.main import solve_typer_info_defaults
    from typer.models import TyperInfo

    info = solve_typer_info_defaults(TyperInfo(app, name=name))
    return TyperGroup(name=name, help=info.help, short_help=info.short_help or summary_of(info.help),
                      hidden=bool(info.hidden))


def _command_summary(name: str, app: typer.Typer) -> click.Command:
    """The same stand-in for a command outside any group: its help is its docstring."""
    import inspect

    info, = app.registered_commands
    help_text = info.help or inspect.getdoc(info.callback)
    return TyperCommand(name=name, help=help_text, short_help=summary_of(help_text), hidden=bool(info.hidden))


def skip_coercing_unset_values() -> None:
    """Don't build a Pydantic validator to turn ``None`` into ``None``, a ``str`` into itself, or
    a choice's text into its enum member.

    For a value that was not given, text for a single ``str`` parameter, or
    one of the values of an enum parameter (``-o json``), this does what
    Typer's own ``process_value`` does - the same
    value, the same missing-parameter check, the same callback - minus the
    validator, which Typer builds (importing Pydantic) before looking at the value.
    """
    from typer._click.exceptions import MissingParameter
    from typer.core import _TyperParameter

    process_value = _TyperParameter.process_value
    if getattr(process_value, "_chatctl", False):
        return

    def process_value_cheaply(self, ctx, value):
        annotation = self.type_descriptor.annotation
        if value is None:
            value = () if self.multiple or self.nargs == -1 else None  # what Typer's coercion returns
        elif self.multiple or self.nargs != 1 or not isinstance(value, str):
            return process_value(self, ctx, value)
        elif isinstance(annotation, type) and issubclass(annotation, Enum) and value in annotation._value2member_map_:
            value = annotation(value)  # a choice such as -o json: its member, as Typer's coercion gives
        elif annotation is not str:
            return process_value(self, ctx, value)
        if self.required and self.value_is_missing(value):
            raise MissingParameter(ctx=ctx, param=self)
        return self.callback(ctx, self, value) if self.callback is not None else value

    process_value_cheaply._chatctl = True
    _TyperParameter.process_value = process_value_cheaply
