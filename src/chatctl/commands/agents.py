"""chatctl agents: the desk's users, their roles and presence."""

from __future__ import annotations

from typing import Annotated

import typer

from chatctl.commands.common import DryRunOpt, OutputOpt, desk, fmt, run_bulk
from chatctl.completion import complete_agent_handle
from chatctl.vocabulary import PRESENCES, ROLES, choices, spoken

app = typer.Typer(
    help="The desk's users: list, add, set presence, deactivate, drain at end of shift.\n\n"
    "Example:\n\n\b\n    chatctl agents add alice --name 'Alice N.' --role supervisor\n"
    "    chatctl agents set-status alice online",
    no_args_is_help=True,
)


Role = choices("Role", ROLES)
Presence = choices("Presence", PRESENCES)

HandleArg = Annotated[str, typer.Argument(help="The agent's handle.", show_default=False,
                                         autocompletion=complete_agent_handle)]
AGENT_COLUMNS = ["handle", "name", "role", "presence", "active", "live_chats"]


@app.command("list")
def list_(
    ctx: typer.Context,
    output: OutputOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include deactivated agents.")] = False,
) -> None:
    """List agents with role, presence and live chat count.

    Example: chatctl agents list -o json
    """
    from chatctl.domain.agents.roster import list_agents
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        rows = list_agents(connection, include_inactive=all_)
    render_rows(the_desk.env, rows, AGENT_COLUMNS, fmt(output), id_key="handle", empty="no agents")


def _change(ctx: typer.Context, function, *args, output=None) -> None:
    from chatctl.output import render_record

    the_desk = desk(ctx)
    operation_id = the_desk.operation_id  # before the transaction: recording it writes too
    with the_desk.errors(), the_desk.engine().begin() as connection:
        actor = the_desk.actor(connection)
        result = function(connection, *args, actor=actor.name, operation_id=operation_id, now=the_desk.now())
    if output is not None:
        render_record(the_desk.env, result, fmt(output))
    return result


@app.command("add")
def add(
    ctx: typer.Context,
    handle: HandleArg,
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    role: Annotated[Role, typer.Option("--role", help=f"{spoken(ROLES)}.")] = Role.agent,
    online: Annotated[bool, typer.Option("--online", help="Start online.")] = False,
) -> None:
    """Add an agent (offline unless --online).

    Example: chatctl agents add bob --name 'Bob M.' --role agent --online
    """
    from chatctl.domain.agents.roster import add_agent

    result = _change(ctx, lambda c, **kw: add_agent(c, handle, name, role.value,
                                                    presence="online" if online else "offline", **kw))
    desk(ctx).env.note(f"added {result['role']} {handle}")


@app.command("set-status")
def set_status(ctx: typer.Context, handle: HandleArg,
               presence: Annotated[Presence, typer.Argument(help=f"{spoken(PRESENCES)}.")]) -> None:
    """Set an agent online or offline.

    Example: chatctl agents set-status bob offline
    """
    from chatctl.domain.agents.roster import set_presence

    result = _change(ctx, set_presence, handle, presence.value)
    desk(ctx).env.note(f"{handle}: {presence.value}" + (" (already)" if result["result"] == "skipped" else ""))


@app.command("deactivate")
def deactivate(ctx: typer.Context, handle: HandleArg) -> None:
    """Deactivate an agent (and take them offline); their chats stay until drained.

    Example: chatctl agents drain carol && chatctl agents deactivate carol
    """
    from chatctl.domain.agents.roster import deactivate as deactivate_agent

    result = _change(ctx, deactivate_agent, handle)
    desk(ctx).env.note(f"{handle}: deactivated" + (" (already)" if result["result"] == "skipped" else ""))


@app.command("drain")
def drain(
    ctx: typer.Context,
    handle: HandleArg,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
) -> None:
    """End of shift: hand the agent's open chats to other online agents.

    Live and pending chats go to online agents as the agent-timeout sweep would.

    Least-loaded online agents first, never the drained agent, agent_max_chats
    respected; a chat nobody can take becomes a ticket (no_agents).  One result
    per chat; audited as agents.drain.

    Example: chatctl agents drain carol --dry-run && chatctl agents drain carol
    """
    from chatctl.domain.agents.assignment import drain as drain_step
    from chatctl.domain.agents.assignment import open_chat_ids
    from chatctl.domain.agents.roster import agent_by_handle
    from chatctl.parsing.ids import IdSpool

    the_desk = desk(ctx)
    with the_desk.errors(), the_desk.engine().connect() as connection:
        agent = agent_by_handle(connection, handle)
        open_chats = IdSpool.from_ids(open_chat_ids(connection, agent.id))

    def prepare(connection, acting):
        return drain_step(agent.id, handle, actor=acting.actor.name, operation_id=acting.operation_id, now=acting.now)

    run_bulk(ctx, prepare, items=open_chats, output=output, dry_run=dry_run, what=f"drain {handle}")
