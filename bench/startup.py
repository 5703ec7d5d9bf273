#!/usr/bin/env python3
"""Start-up time of chatctl beside its floor, ``python -c "import typer"``.

    python bench/startup.py              # 30 runs of each, medians, a Markdown table
    python bench/startup.py --runs 100

The goal (SPEC 4, issue "at home in a shell"): ``chatctl --help`` within 1.5x
the floor.  Each command runs in a fresh process, alternating between the
commands so that a noisy neighbour slows them all alike; the medians of the
wall-clock and of the CPU (user + system) times are reported - on a shared
machine the CPU time is the steadier of the two.  Children run with bytecode
caching on (as an installed chatctl does), whatever PYTHONDONTWRITEBYTECODE
says here.  hyperfine is used instead when it is installed
(``--no-hyperfine`` to force the built-in timer).  Also reports which heavy
modules each command imported (``-X importtime``), the usual reason for a slow
start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("sqlalchemy", "psycopg", "alembic", "tabulate", "rich", "pydantic")


def chatctl_command() -> list[str]:
    script = Path(sys.executable).parent / "chatctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chatctl"]


def cases() -> dict[str, tuple[list[str], dict[str, str]]]:
    chatctl = chatctl_command()
    complete = {"_CHATCTL_COMPLETE": "complete_bash", "COMP_WORDS": "chatctl ch", "COMP_CWORD": "1"}
    return {
        'python -c "pass"': ([sys.executable, "-c", "pass"], {}),
        'python -c "import typer"  (floor)': ([sys.executable, "-c", "import typer"], {}),
        "chatctl --help": ([*chatctl, "--help"], {}),
        "chatctl --version": ([*chatctl, "--version"], {}),
        "chatctl chats --help": ([*chatctl, "chats", "--help"], {}),
        "chatctl <Tab> (bash completion of `chatctl ch`)": (chatctl, complete),
    }


def child_environment(extra: dict[str, str]) -> dict[str, str]:
    """As a user runs it: bytecode cached (the warm-up runs write it), whatever this shell says."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def time_builtin(commands: dict[str, tuple[list[str], dict[str, str]]], runs: int,
                 warmup: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU (user + system) seconds of each run."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(warmup + runs):
        for name, (argv, env) in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_environment(env),
                           check=False)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if round_ >= warmup:
                wall[name].append(elapsed)
                cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall, cpu


def time_hyperfine(hyperfine: str, commands: dict[str, tuple[list[str], dict[str, str]]], runs: int,
                   warmup: int) -> dict[str, list[float]]:
    import shlex

    shell_commands = []
    for argv, env in commands.values():
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        shell_commands.append((f"env {prefix} " if prefix else "") + shlex.join(argv))
    with tempfile.TemporaryDirectory() as directory:
        export = Path(directory) / "results.json"
        # Through sh (the completion case needs its variables); hyperfine subtracts the shell's own start-up.
        subprocess.run([hyperfine, "--runs", str(runs), "--warmup", str(warmup), "--shell=sh", "--export-json",
                        str(export), "--style", "none", *shell_commands], check=True, stdout=subprocess.DEVNULL)
        results = json.loads(export.read_text())["results"]
    return {name: result["times"] for name, result in zip(commands, results)}


def heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    python_argv = argv if argv[0] == sys.executable else [sys.executable, "-c",
                                                          "from chatctl.cli import main; main()", *argv[1:]]
    result = subprocess.run([python_argv[0], "-X", "importtime", *python_argv[1:]], capture_output=True,
                            text=True, env=child_environment(env), check=False)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return sorted(name for name in HEAVY if name in imported)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each command (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--no-hyperfine", action="store_true", help="use the built-in timer even if hyperfine exists")
    arguments = parser.parse_args()

    commands = cases()
    hyperfine = None if arguments.no_hyperfine else shutil.which("hyperfine")
    cpu: dict[str, list[float]] | None = None
    if hyperfine:
        times = time_hyperfine(hyperfine, commands, arguments.runs, arguments.warmup)
        how = f"hyperfine, {arguments.runs} runs after {arguments.warmup} warm-up runs"
    else:
        times, cpu = time_builtin(commands, arguments.runs, arguments.warmup)
        how = (f"built-in timer (subprocess), {arguments.runs} runs of each after "
               f"{arguments.warmup} warm-up rounds, commands interleaved")
    floor_name = 'python -c "import typer"  (floor)'
    floor = statistics.median(times[floor_name])
    cpu_floor = statistics.median(cpu[floor_name]) if cpu else None

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f} at the end; {how}.\n")
    print("| command | wall median | wall min | wall ratio | CPU median | CPU ratio | heavy modules imported |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, (argv, env) in commands.items():
        median = statistics.median(times[name])
        heavy = ", ".join(heavy_imports(argv, env)) or "none"
        cpu_cells = (f"{statistics.median(cpu[name]) * 1000:.1f} ms | "
                     f"{statistics.median(cpu[name]) / cpu_floor:.2f}x") if cpu else "- | -"
        print(f"| `{name}` | {median * 1000:.1f} ms | {min(times[name]) * 1000:.1f} ms | "
              f"{median / floor:.2f}x | {cpu_cells} | {heavy} |")
    ratio = statistics.median(times["chatctl --help"]) / floor
    print(f"\n`chatctl --help` / floor (wall medians) = {ratio:.2f}x (goal: at most 1.50x): "
          f"{'met' if ratio <= 1.5 else 'MISSED'}")
    if cpu:
        cpu_ratio = statistics.median(cpu["chatctl --help"]) / cpu_floor
        print(f"`chatctl --help` / floor (CPU medians, less sensitive to other load) = {cpu_ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
