"""``audit prune`` (SPEC D17): audit events older than a cutoff go, in batches,
as one recorded operation that audits itself; events of an operation still
running stay; ``--dry-run`` says what would go; a cutoff selection needs
``--yes``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select

from chatctl.domain.audit.writer import event, record
from chatctl.storage.models import AuditEvent, SweepRun

UTC = dt.timezone.utc


def add_events(engine, days_ago: list[float], operation: str = "01OLDOPERATION0000000000000") -> None:
    now = dt.datetime.now(UTC)
    with engine.begin() as connection:
        record(connection, [event(at=now - dt.timedelta(days=days), actor="ops:x", action="chats.close",
                                  entity_type="chat", entity_id=n, operation_id=operation, after={"status": "closed"})
                            for n, days in enumerate(days_ago, start=1)])


def ages(engine) -> list[str]:
    with engine.connect() as connection:
        return sorted(connection.execute(select(AuditEvent.operation_id).where(AuditEvent.action != "audit.prune"))
                      .scalars())


def prune_events(engine, operation: str | None = None):
    query = select(AuditEvent).where(AuditEvent.action == "audit.prune").order_by(AuditEvent.id)
    if operation is not None:
        query = query.where(AuditEvent.operation_id == operation)
    with engine.connect() as connection:
        return connection.execute(query).all()


def count(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action != "audit.prune")).scalar_one()


def test_d17_prune_removes_the_older_events_in_batches_and_audits_itself(cli, engine):
    add_events(engine, [400, 300, 200, 100, 95, 91], operation="01AAAAAAAAAAAAAAAAAAAAAAAA")
    add_events(engine, [89, 10, 1], operation="01BBBBBBBBBBBBBBBBBBBBBBBB")
    result = cli("audit", "prune", "--before", "90d", "--yes", "--batch-size", "4", "-o", "json")
    assert result.exit_code == 0, result
    report = result.json()
    assert report["removed"] == 6 and report["operations"] == 1 and report["dry_run"] is False
    assert "removed 6 event(s) of 1 operation(s)" in result.stderr
    assert ages(engine) == ["01BBBBBBBBBBBBBBBBBBBBBBBB"] * 3
    batches = prune_events(engine, report["operation"])
    assert [row.after["removed"] for row in batches] == [4, 2]        # one audit event per batch
    assert {row.actor for row in batches} == {"ops:tester"}
    again = cli("audit", "prune", "--before", "90d", "--yes", "-o", "json")
    assert again.json()["removed"] == 0 and count(engine) == 3


def test_d17_prune_never_removes_events_of_a_running_operation(cli, engine):
    now = dt.datetime.now(UTC)
    running, finished = "01RRRRRRRRRRRRRRRRRRRRRRRR", "01FFFFFFFFFFFFFFFFFFFFFFFF"
    with engine.begin() as connection:
        for run_id, status in ((running, "running"), (finished, "ok")):
            connection.execute(insert(SweepRun).values(
                id=run_id, jobs="inactivity", as_of=now, dry_run=False, started_at=now - dt.timedelta(days=200),
                finished_at=None, status=status, counts=None, host="elsewhere", pid=1, shard="all", actor="system"))
    add_events(engine, [200, 199], operation=running)
    add_events(engine, [200, 199], operation=finished)
    dry = cli("audit", "prune", "--before", "30d", "--dry-run", "-o", "json")
    assert dry.exit_code == 0, dry
    assert dry.json()["would_remove"] == 2 and dry.json()["kept_running"] == 2
    result = cli("audit", "prune", "--before", "30d", "--yes", "--batch-size", "1", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json()["removed"] == 2 and result.json()["kept_running"] == 2
    assert "kept 2 of operations still running" in result.stderr
    assert ages(engine) == [running, running]


def test_d8_prune_dry_run_says_would_and_changes_nothing(cli, engine):
    add_events(engine, [100, 50, 5])
    result = cli("audit", "prune", "--before", "30d", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result
    assert result.json() == {"operation": None, "dry_run": True, "before": result.json()["before"],
                             "would_remove": 2, "operations": 0, "kept_running": 0}
    assert "would remove 2 event(s)" in result.stderr
    assert count(engine) == 3 and prune_events(engine) == []


def test_d17_prune_by_cutoff_needs_yes(cli, engine):
    add_events(engine, [100])
    result = cli("audit", "prune", "--before", "30d")
    assert result.exit_code == 2, result
    assert "--yes" in result.stderr and result.stderr.count("\n") == 1
    assert count(engine) == 1


def test_d17_prune_takes_its_default_cutoff_from_the_settings(cli, engine):
    add_events(engine, [100, 20])
    missing = cli("audit", "prune", "--yes")
    assert missing.exit_code == 2 and "audit_retention" in missing.stderr
    result = cli("audit", "prune", "--yes", "-o", "json", env={"CHATCTL_AUDIT_RETENTION": "60d"})
    assert result.exit_code == 0, result
    assert result.json()["removed"] == 1 and count(engine) == 1


def test_d17_prune_refuses_a_bad_duration_and_an_agent(cli, engine):
    add_events(engine, [100])
    bad = cli("audit", "prune", "--before", "soon", "--yes")
    assert bad.exit_code == 2 and "soon" in bad.stderr
    assert cli("agents", "add", "amy", "--name", "Amy", "--role", "agent").exit_code == 0
    refused = cli("--actor", "amy", "audit", "prune", "--before", "30d", "--yes")
    assert refused.exit_code == 1 and "role agent" in refused.stderr
    assert ages(engine).count("01OLDOPERATION0000000000000") == 1 and prune_events(engine) == []
