"""Words for people (SPEC D15): no rule numbers in --help, man pages, messages or
JSON reasons; command summaries read in full; bad values get a plain message
with a did-you-mean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# R1..R15 and D1..D17 as words, not as part of a longer token (a ULID, a hash).
RULE_NUMBER = re.compile(r"(?<![\w-])[RD](?:1[0-7]|[1-9])(?![\w-])")


def _tree():
    from typer.main import get_command

    from chatctl.cli import app

    root = get_command(app)
    yield "chatctl", root
    for name in root.list_commands(None):
        node = root.get_command(None, name)
        yield f"chatctl {name}", node
        for sub in getattr(node, "list_commands", lambda ctx: [])(None):
            yield f"chatctl {name} {sub}", node.get_command(None, sub)


def _texts(command) -> list[str]:
    texts = [command.help or "", command.short_help or "", command.get_short_help_str(45)]
    texts += [getattr(param, "help", None) or "" for param in command.params]
    return texts


def test_d15_no_rule_numbers_in_any_help_text():
    found = [(path, text) for path, command in _tree() for text in _texts(command) if RULE_NUMBER.search(text)]
    assert found == []


def test_d15_no_rule_numbers_in_the_man_pages():
    pages = sorted((ROOT / "man").glob("*.1"))
    assert pages
    found = [(page.name, line) for page in pages for line in page.read_text().splitlines()
             if RULE_NUMBER.search(line)]
    assert found == []


def test_d15_command_summaries_are_never_cut():
    cut = [path for path, command in _tree() if command.get_short_help_str(45).endswith("...")]
    assert cut == []


@pytest.mark.parametrize("args,expected", [
    (["chats", "list", "liv"], "bad view 'liv': use one of live, pending, tagged, closed, tickets "
                               "(did you mean 'live'?)"),
    (["chats", "list", "--sort", "nw"], "bad --sort 'nw': use one of activity, new, closed (did you mean 'new'?)"),
    (["chats", "list", "-o", "jsn"], "(did you mean 'json'?)"),
    (["prefs", "get", "timezon"], "(did you mean 'timezone'?)"),
])
def test_d15_a_bad_choice_gets_a_plain_message_with_a_did_you_mean(bare_cli, args, expected):
    result = bare_cli(args)
    assert result.exit_code == 2, result
    assert expected in result.stderr and "Value error" not in result.stderr, result.stderr


def _string_literals_outside_docstrings(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module that is not a docstring (messages, reasons, help)."""
    import ast

    tree = ast.parse(path.read_text())
    docstrings = {id(node.value) for node in ast.walk(tree)
                  if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                  and isinstance(node.value.value, str)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_d15_no_rule_numbers_in_messages_or_reasons():
    """What chatctl says (refusals, audit reasons, sweep explanations) is built from string
    literals of its code: none of them may carry a rule number; docstrings and comments may."""
    found = [f"{path.relative_to(ROOT)}:{line}: {text!r}"
             for path in sorted((ROOT / "src" / "chatctl").rglob("*.py"))
             for line, text in _string_literals_outside_docstrings(path) if RULE_NUMBER.search(text)]
    assert found == []


def test_d15_item_reasons_say_it_in_words_without_rule_numbers(cli, engine):
    """Refusals on chats and tickets, in JSON and on stderr: the reason in plain words, no R6 or (R14)."""
    import datetime as dt

    from chat_rows import Rows

    from chatctl.storage.models import Ticket

    rows = Rows(engine)
    rows.agent("alice")
    rows.agent("bob")
    live, closed = rows.chat(agent="alice"), rows.chat(status="closed", closed=dt.timedelta(hours=1))
    converted = rows.chat(status="converted")
    now = dt.datetime.now(dt.timezone.utc)
    with engine.begin() as connection:
        archived = connection.execute(Ticket.__table__.insert().values(
            chat_id=converted, status="open", reason="manual", created_at=now, archived_at=now)).inserted_primary_key[0]
    attempts = [
        ("chats", "pending", str(closed)), ("chats", "reopen", str(converted), "--agent", "alice"),
        ("--actor", "bob", "chats", "reply", str(live), "--as", "bob", "--text", "hi"),
        ("--actor", "alice", "tickets", "assign", str(archived), "--agent", "bob"),
        ("tickets", "close", str(archived)),
    ]
    for argv in attempts:
        result = cli(*argv, "-o", "json")
        assert result.exit_code == 1, result
        reasons = [item["reason"] for item in result.json()["results"]]
        assert reasons and all(reason and not RULE_NUMBER.search(reason) for reason in reasons), (argv, reasons)
        assert not RULE_NUMBER.search(result.stderr), (argv, result.stderr)
