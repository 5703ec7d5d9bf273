"""chatctl chats: the five views, filters, one chat in full, and every chat action."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import (
    AfterOpt,
    AgentOpt,
    AllOpt,
    BatchSizeOpt,
    ChatWhereOpt,
    DryRunOpt,
    IntervalOpt,
    LimitOpt,
    IdsArg,
    OutputOpt,
    WatchOpt,
    WideOpt,
    YesOpt,
    desk,
    fmt,
    note_next_page,
    page_limit,
    run_bulk,
    watch_interval,
)
from chatctl.batch_sizes import CHAT_ACTION
from chatctl.completion import complete_agent_handle, complete_channel
from chatctl.errors import UsageError
from chatctl.vocabulary import SORTS, VIEWS, choices, spoken

app = typer.Typer(
    help="The five views (live, pending, tagged, closed, tickets), filters, one chat in full, "
    "and every chat action.\n\nExample:\n\n\b\n    chatctl chats list live --unread\n"
    "    chatctl chats filter status=live 'idle>2h' -o ids | chatctl chats close - --reason stale",
    no_args_is_help=True,
)


View = choices("View", VIEWS)
Sort = choices("Sort", SORTS)


ChatIdArg = Annotated[int, typer.Argument(help="The chat id.", min=1, show_default=False)]
AsOpt = Annotated[str, typer.Option("--as", help="The agent handle acting in the chat.", show_default=False,
                                    autocompletion=complete_agent_handle)]


def _marker(text: str, colour: str):
    return lambda value, row: f"[{colour}]{text}[/{colour}]" if value else ""


def _chat_columns(view: str):
    """What a view shows.  In a table, times read as "12m" (waiting: since the customer's unanswered
    message; idle: since the last activity), and the least important columns go first when the
    terminal is narrow: channel, then idle, agent, customer."""
    from chatctl.domain.chats.views import waiting_since
    from chatctl.output import Column

    if view == "tickets":
        return [Column("id"), Column("chat_id"), "status", Column("reason", drop=2), Column("agent", drop=1),
                Column("created_at", "created", ago="age"), Column("closed_at", "closed", ago="closed", drop=3)]
    columns = [Column("id"), Column("channel", drop=1), Column("customer", drop=5), Column("agent", drop=3),
               Column("flagged", style=_marker("⚑", "yellow"))]
    if view == "closed":
        return columns + [Column("closed_at", "closed", ago="closed"), Column("closed_by", "by"),
                          Column("close_reason", "reason", drop=4),
                          Column("last_activity_at", "activity", ago="idle", drop=2)]
    # R2's markers: new activity (a blue dot) and new chats, beside the id.
    columns[1:1] = [Column("unread", "", _marker("●", "blue")), Column("new", "", _marker("new", "green"))]
    columns += [Column("last_customer_message_at", "customer wrote", ago="waiting", since=waiting_since),
                Column("last_activity_at", "activity", ago="idle", drop=2)]
    if view == "tagged":
        columns += [Column("status", drop=4), Column("tagged")]
    if view == "pending":
        columns.append(Column("pending_since", "pending since", ago="pending"))
    return columns


@app.command("list")
def list_(
    ctx: typer.Context,
    view: Annotated[View, typer.Argument(help=f"{spoken(VIEWS)}.")] = View.live,
    agent: AgentOpt = None,
    channel: Annotated[Optional[str], typer.Option("--channel", autocompletion=complete_channel,
                                                   help="Only this channel: whatsapp, webchat, ..., or any other "
                                                   "channel ingest has seen.",
                                                   show_default=False)] = None,
    flagged: Annotated[Optional[bool], typer.Option("--flagged/--not-flagged", help="Only flagged / unflagged chats.",
                                                    show_default=False)] = None,
    new: Annotated[bool, typer.Option("--new", help="Only new chats (no agent reply yet).")] = False,
    unread: Annotated[bool, typer.Option("--unread", help="Only chats with new customer activity.")] = False,
    sort: Annotated[Optional[Sort], typer.Option(
        "--sort", help="activity: latest customer message first (default); new: newest chat first; "
        "closed: latest closed first (default of the closed view).", show_default=False)] = None,
    limit: LimitOpt = None,
    after: AfterOpt = None,
    all_: AllOpt = False,
    wide: WideOpt = False,
    watch: WatchOpt = False,
    interval: IntervalOpt = "2s",
    output: OutputOpt = None,
) -> None:
    """List one view: live, pending, tagged, closed or tickets.

    In the live view, "new" (green) marks chats no agent has answered
    and a blue dot marks new customer activity since the agent last looked.

    The tagged view lists open chats where --agent (default: the acting agent) is @-tagged,
    with everyone tagged and their presence.  The tickets view lists tickets, open and closed,
    not archived.  A full page prints "next page: --after CURSOR" on stderr; --all streams
    every row.

    In a table, "waiting" is how long the customer has waited for an answer and "idle" the
    time since the last activity; other formats keep the timestamps.  A table narrower than
    its columns leaves out channel, idle, agent and customer, in that order (--wide keeps
    them).  --watch redraws the page every --interval until Ctrl-C.

    Example:

    \b
        chatctl chats list live --unread --sort activity --limit 20
        chatctl chats list live --agent alice --watch
    """
    from chatctl.domain.chats.views import ViewOptions, list_view
    from chatctl.output import choose_format, render_rows

    rows_wanted = page_limit(limit, all_)
    if watch and all_:
        raise UsageError("--watch shows one page at a time: give --limit, not --all")
    every = watch_interval(interval) if watch else None
    the_desk = desk(ctx)
    if view is View.tagged and agent is None:
        actor = the_desk.actor()
        if actor.agent_id is None:
            raise UsageError(f"the tagged view needs --agent HANDLE: whose tags to show ({actor.name} is not an agent)")
        agent = actor.name
    options = ViewOptions(view=view.value, agent=agent, channel=channel, flagged=flagged, new=new, unread=unread,
                          sort=sort.value if sort else None, limit=rows_wanted, after=after)
    flat = choose_format(fmt(output), the_desk.env) not in ("json", "jsonl")
    chosen = "json" if watch and fmt(output) == "jsonl" else fmt(output)  # a snapshot is one document

    def draw(env) -> None:
        with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
            page = list_view(connection, options, flat=flat)
            render_rows(env, page.rows, _chat_columns(view.value), chosen, tz=the_desk.tz(connection),
                        now=the_desk.now(), wide=wide, one_line=watch,
                        empty=f"no chats in the {view.value} view" if view is not View.tickets else "no tickets")
        if not watch:
            note_next_page(the_desk, page.next_cursor)

    if not watch:
        draw(the_desk.env)
        return
    from chatctl.output import watch as watch_loop

    watch_loop(the_desk.env, draw, fmt=chosen, interval=every,
               heading=lambda: f"chatctl chats list {view.value}")


@app.command("filter")
def filter_(
    ctx: typer.Context,
    expressions: Annotated[list[str], typer.Argument(help="FIELD OP VALUE, several ANDed (e.g. status=live "
                                                     "'idle>2h' 'customer~acme').", show_default=False)],
    count: Annotated[bool, typer.Option("--count", help="Print only the number of matching chats.")] = False,
    ids_only: Annotated[bool, typer.Option("--ids-only", help="Print only ids (same as -o ids).")] = False,
    output: OutputOpt = None,
) -> None:
    """Chats matching every expression, by id (streamed).

    Fields: status, channel, agent, customer, flagged, tagged, created, closed, closed_by,
    reason, idle, age.  Operators: = != < <= > >= and ~ (contains, any case).  Values are
    always bound parameters.

    Example: chatctl chats filter status=live 'idle>2h' -o ids | chatctl chats close -
    """
    from chatctl.domain.chats.views import filter_chats
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        tz = the_desk.tz(connection)
        result = filter_chats(connection, expressions, now=the_desk.now(), tz=tz, count=count)
        if count:
            the_desk.env.stdout.write(f"{result}\n")
            return
        columns = ["id", "status", "channel", "customer", "agent", "flagged", "new", "unread", "created_at",
                   "last_activity_at", "closed_at", "closed_by"]
        render_rows(the_desk.env, result, columns, "ids" if ids_only else fmt(output), tz=tz,
                    empty="no chats match")


ChatPart = choices("ChatPart", ("messages", "comments", "history"))
# Each part of `chats show` as rows of one kind: the columns of the text formats.
CHAT_PARTS = {
    "messages": ["created_at", "author", "kind", "template", "body"],
    "comments": ["created_at", "author", "mentions", "body"],
    "history": ["at", "actor", "action", "operation", "reason"],
}


@app.command("show")
def show(ctx: typer.Context, chat_id: ChatIdArg, output: OutputOpt = None,
         part: Annotated[Optional[ChatPart], typer.Option(
             "--part", help="Only the chat's messages, comments or history, one row each (any format).",
             show_default=False)] = None) -> None:
    """One chat in full: fields, messages, comments with their tags, ticket, what can be sent
    to the customer now and why, and its audit history.

    CSV and TSV hold rows of one kind: the chat itself as one row, or with
    --part its messages, comments or history.

    Example: chatctl chats show 1042 -o json
    """
    from chatctl.domain.chats.views import show_chat
    from chatctl.output import choose_format, render_record, render_rows

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        record = show_chat(connection, chat_id, now=the_desk.now())
        tz = the_desk.tz(connection)
    chosen = choose_format(fmt(output), the_desk.env)
    parts = {"messages": record["messages"], "history": record["history"],
             "comments": [{**c, "mentions": ", ".join(c["mentions"])} if chosen not in ("json", "jsonl") else c
                          for c in record["comments"]]}
    if part is not None:
        render_rows(the_desk.env, parts[part.value], CHAT_PARTS[part.value], chosen, tz=tz)
        return
    if chosen in ("json", "jsonl", "ids"):
        render_record(the_desk.env, record, chosen, tz=tz)
        return
    window = record["reply_window"]
    summary = {key: value for key, value in record.items() if not isinstance(value, (list, dict))}
    summary["tagged"] = ", ".join(f"{p['handle']} ({p['presence']})" for p in record["tagged"])
    summary["can send"] = f"{window['can_send']}: {window['reason']}"
    if chosen in ("csv", "tsv"):
        render_rows(the_desk.env, [summary], list(summary), chosen, tz=tz)
        return
    render_record(the_desk.env, summary, chosen, tz=tz)
    for title, columns in CHAT_PARTS.items():
        if parts[title]:
            the_desk.env.stdout.write(f"\n{title}:\n")
            render_rows(the_desk.env, parts[title], columns, chosen, tz=tz)


# -- actions ----------------------------------------------------------------------------
@app.command("flag")
def flag(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
         note: Annotated[Optional[str], typer.Option("--note", help="Why, for whoever follows up.",
                                                     show_default=False)] = None,
         dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Flag chats to follow up later.

    The inactivity and agent timeouts leave flagged chats alone.

    Example: chatctl chats flag 1042 1043 --note 'waiting on billing'
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.flag(acting, note), ids=ids, where=where, yes=yes,
             output=output, dry_run=dry_run, what="flag", batch_size=batch_size)


@app.command("unflag")
def unflag(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
           dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Remove the flag from chats.

    The sweeps treat the chats normally again from their next run.

    Example: chatctl chats list live --flagged -o ids | chatctl chats unflag -
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.unflag(acting), ids=ids, where=where, yes=yes,
             output=output, dry_run=dry_run, what="unflag", batch_size=batch_size)


@app.command("pending")
def pending(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
            dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Mark live chats pending, waiting on the customer.

    Only a live chat can be marked pending.

    Example: chatctl chats pending 1042
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.pending(acting), ids=ids, where=where, yes=yes,
             output=output, dry_run=dry_run, what="pending", batch_size=batch_size)


@app.command("close")
def close(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
          reason: Annotated[Optional[str], typer.Option("--reason", help="close_reason (default: manual).",
                                                        show_default=False)] = None,
          include_flagged: Annotated[bool, typer.Option("--include-flagged",
                                                        help="Close flagged chats too (skipped otherwise).")] = False,
          dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Close live or pending chats (closed_by=agent, whoever closes by hand).  Their comments,
    tags and unread tag notifications go in the same transaction.  Flagged chats are
    skipped unless --include-flagged.

    Example: chatctl chats close --where status=live 'idle>4h' --dry-run
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.close(acting, reason, include_flagged=include_flagged),
             ids=ids, where=where, yes=yes, output=output, dry_run=dry_run, what="close", batch_size=batch_size)


@app.command("reopen")
def reopen(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
           agent: Annotated[Optional[str], typer.Option("--agent", help="Assign to this agent (default: the acting "
                                                        "agent; required when acting as ops).",
                                                        show_default=False,
                                                        autocompletion=complete_agent_handle)] = None,
           dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Reopen closed chats: live again, assigned to an agent.

    A reopen is activity: the inactivity clock starts again.

    Example: chatctl --actor alice chats reopen 1042
    """
    from chatctl.domain.chats import actions as chat_actions

    def prepare(connection, acting):
        return chat_actions.reopen(acting, chat_actions.reopening_agent(connection, acting.actor, agent))

    run_bulk(ctx, prepare, ids=ids, where=where, yes=yes, output=output, dry_run=dry_run, what="reopen",
             batch_size=batch_size)


@app.command("convert")
def convert(ctx: typer.Context, ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
            dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Turn live or pending chats into tickets (reason manual).

    Their comments and tags go, as when a chat closes.

    Example: chatctl chats convert 1042
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.convert(acting), ids=ids, where=where, yes=yes,
             output=output, dry_run=dry_run, what="convert", batch_size=batch_size)


@app.command("assign")
def assign(ctx: typer.Context,
           agent: Annotated[str, typer.Option("--agent", help="The agent to assign.", show_default=False,
                                              autocompletion=complete_agent_handle)],
           ids: IdsArg = None, where: ChatWhereOpt = None, yes: YesOpt = False,
           dry_run: DryRunOpt = False, output: OutputOpt = None, batch_size: BatchSizeOpt = CHAT_ACTION) -> None:
    """Assign live or pending chats to an agent.

    Example: chatctl chats list live --agent carol -o ids | chatctl chats assign - --agent bob
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, lambda connection, acting: chat_actions.assign(acting, chat_actions.find_person(connection, agent)),
             ids=ids, where=where, yes=yes, output=output, dry_run=dry_run, what="assign", batch_size=batch_size)


def _as_themselves(handle: str, prepare):
    """``--as HANDLE``: an actor with role agent may only name themselves (D4), checked
    before anything is read or written; supervisors, admins and ops act as anyone."""

    def checked(connection, acting):
        from chatctl.domain.actors import ONLY_THEMSELVES
        from chatctl.domain.batches import refuse_every

        if not acting.actor.may_act_as(handle):
            return refuse_every(ONLY_THEMSELVES)
        return prepare(connection, acting)

    return checked


@app.command("seen")
def seen(ctx: typer.Context, chat_id: ChatIdArg, as_: AsOpt, dry_run: DryRunOpt = False,
         output: OutputOpt = None) -> None:
    """Mark a chat seen by its assigned agent.

    It clears the unread dot until the customer writes again.

    Example: chatctl chats seen 1042 --as alice
    """
    from chatctl.domain.chats import actions as chat_actions

    run_bulk(ctx, _as_themselves(as_, lambda connection, acting: chat_actions.seen(
        acting, chat_actions.find_person(connection, as_))),
        ids=[str(chat_id)], refusals_of="chat", output=output, dry_run=dry_run, what="seen")


@app.command("reply")
def reply(
    ctx: typer.Context,
    chat_id: ChatIdArg,
    as_: AsOpt,
    text: Annotated[Optional[str], typer.Option("--text", help="A free-text message.", show_default=False)] = None,
    template: Annotated[Optional[str], typer.Option("--template", help="A WhatsApp template name.",
                                                    show_default=False)] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="Template parameter KEY=VALUE "
                                                       "(repeatable).", show_default=False)] = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
) -> None:
    """Send a message to the customer as the assigned agent.

    Tagged agents cannot, unless they are the assigned agent.  A closed
    chat takes text within closed_reply_window of closing, then only a WhatsApp template, and
    stays closed.  WhatsApp free text needs the customer to have written within 24 h.

    Example: chatctl chats reply 1042 --as alice --template followup --param name=Ann
    """
    from chatctl.domain.chats import actions as chat_actions

    if (text is None) == (template is None):
        raise UsageError("give either --text or --template")
    if text is not None and not text.strip():
        raise UsageError("--text is empty")
    if param and template is None:
        raise UsageError("--param goes with --template")
    params = _template_params(param or [])
    run_bulk(ctx, _as_themselves(as_, lambda connection, acting: chat_actions.reply(
        acting, chat_actions.find_person(connection, as_), text=text, template=template, params=params)),
        ids=[str(chat_id)], refusals_of="chat", output=output, dry_run=dry_run, what="reply")


def _template_params(words: list[str]) -> dict[str, str]:
    """``--param KEY=VALUE`` words as a dict."""
    params = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals or not key.strip():
            raise UsageError(f"bad --param '{word}': write KEY=VALUE")
        params[key.strip()] = value
    return params


@app.command("comment")
def comment(
    ctx: typer.Context,
    chat_id: ChatIdArg,
    as_: AsOpt,
    text: Annotated[str, typer.Option("--text", help="The note; @handle tags a teammate.", show_default=False)],
    dry_run: DryRunOpt = False,
    output: OutputOpt = None,
) -> None:
    """Add an internal comment to a live chat.

    Each @handle gets a notification and the chat
    in their tagged view; an unknown handle is refused and nothing is written.

    Example: chatctl chats comment 1042 --as alice --text '@bob can you check the refund?'
    """
    from chatctl.domain.chats import actions as chat_actions

    if not text.strip():
        raise UsageError("--text is empty")

    def prepare(connection, acting):
        author, mentions = chat_actions.prepare_comment(connection, as_, text)
        return chat_actions.comment(acting, author, mentions, text)

    run_bulk(ctx, _as_themselves(as_, prepare), ids=[str(chat_id)], refusals_of="chat", output=output,
             dry_run=dry_run, what="comment")
