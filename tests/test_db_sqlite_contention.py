"""SQLite under contention: several chatctl processes writing one database file.

Four ``sweep run`` processes at once over thousands of eligible chats, with
the job lock (each run either does the work or exits 4 because another holds
the lease) and with the lock bypassed (all exit 0: the claim and the
re-checked predicate keep every chat changed once); four bulk ``chats close
-`` writers over overlapping id sets.  Writers queue on SQLite's busy timeout
(``BEGIN IMMEDIATE``): "database is locked" never reaches the user, every
eligible chat changes exactly once, with exactly one audit row.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest

pytestmark = pytest.mark.slow

NOW = "2026-11-30T10:00:00Z"
AS_OF = "2027-01-01T00:00:00Z"
PROCESSES = 4


def chatctl(url, *args):
    return subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, *args], capture_output=True,
                          text=True, timeout=300)


def together(url, argvs, inputs=None, env=None):
    """Start every command at once; return their (exit code, stdout, stderr)."""
    import os

    processes = [subprocess.Popen([sys.executable, "-m", "chatctl", "--database-url", url, *argv],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, **(env or {})})
                 for argv in argvs]
    results = []
    for index, process in enumerate(processes):
        stdout, stderr = process.communicate((inputs or [""] * len(processes))[index], timeout=300)
        results.append((process.returncode, stdout, stderr))
    return results


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = tmp_path_factory.mktemp("contention") / "template.db"
    url = f"sqlite:///{path}"
    assert chatctl(url, "db", "init").returncode == 0
    result = chatctl(url, "demo", "load", "--chats", "6000", "--now", NOW)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def desk(template, tmp_path):
    import shutil

    path = tmp_path / "desk.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}", path


def statuses(path) -> dict[int, str]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT id, status FROM chats"))


def audited(path, actions) -> Counter:
    with sqlite3.connect(path) as db:
        marks = ",".join("?" * len(actions))
        return Counter(int(entity_id) for (entity_id,) in db.execute(
            f"SELECT entity_id FROM audit_events WHERE entity_type = 'chat' AND action IN ({marks})", actions))


def assert_no_lock_errors(results):
    for code, _stdout, stderr in results:
        assert "database is locked" not in stderr and "Traceback" not in stderr, stderr


def assert_changed_once(path, before, actions):
    after = statuses(path)
    changed = {key for key, status in after.items() if before[key] != status}
    counts = audited(path, actions)
    assert set(counts) == changed, "audit rows and changes differ"
    assert {key for key, n in counts.items() if n != 1} == set(), "a chat was changed twice"
    return changed


def sweep_plan(url) -> int:
    result = chatctl(url, "sweep", "run", "inactivity", "pending", "--as-of", AS_OF, "--dry-run", "-o", "json")
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)["jobs"]
    return jobs["inactivity"]["matched"] + jobs["pending"]["matched"]


SWEEP = ["-q", "sweep", "run", "inactivity", "pending", "--as-of", AS_OF, "--batch-size", "100"]


def test_four_sweeps_with_the_lock_do_the_work_once(desk):
    url, path = desk
    eligible = sweep_plan(url)
    assert eligible > 1500
    before = statuses(path)
    results = together(url, [SWEEP] * PROCESSES)
    assert_no_lock_errors(results)
    codes = [code for code, _, _ in results]
    assert set(codes) <= {0, 4} and 0 in codes, results
    changed = assert_changed_once(path, before, ("sweep.inactivity", "sweep.pending"))
    # The runs that lost the lock changed nothing; whatever remains is picked up by the next run.
    rest = chatctl(url, *SWEEP)
    assert rest.returncode == 0, rest.stderr
    changed = assert_changed_once(path, before, ("sweep.inactivity", "sweep.pending"))
    assert len(changed) == eligible
    assert sweep_plan(url) == 0


def test_four_sweeps_without_the_lock_all_succeed_and_change_each_chat_once(desk):
    url, path = desk
    eligible = sweep_plan(url)
    before = statuses(path)
    results = together(url, [SWEEP] * PROCESSES, env={"CHATCTL_SWEEP_NO_LOCK": "1"})
    assert_no_lock_errors(results)
    assert [code for code, _, _ in results] == [0] * PROCESSES, results
    changed = assert_changed_once(path, before, ("sweep.inactivity", "sweep.pending"))
    assert len(changed) == eligible
    assert sweep_plan(url) == 0


def test_four_bulk_closers_on_overlapping_ids_close_each_chat_once(desk):
    url, path = desk
    before = statuses(path)
    open_ids = sorted(key for key, status in before.items() if status in ("live", "pending"))
    assert len(open_ids) > 1500
    # Four overlapping slices: each id is in two or three of them, in different orders.
    quarter = len(open_ids) // 4
    slices = [open_ids[: 3 * quarter], open_ids[quarter:], list(reversed(open_ids[: 2 * quarter])),
              open_ids[2 * quarter:] + open_ids[:quarter]]
    argv = ["-q", "chats", "close", "-", "--reason", "contention", "--include-flagged", "--batch-size", "50",
            "-o", "jsonl"]
    results = together(url, [argv] * PROCESSES, inputs=["\n".join(map(str, s)) + "\n" for s in slices])
    assert_no_lock_errors(results)
    assert [code for code, _, _ in results] == [0] * PROCESSES, [r[2] for r in results]
    changed = assert_changed_once(path, before, ("chats.close",))
    assert changed == set(open_ids)
    reported = Counter()
    for _code, stdout, _stderr in results:
        for line in stdout.splitlines():
            item = json.loads(line)
            if item["result"] == "changed":
                reported[item["id"]] += 1
    # Exactly one process reports each chat as changed; the others saw it closed (skipped).
    assert set(reported) == set(open_ids) and set(reported.values()) == {1}
