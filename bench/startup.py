"""Section ``startup``: start-up time of chatctl beside its floor, ``python -c "import typer"``.

    python bench/run.py --only startup       # 30 timed runs of each (quick: 10)

The goal: ``chatctl --help`` within 1.5x the floor, whole process (start-up is
what is measured, so these rows have no in-process time).  Each command runs
in a fresh process, alternating between the commands so that a noisy
neighbour slows them all alike, after 3 untimed rounds; the medians of the
wall-clock and of the CPU (user + system) times are reported - on a shared
machine the CPU time is the steadier of the two.  Children run with bytecode
caching on (as an installed chatctl does), whatever PYTHONDONTWRITEBYTECODE
says here.  Also reports which heavy modules each command imported
(``-X importtime``), the usual reason for a slow start.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import Bench, Goal, Row, Section

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
        "chatctl <Tab> (bash completion of: chatctl ch)": (chatctl, complete),
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


def heavy_imports(argv: list[str], env: dict[str, str]) -> list[str]:
    python_argv = argv if argv[0] == sys.executable else [sys.executable, "-c",
                                                          "from chatctl.cli import main; main()", *argv[1:]]
    result = subprocess.run([python_argv[0], "-X", "importtime", *python_argv[1:]], capture_output=True,
                            text=True, env=child_environment(env), check=False)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    return sorted(name for name in HEAVY if name in imported)


FLOOR = 'python -c "import typer"  (floor)'


def measure(bench: Bench) -> list[Row]:
    runs = bench.size(full=30, quick=10)
    bench.scale = 1.0  # fewer runs, same commands: the goal holds as it is
    commands = cases()
    wall, cpu = time_builtin(commands, runs, warmup=3)
    rows = []
    for name, (argv, env) in commands.items():
        heavy = ", ".join(heavy_imports(argv, env)) or "none"
        goal = Goal("within 1.5x the floor", ratio=1.5, basis="process") if name == "chatctl --help" else None
        cpu_ratio = statistics.median(cpu[name]) / statistics.median(cpu[FLOOR])
        rows.append(Row(name.replace("  (floor)", "").join("``") if "floor" not in name else
                        "floor: `python -c \"import typer\"`", process=wall[name], floor=name == FLOOR, goal=goal,
                        unit="ms", note=(f"CPU median {statistics.median(cpu[name]) * 1000:.1f} ms "
                                         f"({cpu_ratio:.2f}x the floor's); heavy modules imported: {heavy}")))
    # `python -c "pass"` comes first in cases(); it is shown above the floor, without a ratio
    rows[0].compare = False
    bench.runs = runs
    return rows


SECTIONS = [Section("startup", "Start-up: `chatctl --help` beside `import typer`", measure, order=1,
                    needs_postgres=False)]
