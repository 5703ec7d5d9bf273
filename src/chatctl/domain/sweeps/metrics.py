"""``--metrics-file``: the Prometheus text format read by node_exporter's
textfile collector.  Written to a temporary file in the same directory and
renamed over the target, so the collector never reads half a file.

The file never lies (SPEC D13): every ``sweep run`` given a metrics file
rewrites it, whatever the outcome.

* A run that finished: ``chatctl_sweep_success 1`` and its row counts.
* A run that stepped aside for a held lock (``--skip-if-locked``): success 1
  and ``chatctl_sweep_skipped 1``; it changed nothing, so no row counts.
* Any failure - database unreachable, lock held (exit 4), the safety breaker
  (exit 5), a signal (130, 143) -: ``chatctl_sweep_success{exit_code="N"} 0``,
  with the row counts of what the run did before it stopped, if it started.

The ``last_success`` timestamps of jobs that did not just succeed are carried
over from the previous file, so "no success for N minutes" alerts keep working.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chatctl.errors import ChatctlError, ExitCode, UsageError

if TYPE_CHECKING:
    from chatctl.domain.sweeps.runner import RunResult

_LAST_SUCCESS = re.compile(r'^chatctl_sweep_last_success_timestamp_seconds\{job="([^"]+)",shard="([^"]+)"\} (\S+)$')
UNEXPECTED = 70  # the CLI's exit code for an unexpected error


@dataclass
class Outcome:
    """What one ``sweep run`` invocation came to, as the metrics file tells it."""

    shard: str
    exit_code: int = ExitCode.OK
    skipped: bool = False
    run: RunResult | None = None
    duration_s: float = 0.0

    @property
    def success(self) -> bool:
        return self.exit_code == ExitCode.OK


def _previous_successes(path: Path) -> dict[tuple[str, str], str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        match = _LAST_SUCCESS.match(line)
        if match:
            found[(match.group(1), match.group(2))] = match.group(3)
    return found


def render(outcome: Outcome, finished_at: dt.datetime, previous: dict[tuple[str, str], str]) -> str:
    shard = outcome.shard
    run = outcome.run
    lines = [
        "# HELP chatctl_sweep_rows Rows per job and result in the latest sweep run.",
        "# TYPE chatctl_sweep_rows gauge",
    ]
    if run is not None and not outcome.skipped:
        for name, job in run.jobs.items():
            for key in ("matched", "changed", "skipped"):
                lines.append(f'chatctl_sweep_rows{{job="{name}",result="{key}",shard="{shard}"}} '
                             f'{getattr(job, key)}')
    success = f'{{shard="{shard}"}} 1' if outcome.success else f'{{shard="{shard}",exit_code="{outcome.exit_code}"}} 0'
    lines += [
        "# HELP chatctl_sweep_duration_seconds Wall time of the latest sweep run.",
        "# TYPE chatctl_sweep_duration_seconds gauge",
        f'chatctl_sweep_duration_seconds{{shard="{shard}"}} {outcome.duration_s:.3f}',
        "# HELP chatctl_sweep_longest_batch_seconds Longest batch transaction of the latest sweep run.",
        "# TYPE chatctl_sweep_longest_batch_seconds gauge",
        f'chatctl_sweep_longest_batch_seconds{{shard="{shard}"}} {run.longest_batch_s if run else 0:.4f}',
        "# HELP chatctl_sweep_success Whether the latest sweep run finished (1) or failed (0, with its exit code).",
        "# TYPE chatctl_sweep_success gauge",
        f"chatctl_sweep_success{success}",
        "# HELP chatctl_sweep_skipped Whether the latest sweep run stepped aside for another run's lock.",
        "# TYPE chatctl_sweep_skipped gauge",
        f'chatctl_sweep_skipped{{shard="{shard}"}} {1 if outcome.skipped else 0}',
        "# HELP chatctl_sweep_dry_run Whether the latest sweep run was a dry run.",
        "# TYPE chatctl_sweep_dry_run gauge",
        f'chatctl_sweep_dry_run{{shard="{shard}"}} {1 if run is not None and run.dry_run else 0}',
        "# HELP chatctl_sweep_last_success_timestamp_seconds When each job last finished a real run (Unix time).",
        "# TYPE chatctl_sweep_last_success_timestamp_seconds gauge",
    ]
    successes = dict(previous)
    if outcome.success and not outcome.skipped and run is not None and not run.dry_run:
        for name in run.jobs:
            successes[(name, shard)] = f"{finished_at.timestamp():.3f}"
    for (name, job_shard), value in sorted(successes.items()):
        lines.append(f'chatctl_sweep_last_success_timestamp_seconds{{job="{name}",shard="{job_shard}"}} {value}')
    return "\n".join(lines) + "\n"


def write_metrics(path: str | os.PathLike, outcome: Outcome, finished_at: dt.datetime) -> None:
    target = Path(path)
    text = render(outcome, finished_at, _previous_successes(target))
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def exit_code_of(error: BaseException) -> int:
    """The exit code the CLI's error boundary gives ``error`` (the label of a failed run)."""
    if isinstance(error, ChatctlError):
        return error.exit_code
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    code = getattr(error, "exit_code", None)  # typer.Exit, raised with the code it carries
    if isinstance(code, int):
        return code
    return UNEXPECTED


@contextlib.contextmanager
def recording(path: str | None, *, shard: str, clock: Callable[[], dt.datetime]) -> Iterator[Outcome]:
    """Write the metrics file for whatever happens inside the block (nothing without ``path``).

    The block sets ``outcome.run`` (the run's result, once it has one) and
    ``outcome.skipped``; an exception leaving it is the failure, with its exit
    code, and goes on its way after the file is written.
    """
    if path is not None and not Path(path).parent.is_dir():
        raise UsageError(f"--metrics-file {path}: directory {Path(path).parent} does not exist")
    outcome = Outcome(shard=shard)
    started = time.perf_counter()
    try:
        yield outcome
    except BaseException as error:
        outcome.exit_code = exit_code_of(error)
        raise
    finally:
        if path is not None:
            outcome.duration_s = outcome.run.duration_s if outcome.run else time.perf_counter() - started
            write_metrics(path, outcome, clock())
