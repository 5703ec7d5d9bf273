"""How chatctl's Typer app becomes its Click command tree: lazily and cheaply.

Typer builds the Click command of every command of every group - inspecting
each function's signature and evaluating its annotations - before it parses a
single argument, and it coerces every option value through Pydantic, the
unset ones included.  With dozens of commands that was most of the time
``chatctl --help`` took, and it grew with every command added.  So:

* ``LazyGroups``, the root command, builds a group only when the command
  line names that group, and the group (``LazyCommands``) builds only the
  command named: ``chatctl chats list`` builds ``list``, none of the dozen
  other chat commands.  Listings (``--help``, completing ``chatctl <Tab>`` or
  ``chatctl chats <Tab>``) use help texts instead of building anything.
* An option or argument that was not given, a text value of a ``str``
  parameter, the values of a ``list[str]`` one (ids, job names), a valid
  choice of an ``Enum``, a plain in-range integer and an integer default
  are converted without Pydantic (the same value Typer's validator would
  give; anything else still goes through it, with Typer's own error
  messages), so ``chatctl chats --help``, a <Tab>, everyday commands like
  ``chatctl chats list live --limit 50 -o tsv`` and the sweeps and bulk
  commands load no Pydantic at all.

The first is Click's documented pattern for lazily loaded subcommands
(``list_commands``/``get_command`` on the group class; Typer's vendored
Click has no ``Group`` of its own, so the base is ``TyperGroup``).  The
second replaces a method of a private Typer class for the whole process, so
``pyproject.toml`` pins Typer to the minor version the tests ran on.  Help
paragraphs that must keep their lines (the ``Example:`` commands) carry
Click's ``\\b`` marker instead of a patched ``wrap_text``.

``tests/test_startup.py`` holds these to account.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections.abc import Iterator
from enum import Enum
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


class _BuiltOnDemand(TyperGroup):
    """A group whose subcommands are built one at a time, when the command line names one.

    Listings (``--help``, completing a subcommand name) show stand-ins that
    carry only a name, help text and visibility.
    """

    def __init__(self, **attrs) -> None:
        super().__init__(**attrs)
        self._listing = False

    def _names(self) -> list[str]:
        raise NotImplementedError

    def _build(self, name: str) -> click.Command:
        raise NotImplementedError

    def _summary(self, name: str) -> click.Command:
        raise NotImplementedError

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(dict.fromkeys([*self._names(), *self.commands]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in self._names():
            return None
        if self._listing:
            return self._summary(name)
        command = self._build(name)
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
            if args and "Did you mean" not in error.message:  # Typer suggests only among built commands
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


class LazyGroups(_BuiltOnDemand):
    """The root command: groups (``chatctl <group> ...``) are built on first use.

    ``apps`` maps each group name to its Typer app, in the order ``--help`` lists them;
    ``single`` maps a top-level command (``chatctl status``) to the app holding just that
    command (listed before the groups).
    """

    apps: dict[str, typer.Typer] = {}
    single: dict[str, typer.Typer] = {}

    def _names(self) -> list[str]:
        return [*self.single, *self.apps]

    def _summary(self, name: str) -> click.Command:
        if name in self.single:
            info, = self.single[name].registered_commands
            return _command_summary(name, info)
        return _group_summary(name, self.apps[name])

    def _build(self, name: str) -> click.Command:
        import copy

        from typer.main import get_command_from_info, get_group_from_info
        from typer.models import TyperInfo

        if name in self.single:
            app = self.single[name]
            info, = app.registered_commands
            command = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                            rich_markup_mode=self.rich_markup_mode)
            command.name = name
            command.short_help = command.short_help or summary_of(command.help)
            return command
        app = self.apps[name]
        # The group itself as Typer builds it, but none of its commands yet.
        bare = copy.copy(app)
        bare.registered_commands = []
        group = get_group_from_info(
            TyperInfo(bare, name=name, cls=LazyCommands),
            pretty_exceptions_short=app.pretty_exceptions_short,
            suggest_commands=self.suggest_commands,
            rich_markup_mode=self.rich_markup_mode,  # the root's, as add_typer would pass down
        )
        group.registered = {_command_name(info): info for info in app.registered_commands}
        group.pretty_exceptions_short = app.pretty_exceptions_short
        group.short_help = group.short_help or summary_of(group.help)
        return group


class LazyCommands(_BuiltOnDemand):
    """A group (``chatctl chats``): ``chatctl chats list`` builds ``list`` alone, not all of them.

    Building a command means inspecting its function's signature and
    evaluating every annotation: a few milliseconds each, paid on every
    invocation for every command of the group before.
    """

    registered: dict[str, typer.models.CommandInfo] = {}
    pretty_exceptions_short = True

    def _names(self) -> list[str]:
        return list(self.registered)

    def _summary(self, name: str) -> click.Command:
        return _command_summary(name, self.registered[name])

    def _build(self, name: str) -> click.Command:
        from typer.main import get_command_from_info

        command = get_command_from_info(self.registered[name], pretty_exceptions_short=self.pretty_exceptions_short,
                                        rich_markup_mode=self.rich_markup_mode)
        command.short_help = command.short_help or summary_of(command.help)
        return command


def _command_name(info: typer.models.CommandInfo) -> str:
    from typer.main import get_command_name

    return info.name or get_command_name(info.callback.__name__)


def _group_summary(name: str, app: typer.Typer) -> click.Command:
    """A stand-in carrying only what a listing shows: the group's name, help and visibility."""
    from typer.main import solve_typer_info_defaults
    from typer.models import TyperInfo

    info = solve_typer_info_defaults(TyperInfo(app, name=name))
    return TyperGroup(name=name, help=info.help, short_help=info.short_help or summary_of(info.help),
                      hidden=bool(info.hidden))


def _command_summary(name: str, info: typer.models.CommandInfo) -> click.Command:
    """A command's stand-in: its help as Typer would take it, no parameters."""
    import inspect

    text = inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
    return TyperCommand(name=name, help=text, short_help=info.short_help or summary_of(text), hidden=info.hidden,
                        deprecated=info.deprecated)


def convert_plain_values_without_pydantic() -> None:
    """Don't build a Pydantic validator to turn ``None`` into ``None``, ``"tsv"`` into
    ``OutputFormat.tsv`` or ``"50"`` into ``50``.

    For a value that was not given, or that converts as described in the
    module's docstring, this does what Typer's own ``process_value`` does -
    the same value, the same missing-parameter check, the same callback -
    minus the validator, which Typer builds (importing Pydantic, ~50 ms)
    before looking at the value.
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
        elif self.multiple or self.nargs != 1:
            if annotation != list[str] or not isinstance(value, (tuple, list)) \
                    or not all(isinstance(item, str) for item in value):
                return process_value(self, ctx, value)
            value = list(value)  # ids and job names: text stays text
        elif isinstance(value, int) and not isinstance(value, bool) and annotation is int:
            if _out_of_range(self.type_descriptor.parameter_info, value):
                return process_value(self, ctx, value)  # Typer says what the range is
        elif not isinstance(value, str):
            return process_value(self, ctx, value)
        else:
            converted = _convert_without_validator(self.type_descriptor, value)
            if converted is _NEEDS_VALIDATOR:
                return process_value(self, ctx, value)
            value = converted
        if self.required and self.value_is_missing(value):
            raise MissingParameter(ctx=ctx, param=self)
        return self.callback(ctx, self, value) if self.callback is not None else value

    process_value_cheaply._chatctl = True
    _TyperParameter.process_value = process_value_cheaply


_NEEDS_VALIDATOR = object()
_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,18}")


def _convert_without_validator(descriptor, text: str) -> Any:
    """``text`` as the parameter's type when that needs no validator, else ``_NEEDS_VALIDATOR``."""
    annotation = descriptor.annotation
    if annotation is str:
        return text
    info = descriptor.parameter_info
    if isinstance(annotation, type) and issubclass(annotation, Enum) and info.case_sensitive:
        try:
            return annotation(text)
        except ValueError:
            return _NEEDS_VALIDATOR  # Typer says which choices there are
    if annotation is int and _PLAIN_INTEGER.fullmatch(text) and not _out_of_range(info, int(text)):
        return int(text)
    return _NEEDS_VALIDATOR


def _out_of_range(info, number: int) -> bool:
    """Whether Typer's validator has something to say about ``number`` (clamp it, or refuse it)."""
    return bool(info.clamp) or (info.min is not None and number < info.min) \
        or (info.max is not None and number > info.max)
