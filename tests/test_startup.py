"""Fast start as a tested property: help, version and completion requests run
in a fresh interpreter without loading the database stack.

(How fast is measured by bench/startup.py, not asserted here: timings on a
shared machine make flaky tests.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chatctl.cli import app
from chatctl.command_tree import LazyGroups, _command_summary, _group_summary

HEAVY = ("sqlalchemy", "psycopg", "alembic", "tabulate", "rich", "pydantic")
GROUPS = sorted([*LazyGroups.apps, *LazyGroups.single])  # groups, and commands outside a group

# What the everyday database commands (a list, a show) leave out: only Typer,
# SQLAlchemy Core and the driver are the floor.
NOT_ON_THE_HOT_PATH = ("alembic", "mako", "sqlalchemy.orm", "pydantic", "sqlalchemy.dialects.postgresql",
                       "tabulate", "rich")

# Runs chatctl's real entry point and reports, as it exits, which heavy modules were imported.
PROBE = """
import atexit, sys
heavy = {heavy!r}
def report():
    loaded = sorted(name for name in heavy if name in sys.modules)
    sys.__stderr__.write("HEAVY-MODULES:" + ",".join(loaded) + "\\n")
atexit.register(report)
sys.argv = ["chatctl", *{argv!r}]
from chatctl.cli import main
main()
"""


def run_fresh(argv: list[str], env: dict[str, str] | None = None,
              heavy: tuple[str, ...] = HEAVY) -> tuple[subprocess.CompletedProcess, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=heavy, argv=argv)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )
    marker = [line for line in result.stderr.splitlines() if line.startswith("HEAVY-MODULES:")]
    assert marker, f"the probe did not report: {result.stderr}"
    loaded = [name for name in marker[-1].split(":", 1)[1].split(",") if name]
    return result, loaded


@pytest.mark.parametrize("argv", [["--help"], ["--version"], [], ["-h"]], ids=["help", "version", "bare", "h"])
def test_help_and_version_load_no_database_code(argv):
    result, loaded = run_fresh(argv)
    assert result.returncode == 0, result.stderr
    assert loaded == [], f"`chatctl {' '.join(argv)}` imported {loaded} at start-up"


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_loads_no_database_code(group):
    result, loaded = run_fresh([group, "--help"])
    assert result.returncode == 0, result.stderr
    assert f"chatctl {group}" in result.stdout
    assert loaded == [], f"`chatctl {group} --help` imported {loaded}: import them inside the command functions"


def test_every_command_help_loads_no_database_code():
    """One interpreter for all commands (cheap): a command module's top-level imports show up here."""
    from typer.main import get_command

    root = get_command(app)
    argv_list = [[group, name, "--help"] for group in LazyGroups.apps for name in root.get_command(None, group).commands]
    argv_list += [[command, "--help"] for command in LazyGroups.single]
    probe = PROBE.replace("from chatctl.cli import main\nmain()", (
        "from chatctl.cli import run\n"
        "import contextlib, io\n"
        "for argv in {all!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert run(argv) == 0, argv\n"
    ).format(all=argv_list))
    result = subprocess.run([sys.executable, "-c", probe.format(heavy=HEAVY, argv=[])],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "HEAVY-MODULES:\n" in result.stderr, result.stderr


COMPLETION_REQUESTS = {
    "bash-command": {"_CHATCTL_COMPLETE": "complete_bash", "COMP_WORDS": "chatctl ch", "COMP_CWORD": "1"},
    "bash-choice": {"_CHATCTL_COMPLETE": "complete_bash", "COMP_WORDS": "chatctl agents list --output ",
                    "COMP_CWORD": "4"},
    "zsh": {"_CHATCTL_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "chatctl prefs get "},
    "fish": {"_CHATCTL_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
             "_TYPER_COMPLETE_ARGS": "chatctl chats "},
}


@pytest.mark.parametrize("request_env", COMPLETION_REQUESTS.values(), ids=COMPLETION_REQUESTS.keys())
def test_completion_requests_load_no_database_code(request_env):
    result, loaded = run_fresh([], env=request_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "the completion request offered nothing"
    # Typer itself renders completion help through Rich for zsh and fish; the database stack stays out.
    loaded = [name for name in loaded if name != "rich"]
    assert loaded == [], f"a completion request imported {loaded}"


def test_completing_agent_handles_on_sqlite_needs_no_sqlalchemy(bare_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    assert bare_cli(["--database-url", url, "db", "init"]).exit_code == 0
    assert bare_cli(["--database-url", url, "agents", "add", "alice", "--name", "Alice"]).exit_code == 0
    result, loaded = run_fresh([], env={"_CHATCTL_COMPLETE": "complete_bash", "CHATCTL_DATABASE_URL": url,
                                        "COMP_WORDS": "chatctl agents set-status a", "COMP_CWORD": "3"})
    assert result.stdout.split() == ["alice"]
    assert loaded == []


@pytest.mark.parametrize("argv", [["chats", "list", "live", "--limit", "50", "-o", "tsv"],
                                  ["chats", "show", "1", "-o", "json"],
                                  ["chats", "list", "closed", "--all", "-o", "jsonl"]],
                         ids=["list", "show", "export"])
def test_everyday_database_commands_load_only_core_and_the_driver(backend, database_url, argv):
    """The schema check needs no Alembic, the queries no ORM, the options no Pydantic."""
    from chatctl.cli import run

    assert run(["--database-url", database_url, "demo", "load", "--chats", "20", "--now", "2026-11-30T10:00Z"]) == 0
    # PostgreSQL's dialect is the driver's half of the floor there; SQLite never needs it.
    unwanted = tuple(name for name in NOT_ON_THE_HOT_PATH
                     if not (backend == "postgresql" and name == "sqlalchemy.dialects.postgresql"))
    result, loaded = run_fresh(["--database-url", database_url, *argv], heavy=unwanted)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert loaded == [], f"`chatctl {' '.join(argv)}` imported {loaded}"


def test_plain_values_convert_as_typer_would():
    """The values converted without Pydantic are the ones Typer's validator gives; the rest go to it."""
    from typer import _click as click

    from chatctl.command_tree import _NEEDS_VALIDATOR, _convert_without_validator

    root, _ = _root()
    chats = root.get_command(click.Context(root), "chats")
    command = chats.get_command(click.Context(chats), "list")
    context = click.Context(command)
    params = {param.name: param for param in command.params}
    cases = {
        "limit": ["50", "1", "007", "0", "-3", "x", " 5", "5.0", "99999999999999999999999", "1_000"],
        "output": ["tsv", "jsonl", "TSV", "yaml", ""],
        "view": ["live", "closed", "Live", "nope"],
    }
    converted = 0
    for name, texts in cases.items():
        descriptor = params[name].type_descriptor
        for text in texts:
            cheap = _convert_without_validator(descriptor, text)
            if cheap is _NEEDS_VALIDATOR:
                continue
            converted += 1
            typer_value = params[name].get_runtime_param().coerce(text, param=params[name], ctx=context)
            assert (cheap, type(cheap)) == (typer_value, type(typer_value)), (name, text)
    assert converted == 7  # 50, 1, 007, tsv, jsonl, live, closed


def test_lists_of_text_and_integer_defaults_convert_as_typer_would():
    """Ids, job names and a --batch-size left at its default take the same values the validator gives them."""
    from typer import _click as click

    root, _ = _root()
    cases = [("chats", "close", "ids", ("1", "2", "-")), ("sweep", "run", "jobs", ("archive",)),
             ("chats", "close", "batch_size", 2000), ("chats", "close", "batch_size", 1)]
    for group_name, command_name, name, value in cases:
        group = root.get_command(click.Context(root), group_name)
        command = group.get_command(click.Context(group), command_name)
        context = click.Context(command)
        (param,) = [param for param in command.params if param.name == name]
        cheap = param.process_value(context, value)
        typer_value = param.get_runtime_param().coerce(value, param=param, ctx=context)
        assert (cheap, type(cheap)) == (typer_value, type(typer_value)), (name, value)


def test_out_of_range_and_bad_choices_are_refused_without_pydantic(bare_cli):
    assert bare_cli(["chats", "list", "--limit", "0"]).exit_code == 2
    result = bare_cli(["chats", "list", "live", "-o", "TSV"])
    assert result.exit_code == 2 and "bad --output 'TSV': use one of" in result.stderr


def test_pretty_exceptions_never_show_locals():
    # Locals can hold a database password: an unexpected traceback must not print them.
    assert app.pretty_exceptions_show_locals is False


# -- the lazy command tree (chatctl.command_tree) ---------------------------------------
def _root():
    from typer import _click as click
    from typer.main import get_command

    root = get_command(app)
    return root, click.Context(root, info_name="chatctl", **root.context_settings)


def test_root_help_builds_no_group_yet_lists_them_all_with_their_help():
    root, context = _root()
    text = root.get_help(context)
    assert root.commands == {}, "listing the groups must not build them"
    for group in GROUPS:
        assert f"\n  {group} " in text
        listed = _group_summary(group, LazyGroups.apps[group]) if group in LazyGroups.apps else \
            _command_summary(group, *LazyGroups.single[group].registered_commands)
        built = root.get_command(context, group)
        assert (listed.help, listed.short_help, listed.hidden) == (built.help, built.short_help, built.hidden)
    assert set(root.commands) == set(GROUPS)


def test_a_group_is_built_only_when_named():
    root, context = _root()
    chats = root.get_command(context, "chats")
    assert list(root.commands) == ["chats"]
    assert chats.name == "chats" and chats.list_commands(context)
    assert chats.rich_markup_mode is None, "groups inherit the root's plain help formatting"


def test_a_command_is_built_only_when_named_and_listed_with_its_own_help():
    from typer import _click as click

    root, context = _root()
    for group_name in sorted(LazyGroups.apps):
        group = root.get_command(context, group_name)
        group_context = click.Context(group, info_name=group_name, parent=context)
        text = group.get_help(group_context)
        assert group.commands == {}, f"`chatctl {group_name} --help` must not build its commands"
        names = group.list_commands(group_context)
        assert names, group_name
        for name in names:
            with group._summaries():
                listed = group.get_command(group_context, name)
            assert f"\n  {name} " in text
            built = group.get_command(group_context, name)
            assert group.commands[name] is built and built is not listed, "a stand-in escaped the listing"
            assert ((listed.name, listed.help, listed.short_help, listed.hidden, listed.deprecated)
                    == (built.name, built.help, built.short_help, built.hidden, built.deprecated))
        assert list(group.commands) == names


def test_running_a_command_builds_no_other_command_of_its_group():
    from typer import _click as click

    root, context = _root()
    chats = root.get_command(context, "chats")
    chats.resolve_command(click.Context(chats, info_name="chats", parent=context), ["list", "live"])
    assert list(chats.commands) == ["list"]


def test_a_mistyped_command_gets_a_suggestion(bare_cli):
    result = bare_cli(["chats", "lst"])
    assert result.exit_code == 2
    assert "No such command 'lst'. Did you mean 'list'?" in result.stderr


def test_a_mistyped_group_gets_a_suggestion(bare_cli):
    result = bare_cli(["chat", "list"])
    assert result.exit_code == 2
    assert "No such command 'chat'. Did you mean 'chats'?" in result.stderr


def test_unset_values_skip_coercion_but_given_ones_are_still_checked(bare_cli):
    result = bare_cli(["agents", "list", "--output", "yaml"])
    assert result.exit_code == 2 and "yaml" in result.stderr


@pytest.mark.parametrize("argv", [["status", "-o", "json"], ["chats", "list", "live", "-o", "jsonl"],
                                  ["sweep", "run", "archive", "--dry-run"], ["chats", "close", "1", "2", "--yes"]],
                         ids=" ".join)
def test_plain_values_load_no_pydantic(argv, tmp_path):
    """-o json becomes its enum member, job names and ids stay text, a default --batch-size stays its
    integer: none of them needs Typer's Pydantic coercion."""
    result, loaded = run_fresh(["--database-url", f"sqlite:///{tmp_path}/desk.db", *argv])
    assert "pydantic" not in loaded, f"`chatctl {' '.join(argv)}` imported pydantic to read its options"
    assert "Traceback" not in result.stderr
