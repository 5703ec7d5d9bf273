"""Run chatctl's benchmarks and rewrite the result tables of docs/benchmarks.md.

    python bench/run.py                      # every section at full size (hours on a small machine)
    python bench/run.py --quick              # every section at reduced sizes (minutes)
    python bench/run.py --only sweeps-sqlite --only startup
    python bench/run.py --list               # the sections and what they measure

Each section (a ``SECTIONS`` list in a module of ``bench/``; see bench/harness.py)
measures chatctl beside its floor on a fresh private PostgreSQL server or
SQLite file.  Its figures are saved in ``bench/results/SECTION.json`` and its
table in docs/benchmarks.md is replaced; the machine line and the summary are
rebuilt from every saved result, so ``--only`` refreshes one table and keeps
the others.  The run fails (exit 1, nothing written for that section) when a
floor changed other rows than chatctl or a command failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import re
import sqlite3
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import ROOT, Bench, BenchFailure, Row, Section, median  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
NOT_SECTIONS = {"harness", "run"}


def discover() -> list[Section]:
    sections: list[Section] = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem in NOT_SECTIONS:
            continue
        module = importlib.import_module(path.stem)
        sections.extend(getattr(module, "SECTIONS", []))
    names = [section.name for section in sections]
    duplicated = {name for name in names if names.count(name) > 1}
    if duplicated:
        raise SystemExit(f"two benchmark sections share a name: {', '.join(sorted(duplicated))}")
    return sorted(sections, key=lambda section: (section.order, section.name))


# -- checks ----------------------------------------------------------------------------
def check(section: Section, rows: list[Row]) -> None:
    """Every row after a floor must have changed what the floor changed."""
    floor: Row | None = None
    for row in rows:
        if row.floor:
            floor = row
            continue
        if not row.process and not row.inprocess:
            continue
        if row.goal and row.goal.ratio is not None and floor is None:
            raise BenchFailure(f"{section.name}: {row.what!r} has a goal relative to a floor but no floor row")
        if floor is None:
            continue
        if floor.changed is not None and row.changed is not None and floor.changed != row.changed:
            raise BenchFailure(f"{section.name}: the floor changed {floor.changed} rows, {row.what!r} {row.changed}")
        if floor.fingerprint and row.fingerprint and floor.fingerprint != row.fingerprint:
            raise BenchFailure(f"{section.name}: the floor left other rows than {row.what!r} "
                               f"({floor.fingerprint} != {row.fingerprint})")


# -- figures -----------------------------------------------------------------------------
def floor_of(rows: list[dict], index: int) -> dict | None:
    for row in reversed(rows[:index]):
        if row["floor"]:
            return row
    return None


def judged(row: dict, basis: str) -> float | None:
    return median(row[basis]) if row[basis] else None


def verdict(row: dict, floor: dict | None, scale: float) -> dict | None:
    """The goal's figure, its limit, and whether it was met."""
    goal = row.get("goal")
    if not goal:
        return None
    value = judged(row, goal["basis"])
    if value is None:
        return None
    if goal["ratio"] is not None:
        base = judged(floor, goal["basis"]) if floor else None
        if base is None and floor:  # a floor measured only one way (a statement has no start-up)
            base = judged(floor, "inprocess") or judged(floor, "process")
        if not base:
            return None
        ratio = round(value / base, 2)
        return {"figure": f"{ratio:.2f}x", "met": ratio <= goal["ratio"], "limit": f"{goal['ratio']}x"}
    shown = round(value * 1000, 2) / 1000 if row["unit"] == "ms" else round(value, 2)  # judged as shown
    if scale != 1.0:
        return {"figure": _seconds(shown, row["unit"]), "met": None, "limit": _seconds(goal["seconds"], row["unit"])}
    return {"figure": _seconds(shown, row["unit"]), "met": shown <= goal["seconds"],
            "limit": _seconds(goal["seconds"], row["unit"])}


def ratio_to_floor(row: dict, floor: dict | None) -> str:
    if not row.get("compare", True):
        return ""
    if floor is None or row["floor"]:
        return "1.00x" if row["floor"] else ""
    basis = row["goal"]["basis"] if row.get("goal") else ("inprocess" if row["inprocess"] else "process")
    value = judged(row, basis)
    base = judged(floor, basis) or judged(floor, "inprocess") or judged(floor, "process")
    if value is None or not base:
        return ""
    return f"{value / base:.2f}x"


def _seconds(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value * 1000:.2f} ms"
    return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"


def _times(values: list[float], unit: str) -> str:
    if not values:
        return "-"
    runs = ", ".join(_seconds(value, unit).split()[0] for value in values)
    if len(values) > 5:
        runs = f"{len(values)} runs, {_seconds(min(values), unit)} to {_seconds(max(values), unit)}"
    if len(values) == 1:
        return f"{_seconds(values[0], unit)} (one run)"
    return f"**{_seconds(median(values), unit)}** ({runs})"


def _goal_text(row: dict, scale: float) -> str:
    goal = row.get("goal")
    if not goal:
        return ""
    basis = "in process" if goal["basis"] == "inprocess" else "whole process"
    return f"{goal['text']} ({basis})"


def _mark(outcome: dict) -> str:
    if outcome["met"] is None:
        return "not judged at quick size"
    return "met" if outcome["met"] else "**missed**"


def render_table(result: dict) -> str:
    rows = result["rows"]
    scale = result["scale"]
    lines = [f"*{_sizes(result)}*", "",
             "| | changed | whole process: median (runs) | in process: median (runs) | ratio to floor "
             "| goal (time judged) | result | notes |",
             "|---|---:|---:|---:|---:|---|---|---|"]
    for index, row in enumerate(rows):
        floor = floor_of(rows, index)
        outcome = verdict(row, floor, scale)
        mark = "" if outcome is None else f"{_mark(outcome)} ({outcome['figure']})"
        changed = "" if row["changed"] is None else f"{row['changed']:,}"
        lines.append(f"| {row['what']} | {changed} | {_times(row['process'], row['unit'])} "
                     f"| {_times(row['inprocess'], row['unit'])} | {ratio_to_floor(row, floor)} "
                     f"| {_goal_text(row, scale)} | {mark} | {row['note']} |")
    if result.get("facts"):
        lines.append("")
        lines.extend(f"- {key}: {value}" for key, value in result["facts"].items())
    return "\n".join(lines)


def _sizes(result: dict) -> str:
    when = result["finished_at"][:16].replace("T", " ")
    quick = "quick run (reduced sizes)" if result["quick"] else "full size"
    if not result["quick"] and result.get("fraction"):
        quick = f"{result['fraction']:g} of full size (`--fraction {result['fraction']:g}`)"
    return (f"{quick}, {result['runs']} runs per row unless noted, measured {when} UTC in "
            f"{result['duration_s']:.0f} s; load average {result['load'][0]:.1f} before, "
            f"{result['load'][1]:.1f} after")


def render_summary(results: list[dict]) -> str:
    lines = ["| section | what | judged on | median | goal | result |", "|---|---|---|---:|---|---|"]
    for result in results:
        rows = result["rows"]
        for index, row in enumerate(rows):
            outcome = verdict(row, floor_of(rows, index), result["scale"])
            if outcome is None:
                continue
            basis = "in process" if row["goal"]["basis"] == "inprocess" else "whole process"
            value = judged(row, row["goal"]["basis"])
            mark = _mark(outcome)
            size = " (quick)" if result["quick"] else (f" (x{result['fraction']:g})" if result.get("fraction") else "")
            lines.append(f"| {result['name']}{size} | {row['what']} | {basis} | {_seconds(value, row['unit'])} "
                         f"| {_goal_text(row, result['scale'])} | {mark}: {outcome['figure']} |")
    return "\n".join(lines)


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "arch": platform.machine(), "system": platform.system(),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "processor": platform.processor()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["processor"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return info


def render_machine(results: list[dict]) -> str:
    if not results:
        return "(no results yet: run `python bench/run.py`)"
    latest = max(results, key=lambda result: result["finished_at"])
    info = latest["machine"]
    postgres = sorted({result["postgresql"] for result in results if result.get("postgresql")})
    loads = [load for result in results for load in result["load"]]
    return (f"{info['cpus']} CPUs ({info.get('processor', '?')}, {info['arch']}), {info.get('ram_gb', '?')} GB RAM, "
            f"{info['system']}, Python {info['python']}, SQLite {info['sqlite']}, "
            f"PostgreSQL {', '.join(postgres) or '-'} (a private server with the test suite's settings: "
            f"fsync and synchronous_commit off, 256 MB shared buffers). Load average during the runs: "
            f"{min(loads):.1f} to {max(loads):.1f}; the machine is shared, so single runs scatter: read the "
            f"medians, the runs beside them and the ratios, which compare runs made side by side on the same data.")


# -- the document ---------------------------------------------------------------------------
def replace_block(text: str, name: str, body: str, title: str | None = None) -> str:
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    block = f"{begin}\n{body}\n{end}"
    if pattern.search(text):
        return pattern.sub(lambda _: block, text)
    if title is None:
        raise SystemExit(f"{DOC} has no {begin} block")
    return text.rstrip("\n") + f"\n\n## {title}\n\n{block}\n"


def write_doc(doc: Path, sections: list[Section]) -> None:
    order = {section.name: index for index, section in enumerate(sections)}
    results = sorted((json.loads(path.read_text()) for path in RESULTS.glob("*.json")),
                     key=lambda result: order.get(result["name"], len(order)))
    results = [result for result in results if result["name"] in order]
    text = doc.read_text()
    text = replace_block(text, "machine", render_machine(results))
    text = replace_block(text, "summary", render_summary(results))
    titles = {section.name: section.title for section in sections}
    for result in results:
        text = replace_block(text, f"section {result['name']}", render_table(result), titles[result["name"]])
    doc.write_text(text)


def to_json(row: Row) -> dict:
    data = {key: value for key, value in row.__dict__.items() if key != "goal"}
    data["goal"] = row.goal.__dict__ if row.goal else None
    return data


def run_section(section: Section, args) -> dict:
    bench = Bench(quick=args.quick, runs=args.runs, fraction=args.fraction)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        rows = section.measure(bench)
        check(section, rows)
        postgresql = bench._postgres.version() if bench._postgres else None
    finally:
        bench.close()
    return {"name": section.name, "quick": args.quick, "fraction": bench.fraction, "runs": bench.runs,
            "scale": bench.scale,
            "duration_s": time.perf_counter() - started, "load": [load_before, os.getloadavg()[0]],
            "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "postgresql": postgresql, "facts": bench.facts,
            "rows": [to_json(row) for row in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="reduced sizes: every table in minutes")
    parser.add_argument("--only", action="append", metavar="SECTION", help="run this section (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per row (default 3)")
    parser.add_argument("--fraction", type=float, metavar="F",
                        help="full sizes times F (0 < F < 1): the largest run a small machine can finish")
    parser.add_argument("--list", action="store_true", help="list the sections and exit")
    parser.add_argument("--doc", type=Path, default=DOC, help="the document to rewrite (default docs/benchmarks.md)")
    args = parser.parse_args()

    sections = discover()
    if args.list:
        for section in sections:
            print(f"{section.name:<24} {section.title}")
        return 0
    chosen = sections
    if args.only:
        known = {section.name for section in sections}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            print(f"unknown section {', '.join(unknown)}; sections: {', '.join(sorted(known))}", file=sys.stderr)
            return 2
        chosen = [section for section in sections if section.name in args.only]
    RESULTS.mkdir(exist_ok=True)
    failed = []
    total = time.perf_counter()
    for section in chosen:
        print(f"== {section.name}: {section.title}", flush=True)
        try:
            result = run_section(section, args)
        except BenchFailure as failure:
            print(f"FAILED {section.name}: {failure}", file=sys.stderr, flush=True)
            failed.append(section.name)
            continue
        except Exception:  # a broken section must not stop the others
            traceback.print_exc()
            failed.append(section.name)
            continue
        (RESULTS / f"{section.name}.json").write_text(json.dumps(result, indent=1) + "\n")
        print(render_table(result), flush=True)
        print(f"== {section.name} done in {result['duration_s']:.0f} s", flush=True)
    write_doc(args.doc, sections)
    results = [json.loads((RESULTS / f"{section.name}.json").read_text())
               for section in chosen if (RESULTS / f"{section.name}.json").exists() and section.name not in failed]
    print("\nsummary:\n" + render_summary(results))
    print(f"\n{len(chosen) - len(failed)} of {len(chosen)} sections in {time.perf_counter() - total:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
