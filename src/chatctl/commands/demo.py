"""chatctl demo: Create a realistic demo desk to try chatctl on."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import OutputOpt, desk, fmt

app = typer.Typer(help="Create a realistic demo desk to try chatctl on.", no_args_is_help=True)


@app.command("load")
def load(
    ctx: typer.Context,
    chats: Annotated[int, typer.Option("--chats", min=1, max=50_000_000, help="How many chats.")] = 1000,
    agents: Annotated[int, typer.Option("--agents", min=1, max=10_000, help="How many agents.")] = 12,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed, size and --now give the "
                                      "same desk.")] = 1,
    now: Annotated[Optional[str], typer.Option(
        "--now", help="The desk's present: ISO 8601 or relative (-2h). Every timestamp lies before it. "
        "Default: now.", show_default=False)] = None,
    append: Annotated[bool, typer.Option("--append", help="Add to a desk that already has chats "
                                         "(refused without it).")] = False,
    output: OutputOpt = None,
) -> None:
    """Fill the desk with realistic, reproducible demo data.

    Agents on three shifts in the desk's time zone (the shift covering --now
    is online), customers on several channels, chats in every state (live new,
    unread and answered, pending, closed by customer, agent and system,
    converted) with 1-4 messages each, comments with @tags and notifications,
    flagged chats, and tickets of every age (open, closed, older than 90 days,
    archived).  Some chats are idle or unanswered long enough for the sweeps
    to act on.

    A desk that already has chats is refused unless --append (agents that
    already exist are reused).  The load is one transaction (COPY on
    PostgreSQL): interrupted, it leaves nothing.  Audit: one event for the
    whole load (entity desk, action demo.load, the counts in "after").

    Example: chatctl demo load --chats 1000000 --seed 7 --now 2026-11-30T10:00Z
    """
    from chatctl.commands.common import as_of
    from chatctl.domain.demo import load as load_demo
    from chatctl.domain.prefs import get_preference
    from chatctl.output import progress, render_record

    the_desk = desk(ctx)
    at = as_of(now, the_desk)
    engine = the_desk.engine()
    operation_id = the_desk.operation_id  # before the transaction: recording it writes too
    with the_desk.errors(), progress(the_desk.env, "loading demo chats", total=chats) as bar:
        with engine.begin() as connection:
            summary = load_demo(
                connection, chats=chats, agents=agents, seed=seed, now=at, zone=get_preference(connection, "timezone"),
                append=append, actor=the_desk.actor(connection).name, operation_id=operation_id,
                advance=bar.advance,
            )
    render_record(the_desk.env, summary, fmt(output), tz=the_desk.tz())
    the_desk.env.note(f"demo desk: {summary['chats']} chats, {summary['messages']} messages, "
                      f"{summary['tickets']} tickets (seed {seed}, operation {the_desk.operation_id})")
