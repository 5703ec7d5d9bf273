"""chatctl tickets: the tickets view, one ticket, and bulk ticket actions."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import (AfterOpt, AgentOpt, AllOpt, BatchSizeOpt, DryRunOpt, LimitOpt,
                                     IdsArg, OutputOpt, TicketWhereOpt, YesOpt, desk, fmt, note_next_page,
                                     page_limit, run_bulk)
from chatctl.batch_sizes import TICKET_ACTION
from chatctl.completion import complete_agent_handle
from chatctl.vocabulary import TICKET_REASONS, TICKET_STATUSES, choices, spoken

app = typer.Typer(
    help="Tickets: list, show, close, reopen, archive, unarchive, assign, and scripted bulk cleanup.\n\n"
    "Tickets never expire: only people close them.  Archived tickets are read-only until "
    "unarchived.  Agents cannot transfer tickets to other agents.\n\n"
    "Example:\n\n\b\n    chatctl tickets list --status open --older-than 30d\n"
    "    chatctl tickets close --where 'age>30d' reason=out_of_hours --dry-run",
    no_args_is_help=True,
)



Status = choices("Status", TICKET_STATUSES)
Reason = choices("Reason", TICKET_REASONS)


TimeOpt = Optional[str]


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[Optional[Status], typer.Option("--status", help=f"{spoken(TICKET_STATUSES)}.",
                                                     show_default=False)] = None,
    archived: Annotated[bool, typer.Option("--archived", help="Only archived tickets.")] = False,
    include_archived: Annotated[bool, typer.Option("--include-archived",
                                                   help="Archived tickets too.")] = False,
    agent: AgentOpt = None,
    reason: Annotated[Optional[Reason], typer.Option("--reason", help=f"{spoken(TICKET_REASONS)}.",
                                                     show_default=False)] = None,
    older_than: Annotated[TimeOpt, typer.Option("--older-than", help="Created more than DUR ago (30d, 12h).",
                                                show_default=False)] = None,
    created_before: Annotated[TimeOpt, typer.Option("--created-before", help="Created before TS "
                                                    "(ISO 8601 or -7d).", show_default=False)] = None,
    created_after: Annotated[TimeOpt, typer.Option("--created-after", help="Created at or after TS.",
                                                   show_default=False)] = None,
    limit: LimitOpt = None,
    after: AfterOpt = None,
    all_: AllOpt = False,
    output: OutputOpt = None,
) -> None:
    """The tickets view: open and closed tickets, not archived, newest first.

    A full page prints "next page: --after CURSOR" on stderr; --all streams
    every row with flat memory.

    Example: chatctl tickets list --status open --agent alice -o json
    """
    from chatctl.domain.agents.roster import require_agent_id
    from chatctl.domain.tickets.views import TICKET_KEYS, TicketQuery, list_tickets
    from chatctl.errors import UsageError
    from chatctl.output import render_rows
    from chatctl.parsing.timeparse import parse_duration, parse_relative_or_timestamp

    if archived and include_archived:
        raise UsageError("give --archived or --include-archived, not both")
    rows_wanted = page_limit(limit, all_)
    the_desk = desk(ctx)
    now = the_desk.now()
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        tz = the_desk.tz(connection)
        bounds = [parse_relative_or_timestamp(created_before, now, tz)] if created_before else []
        if older_than:
            bounds.append(now - parse_duration(older_than))
        query = TicketQuery(
            status=status.value if status else None,
            archived="only" if archived else "include" if include_archived else "exclude",
            agent_id=require_agent_id(connection, agent, active_only=False) if agent else None,
            reason=reason.value if reason else None,
            created_before=min(bounds) if bounds else None,
            created_after=parse_relative_or_timestamp(created_after, now, tz) if created_after else None,
        )
        page = list_tickets(connection, query, limit=rows_wanted, after=after)
        render_rows(the_desk.env, page.rows, TICKET_KEYS, fmt(output), tz=tz, empty="no tickets")
    note_next_page(the_desk, page.next_cursor)


TicketPart = choices("TicketPart", ("history",))
HISTORY_COLUMNS = ["id", "at", "actor", "action", "before", "after", "reason"]


@app.command("show")
def show(
    ctx: typer.Context,
    ticket_id: Annotated[str, typer.Argument(metavar="ID", help="The ticket's id.", show_default=False)],
    output: OutputOpt = None,
    part: Annotated[Optional[TicketPart], typer.Option(
        "--part", help="Only the ticket's audit history, one row each (any format).", show_default=False)] = None,
) -> None:
    """One ticket: its fields, its source chat and its audit history.

    CSV and TSV hold rows of one kind: the ticket itself as one row, or with
    --part history its audit events.

    Example: chatctl tickets show 42 -o json
    """
    from chatctl.parsing.ids import parse_id
    from chatctl.domain.tickets.views import TICKET_KEYS, show_ticket
    from chatctl.output import choose_format, render_record, render_rows

    the_desk = desk(ctx)
    number = parse_id(ticket_id.strip())
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        tz = the_desk.tz(connection)
        record = show_ticket(connection, number)
    chosen = choose_format(fmt(output), the_desk.env)
    if part is not None:
        render_rows(the_desk.env, record["history"], HISTORY_COLUMNS, chosen, tz=tz)
        return
    if chosen in ("json", "jsonl", "ids"):
        render_record(the_desk.env, record, chosen, tz=tz)
        return
    flat = {key: record[key] for key in TICKET_KEYS}
    for key, value in (record["chat"] or {}).items():
        flat[f"chat_{key}"] = value
    if chosen in ("csv", "tsv"):
        render_rows(the_desk.env, [flat], list(flat), chosen, tz=tz)
        return
    render_record(the_desk.env, flat, chosen, tz=tz)
    if record["history"]:
        the_desk.env.stdout.write("\n")
        render_rows(the_desk.env, record["history"], HISTORY_COLUMNS, chosen, tz=tz)


def _ticket_action(make_action):
    """``prepare`` for ``run_bulk``: the action built for the acting person, applied batch by batch
    (selected by ``--where``: the filter is the audit reason when the action has none)."""
    from chatctl.domain.tickets.actions import apply_action

    def prepare(connection, acting):
        action = make_action(acting)
        if acting.selected_by and action.reason is None:
            action.reason = f"selected by --where {acting.selected_by}"
        return lambda batch_connection, batch: apply_action(batch_connection, batch, action, at=acting.now,
                                                           actor=acting.actor.name,
                                                           operation_id=acting.operation_id)

    return prepare


def _run(ctx: typer.Context, prepare, *, ids, where, yes, dry_run, batch_size, output, what: str) -> None:
    run_bulk(ctx, prepare, ids=ids, where=where, yes=yes, selecting="tickets", output=output, dry_run=dry_run,
             batch_size=batch_size, what=f"tickets {what}")


@app.command("close")
def close(
    ctx: typer.Context,
    ids: IdsArg = None,
    where: TicketWhereOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    batch_size: BatchSizeOpt = TICKET_ACTION,
    output: OutputOpt = None,
) -> None:
    """Close tickets by id, from standard input, or every open unarchived ticket a filter selects.

    Closing a closed ticket is skipped (exit 0); an archived ticket is
    refused until unarchived.  --where walks the matches in batches
    of --batch-size, each its own short transaction with its audit rows;
    Ctrl-C keeps the finished batches and exits 130.  --dry-run needs no
    confirmation.

    Example: chatctl tickets close --where 'age>30d' reason=out_of_hours --yes
    """
    from chatctl.domain.tickets.actions import close_action

    _run(ctx, _ticket_action(lambda acting: close_action(acting.now)), ids=ids, where=where, yes=yes,
         dry_run=dry_run, batch_size=batch_size, output=output, what="close")


@app.command("reopen")
def reopen(ctx: typer.Context, ids: IdsArg = None, where: TicketWhereOpt = None, yes: YesOpt = False,
           dry_run: DryRunOpt = False, batch_size: BatchSizeOpt = TICKET_ACTION, output: OutputOpt = None) -> None:
    """Reopen closed tickets (--where: the closed, unarchived tickets a filter selects).

    An archived ticket is refused until unarchived.

    Example: chatctl tickets reopen 42 43
    """
    from chatctl.domain.tickets.actions import reopen_action

    _run(ctx, _ticket_action(lambda acting: reopen_action(acting.now)), ids=ids, where=where, yes=yes,
         dry_run=dry_run, batch_size=batch_size, output=output, what="reopen")


@app.command("archive")
def archive(ctx: typer.Context, ids: IdsArg = None, where: TicketWhereOpt = None, yes: YesOpt = False,
            dry_run: DryRunOpt = False, batch_size: BatchSizeOpt = TICKET_ACTION, output: OutputOpt = None) -> None:
    """Archive tickets now, whatever their status: they leave the tickets view and become read-only.

    Example: chatctl tickets archive --where status=closed 'closed>30d' --yes
    """
    from chatctl.domain.tickets.actions import archive_action

    _run(ctx, _ticket_action(lambda acting: archive_action(acting.now)), ids=ids, where=where, yes=yes,
         dry_run=dry_run, batch_size=batch_size, output=output, what="archive")


@app.command("unarchive")
def unarchive(ctx: typer.Context, ids: IdsArg = None, where: TicketWhereOpt = None, yes: YesOpt = False,
              dry_run: DryRunOpt = False, batch_size: BatchSizeOpt = TICKET_ACTION,
              output: OutputOpt = None) -> None:
    """Bring archived tickets back to the tickets view, writable again.

    Example: chatctl tickets unarchive 42
    """
    from chatctl.domain.tickets.actions import unarchive_action

    _run(ctx, _ticket_action(lambda acting: unarchive_action(acting.now)), ids=ids, where=where, yes=yes,
         dry_run=dry_run, batch_size=batch_size, output=output, what="unarchive")


@app.command("assign")
def assign(
    ctx: typer.Context,
    agent: Annotated[str, typer.Option("--agent", help="The agent to assign the tickets to.",
                                       show_default=False, autocompletion=complete_agent_handle)],
    ids: IdsArg = None,
    where: TicketWhereOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    batch_size: BatchSizeOpt = TICKET_ACTION,
    output: OutputOpt = None,
) -> None:
    """Assign tickets to an agent (audited).

    An actor with role agent cannot assign a ticket to another agent;
    they may take an unassigned ticket for themselves, not one that is another
    agent's.  Supervisors and admins assign freely.  Archived tickets are
    refused.

    Example: chatctl --actor carol tickets assign 42 43 --agent bob
    """
    from chatctl.domain.agents.roster import require_agent_id
    from chatctl.domain.tickets.actions import assign_action

    def prepare(connection, acting):
        agent_id = require_agent_id(connection, agent)
        return _ticket_action(lambda acting: assign_action(agent_id, agent, acting.actor))(connection, acting)

    _run(ctx, prepare, ids=ids, where=where, yes=yes, dry_run=dry_run, batch_size=batch_size, output=output,
         what="assign")
