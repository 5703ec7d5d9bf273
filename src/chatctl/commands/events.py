"""chatctl events: Apply inbound chat events (JSON Lines) as the desk would."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from chatctl.commands.common import OutputOpt, desk, fmt

app = typer.Typer(help="Apply inbound chat events (JSON Lines) as the desk would.", no_args_is_help=True)


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="A JSON Lines file, or - for standard input.", metavar="FILE|-",
                                        show_default=False)],
    output: OutputOpt = None,
) -> None:
    """Apply chat events from a JSON Lines file, in file order.

    One event per line, each with "type" and "at" (ISO 8601 with its offset, Z or
    +hh:mm; a time without one is a bad line):

    \b
      chat_started      customer, channel, [chat], [agent], [text], [name]
      customer_message  chat, text
      agent_message     chat, agent, text
      presence          agent, status (online|offline)

    chat_started creates the chat (a new id when "chat" is omitted; reported in
    the summary), and the customer on first sight.  Out of business hours (
    desk timezone and holidays) it becomes a ticket out_of_hours; with no agent
    online, a ticket no_agents.  A customer message makes a pending or closed
    chat live again; on a converted chat it is stored only.  An agent
    message answers the customer and moves the seen mark.  Every timestamp an
    event causes is its "at".

    Bad lines (bad JSON, unknown type, chat or agent, missing field, bad time)
    are reported on stderr with their line number and skipped; the rest are
    applied; the exit code is then 1.  Lines are applied in chunks, one
    transaction each; stopped by SIGINT or SIGTERM, it keeps the chunks
    committed, applies nothing read since, and says on stderr from which line
    to feed the rest (tail -n +N).  Audit: one event per created chat and ticket, per
    revived chat and per presence change; plain messages write none.

    Output: a summary (events per type, chats and tickets created, bad
    lines) with the ids of chats created without an explicit id
    ("generated_chats", with their line), in every format; -o ids prints
    just those ids.

    Example: zcat backfill.jsonl.gz | chatctl events ingest - -o json
    """
    from chatctl.domain.events import IngestSummary
    from chatctl.domain.events import ingest as ingest_events
    from chatctl.errors import ExitCode, Interrupted, UsageError
    from chatctl.output import progress, render_record, render_rows

    the_desk = desk(ctx)
    env = the_desk.env
    if file == "-":
        stream = env.stdin
    else:
        try:
            stream = open(file, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        except OSError as error:
            raise UsageError(f"cannot read {file}: {error.strerror}") from None
    engine = the_desk.engine()
    summary, interrupted = IngestSummary(), None
    try:
        with the_desk.errors(), progress(env, "ingesting lines") as bar:
            with engine.connect() as connection:
                actor = the_desk.actor(connection).name
            ingest_events(
                engine, stream, actor=actor, operation_id=the_desk.operation_id,
                report_bad_line=lambda line, message: env.warn(f"chatctl: line {line}: {message}"),
                advance=lambda lines: (bar.advance(lines), the_desk.keep_operation_alive()), summary=summary,
            )
    except Interrupted as error:
        interrupted = error
    finally:
        if stream is not env.stdin:
            stream.close()
    chosen = fmt(output)
    if chosen in ("json", "jsonl"):
        render_record(env, summary.as_json(the_desk.operation_id), chosen)
    elif chosen == "ids":
        render_rows(env, ({"id": chat_id} for chat_id in summary.generated_ids), ["id"], "ids")
    else:
        record = summary.flat(the_desk.operation_id)
        # The ids ingest gave chats started without one, in every format: nobody could find them otherwise.
        record["generated_chats"] = ", ".join(f"{chat} (line {line})" for line, chat in
                                              zip(summary.generated_lines, summary.generated_ids))
        render_record(env, record, chosen)
    if interrupted is not None:
        # What was applied, and where the rest of the input starts: a whole chunk or nothing.
        source = shlex.quote(file) if file != "-" else "FILE"
        env.note(f"ingest: {summary.line()} (interrupted) (operation {the_desk.operation_id}); "
                 + (f"lines 1-{summary.lines} applied, " if summary.lines else "no line applied, ")
                 + f"the rest starts at line {summary.lines + 1}: "
                 f"tail -n +{summary.lines + 1} {source} | chatctl events ingest -")
        raise typer.Exit(interrupted.exit_code)
    env.note(f"ingest: {summary.line()} (operation {the_desk.operation_id})")
    if summary.bad_lines:
        raise typer.Exit(ExitCode.PARTIAL)
