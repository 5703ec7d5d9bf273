"""chatctl audit: the audit trail: list events, revert an operation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.commands.common import (AfterOpt, AllOpt, BatchSizeOpt, DryRunOpt, LimitOpt, OutputOpt, YesOpt,
                                     confirm_selection, desk, fmt, note_next_page, page_limit, run_bulk)
from chatctl.batch_sizes import PRUNE, REVERT

app = typer.Typer(
    help="The audit trail: every change chatctl made, who made it and under which operation; "
    "undo an operation; prune old events.\n\nExample:\n\n\b\n    chatctl audit list --entity chat:42\n"
    "    chatctl audit revert 01JDZ8Q3K4V7W2M5N6P8R9S0TA --dry-run",
    no_args_is_help=True,
)

AUDIT_COLUMNS = ["id", "at", "actor", "action", "entity", "entity_id", "operation", "changes", "reason"]
OPERATION_COLUMNS = ["id", "status", "started_at", "finished_at", "actor", "changes", "command"]

# Shared by `audit list` and `audit operations`.
SinceOpt = Annotated[Optional[str], typer.Option(
    "--since", help="Only what happened at or after this time: ISO 8601 or relative (-2h, -7d).",
    show_default=False)]
ActorFilterOpt = Annotated[Optional[str], typer.Option(
    "--actor", help="Only what this actor did (a handle, ops:NAME or system).", show_default=False)]


@app.command("list")
def list_(
    ctx: typer.Context,
    entity: Annotated[Optional[str], typer.Option(
        "--entity", help="Only this entity: chat:ID, ticket:ID, comment:ID, notification:ID, agent:HANDLE or "
        "preference:KEY.",
        show_default=False)] = None,
    operation: Annotated[Optional[str], typer.Option(
        "--operation", help="Only this operation id (a sweep run id or a command's operation).",
        show_default=False)] = None,
    actor: ActorFilterOpt = None,
    since: SinceOpt = None,
    after: AfterOpt = None,
    limit: LimitOpt = None,
    all_: AllOpt = False,
    output: OutputOpt = None,
) -> None:
    """List audit events, newest first.

    JSON fields: id, at, actor, action, entity, entity_id, operation, before,
    after, reason.  The other formats show the change on one line instead of
    before and after ("changes": status: live → closed; agent: alice → bob).
    --all streams every matching event.

    Example: chatctl audit list --entity chat:42 -o json
    """
    from chatctl.commands.common import as_of
    from chatctl.domain.audit.log import check_operation_id, list_events, parse_entity
    from chatctl.domain.audit.readable import agent_handles, describe
    from chatctl.output import choose_format, render_rows

    page = page_limit(limit, all_)
    the_desk = desk(ctx)
    entity_ref = parse_entity(entity) if entity is not None else None
    if operation is not None:
        check_operation_id(operation)
    since_at = as_of(since, the_desk) if since is not None else None
    chosen = choose_format(fmt(output), the_desk.env)

    def shown(rows, handles, tz):
        for row in rows:
            if chosen not in ("json", "jsonl"):
                row["changes"] = describe(row["before"], row["after"], handles=handles, tz=tz)
            yield row

    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        tz = the_desk.tz(connection)
        handles = agent_handles(connection)
        events = list_events(connection, entity=entity_ref, operation=operation, actor=actor, since=since_at,
                             after=after, limit=page)
        render_rows(the_desk.env, shown(events.rows, handles, tz), AUDIT_COLUMNS, chosen, tz=tz,
                    empty="no audit events")
    note_next_page(the_desk, events.next_cursor)


@app.command("operations")
def operations_(
    ctx: typer.Context,
    limit: LimitOpt = None,
    since: SinceOpt = None,
    actor: ActorFilterOpt = None,
    output: OutputOpt = None,
) -> None:
    """List the operations that changed the desk, newest first, with their ids in full.

    Every command that changes data records one: bulk actions, sweeps,
    reverts, ingest, drain, preference and agent changes.  Its status is
    running, done, interrupted or failed; an operation whose process died
    is marked failed here.  The id is what `audit revert` and
    `audit list --operation` take.

    JSON fields: id, status, actor, command, started_at, finished_at,
    changes (audit events written), exit_code, counts, host, pid, pruned_at.

    Example: chatctl audit operations --since -1d --actor ops:alice
    """
    from chatctl.commands.common import as_of
    from chatctl.domain.audit import operations
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    since_at = as_of(since, the_desk) if since is not None else None
    page = page_limit(limit, False)
    with the_desk.errors(), the_desk.engine().begin() as connection:
        operations.mark_dead(connection, now=the_desk.now(), process=operations.Process.current())
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        tz = the_desk.tz(connection)
        rows = operations.list_operations(connection, limit=page, since=since_at, actor=actor)
        count = render_rows(the_desk.env, rows, OPERATION_COLUMNS, fmt(output), tz=tz, empty="no operations")
    if count == page:
        the_desk.env.note(f"showing the latest {count} operations; more with --limit or --since")


@app.command("revert")
def revert(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="The operation to undo (a sweep run id or a command's "
                                                "operation id).", show_default=False)],
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, max=100_000, show_default=False,
        help=f"Audit events per transaction (default {REVERT['postgresql']} on PostgreSQL, {REVERT['sqlite']} "
        "on SQLite, chosen by benchmark: docs/benchmarks.md).")] = None,
    output: OutputOpt = None,
) -> None:
    """Undo an operation: every change it made, inverted, where nothing has changed it since.

    Each change is undone whole or not at all, and reported: changed
    (restored; a ticket or comment the operation created is removed, a row it
    removed is put back with its id), skipped (irreversible: a message sent
    to the customer, a chat or message the customer sent, comments deleted
    when a chat closed; or already reverted), refused (a conflict: a later
    change to the same chat, ticket, agent or preference - the conflicting
    operation is named - or a value changed outside the audit trail).  An
    operation whose events were pruned cannot be reverted.  The revert is
    itself an operation (action audit.revert), so it can be reverted in
    turn.  Needs --yes, or a confirmation typed at a terminal; --dry-run
    needs neither.

    Exit 1 when the operation is unknown or pruned, or some changes were
    refused.

    Example: chatctl audit revert 01JDZ8Q3K4V7W2M5N6P8R9S0TA --dry-run
    """
    from chatctl.batch_sizes import revert_batch_size
    from chatctl.domain.audit.log import check_operation_id
    from chatctl.domain.audit.revert import OperationEvents, Revert, check_revertible
    from chatctl.errors import RuleRefused

    check_operation_id(operation_id)
    the_desk = desk(ctx)
    engine = the_desk.engine()
    with the_desk.errors(), engine.begin() as connection:
        count = check_revertible(connection, operation_id, now=the_desk.now())
        actor = the_desk.actor(connection)
    if not actor.can_supervise:
        raise RuleRefused(f"actor '{actor.name}' has role {actor.role}: reverting an operation needs a "
                          "supervisor, an admin or ops:NAME")
    if not dry_run:
        confirm_selection(the_desk, yes, f"revert {count} change(s) of operation {operation_id}?")

    def prepare(connection, acting):
        return Revert(operation_id, revert_operation_id=acting.operation_id, actor=acting.actor.name, now=acting.now)

    run_bulk(ctx, prepare, items=OperationEvents(engine, operation_id, count), output=output, dry_run=dry_run,
             what=f"revert of {operation_id}", batch_size=batch_size or revert_batch_size(engine.dialect.name))


@app.command("prune")
def prune(
    ctx: typer.Context,
    before: Annotated[Optional[str], typer.Option(
        "--before", metavar="DURATION", show_default=False,
        help="Remove events older than this (90d, 13w, P400D...). Default: the profile's audit_retention "
        "(or CHATCTL_AUDIT_RETENTION).")] = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    batch_size: BatchSizeOpt = PRUNE,
    output: OutputOpt = None,
) -> None:
    """Remove audit events older than a cutoff, in batches, as one recorded operation.

    Events of an operation still running (a sweep, a bulk action) are kept
    whatever their age.  The prune audits itself (action audit.prune, one
    event per batch); an operation whose events were removed can no longer be
    reverted.  Needs --yes, or a confirmation typed at a terminal; --dry-run
    needs neither and says how many events would go.

    Example: chatctl audit prune --before 400d --dry-run
    """
    from chatctl.domain.audit.retention import count_prunable
    from chatctl.domain.audit.retention import prune as prune_events
    from chatctl.errors import RuleRefused, UsageError
    from chatctl.output import progress, render_record
    from chatctl.parsing.timeparse import parse_duration

    the_desk = desk(ctx)
    text = before or the_desk.settings.audit_retention
    if text is None:
        raise UsageError("give --before DURATION (e.g. 400d), or set audit_retention in the profile")
    cutoff = the_desk.now() - parse_duration(text)
    engine = the_desk.engine()
    with the_desk.errors():
        with engine.connect() as connection:
            count, _ = count_prunable(connection, cutoff)
            actor = the_desk.actor(connection)
        if not actor.can_supervise:
            raise RuleRefused(f"actor '{actor.name}' has role {actor.role}: pruning the audit trail needs "
                              "an admin, a supervisor or ops:NAME")
        if not dry_run:
            confirm_selection(the_desk, yes, f"remove {count} audit event(s) older than {cutoff.isoformat()}?")
        operation_id = None if dry_run else the_desk.operation_id
        with progress(the_desk.env, "audit prune", total=count) as bar:
            result = prune_events(engine, cutoff, operation_id=operation_id, actor=actor.name, now=the_desk.now(),
                                  batch_size=batch_size, dry_run=dry_run, on_batch=bar.advance)
    if output is not None:
        render_record(the_desk.env, result.as_json(operation_id), fmt(output), tz=the_desk.tz())
    kept = f"; kept {result.kept_running} of operations still running" if result.kept_running else ""
    if dry_run:
        the_desk.env.note(f"audit prune: would remove {result.removed} event(s) older than {cutoff.isoformat()}"
                          f"{kept} (dry run)")
    else:
        the_desk.env.note(f"audit prune: removed {result.removed} event(s) of {len(result.operations)} "
                          f"operation(s), older than {cutoff.isoformat()}{kept} (operation {operation_id})")
