"""Dry runs say "would" (SPEC D8): ``would_change`` per item in every format, a
summary that says "would change N", no operation for a bulk dry run, and a
sweep dry run that keeps its run row marked dry_run."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from chat_rows import Rows

from chatctl.storage.models import AuditEvent, Chat


@pytest.fixture
def rows(engine):
    desk = Rows(engine)
    desk.agent("alice")
    return desk


@pytest.fixture
def chats(rows):
    """Two live chats a close would change, and one already closed (skipped)."""
    return [rows.chat(), rows.chat(), rows.chat(status="closed", closed=dt.timedelta(hours=1))]


def _dry_close(cli, chats, *options):
    result = cli("chats", "close", *map(str, chats), "--dry-run", *options)
    assert result.exit_code == 0, result
    return result


def _nothing_changed(rows, chats):
    assert [rows.get(chat).status for chat in chats] == ["live", "live", "closed"]
    assert rows.count(AuditEvent) == 0


def test_d8_dry_run_json_says_would_change_and_has_no_operation(cli, rows, chats):
    document = _dry_close(cli, chats, "-o", "json").json()
    assert document["operation"] is None and document["dry_run"] is True
    assert [item["result"] for item in document["results"]] == ["would_change", "would_change", "skipped"]
    assert document["summary"] == {"would_change": 2, "skipped": 1, "not_found": 0, "refused": 0}
    _nothing_changed(rows, chats)


@pytest.mark.parametrize("fmt", ["jsonl", "tsv", "csv", "plain", "table", "markdown"])
def test_d8_dry_run_says_would_change_in_every_format(cli, rows, chats, fmt):
    result = _dry_close(cli, chats, "-o", fmt)
    if fmt == "jsonl":
        said = [json.loads(line)["result"] for line in result.stdout.splitlines()]
    elif fmt in ("tsv", "csv"):
        said = [row["result"] for row in csv.DictReader(io.StringIO(result.stdout),
                                                       delimiter="\t" if fmt == "tsv" else ",")]
    else:
        said = [word for word in result.stdout.split() if word in ("would_change", "changed", "skipped")]
    assert said == ["would_change", "would_change", "skipped"], result.stdout
    assert "would change 2, 1 skipped" in result.stderr and "operation" not in result.stderr
    _nothing_changed(rows, chats)


def test_d8_dry_run_ids_are_the_ones_that_would_change(cli, rows, chats):
    result = _dry_close(cli, chats, "-o", "ids")
    assert result.stdout.split() == [str(chat) for chat in chats[:2]]
    _nothing_changed(rows, chats)


def test_d8_a_real_run_still_says_changed_with_its_operation(cli, rows, chats):
    document = cli("chats", "close", *map(str, chats), "-o", "json").json()
    assert document["operation"] and document["summary"]["changed"] == 2
    assert [item["result"] for item in document["results"]] == ["changed", "changed", "skipped"]


def test_d8_sweep_dry_run_counts_would_change_and_keeps_its_run_row(cli, rows):
    hours = dt.timedelta(hours=1)
    rows.chat(agent="alice", ago=3 * hours, customer_wrote=2 * hours, agent_wrote=2 * hours)
    result = cli("sweep", "run", "inactivity", "--dry-run", "-o", "json")
    assert result.exit_code == 0, result
    document = result.json()
    assert document["jobs"]["inactivity"] == {"matched": 1, "would_change": 1, "skipped": 0}
    table = cli("sweep", "run", "inactivity", "--dry-run", "-o", "tsv")
    assert table.stdout.splitlines()[0].split("\t")[:4] == ["job", "matched", "would_change", "skipped"]
    assert "would change 1" in table.stderr
    runs = cli("sweep", "history", "-o", "json").json()
    assert document["run_id"] in [run["run_id"] for run in runs]
    assert all(run["dry_run"] is True for run in runs)
    assert rows.count(Chat, Chat.status == "closed") == 0 and rows.count(AuditEvent) == 0
