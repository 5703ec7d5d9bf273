"""chatctl notifications: the bell of each agent (one notification per @-tag)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import (AfterOpt, AllOpt, DryRunOpt, LimitOpt, OutputOpt, desk, fmt, note_next_page,
                                     page_limit, run_bulk)
from chatctl.completion import complete_agent_handle

app = typer.Typer(
    help="Each agent's bell: one notification per @-tag in a comment.\n\nExample:\n\n\b\n"
    "    chatctl notifications list --agent bob --unread\n    chatctl notifications read --agent bob --all",
    no_args_is_help=True,
)

AgentRequired = Annotated[Optional[str], typer.Option(
    "--agent", help="Whose bell (default: the acting agent).", show_default=False,
    autocompletion=complete_agent_handle)]
COLUMNS = ["id", "kind", "chat_id", "comment_id", "created_at", "read_at"]


def _person(the_desk, connection, agent: str | None):
    from chatctl.domain.chats.actions import find_person
    from chatctl.errors import UsageError

    actor = the_desk.actor(connection)
    if agent is None:
        if actor.agent_id is None:
            raise UsageError(f"give --agent HANDLE ({actor.name} is not an agent)")
        agent = actor.name
    return actor, find_person(connection, agent)


@app.command("list")
def list_(ctx: typer.Context, agent: AgentRequired = None,
          unread: Annotated[bool, typer.Option("--unread", help="Only unread notifications.")] = False,
          limit: LimitOpt = None, after: AfterOpt = None, all_: AllOpt = False, output: OutputOpt = None) -> None:
    """An agent's notifications, newest first (50 unless --limit or --all).

    A full page prints "next page: --after CURSOR" on stderr.

    Example: chatctl notifications list --agent bob --unread -o json
    """
    from chatctl.domain.chats.notifications import list_notifications
    from chatctl.output import render_rows

    rows_wanted = page_limit(limit, all_)
    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        _actor, person = _person(the_desk, connection, agent)
        page = list_notifications(connection, person, unread=unread, limit=rows_wanted, after=after)
        render_rows(the_desk.env, page.rows, COLUMNS, fmt(output), tz=the_desk.tz(connection),
                    empty=f"no {'unread ' if unread else ''}notifications for {person.handle}")
    note_next_page(the_desk, page.next_cursor)


@app.command("read")
def read(ctx: typer.Context,
         ids: Annotated[Optional[list[str]], typer.Argument(help="Notification ids, or - for standard input.",
                                                            metavar="[ID...|-]", show_default=False)] = None,
         agent: AgentRequired = None,
         all_: Annotated[bool, typer.Option("--all", help="Every unread notification of the agent.")] = False,
         dry_run: DryRunOpt = False, output: OutputOpt = None) -> None:
    """Mark notifications read (audited).  Agents mark their own; supervisors and admins anyone's.

    Example: chatctl notifications read --agent bob --all
    """
    from chatctl.domain.chats.notifications import check_authority, mark_read, unread_ids
    from chatctl.errors import UsageError
    from chatctl.parsing.ids import IdSpool

    if bool(ids) == all_:
        raise UsageError("give notification ids (or -), or --all")
    the_desk = desk(ctx)
    with the_desk.errors(), the_desk.engine().connect() as connection:
        actor, person = _person(the_desk, connection, agent)
        check_authority(actor, person)
        every_unread = IdSpool.from_ids(unread_ids(connection, person)) if all_ else None
    run_bulk(ctx, lambda connection, acting: mark_read(acting, person), ids=ids, items=every_unread, output=output,
             dry_run=dry_run, what="notifications read")
