"""chatctl at home in a shell: completions and man pages generated from the
command tree, kept up to date, complete (help everywhere, an example per
group), rendering cleanly, and completing in real bash, zsh and fish.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer._completion_classes import BashComplete

from chatctl.cli import app

ROOT = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_docs", ROOT / "scripts" / "generate_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["generate_docs"] = module
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
TREE = generator.command_tree(app)
GROUPS = [group.path[-1] for group in generator.groups(TREE)]
COMMANDS = [node for node in TREE.walk() if not node.is_group]
MAN_SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "FILES",
                "EXAMPLES", "SEE ALSO"]


def _require(program: str) -> str:
    """The program's path; in CI a missing program fails the test instead of skipping it."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed (apt-get install -y groff-base man-db zsh fish)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def _shell_env() -> dict[str, str]:
    """The environment for a real shell: the chatctl under test first on PATH."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "chatctl").exists():
        found = shutil.which("chatctl")
        assert found, "chatctl is not installed next to the test interpreter nor on PATH"
        bin_dir = Path(found).parent
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def complete(args: list[str], incomplete: str, command=None) -> list[str]:
    """What Tab offers after ``chatctl ARGS INCOMPLETE``, through Typer's completion classes."""
    completer = BashComplete(command or typer.main.get_command(app), {}, "chatctl", "_CHATCTL_COMPLETE")
    return [item.value for item in completer.get_completions(args, incomplete)]


# -- generated files are up to date ---------------------------------------------------
def test_completions_and_man_pages_are_up_to_date():
    stale = generator.stale(generator.generate(app), ROOT)
    assert not stale, (
        f"generated files are stale against the code: {', '.join(stale)}\n"
        f"regenerate them with: {generator.REGENERATE}"
    )


def test_changing_a_help_text_makes_the_staleness_check_fail(tmp_path):
    generator.write(generator.generate(app), tmp_path)
    assert generator.stale(generator.generate(app), tmp_path) == []

    changed = typer.main.get_command(app)
    context = generator.command_tree(changed).context
    prefs = changed.get_command(context, "prefs")
    prefs.get_command(context, "set").help += "\n\nA sentence someone added."
    assert generator.stale(generator.generate(changed), tmp_path) == ["man/chatctl-prefs.1"]

    # The script itself says what is stale and how to fix it.
    page = tmp_path / "man" / "chatctl-prefs.1"
    page.write_text(page.read_text().replace("Set a preference", "Set a setting"))
    (tmp_path / "man" / "chatctl-gone.1").write_text(".TH GONE 1\n")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_docs.py"), "--check",
                             "--output-dir", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "stale: man/chatctl-prefs.1" in result.stderr
    assert "stale: man/chatctl-gone.1" in result.stderr
    assert "regenerate with: python scripts/generate_docs.py" in result.stderr


def test_generation_is_deterministic():
    first, second = generator.generate(app), generator.generate(app)
    assert first == second
    for path, content in first.items():
        if path.startswith("man/"):
            assert '.TH ' in content and ' 1 "" "chatctl ' in content, f"{path}: no date in the title line"


def test_every_group_has_a_man_page_and_a_completion_for_each_shell():
    files = generator.generate(app)
    assert {f"man/chatctl-{group}.1" for group in GROUPS} | {"man/chatctl.1"} == {
        path for path in files if path.startswith("man/")}
    assert {"completions/chatctl.bash", "completions/_chatctl", "completions/chatctl.fish"} < set(files)
    assert set(GROUPS) >= {"db", "demo", "agents", "chats", "events", "notifications", "tickets", "prefs",
                           "sweep", "audit"}


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_what_chatctl_show_completion_prints(shell):
    """The committed scripts are Typer's own, as `chatctl --show-completion SHELL` prints them."""
    result = subprocess.run([sys.executable, "-m", "chatctl", "--show-completion", shell], capture_output=True,
                            text=True, env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert result.returncode == 0, result.stderr
    committed = (ROOT / generator.COMPLETION_FILES[shell]).read_text()
    shown = result.stdout.strip()
    if shell == "zsh":  # ours also completes when autoloaded from $fpath
        shown = shown.replace(generator._ZSH_REGISTER, generator._ZSH_EITHER)
    assert [line for line in committed.splitlines() if not line.startswith("# Generated")] == shown.splitlines()


# -- help text and examples -----------------------------------------------------------
@pytest.mark.parametrize("group", GROUPS)
def test_every_command_and_option_of_the_group_has_help(group):
    node = next(node for node in generator.groups(TREE) if node.path[-1] == group)
    missing = []
    for command in node.walk():
        if not generator.split_help(command.command.help).description:
            missing.append(f"{command.name}: no help text (docstring)")
        for param in command.parameters():
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{command.name}: {'/'.join(param.opts)} has no help")
    assert not missing, "\n".join(missing)


def test_global_options_have_help():
    missing = [param.opts for param in TREE.parameters(with_help_option=True) if not (param.help or "").strip()]
    assert not missing


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_an_example(group):
    node = next(node for node in generator.groups(TREE) if node.path[-1] == group)
    examples = [block for command in node.walk() for block in generator.split_help(command.command.help).examples]
    assert examples, (f"chatctl {group}: no 'Example:' block in the group's help nor in any of its commands' "
                      "docstrings")
    prefix = f"chatctl {group}"
    assert any(prefix in line for block in examples for line in block), f"no example runs `{prefix} ...`"


def test_example_blocks_print_line_by_line_in_help():
    """`--help` shows each command of a multi-line example on its own line, as written."""
    broken = []
    for node in TREE.walk():
        shown = [line.strip() for line in node.command.get_help(node.context).splitlines()]
        for block in generator.split_help(node.command.help).examples:
            if len(block) > 1:
                broken.extend(f"{node.name}: {line!r}" for line in block if line.strip() not in shown)
    assert not broken, "\n".join(broken)


def test_split_help_reads_inline_and_indented_examples():
    text = ("Close tickets.\n\nMore prose.\n\nExample: chatctl tickets close 7\n\nExamples:\n\n"
            "    chatctl tickets list -o ids \\\n      | chatctl tickets close -\n    # comment\n\nAfter.")
    parsed = generator.split_help(text)
    assert parsed.description == "Close tickets.\n\nMore prose.\n\nAfter."
    assert parsed.examples == [["chatctl tickets close 7"],
                               ["chatctl tickets list -o ids \\", "  | chatctl tickets close -", "# comment"]]


def test_split_help_reads_examples_marked_to_keep_their_lines():
    """Click keeps a paragraph's lines only after a \\b line; the generator must still see the example."""
    parsed = generator.split_help("List.\n\nExample:\n\n\b\n    chatctl a\n    chatctl b\n\nAfter.")
    assert parsed.description == "List.\n\nAfter."
    assert parsed.examples == [["chatctl a", "chatctl b"]]


# -- man pages ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def man_dir(tmp_path_factory):
    """The pages as the code generates them now (the staleness test covers the committed copies)."""
    directory = tmp_path_factory.mktemp("generated")
    generator.write(generator.generate(app), directory)
    return directory / "man"


@pytest.mark.parametrize("page", ["chatctl"] + [f"chatctl-{group}" for group in GROUPS])
def test_man_page_has_every_section_and_renders_without_warnings(man_dir, page):
    groff = _require("groff")
    source = (man_dir / f"{page}.1").read_text()
    headings = [line[4:].strip('"') for line in source.splitlines() if line.startswith(".SH ")]
    assert [heading for heading in MAN_SECTIONS if heading not in headings] == []
    result = subprocess.run([groff, "-man", "-ww", "-Tutf8", "-z", str(man_dir / f"{page}.1")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_man_renders_the_main_page(man_dir):
    man = _require("man")
    _require("groff")
    result = subprocess.run([man, "-l", str(man_dir / "chatctl.1")], capture_output=True, text=True,
                            env={**os.environ, "MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80"})
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for heading in MAN_SECTIONS:
        assert heading in text
    for variable in ("CHATCTL_DATABASE_URL", "CHATCTL_READ_DATABASE_URL", "CHATCTL_PROFILE", "CHATCTL_CONFIG",
                     "CHATCTL_ACTOR", "NO_COLOR", "PGPASSFILE", "PGSERVICE"):
        assert variable in text
    assert "config.toml" in text and "chatctl.db" in text
    assert "chatctl demo load && chatctl sweep run" in text  # the example, not hyphens turned into dashes
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert f"\n       {code} " in text


def test_every_environment_variable_chatctl_reads_is_documented(man_dir):
    import re

    named = set()
    for source in (ROOT / "src" / "chatctl").rglob("*.py"):
        named |= set(re.findall(r"\b_?CHATCTL_[A-Z][A-Z_]*[A-Z]\b", source.read_text()))
    page = (man_dir / "chatctl.1").read_text()
    assert sorted(name for name in named if f"\\fB{name}\\fR" not in page) == [], (
        "add them to ENVIRONMENT in scripts/generate_docs.py")


def test_group_page_documents_each_command_with_its_options_and_examples(man_dir):
    text = (man_dir / "chatctl-agents.1").read_text()
    assert '.SS "agents add"' in text
    assert "\\fB\\-\\-name\\fR \\fINAME\\fR" in text
    assert "One of: online, offline." in text or "online or offline." in text
    assert "chatctl agents add bob \\-\\-name" in text
    assert "\\fBchatctl\\-prefs\\fR(1)" in text


# -- completion: commands, options, choices -------------------------------------------
def test_completes_groups_and_commands():
    assert complete([], "ch") == ["chats"]
    assert set(complete([], "")) >= set(GROUPS)
    for group in generator.groups(TREE):
        offered = complete(group.path[1:], "")
        assert [child.path[-1] for child in group.children()] == offered


def test_completes_options():
    assert "--database-url" in complete([], "--d")
    assert "--output" in complete(["agents", "list"], "--")


def _choice_cases():
    for node in COMMANDS:
        preceding: list[str] = []
        for param in node.parameters():
            values = generator.choices(param)
            if generator.is_option(param):
                if values:
                    yield pytest.param(node.path[1:] + [param.opts[0]], values, id=f"{node.name} {param.opts[0]}")
            else:
                if values:
                    yield pytest.param(node.path[1:] + preceding, values, id=f"{node.name} {param.name}")
                if param.nargs != 1:
                    break
                preceding.append(values[0] if values else "1")


@pytest.mark.parametrize(("args", "values"), list(_choice_cases()))
def test_completes_every_fixed_choice(args, values):
    assert complete(args, "") == values


def test_completes_output_formats_and_preference_keys():
    assert complete(["agents", "list", "--output"], "js") == ["json", "jsonl"]
    assert complete(["prefs", "set"], "inac") == ["inactivity_timeout", "inactivity_action"]


def test_sweep_jobs_complete_in_run_order_without_repeats():
    from chatctl.completion import complete_sweep_job
    from chatctl.domain.sweeps import JOB_ORDER

    context = generator.command_tree(app).context
    assert complete_sweep_job(context, [], "") == list(JOB_ORDER)
    assert complete_sweep_job(context, ["inactivity"], "") == [job for job in JOB_ORDER if job != "inactivity"]
    assert complete_sweep_job(context, [], "a") == ["agent-timeout", "archive"]


def test_sweep_run_offers_the_jobs():
    from chatctl.domain.sweeps import JOB_ORDER

    assert complete(["sweep", "run"], "") == list(JOB_ORDER), (
        "wire autocompletion=chatctl.completion.complete_sweep_job into sweep run's JOB argument")


# -- completion: agent handles from the database --------------------------------------
@pytest.fixture
def desk_with_agents(bare_cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    assert bare_cli(["--database-url", url, "db", "init"]).exit_code == 0
    for handle, name in (("alice", "Alice N."), ("albert", "Albert K."), ("bob", "Bob M."), ("al_x", "Gone")):
        assert bare_cli(["--database-url", url, "agents", "add", handle, "--name", name]).exit_code == 0
    assert bare_cli(["--database-url", url, "agents", "deactivate", "al_x"]).exit_code == 0
    return url


def test_agent_handles_complete_from_the_database(cli):
    for handle in ("alice", "albert", "bob"):
        assert cli("agents", "add", handle, "--name", handle.title()).exit_code == 0
    assert complete(["--database-url", cli.url, "agents", "set-status"], "al") == ["albert", "alice"]
    assert complete(["--database-url", cli.url, "--actor"], "b") == ["bob"]
    assert complete(["--database-url", cli.url, "agents", "deactivate"], "%") == []  # LIKE wildcards are literal


def test_agent_handles_come_from_the_environment_url_and_skip_deactivated_agents(desk_with_agents, monkeypatch):
    monkeypatch.setenv("CHATCTL_DATABASE_URL", desk_with_agents)
    assert complete(["agents", "set-status"], "al") == ["albert", "alice"]
    assert complete(["agents", "set-status"], "") == ["albert", "alice", "bob"]


def _handle_params():
    for node in TREE.walk():
        for param in node.parameters():
            if generator.is_option(param):  # --actor of the root; `audit list --actor` also takes ops:/system
                takes_handle = bool(set(param.opts) & {"--agent", "--as"}) or (node is TREE and "--actor" in param.opts)
            else:
                takes_handle = (param.name or "").lower() == "handle"
            if takes_handle and node.path[-2:] != ["agents", "add"]:
                args = node.path[1:] + ([param.opts[0]] if generator.is_option(param) else [])
                yield pytest.param(args, id=f"{node.name} {param.opts[0] if generator.is_option(param) else 'HANDLE'}")


@pytest.mark.parametrize("args", list(_handle_params()))
def test_every_agent_handle_parameter_completes_from_the_database(args, desk_with_agents):
    assert complete(["--database-url", desk_with_agents, *args], "al") == ["albert", "alice"], (
        f"chatctl {' '.join(args)}: wire autocompletion=chatctl.completion.complete_agent_handle")


def test_unreachable_or_missing_databases_complete_nothing_silently(tmp_path):
    missing = tmp_path / "nothing-here.db"
    assert complete(["--database-url", f"sqlite:///{missing}", "agents", "set-status"], "") == []
    assert not missing.exists(), "a <Tab> must not create a database file"
    not_a_database = tmp_path / "junk.db"
    not_a_database.write_text("not sqlite")
    assert complete(["--database-url", f"sqlite:///{not_a_database}", "agents", "set-status"], "") == []
    result = subprocess.run(
        [sys.executable, "-m", "chatctl"], capture_output=True, text=True, timeout=20,
        env={**os.environ, "_CHATCTL_COMPLETE": "complete_bash", "COMP_CWORD": "5",
             "COMP_WORDS": "chatctl --database-url postgresql://nobody@127.0.0.1:9/none agents set-status "},
    )
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "", "")


# -- completion in real shells ----------------------------------------------------------
def _run_shell(argv: list[str], script: str) -> subprocess.CompletedProcess:
    return subprocess.run([*argv, script], capture_output=True, text=True, cwd=ROOT, env=_shell_env(), timeout=60)


def test_bash_completes_commands_choices_and_handles(desk_with_agents):
    bash = _require("bash")
    script = """
    source completions/chatctl.bash
    complete -p chatctl
    offer() { COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); COMPREPLY=(); _chatctl_completion chatctl;
              echo "[$*] ${COMPREPLY[*]}"; }
    offer chatctl ch
    offer chatctl agents list --output js
    offer chatctl prefs get pending
    offer chatctl --database-url "$DESK" agents set-status al
    """
    result = subprocess.run([bash, "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            cwd=ROOT, env={**_shell_env(), "DESK": desk_with_agents}, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "complete -o default -F _chatctl_completion chatctl" in lines
    assert "[chatctl ch] chats" in lines
    assert "[chatctl agents list --output js] json jsonl" in lines
    assert "[chatctl prefs get pending] pending_timeout" in lines
    assert f"[chatctl --database-url {desk_with_agents} agents set-status al] albert alice" in lines


_ZSH_STUB = """
_arguments() { print -rl -- "$@" }
_files() { print -r -- "(files)" }
words=(chatctl ch); CURRENT=2
"""


def test_zsh_completes_when_sourced():
    zsh = _require("zsh")
    script = ("autoload -Uz compinit && compinit -u -D\nsource completions/_chatctl\n"
              'print -r -- "registered: ${_comps[chatctl]}"\n' + _ZSH_STUB + "_chatctl_completion\n")
    result = _run_shell([zsh, "-f", "-c"], script)
    assert result.returncode == 0, result.stderr
    assert "registered: _chatctl_completion" in result.stdout
    assert '"chats":' in result.stdout


def test_zsh_completes_when_autoloaded_from_fpath():
    zsh = _require("zsh")
    script = ("fpath=(completions $fpath)\nautoload -Uz compinit && compinit -u -D\n"
              'print -r -- "registered: ${_comps[chatctl]}"\n' + _ZSH_STUB +
              "_chatctl\nprint -r -- again\n_chatctl\n")
    result = _run_shell([zsh, "-f", "-c"], script)
    assert result.returncode == 0, result.stderr
    assert "registered: _chatctl" in result.stdout
    first, again = result.stdout.split("again")
    assert '"chats":' in first and '"chats":' in again  # every Tab completes, the first one included


def test_fish_completes_commands_and_choices():
    fish = _require("fish")
    script = ("source completions/chatctl.fish\n"
              "complete -C 'chatctl ch'\necho SPLIT\ncomplete -C 'chatctl agents list --output js'\n")
    result = _run_shell([fish, "--no-config", "-c"], script)
    assert result.returncode == 0, result.stderr
    commands, formats = result.stdout.split("SPLIT\n")
    assert [line.split("\t")[0] for line in commands.splitlines()] == ["chats"]
    assert formats.split() == ["json", "jsonl"]
