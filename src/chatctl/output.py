"""The one renderer (SPEC 2.3).  Every command that prints data hands rows here.

``-o`` picks the format; without it, a terminal gets a Rich ``table`` and a
pipe gets ``tsv``.  ``tsv``, ``csv``, ``jsonl``, ``json`` and ``ids`` stream
row by row (flat memory on a million rows); ``table``, ``plain`` and
``markdown`` need every row to size their columns, so they collect.
Rich and tabulate are imported only when a format needs them.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatctl.context import Environment
from chatctl.domain.batches import ItemResult, Summary


@dataclass(frozen=True)
class Column:
    key: str
    header: str | None = None
    # Rich markup for the table view only (colour markers); plain text elsewhere.
    style: Callable[[Any, Mapping[str, Any]], str] | None = None

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ")


def columns_of(spec: Sequence[str | Column]) -> list[Column]:
    return [item if isinstance(item, Column) else Column(item) for item in spec]


def choose_format(requested: str | None, env: Environment) -> str:
    if requested:
        return requested
    return "table" if env.stdout_isatty else "tsv"


# -- values ------------------------------------------------------------------
def to_json_value(value: Any, tz: dt.tzinfo | None = None) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(tz or dt.timezone.utc).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, Mapping):
        return {key: to_json_value(item, tz) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(item, tz) for item in value]
    return value


def dumps(value: Any, tz: dt.tzinfo | None = None, *, indent: int | None = None) -> str:
    return json.dumps(to_json_value(value, tz), ensure_ascii=False, indent=indent, default=str)


def human_value(value: Any, tz: dt.tzinfo | None, *, machine: bool) -> str:
    """Text for a cell: full ISO in tsv/csv, short local time for people."""
    if value is None:
        return ""
    if isinstance(value, bool):
        if machine:
            return "true" if value else "false"
        return "yes" if value else ""
    if isinstance(value, dt.datetime):
        local = value.astimezone(tz or dt.timezone.utc)
        return local.isoformat() if machine else local.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.timedelta):
        from chatctl.parsing.timeparse import format_duration

        return format_duration(value) if value >= dt.timedelta(0) else "-" + format_duration(-value)
    if isinstance(value, (list, tuple)):
        return ",".join(human_value(item, tz, machine=machine) for item in value)
    if isinstance(value, Mapping):
        return dumps(value, tz)
    text = str(value)
    if machine:
        # One record per line whatever a customer typed.
        text = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
    return text


# -- rows ----------------------------------------------------------------------
def render_rows(
    env: Environment,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str | Column],
    fmt: str | None,
    *,
    tz: dt.tzinfo | None = None,
    id_key: str = "id",
    title: str | None = None,
    empty: str | None = None,
) -> int:
    """Print ``rows``; JSON formats get every key of each row, the others ``columns``.

    Returns the number of rows printed.
    """
    fmt = choose_format(fmt, env)
    cols = columns_of(columns)
    out = env.stdout
    count = 0
    if fmt == "ids":
        for row in rows:
            out.write(f"{row[id_key]}\n")
            count += 1
    elif fmt == "jsonl":
        for row in rows:
            out.write(dumps(row, tz) + "\n")
            count += 1
    elif fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("\n  " if count == 0 else ",\n  ") + dumps(row, tz))
            count += 1
        out.write("\n]\n" if count else "]\n")
    elif fmt in ("tsv", "csv"):
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n",
                            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
                            escapechar="\\" if fmt == "tsv" else None)
        writer.writerow([col.key for col in cols])
        for row in rows:
            writer.writerow([human_value(row.get(col.key), tz, machine=True) for col in cols])
            count += 1
    elif fmt in ("plain", "markdown"):
        from tabulate import tabulate

        table = [[human_value(row.get(col.key), tz, machine=False) for col in cols] for row in rows]
        count = len(table)
        if table or fmt == "markdown":
            out.write(tabulate(table, headers=[col.title for col in cols],
                               tablefmt="github" if fmt == "markdown" else "plain", disable_numparse=True) + "\n")
    elif fmt == "table":
        count = _rich_table(env, rows, cols, tz, title)
    else:  # pragma: no cover - Typer's choice validation stops this earlier
        raise ValueError(fmt)
    out.flush()
    if count == 0 and empty and fmt in ("table", "plain"):
        env.note(empty)
    return count


def _console(env: Environment, *, stderr: bool = False):
    from rich.console import Console

    stream = env.stderr if stderr else env.stdout
    isatty = env.stderr_isatty if stderr else env.stdout_isatty
    return Console(
        file=stream,
        force_terminal=isatty and env.color,
        no_color=not env.color,
        color_system="auto" if env.color else None,
        highlight=False,
        soft_wrap=not isatty,
        width=None if isatty else 200,
    )


def _rich_table(env: Environment, rows: Iterable[Mapping[str, Any]], cols: list[Column],
                tz: dt.tzinfo | None, title: str | None) -> int:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for col in cols:
        table.add_column(col.title)
    count = 0
    for row in rows:
        cells = []
        for col in cols:
            value = row.get(col.key)
            if col.style is not None and env.color:
                cells.append(col.style(value, row))
            else:
                cells.append(escape(human_value(value, tz, machine=False)))
        table.add_row(*cells)
        count += 1
    if count:
        _console(env).print(table)
    return count


def render_record(env: Environment, record: Mapping[str, Any], fmt: str | None, *,
                  tz: dt.tzinfo | None = None, fields: Sequence[str] | None = None) -> None:
    """One object: the whole document in JSON, ``field  value`` lines otherwise."""
    fmt = choose_format(fmt, env)
    if fmt in ("json", "jsonl"):
        env.stdout.write(dumps(record, tz, indent=2 if fmt == "json" else None) + "\n")
        return
    keys = list(fields) if fields else [k for k, v in record.items() if not isinstance(v, (list, dict))]
    if fmt == "ids":
        env.stdout.write(f"{record.get('id', '')}\n")
        return
    rows = [{"field": key, "value": record.get(key)} for key in keys]
    render_rows(env, rows, ["field", "value"], fmt, tz=tz)


# -- mutations -------------------------------------------------------------------
class MutationPrinter:
    """Streams per-item results of a mutation in the chosen format, then the summary.

    JSON is one document ``{"operation", "dry_run", "results": [...], "summary"}``
    written as results arrive; the other formats print one line per item.
    """

    def __init__(self, env: Environment, fmt: str | None, *, operation: str, dry_run: bool,
                 what: str = "items") -> None:
        self.env = env
        self.fmt = choose_format(fmt, env)
        self.operation = operation
        self.dry_run = dry_run
        self.what = what
        self.summary = Summary()
        self._table: list[ItemResult] = []
        self._started = False
        self.interrupted = False

    def __enter__(self) -> MutationPrinter:
        out = self.env.stdout
        if self.fmt == "json":
            out.write('{"operation": %s, "dry_run": %s, "results": [' % (
                json.dumps(self.operation), "true" if self.dry_run else "false"))
        elif self.fmt in ("tsv", "csv"):
            sep = "\t" if self.fmt == "tsv" else ","
            out.write(sep.join(("id", "result", "reason")) + "\n")
        return self

    def add(self, results: Iterable[ItemResult]) -> None:
        out = self.env.stdout
        for item in results:
            self.summary.add(item)
            if self.fmt == "json":
                out.write(",\n  " if self._started else "\n  ")
                out.write(json.dumps(item.as_json(), default=str))
                self._started = True
            elif self.fmt == "jsonl":
                out.write(json.dumps(item.as_json(), default=str) + "\n")
            elif self.fmt == "ids":
                if item.result == "changed":
                    out.write(f"{item.id}\n")
            elif self.fmt in ("tsv", "csv"):
                reason = human_value(item.reason, None, machine=True)
                if self.fmt == "csv":
                    buffer = _CsvLine()
                    csv.writer(buffer, lineterminator="\n").writerow([item.id, item.result, reason])
                    out.write(buffer.text)
                else:
                    out.write(f"{item.id}\t{item.result}\t{reason}\n")
            else:
                self._table.append(item)
        out.flush()

    def __exit__(self, *exc_info: Any) -> None:
        out = self.env.stdout
        if self.fmt == "json":
            out.write(("\n" if self._started else "") + '], "summary": %s}\n' % json.dumps(self.summary.counts))
        elif self.fmt in ("table", "plain", "markdown") and self._table:
            render_rows(self.env, (item.as_json() for item in self._table), ["id", "result", "reason"], self.fmt)
        out.flush()
        prefix = "dry run, nothing changed: " if self.dry_run else ""
        interrupted = " (interrupted)" if self.interrupted or exc_info[0] is KeyboardInterrupt else ""
        self.env.note(f"{prefix}{self.what}: {self.summary.line()}{interrupted} (operation {self.operation})")


class _CsvLine:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


# -- progress ----------------------------------------------------------------------
class _NoProgress:
    def advance(self, amount: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _RichProgress:
    def __init__(self, progress, task) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task, amount)

    def set_total(self, total: int | None) -> None:
        self._progress.update(self._task, total=total)


@contextlib.contextmanager
def progress(env: Environment, description: str, total: int | None = None) -> Iterator[Any]:
    """A Rich progress bar (count, rate, ETA) on a terminal; nothing in a pipe."""
    if not env.stderr_isatty or env.quiet:
        yield _NoProgress()
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                               TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f}/s" if task.speed else "-/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               RateColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=_console(env, stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield _RichProgress(bar, task)
