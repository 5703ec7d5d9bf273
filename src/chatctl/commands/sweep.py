"""chatctl sweep: the scheduled jobs: timeouts, archiving, clean-up."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from chatctl.batch_sizes import SWEEP
from chatctl.commands.common import AsOfOpt, DryRunOpt, LimitOpt, OutputOpt, desk, fmt

app = typer.Typer(
    help="The scheduled jobs: timeouts, archiving, clean-up.\n\n"
    "Jobs, in run order: unattended (new chats out of hours or with nobody online), agent-timeout "
    "(customers left unanswered), inactivity (idle chats), pending (pending too long), archive (old "
    "tickets), cleanup (comments left on finished chats).\n\n"
    "Example (crontab, every minute, quiet unless something fails):\n\n\b\n"
    "    * * * * * chatctl -q sweep run --skip-if-locked --metrics-file /var/lib/node_exporter/chatctl.prom",
    no_args_is_help=True,
)

def _complete_job(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    from chatctl.completion import complete_sweep_job

    return complete_sweep_job(ctx, args, incomplete)


JobsArg = Annotated[Optional[list[str]], typer.Argument(
    help="Jobs to run (default: all, in order): unattended, agent-timeout, inactivity, pending, archive, "
    "cleanup.", metavar="[JOB]...", show_default=False, autocompletion=_complete_job)]


@app.command("run")
def run(
    ctx: typer.Context,
    jobs: JobsArg = None,
    dry_run: DryRunOpt = False,
    as_of: AsOfOpt = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, max=100_000, show_default=False,
        help=f"Rows per transaction (default {SWEEP['postgresql']} on PostgreSQL, {SWEEP['sqlite']} on SQLite, "
        "chosen by benchmark: docs/benchmarks.md).")] = None,
    max_changes: Annotated[Optional[int], typer.Option(
        "--max-changes", min=0, show_default=False,
        help="Safety breaker: if any one job would change more than N rows, change nothing and exit 5.")] = None,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", metavar="K/N", show_default=False,
        help="Only chats (tickets for archive) whose id % N == K-1; shards run side by side.")] = None,
    skip_if_locked: Annotated[bool, typer.Option(
        "--skip-if-locked", help="If another run holds a job's lock, say so and exit 0 (instead of 4).")] = False,
    metrics_file: Annotated[Optional[str], typer.Option(
        "--metrics-file", metavar="PATH", show_default=False,
        help="Write Prometheus textfile metrics (node_exporter textfile collector), atomically.")] = None,
    no_lock: Annotated[bool, typer.Option("--no-lock", hidden=True,
                                          help="Testing only: run without the job lock.")] = False,
    output: OutputOpt = None,
) -> None:
    """Run the sweep jobs once, as of now (or --as-of), and record the run.

    Every change is stamped with as_of and audited with the run id as its
    operation id (`chatctl audit revert RUN_ID` undoes it).  A chat changes at
    most once per run.  Exit 4: another run holds the lock; exit 5: --max-changes
    stopped the run before anything changed.  With -q, silent on success.

    Example: chatctl sweep run inactivity pending --dry-run --as-of +2h
    """
    from chatctl.config import sweep_lock_disabled
    from chatctl.domain.prefs import get_preferences
    from chatctl.domain.sweeps.jobs import SweepContext, parse_shard, select_jobs
    from chatctl.domain.sweeps.metrics import recording
    from chatctl.domain.sweeps.runner import run_sweep
    from chatctl.errors import Interrupted, LockedError
    from chatctl.output import progress

    the_desk = desk(ctx)
    selected = select_jobs(jobs or [])
    shard_value = parse_shard(shard)
    use_lock = not (no_lock or sweep_lock_disabled())
    label = "all" if shard_value is None else "{}/{}".format(*shard_value)

    # Whatever happens from here on - an unreachable database included - is told by the metrics file.
    with recording(metrics_file, shard=label, clock=the_desk.now) as outcome:
        instant = _as_of(as_of, the_desk)
        engine = the_desk.engine()
        with the_desk.errors():
            with engine.connect() as connection:
                prefs = get_preferences(connection)
            context = SweepContext(as_of=instant, prefs=prefs, operation_id=the_desk.operation_id,
                                   shard=shard_value)
            with progress(the_desk.env, "sweep") as bar:
                try:
                    result = run_sweep(engine, context, selected, clock=the_desk.now, batch_size=batch_size,
                                       dry_run=dry_run, max_changes=max_changes, use_lock=use_lock,
                                       lock_setting=the_desk.settings.sweep_lock,
                                       on_batch=lambda job, count: (bar.advance(count),
                                                                    the_desk.keep_operation_alive()),
                                       on_totals=lambda counts: bar.set_total(sum(counts.values())),
                                       on_finish=lambda finished: setattr(outcome, "run", finished),
                                       count_first=bar.shown)
                except LockedError as error:
                    if not skip_if_locked:
                        error.hint = f"{error.hint}; --skip-if-locked exits 0 in that case"
                        raise
                    outcome.skipped = True
                    the_desk.env.note(f"skipped: {error.message}")
                    return
                except Interrupted as error:
                    stopped = error
                else:
                    stopped = None
        if stopped is not None:
            _report(the_desk, outcome.run, output, interrupted=True)
            raise typer.Exit(stopped.exit_code)
    _report(the_desk, result, output)


def _as_of(text, the_desk):
    from chatctl.commands.common import as_of as parse_as_of

    return parse_as_of(text, the_desk)


def _report(the_desk, result, output, *, interrupted: bool = False) -> None:
    from chatctl.domain.sweeps.runner import JobResult
    from chatctl.output import dumps, render_rows

    env = the_desk.env
    if output is not None and output.value == "json":
        print(dumps(result.summary_json(), indent=2), file=env.stdout)
        return
    changed = sum(job.changed for job in result.jobs.values())
    if not env.quiet or output is not None:
        rows = [{"job": name, **job.as_json(dry_run=result.dry_run),
                 "detail": ", ".join(f"{key} {value}" for key, value in job.detail.items())}
                for name, job in result.jobs.items()]
        render_rows(env, rows, ["job", *JobResult().as_json(dry_run=result.dry_run), "detail"], fmt(output),
                    id_key="job")
    verb = "would change" if result.dry_run else "changed"
    env.note(f"run {result.run_id}: {verb} {changed} at {result.as_of.isoformat()} in "
             f"{result.duration_s:.2f}s" + (" (dry run)" if result.dry_run else "")
             + (" (interrupted)" if interrupted else ""))


@app.command("explain")
def explain(
    ctx: typer.Context,
    chat_id: Annotated[int, typer.Argument(help="The chat to explain.", min=1, show_default=False)],
    as_of: AsOfOpt = None,
    output: OutputOpt = None,
) -> None:
    """Say which job would touch a chat at as_of and what it would do, or why none would.

    Example: chatctl sweep explain 123 --as-of +1h
    """
    from chatctl.domain.prefs import get_preferences
    from chatctl.domain.sweeps.explain import explain_chat
    from chatctl.domain.sweeps.jobs import SweepContext
    from chatctl.output import render_record

    the_desk = desk(ctx)
    instant = _as_of(as_of, the_desk)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        context = SweepContext(as_of=instant, prefs=get_preferences(connection), operation_id="explain")
        record = explain_chat(connection, chat_id, context)
    if output is not None and output.value in ("json", "jsonl"):
        render_record(the_desk.env, record, fmt(output), tz=the_desk.tz())
        return
    env = the_desk.env
    print(f"chat {chat_id} ({record['status']}{', flagged' if record['flagged'] else ''}) as of "
          f"{instant.astimezone(the_desk.tz()).isoformat()}: {record['summary']}", file=env.stdout)
    for verdict in record["jobs"]:
        text = f"would {verdict['action']}" if verdict["would_change"] else verdict["reason"]
        print(f"  {verdict['job']:<14} {text}", file=env.stdout)


@app.command("history")
def history(ctx: typer.Context, limit: LimitOpt = None, output: OutputOpt = None) -> None:
    """The latest sweep runs, newest first.

    Example: chatctl sweep history --limit 5
    """
    from chatctl.domain.sweeps.runner import run_rows
    from chatctl.output import render_rows

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        rows = run_rows(connection, limit or 20)
    render_rows(the_desk.env, rows, ["run_id", "started_at", "jobs", "as_of", "dry_run", "shard", "status",
                                     "changed"], fmt(output), tz=the_desk.tz(), id_key="run_id",
                empty="no sweep runs yet")


@app.command("show")
def show(ctx: typer.Context,
         run_id: Annotated[str, typer.Argument(help="A run id (from `sweep history`).", show_default=False)],
         output: OutputOpt = None) -> None:
    """One sweep run: jobs, as_of, status, per-job counts, host, pid, shard.

    Example: chatctl sweep show 01JD3S9Z6V8T2M4K7Q1W5E0R9C -o json
    """
    from chatctl.domain.sweeps.runner import run_record
    from chatctl.output import render_record

    the_desk = desk(ctx)
    with the_desk.errors(read=True), the_desk.read_engine().connect() as connection:
        record = run_record(connection, run_id)
    if output is None or output.value not in ("json", "jsonl"):
        counts = record.pop("counts") or {}
        for job, figures in counts.items():
            record[job] = ", ".join(f"{key} {value}" for key, value in figures.items())
    render_record(the_desk.env, record, fmt(output), tz=the_desk.tz())
