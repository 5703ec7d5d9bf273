"""The metrics file never lies (SPEC D13): every ``sweep run --metrics-file``
rewrites it, whatever the outcome, and carries the last success over a failure."""

from __future__ import annotations

import re

from freezegun import freeze_time
from sweep_helpers import T0, add_agent, add_chat, hold_lock, minutes

AS_OF = T0.isoformat()
UNREACHABLE = "postgresql://chatctl@127.0.0.1:1/desk?connect_timeout=2"


def _metrics(path) -> dict[str, str]:
    """``name{labels}`` -> value, for every sample of the file."""
    samples = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = value
    return samples


def _last_success(samples: dict[str, str], job: str = "inactivity") -> str:
    return samples[f'chatctl_sweep_last_success_timestamp_seconds{{job="{job}",shard="all"}}']


def _good_run(cli, engine, path):
    alice = add_agent(engine, "alice")
    add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    with freeze_time(T0):
        assert cli("sweep", "run", "--metrics-file", str(path)).exit_code == 0
    samples = _metrics(path)
    assert samples['chatctl_sweep_success{shard="all"}'] == "1"
    assert samples['chatctl_sweep_skipped{shard="all"}'] == "0"
    assert _last_success(samples) == f"{T0.timestamp():.3f}"
    return samples


def test_d13_unreachable_database_rewrites_the_file_with_exit_code_3(cli, engine, bare_cli, tmp_path):
    path = tmp_path / "chatctl.prom"
    _good_run(cli, engine, path)
    failed = bare_cli(["--database-url", UNREACHABLE, "sweep", "run", "--metrics-file", str(path)])
    assert failed.exit_code == 3, failed
    samples = _metrics(path)
    assert samples['chatctl_sweep_success{shard="all",exit_code="3"}'] == "0"
    assert 'chatctl_sweep_success{shard="all"}' not in samples
    assert _last_success(samples) == f"{T0.timestamp():.3f}", "the last success was not carried over"
    assert not any(key.startswith("chatctl_sweep_rows") for key in samples), "rows of a run that never ran"


def test_d13_lock_held_without_skip_if_locked_is_a_failure_with_exit_code_4(cli, engine, tmp_path):
    path = tmp_path / "chatctl.prom"
    _good_run(cli, engine, path)
    holder = hold_lock(engine, "inactivity:all")
    try:
        locked = cli("sweep", "run", "inactivity", "--as-of", AS_OF, "--metrics-file", str(path))
        assert locked.exit_code == 4, locked
        samples = _metrics(path)
        assert samples['chatctl_sweep_success{shard="all",exit_code="4"}'] == "0"
        assert _last_success(samples) == f"{T0.timestamp():.3f}"

        skipped = cli("sweep", "run", "inactivity", "--as-of", AS_OF, "--skip-if-locked", "--metrics-file", str(path))
        assert skipped.exit_code == 0, skipped
        samples = _metrics(path)
        assert samples['chatctl_sweep_success{shard="all"}'] == "1"
        assert samples['chatctl_sweep_skipped{shard="all"}'] == "1"
        assert _last_success(samples) == f"{T0.timestamp():.3f}", "a skipped run is no new success"
        assert not any(key.startswith("chatctl_sweep_rows") for key in samples)
    finally:
        if holder is not None:
            holder.close()


def test_d13_safety_breaker_is_a_failure_with_exit_code_5(cli, engine, tmp_path):
    path = tmp_path / "chatctl.prom"
    _good_run(cli, engine, path)
    alice = add_agent(engine, "bob")
    for _ in range(3):
        add_chat(engine, agent=alice, created=T0 - minutes(60), agent_at=T0 - minutes(50))
    stopped = cli("sweep", "run", "--as-of", AS_OF, "--max-changes", "1", "--metrics-file", str(path))
    assert stopped.exit_code == 5, stopped
    samples = _metrics(path)
    assert samples['chatctl_sweep_success{shard="all",exit_code="5"}'] == "0"
    assert _last_success(samples) == f"{T0.timestamp():.3f}"

    again = cli("sweep", "run", "--as-of", AS_OF, "--metrics-file", str(path))
    assert again.exit_code == 0, again
    samples = _metrics(path)
    assert samples['chatctl_sweep_success{shard="all"}'] == "1"
    assert samples['chatctl_sweep_rows{job="inactivity",result="changed",shard="all"}'] == "3"
    assert float(_last_success(samples)) > T0.timestamp()


def test_d13_missing_metrics_directory_is_a_usage_error_before_anything_runs(cli, engine, tmp_path):
    result = cli("sweep", "run", "--metrics-file", str(tmp_path / "nowhere" / "chatctl.prom"))
    assert result.exit_code == 2 and re.search(r"directory .*nowhere does not exist", result.stderr), result
    assert cli("sweep", "history", "-o", "json").json() == []
