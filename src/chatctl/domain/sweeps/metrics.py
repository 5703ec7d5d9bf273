"""``--metrics-file``: the Prometheus text format read by node_exporter's
textfile collector.  Written to a temporary file in the same directory and
renamed over the target, so the collector never reads half a file.

A failed run keeps the previous ``last_success`` values (read back from the
old file), so "no success for N minutes" alerts keep working.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatctl.domain.sweeps.runner import RunResult

_LAST_SUCCESS = re.compile(r'^chatctl_sweep_last_success_timestamp_seconds\{job="([^"]+)",shard="([^"]+)"\} (\S+)$')


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


def render(result: RunResult, finished_at: dt.datetime, previous: dict[tuple[str, str], str]) -> str:
    shard = result.shard
    ok = result.status == "ok"
    lines = [
        "# HELP chatctl_sweep_rows Rows per job and result in the latest sweep run.",
        "# TYPE chatctl_sweep_rows gauge",
    ]
    for name, job in result.jobs.items():
        for key in ("matched", "changed", "skipped"):
            lines.append(f'chatctl_sweep_rows{{job="{name}",result="{key}",shard="{shard}"}} {getattr(job, key)}')
    lines += [
        "# HELP chatctl_sweep_duration_seconds Wall time of the latest sweep run.",
        "# TYPE chatctl_sweep_duration_seconds gauge",
        f'chatctl_sweep_duration_seconds{{shard="{shard}"}} {result.duration_s:.3f}',
        "# HELP chatctl_sweep_longest_batch_seconds Longest batch transaction of the latest sweep run.",
        "# TYPE chatctl_sweep_longest_batch_seconds gauge",
        f'chatctl_sweep_longest_batch_seconds{{shard="{shard}"}} {result.longest_batch_s:.4f}',
        "# HELP chatctl_sweep_success Whether the latest sweep run finished (1) or failed (0).",
        "# TYPE chatctl_sweep_success gauge",
        f'chatctl_sweep_success{{shard="{shard}"}} {1 if ok else 0}',
        "# HELP chatctl_sweep_dry_run Whether the latest sweep run was a dry run.",
        "# TYPE chatctl_sweep_dry_run gauge",
        f'chatctl_sweep_dry_run{{shard="{shard}"}} {1 if result.dry_run else 0}',
        "# HELP chatctl_sweep_last_success_timestamp_seconds When each job last finished a real run (Unix time).",
        "# TYPE chatctl_sweep_last_success_timestamp_seconds gauge",
    ]
    successes = dict(previous)
    if ok and not result.dry_run:
        for name in result.jobs:
            successes[(name, shard)] = f"{finished_at.timestamp():.3f}"
    for (name, job_shard), value in sorted(successes.items()):
        lines.append(f'chatctl_sweep_last_success_timestamp_seconds{{job="{name}",shard="{job_shard}"}} {value}')
    return "\n".join(lines) + "\n"


def write_metrics(path: str | os.PathLike, result: RunResult, finished_at: dt.datetime) -> None:
    target = Path(path)
    text = render(result, finished_at, _previous_successes(target))
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
