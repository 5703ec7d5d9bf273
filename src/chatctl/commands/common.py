"""Options shared by every command group, defined once (``OutputOpt``,
``DryRunOpt``, ``YesOpt``, ``IdsArg``, ``AsOfOpt``, ...), the helpers every
command uses to reach the desk, and the one plumbing of every command that
changes it (``run_bulk``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from chatctl.batch_sizes import OTHER_ACTION
from chatctl.completion import complete_agent_handle
from chatctl.errors import ExitCode, UsageError
from chatctl.vocabulary import OUTPUT_FORMATS, choices, spoken

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from chatctl.context import Desk
    from chatctl.domain.batches import Apply, ItemResult, Items, Selection
    from chatctl.domain.chats.actions import Acting
    from chatctl.parsing.ids import IdSpool


OutputFormat = choices("OutputFormat", OUTPUT_FORMATS)


OutputOpt = Annotated[
    Optional[OutputFormat],
    typer.Option("--output", "-o", help=f"{spoken(OUTPUT_FORMATS)} "
                 "(default: table on a terminal, tsv in a pipe).", show_default=False),
]
def _remember_dry_run(ctx: typer.Context, value: bool) -> bool:
    """A dry run changes nothing, so the invocation records no operation (D10)."""
    root = ctx.find_root()
    if value and root.obj is not None:
        root.obj.dry_run = True
    return value


DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Report exactly what would change; change nothing.",
                                         callback=_remember_dry_run)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Confirm a selection by filter without a prompt.")]
IdsArg = Annotated[
    Optional[list[str]],
    typer.Argument(help="Ids, or - to read them from standard input (one per line; blank lines and # "
                   "comments ignored).  With --where, further filter expressions.", metavar="ID...|-",
                   show_default=False),
]
ChatWhereOpt = Annotated[
    Optional[list[str]],
    typer.Option("--where", metavar="EXPR", help="Select by filter instead of ids: FIELD OP VALUE, several ANDed "
                 "(repeat --where or list them after it).  Fields: status, channel, agent, customer, flagged, "
                 "tagged, created, closed, closed_by, reason, idle, age.  Needs --yes or a confirmation at a "
                 "terminal.", show_default=False),
]
TicketWhereOpt = Annotated[
    Optional[list[str]],
    typer.Option("--where", metavar="EXPR", help="Select by filter instead of ids: FIELD OP VALUE, several ANDed (repeat "
                 "--where or list them after it).  Fields: status, reason, agent, created, closed, "
                 "archived, age, chat.  Needs --yes or a confirmation at a terminal.", show_default=False),
]
AsOfOpt = Annotated[
    Optional[str],
    typer.Option("--as-of", help="The instant to act as of: ISO 8601 (2026-11-30T09:00Z) or relative "
                 "(-2h, +1d). Default: now.", show_default=False),
]
# Rows of a list's page without --limit.
PAGE_SIZE = 50
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=1, help=f"Show at most N rows (default {PAGE_SIZE}).",
                                                 show_default=False)]
AfterOpt = Annotated[Optional[str], typer.Option("--after", help="Continue after this cursor "
                                                 "(printed on stderr when a page is full).", show_default=False)]
AllOpt = Annotated[bool, typer.Option("--all", help="Stream every row (no limit).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, max=100_000,
                                           help="Rows per transaction.")]
AgentOpt = Annotated[Optional[str], typer.Option("--agent", help="An agent handle.", show_default=False,
                                                 autocompletion=complete_agent_handle)]
WatchOpt = Annotated[bool, typer.Option("--watch", "-w", help="Show it again every --interval until Ctrl-C: "
                                        "redrawn in place at a terminal, one snapshot after another "
                                        "elsewhere (JSON: one document per line).")]
IntervalOpt = Annotated[str, typer.Option("--interval", metavar="DURATION",
                                          help="How often --watch takes a new snapshot (1s, 30s, 5m).")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Every column, however narrow the terminal (a table "
                                       "otherwise leaves out the least important columns to fit).")]


def desk(ctx: typer.Context) -> Desk:
    """The invocation's ``Desk`` (settings resolved and engines created on first use)."""
    root = ctx.find_root()
    return root.obj.desk()


def fmt(output: OutputFormat | None) -> str | None:
    return output.value if output is not None else None


def spool_ids(ids: list[str], desk: Desk) -> IdSpool:
    """``ID...`` or ``-``; refused before anything is written if any id is bad."""
    from chatctl.parsing.ids import IdSpool

    if not ids:
        raise UsageError("give ids, - to read them from standard input, or --where EXPR")
    if "-" in ids:
        if ids != ["-"]:
            raise UsageError("give either ids or -, not both")
        return IdSpool.from_lines(desk.env.stdin)
    return IdSpool.from_words(ids)


def as_of(text: str | None, desk: Desk) -> dt.datetime:
    from chatctl.parsing.timeparse import parse_relative_or_timestamp

    now = desk.now()
    if text is None:
        return now
    return parse_relative_or_timestamp(text, now, desk.tz())


def page_limit(limit: int | None, all_: bool) -> int | None:
    """Rows to show: ``--limit``, else a page of ``PAGE_SIZE``; ``None`` (every row) with ``--all``."""
    if all_ and limit is not None:
        raise UsageError("give --limit or --all, not both")
    return None if all_ else (limit or PAGE_SIZE)


def note_next_page(the_desk: Desk, cursor: str | None) -> None:
    """The one wording every paged list uses on stderr after a full page."""
    if cursor is not None:
        the_desk.env.note(f"next page: --after {cursor}")


def watch_interval(text: str) -> float:
    """``--interval``: a duration of at least 0.1s, in seconds."""
    from chatctl.parsing.timeparse import parse_duration

    seconds = parse_duration(text).total_seconds()
    if seconds < 0.1:
        raise UsageError(f"bad --interval '{text}': use at least 0.1s (e.g. 2s, 1m)")
    return seconds


def confirm_selection(desk: Desk, yes: bool, question: str) -> None:
    """A selection by filter needs ``--yes`` or a confirmation typed at a terminal."""
    if yes:
        return
    if not desk.env.stdin_isatty:
        raise UsageError(f"{question}: pass --yes to confirm (no terminal to ask on)")
    if not typer.confirm(question, default=False, err=True):
        raise UsageError("not confirmed; nothing changed")


def select_by_filter(desk: Desk, expressions: list[str], *, selecting: str, verb: str, yes: bool,
                     dry_run: bool) -> Selection | None:
    """``--where``: the chats, or the tickets ``verb`` can change, that a filter matches.

    A selection by filter needs ``--yes`` or a confirmation typed at a
    terminal, which names how many rows it selects; it is counted too when a
    progress bar will show (its total).  None when nothing matches and the
    terminal was told so.
    """
    from sqlalchemy import and_

    from chatctl.domain.agents.roster import require_agent_id
    from chatctl.domain.batches import Selection
    from chatctl.domain.tickets.actions import tickets_matching
    from chatctl.parsing.filters import compile_chat_filter, compile_ticket_filter, mentioned_agents, parse_expressions
    from chatctl.storage.models import Chat

    if "-" in expressions:
        raise UsageError("give ids (or -) or --where, not both")
    conditions = parse_expressions(expressions)
    at = desk.now()
    text = " ".join(str(condition) for condition in conditions)
    with desk.errors(), desk.engine().connect() as connection:
        for handle in mentioned_agents(conditions):
            require_agent_id(connection, handle, active_only=False)
        tz = desk.tz(connection)
        if selecting == "tickets":
            selection, noun = tickets_matching(desk.engine(), and_(*compile_ticket_filter(conditions, at, tz)), verb)
        else:
            selection, noun = Selection(desk.engine(), Chat.id, and_(*compile_chat_filter(conditions, at, tz))), "chats"
        selection.text = text
        desk.actor(connection)  # an unknown actor is refused before the prompt
    with desk.errors():
        if not (dry_run or yes) and desk.env.stdin_isatty and selection.counted() == 0:
            desk.env.note(f"no {noun} match {text}; nothing to do")
            return None
        count = f"{selection.count:,} " if selection.count is not None else ""
        if not dry_run:
            confirm_selection(desk, yes, f"{verb} the {count}{noun} matching {text}")
        if selection.count is None and desk.env.stderr_isatty and not desk.env.quiet:
            selection.counted()  # the progress bar's total, for its ETA
    return selection


def run_bulk(
    ctx: typer.Context,
    prepare: Callable[[Connection, Acting], Apply],
    *,
    ids: list[str] | None = None,
    items: Items | None = None,
    where: list[str] | None = None,
    yes: bool = False,
    selecting: str = "chats",
    output: OutputFormat | None,
    dry_run: bool,
    what: str,
    batch_size: int = OTHER_ACTION,
    refusals_of: str | None = None,
) -> None:
    """The plumbing of every command that changes the desk, in one place.

    The items are the ids as typed (``ids``: ``ID...`` or ``-``, all read and
    checked first) or a selection the command made (``items``: a filter's
    matches, an agent's open chats, an operation's events).  Then
    ``prepare(connection, acting)`` checks the people and values the action
    needs and returns the batch function; a bad handle or value stops here,
    before anything is written.  Then ``run_mutation`` runs the batches.

    ``where`` (``--where EXPR...``, with ``yes``; the positional ``ids`` are
    then more expressions) selects by filter instead: the chats, or with
    ``selecting="tickets"`` the tickets the action can change
    (``select_by_filter``).  The filter is re-checked under the lock, batch by
    batch: an item that stopped matching is skipped, not changed.

    ``refusals_of`` (e.g. "chat") also gives each refused or missing item a
    line of its own on stderr, for the commands that act on one item.
    """
    from chatctl.domain.chats.actions import Acting

    the_desk = desk(ctx)
    selection = None
    if where:
        selection = select_by_filter(the_desk, [*where, *(ids or [])], selecting=selecting,
                                     verb=what.rpartition(" ")[2], yes=yes, dry_run=dry_run)
        if selection is None:
            return
        items = selection
    if items is None:
        items = spool_ids(ids or [], the_desk)
    with the_desk.errors():
        operation_id = the_desk.operation_id  # before the transaction below: recording it writes too
    with the_desk.errors(), the_desk.engine().connect() as connection:
        acting = Acting(actor=the_desk.actor(connection), now=the_desk.now(), operation_id=operation_id,
                        selected_by=selection.text if selection is not None else None)
        apply = prepare(connection, acting)
    if selection is not None:
        apply = selection.still_matching(apply)
    if refusals_of is None:
        run_mutation(the_desk, items, apply, output=output, dry_run=dry_run, what=what, batch_size=batch_size)
        return
    failed: list[ItemResult] = []

    def apply_and_remember(connection: Connection, batch: list[int]) -> list[ItemResult]:
        results = apply(connection, batch)
        failed.extend(item for item in results if item.result in ("refused", "not_found"))
        return results

    try:
        run_mutation(the_desk, items, apply_and_remember, output=output, dry_run=dry_run, what=what,
                     batch_size=batch_size)
    finally:
        for item in failed:
            the_desk.env.warn(f"chatctl: {refusals_of} {item.id}: {item.reason}")


def run_mutation(
    desk: Desk,
    spool: Items,
    apply: Apply,
    *,
    output: OutputFormat | None,
    dry_run: bool,
    what: str,
    batch_size: int = OTHER_ACTION,
) -> None:
    """Apply ``apply`` to the items batch by batch, print per-item results and the summary.

    A dry run performs the same statements and rolls each batch back, so it
    reports exactly what would change.  Exit 1 when items were not found or
    refused; 130 on SIGINT (143 on SIGTERM) after reporting what the finished
    batches did.
    """
    from chatctl.domain.batches import run_batches
    from chatctl.errors import Interrupted
    from chatctl.output import MutationPrinter, progress

    engine = desk.engine()
    interrupted: int | None = None
    printer = MutationPrinter(desk.env, fmt(output), operation=desk.operation_id, dry_run=dry_run, what=what)
    with desk.errors(), printer, progress(desk.env, what, total=spool.count) as bar:
        def report(results: list[ItemResult]) -> None:
            printer.add(results)
            bar.advance(len(results))
            desk.operation_counts = printer.summary.counts
            desk.keep_operation_alive()

        try:
            run_batches(engine, spool.batches(batch_size), apply, report, dry_run=dry_run)
        except Interrupted as error:
            interrupted, printer.interrupted = error.exit_code, True
        except KeyboardInterrupt:
            interrupted, printer.interrupted = ExitCode.INTERRUPTED, True
    spool.close()
    if interrupted:
        raise typer.Exit(interrupted)
    if printer.summary.failed:
        raise typer.Exit(ExitCode.PARTIAL)
