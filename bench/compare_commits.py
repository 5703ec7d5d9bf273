"""Two chatctl source trees side by side on the benchmark sections' commands.

    python bench/compare_commits.py --base-src ../chatctl-before/src --runs 5 --json out.json

For a change that should not move performance (a restructure), this runs the
commands the bench sections time - ``sweep run inactivity`` on PostgreSQL and
SQLite, ``chats close -``, ``tickets close --where``, ``events ingest -`` and
``demo load`` - once with this tree's chatctl and once with ``--base-src``'s,
on copies of the same desk, alternating which side goes first in each run so
both see the same load on a shared machine.  Each run checks that both sides
changed the same number of rows.  It prints, per command, the median and the
range of the in-process times (start-up excluded) and the ratio of the
medians, this tree over the base; a ratio above 1 by more than the spread of
the runs is a slowdown.

The sizes are reduced from the sections' full sizes (``--scale``).  Every
desk is built once by the base tree (its schema, its ``demo load``); when this
tree has more schema revisions, each of its runs first upgrades its copy
(``db upgrade``, not timed), so both sides work on the same rows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bulk_close  # noqa: E402
import ingest_and_demo  # noqa: E402
import sweeps  # noqa: E402
import ticket_cleanup  # noqa: E402
from harness import ROOT, Bench  # noqa: E402


def _sides(base_src: Path) -> dict[str, dict[str, str]]:
    return {"before": {"PYTHONPATH": str(base_src)}, "after": {"PYTHONPATH": str(ROOT / "src")}}


def _alternate(run: int, sides: dict) -> list[str]:
    names = list(sides)
    return names if run % 2 == 0 else names[::-1]


class BaseBuilt:
    """Desks built by the base tree: its ``db init`` and its commands, whatever this tree's schema."""

    def __init__(self, bench: Bench, base_env: dict[str, str]) -> None:
        self.bench = bench
        self.base_env = base_env
        postgres = bench.postgres()
        plain_create = postgres.create

        def create(name: str, *, at_head: bool = True) -> str:
            url = plain_create(name, at_head=False)
            if at_head:
                self.chatctl(url, "db", "init")
            return url

        postgres.create = create  # the sections' builders (bulk_close.build, ...) go through it

    def chatctl(self, url: str, *args: str):
        return self.bench.chatctl(url, *args, env=self.base_env, keep_stdout=False)


def sweep_postgresql(bench: Bench, built: BaseBuilt, chats: int) -> tuple:
    postgres = bench.postgres()
    url = postgres.create("compare_sweep_base")
    built.chatctl(url, "demo", "load", "--chats", str(chats), "--seed", "7", "--now", sweeps.NOW.isoformat())
    postgres.freeze("compare_sweep_base")
    return (lambda: postgres.fresh("compare_sweep_run", "compare_sweep_base"),
            lambda: postgres.drop("compare_sweep_run"),
            ["sweep", "run", "inactivity", "--as-of", sweeps.NOW.isoformat(), "--batch-size", "1000", "-o", "json"],
            lambda url, timing: json.loads(timing.stdout)["jobs"]["inactivity"]["changed"], None)


def sweep_sqlite(bench: Bench, built: BaseBuilt, chats: int) -> tuple:
    desks = sweeps.SqliteDesks(bench)
    url = f"sqlite:///{bench.scratch / 'base.db'}"
    built.chatctl(url, "db", "init")
    built.chatctl(url, "demo", "load", "--chats", str(chats), "--seed", "7", "--now", sweeps.NOW.isoformat())
    desks.finish()
    return (lambda: desks.fresh("compare_run"), lambda: desks.drop("compare_run"),
            ["sweep", "run", "inactivity", "--as-of", sweeps.NOW.isoformat(), "--batch-size", "5000", "-o", "json"],
            lambda url, timing: json.loads(timing.stdout)["jobs"]["inactivity"]["changed"], None)


def bulk_close_pg(bench: Bench, built: BaseBuilt, chats: int) -> tuple:
    bulk_close.build(bench, chats)
    postgres = bench.postgres()
    return (lambda: postgres.fresh("compare_bulk_run", "bulk_base"), lambda: postgres.drop("compare_bulk_run"),
            ["-q", "chats", "close", "-", "-o", "tsv"], lambda url, timing: bulk_close.left_behind(url)[0],
            "\n".join(map(str, range(1, chats + 1))) + "\n")


def ticket_cleanup_pg(bench: Bench, built: BaseBuilt, tickets: int) -> tuple:
    ticket_cleanup.build(bench, tickets)
    postgres = bench.postgres()
    return (lambda: postgres.fresh("compare_tickets_run", "tickets_base"),
            lambda: postgres.drop("compare_tickets_run"),
            ["tickets", "close", "--where", "age>30d", "--yes", "-o", "tsv"],
            lambda url, timing: ticket_cleanup.closed_tickets(url)[0], None)


def ingest_pg(bench: Bench, built: BaseBuilt, events: int) -> tuple:
    postgres = bench.postgres()
    url = postgres.create("ingest_base")
    for handle in ingest_and_demo.AGENTS:
        built.chatctl(url, "agents", "add", handle, "--name", handle.title(), "--online")
    postgres.freeze("ingest_base")
    path = bench.scratch / "compare-events.jsonl"
    ingest_and_demo.write_events(path, events)
    return (lambda: postgres.fresh("compare_ingest_run", "ingest_base"), lambda: postgres.drop("compare_ingest_run"),
            ["-q", "events", "ingest", "-", "-o", "json"], lambda url, timing: ingest_and_demo.written(url),
            path.read_text())


def demo_load_pg(bench: Bench, built: BaseBuilt, chats: int) -> tuple:
    postgres = bench.postgres()
    return (lambda: postgres.create("compare_demo_run"), lambda: postgres.drop("compare_demo_run"),
            ["demo", "load", "--chats", str(chats), "--now", "2026-11-30T10:00:00Z", "-o", "json"],
            lambda url, timing: sum(json.loads(timing.stdout)[key] for key in (
                "chats", "customers", "messages", "comments", "tags", "notifications", "tickets")), None)


def _repeat(bench: Bench, sides: dict, upgrade: set[str], fresh, drop, args: list[str], changed,
            stdin: str | None) -> dict:
    times: dict[str, list[float]] = {side: [] for side in sides}
    wall: dict[str, list[float]] = {side: [] for side in sides}
    counts: set[int] = set()
    for run in range(bench.runs):
        for side in _alternate(run, sides):
            url = fresh()
            if side in upgrade:
                bench.chatctl(url, "db", "upgrade", env=sides[side], keep_stdout=False)
            timing = bench.chatctl(url, *args, stdin=stdin, env=sides[side], keep_stdout=True)
            counts.add(changed(url, timing))
            drop()
            times[side].append(timing.inprocess_s)
            wall[side].append(timing.process_s)
            bench.log(f"  run {run + 1} {side}: {timing.inprocess_s:.2f}s in process, {timing.process_s:.2f}s whole")
    if len(counts) != 1:
        raise SystemExit(f"{' '.join(args)}: the two trees changed different numbers of rows: {sorted(counts)}")
    return {"changed": counts.pop(), "inprocess_s": times, "process_s": wall}


SCENARIOS = {
    "sweeps-postgresql": (sweep_postgresql, 100_000, "`sweep run inactivity --batch-size 1000`, `demo load --chats {n}`"),
    "sweeps-sqlite": (sweep_sqlite, 50_000, "`sweep run inactivity --batch-size 5000`, `demo load --chats {n}`"),
    "bulk-close": (bulk_close_pg, 50_000, "`chats close -`, {n} live chats"),
    "ticket-cleanup": (ticket_cleanup_pg, 200_000, "`tickets close --where age>30d --yes`, {n} tickets"),
    "ingest": (ingest_pg, 50_000, "`events ingest -`, {n} events"),
    "demo-load": (demo_load_pg, 20_000, "`demo load --chats {n}` into an empty desk"),
}


def summarise(result: dict) -> dict:
    out = {}
    for key in ("inprocess_s", "process_s"):
        before, after = result[key]["before"], result[key]["after"]
        median_before, median_after = statistics.median(before), statistics.median(after)
        spread = max((max(v) - min(v)) / statistics.median(v) for v in (before, after))
        out[key] = {"before_median": round(median_before, 3), "before_range": [round(min(before), 3), round(max(before), 3)],
                    "after_median": round(median_after, 3), "after_range": [round(min(after), 3), round(max(after), 3)],
                    "ratio": round(median_after / median_before, 3), "spread": round(spread, 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--base-src", type=Path, required=True, help="the src/ directory of the tree to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size by this")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    base_migrations = sorted(p.name for p in (args.base_src / "chatctl/storage/migrations/versions").glob("*.py"))
    ours = sorted(p.name for p in (ROOT / "src/chatctl/storage/migrations/versions").glob("*.py"))
    if base_migrations != ours[:len(base_migrations)]:
        raise SystemExit("the base tree's schema revisions are not a prefix of this tree's")
    sides = _sides(args.base_src.resolve())
    upgrade = {"after"} if ours != base_migrations else set()
    bench = Bench(quick=False, runs=args.runs)
    built = BaseBuilt(bench, sides["before"])
    results = {"schema": {"before": base_migrations[-1], "after": ours[-1]}}
    try:
        for name, (scenario, size, what) in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            n = max(1, int(size * args.scale))
            bench.log(f"{name}: {what.format(n=f'{n:,}')}")
            result = _repeat(bench, sides, upgrade, *scenario(bench, built, n))
            results[name] = {"what": what.format(n=f"{n:,}"), "changed": result["changed"], **summarise(result),
                             "runs": {"inprocess_s": result["inprocess_s"], "process_s": result["process_s"]}}
            figures = results[name]["inprocess_s"]
            bench.log(f"  before {figures['before_median']:.2f}s {figures['before_range']}, after "
                      f"{figures['after_median']:.2f}s {figures['after_range']}, ratio {figures['ratio']:.2f} "
                      f"(spread {figures['spread']:.0%})")
            if args.json:
                args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        bench.close()
        shutil.rmtree(bench.scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
