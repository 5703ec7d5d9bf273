"""Escape codes only where they belong: colour on a terminal, and never with
NO_COLOR, --no-color, TERM=dumb, or when the output is not a terminal."""

from __future__ import annotations

import pytest

ESCAPE = "\x1b["


@pytest.fixture
def desk(cli):
    assert cli("agents", "add", "alice", "--name", "Alice N.", "--role", "supervisor", "--online").exit_code == 0
    assert cli("agents", "add", "bob", "--name", "Bob M.").exit_code == 0
    return cli


READS = [
    ("agents", "list"),
    ("prefs", "list"),
    ("db", "status"),
]
WRITES_AND_FAILURES = [
    ("agents", "set-status", "bob", "online"),        # a summary on stderr
    ("agents", "set-status", "nobody", "online"),     # an error line
    ("prefs", "set", "inactivity_timeout", "soon"),   # a refused value
    ("chats", "close", "424242"),                     # per-item results and the summary
]


def _no_escapes(result) -> None:
    assert ESCAPE not in result.stdout, repr(result.stdout[:500])
    assert ESCAPE not in result.stderr, repr(result.stderr[:500])


def test_a_terminal_gets_colour_so_these_tests_can_fail(desk):
    result = desk("agents", "list", tty=True)
    assert result.exit_code == 0
    assert ESCAPE in result.stdout


@pytest.mark.parametrize("args", READS + WRITES_AND_FAILURES, ids=" ".join)
def test_no_color_environment_variable_on_a_terminal(desk, args):
    _no_escapes(desk(*args, tty=True, env={"NO_COLOR": "1"}))


@pytest.mark.parametrize("args", READS + WRITES_AND_FAILURES, ids=" ".join)
def test_no_color_option_on_a_terminal(desk, args):
    _no_escapes(desk("--no-color", *args, tty=True))


@pytest.mark.parametrize("args", READS + WRITES_AND_FAILURES, ids=" ".join)
def test_output_that_is_not_a_terminal(desk, args):
    _no_escapes(desk(*args, tty=False))


def test_dumb_terminal(desk):
    _no_escapes(desk("agents", "list", tty=True, env={"TERM": "dumb"}))


@pytest.mark.parametrize("output", ["table", "plain", "markdown", "json"])
def test_every_format_on_a_terminal_with_no_color(desk, output):
    _no_escapes(desk("agents", "list", "-o", output, tty=True, env={"NO_COLOR": "1"}))


@pytest.mark.parametrize("args", [["--help"], ["chats", "--help"], ["agents", "add", "--help"], ["--version"]],
                         ids=" ".join)
def test_help_and_version_are_plain_text(bare_cli, args):
    _no_escapes(bare_cli(args, tty=True))
    _no_escapes(bare_cli(args, tty=True, env={"NO_COLOR": "1"}))


def test_usage_errors_are_one_plain_line(bare_cli):
    result = bare_cli(["agents", "list", "--output", "yaml"], tty=True, env={"NO_COLOR": "1"})
    assert result.exit_code == 2
    _no_escapes(result)
    assert len(result.stderr.strip().splitlines()) == 1
