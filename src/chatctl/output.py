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
from chatctl.domain.batches import ItemResult, Summary, as_dry_run
from chatctl.errors import Interrupted


@dataclass(frozen=True)
class Column:
    key: str
    header: str | None = None
    # Rich markup for the table view only (colour markers); plain text elsewhere.
    style: Callable[[Any, Mapping[str, Any]], str] | None = None
    ago: str | None = None
    """``table`` only: show the time since the timestamp ("12m", "3h") under this header;
    every other format keeps the timestamp itself under ``key``/``header``."""
    since: Callable[[Mapping[str, Any]], dt.datetime | None] | None = None
    """With ``ago``: the instant to count from (default: the column's value); None leaves the cell blank."""
    drop: int = 0
    """When a ``table`` is wider than the terminal, columns are left out in this order (1 first,
    then 2, ...) until it fits; 0: always shown.  ``--wide`` shows every column."""
    bar: int = 0
    """``table`` only: the value, a fraction from 0 to 1, drawn as a bar this many cells wide.
    Left out of every other format (the numbers it draws are columns of their own)."""

    @property
    def title(self) -> str:
        return self.header or self.key.replace("_", " ")

    def table_title(self) -> str:
        if self.ago:
            return self.ago
        return self.header if self.bar and self.header is not None else self.title


def columns_of(spec: Sequence[str | Column]) -> list[Column]:
    return [item if isinstance(item, Column) else Column(item) for item in spec]


def choose_format(requested: str | None, env: Environment) -> str:
    if requested:
        return requested
    return "table" if env.stdout_isatty else "tsv"


# -- values ------------------------------------------------------------------
# Machine formats stream millions of rows, so a value's conversion is chosen
# once per type (and the time zone once per stream), not found again for each
# value through a chain of isinstance checks.  JSON-native values (str, int,
# bool, None, dict, list) go straight through the json module's C encoder,
# which calls back only for what JSON lacks: timestamps, dates, durations.
def _zone(tz: dt.tzinfo | None) -> dt.tzinfo:
    """``tz``, with UTC by any name as the one ``datetime.timezone.utc`` values read from the
    database carry (they then need no conversion at all)."""
    if tz is None or getattr(tz, "key", None) in UTC_NAMES:
        return dt.timezone.utc
    return tz


UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


def _json_default(tz: dt.tzinfo | None) -> Callable[[Any], Any]:
    zone = _zone(tz)

    def default(value: Any) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=dt.timezone.utc)
            return (value if value.tzinfo is zone else value.astimezone(zone)).isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, dt.timedelta):
            return value.total_seconds()
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, (set, frozenset)):
            return list(value)
        return str(value)

    return default


def json_encoder(tz: dt.tzinfo | None = None, *, indent: int | None = None) -> Callable[[Any], str]:
    """``encode(value) -> str``: JSON text with timestamps in ISO 8601 in ``tz`` (UTC by default)."""
    return json.JSONEncoder(ensure_ascii=False, indent=indent, default=_json_default(tz)).encode


def dumps(value: Any, tz: dt.tzinfo | None = None, *, indent: int | None = None) -> str:
    return json_encoder(tz, indent=indent)(value)


def relative_time(delta: dt.timedelta) -> str:
    """A duration for people, to the nearest unit that matters: "45s", "12m", "3h5m", "3h", "2d4h", "12d"."""
    if delta < dt.timedelta(0):
        return "in " + relative_time(-delta)
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes}m"
    if hours < 10:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 10:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 22nd..."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


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


def machine_cells(tz: dt.tzinfo | None) -> Callable[[Any], str]:
    """``text(value)`` for tsv/csv cells: ``human_value(value, tz, machine=True)``, with the
    conversion looked up once per type rather than once per value."""
    zone = _zone(tz)

    def timestamp(value: dt.datetime) -> str:
        return (value if value.tzinfo is zone else value.astimezone(zone)).isoformat()

    def text(value: str) -> str:
        # One record per line whatever a customer typed.
        if "\t" in value or "\n" in value or "\r" in value:
            return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
        return value

    by_type: dict[type, Callable[[Any], str]] = {
        type(None): lambda value: "",
        bool: lambda value: "true" if value else "false",
        int: str,
        str: text,
        dt.datetime: timestamp,
    }

    def cell(value: Any) -> str:
        convert = by_type.get(type(value))
        if convert is None:
            return human_value(value, tz, machine=True)
        return convert(value)

    return cell


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
    now: dt.datetime | None = None,
    wide: bool = False,
    one_line: bool = False,
) -> int:
    """Print ``rows``; JSON formats get every key of each row, the others ``columns``.

    ``now`` turns the ``ago`` columns of a table into times since then;
    ``wide`` keeps every column of a table however narrow the terminal;
    ``one_line`` writes a ``json`` document on one line (``--watch``).
    Returns the number of rows printed.  When the reader of standard output
    leaves (``| head``), no more rows are fetched; ``rows`` is closed either way,
    while its database connection is still open.
    """
    try:
        return _render_rows(env, _until_reader_leaves(env, rows), columns, fmt, tz=tz, id_key=id_key,
                            title=title, empty=empty, now=now, wide=wide, one_line=one_line)
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def _until_reader_leaves(env: Environment, rows: Iterable[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    for row in rows:
        if env.reader_gone:
            return
        yield row


def _render_rows(
    env: Environment,
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str | Column],
    fmt: str | None,
    *,
    tz: dt.tzinfo | None,
    id_key: str,
    title: str | None,
    empty: str | None,
    now: dt.datetime | None,
    wide: bool,
    one_line: bool,
) -> int:
    fmt = choose_format(fmt, env)
    cols = [col for col in columns_of(columns) if fmt == "table" or not col.bar]
    out = env.stdout
    count = 0
    if fmt == "ids":
        for row in rows:
            out.write(f"{row[id_key]}\n")
            count += 1
    elif fmt == "jsonl":
        encode = json_encoder(tz)
        write = out.write
        for row in rows:
            write(encode(row) + "\n")
            count += 1
    elif fmt == "json":
        first, between, last = ("", ", ", "") if one_line else ("\n  ", ",\n  ", "\n")
        encode = json_encoder(tz)
        out.write("[")
        for row in rows:
            out.write((first if count == 0 else between) + encode(row))
            count += 1
        out.write((last if count else "") + "]\n")
    elif fmt in ("tsv", "csv"):
        # TSV has no quoting or escapes: values carry no tabs or newlines (human_value), so a quote
        # or backslash is just a character.  CSV quotes what needs it.
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n",
                            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
                            quotechar=None if fmt == "tsv" else '"')
        writer.writerow([col.key for col in cols])
        cell = machine_cells(tz)
        keys = [col.key for col in cols]
        writerow = writer.writerow
        for row in rows:
            get = row.get
            writerow([cell(get(key)) for key in keys])
            count += 1
    elif fmt in ("plain", "markdown"):
        from tabulate import tabulate

        table = [[human_value(row.get(col.key), tz, machine=False) for col in cols] for row in rows]
        count = len(table)
        if table or fmt == "markdown":
            out.write(tabulate(table, headers=[col.title for col in cols],
                               tablefmt="github" if fmt == "markdown" else "plain", disable_numparse=True) + "\n")
    elif fmt == "table":
        count = _rich_table(env, rows, cols, tz, title, now=now, wide=wide)
    else:  # pragma: no cover - Typer's choice validation stops this earlier
        raise ValueError(fmt)
    out.flush()
    if count == 0 and empty and fmt in ("table", "plain"):
        env.note(empty)
    return count


def _console(env: Environment, *, stderr: bool = False, width: int | None = None):
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
        width=width or env.width or (None if isatty else 200),
    )


def print_renderable(env: Environment, renderable: Any) -> None:
    """A Rich renderable (a chart beside a table) on stdout, in the table's console."""
    _console(env).print(renderable)


def bar_text(fraction: float, width: int) -> str:
    """A horizontal bar of ``width`` cells, eighths included: ``fraction`` 0.5 of 4 is "██"."""
    fraction = min(max(fraction or 0.0, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    return "█" * full + ("" if not part else " ▏▎▍▌▋▊▉"[part])


def sparkline(values: Sequence[float]) -> str:
    """One cell per value, its height scaled to the highest: "▁▃█▅".  Zero is the lowest block."""
    peak = max(values, default=0)
    blocks = "▁▂▃▄▅▆▇█"
    if not peak:
        return blocks[0] * len(values)
    return "".join(blocks[max(1, round(value / peak * 7)) if value > 0 else 0] for value in values)


_COLUMN_GAP = 2  # Rich's default padding: one cell either side of a column, none at the edges


def _rich_table(env: Environment, rows: Iterable[Mapping[str, Any]], cols: list[Column],
                tz: dt.tzinfo | None, title: str | None, *, now: dt.datetime | None = None,
                wide: bool = False) -> int:
    """A Rich table that fits the terminal: the ``drop`` columns go first; ``wide`` keeps them all
    (and lets the lines run past the edge rather than squeezing a cell)."""
    from rich.cells import cell_len
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    def cell(col: Column, row: Mapping[str, Any]) -> tuple[str, int]:
        value = row.get(col.key)
        if col.bar:
            return bar_text(value, col.bar), col.bar
        if col.ago is not None:
            since = col.since(row) if col.since is not None else value
            text = relative_time(now - since) if since is not None and now is not None else \
                human_value(since, tz, machine=False)
            return escape(text), cell_len(text)
        if col.style is not None and env.color:
            markup = col.style(value, row)
            return markup, Text.from_markup(markup).cell_len
        text = human_value(value, tz, machine=False)
        return escape(text), cell_len(text)

    cells = [[cell(col, row) for col in cols] for row in rows]
    if not cells:
        return 0
    widths = [max([cell_len(col.table_title())] + [line[index][1] for line in cells])
              for index, col in enumerate(cols)]
    shown = list(range(len(cols)))

    def needed() -> int:
        return sum(widths[index] for index in shown) + _COLUMN_GAP * (len(shown) - 1)

    console = _console(env)
    if wide:
        console = _console(env, width=max(console.width, needed()))
    else:
        for index in sorted((i for i, col in enumerate(cols) if col.drop), key=lambda i: cols[i].drop):
            if needed() <= console.width:
                break
            shown.remove(index)
    table = Table(title=title, box=None, header_style="bold", pad_edge=False)
    for index in shown:
        col = cols[index]
        # Ids are printed whole: never wrapped, cropped or squeezed.
        whole = col.key in ("id", "operation") or col.key.endswith("_id") or col.bar > 0
        table.add_column(col.table_title(), no_wrap=whole, min_width=widths[index] if whole else None)
    for line in cells:
        table.add_row(*(line[index][0] for index in shown))
    console.print(table)
    return len(cells)


def render_record(env: Environment, record: Mapping[str, Any], fmt: str | None, *,
                  tz: dt.tzinfo | None = None, fields: Sequence[str] | None = None, id_key: str = "id") -> None:
    """One object: the whole document in JSON, ``field  value`` lines otherwise."""
    fmt = choose_format(fmt, env)
    if fmt in ("json", "jsonl"):
        env.stdout.write(dumps(record, tz, indent=2 if fmt == "json" else None) + "\n")
        return
    keys = list(fields) if fields else [k for k, v in record.items() if not isinstance(v, (list, dict))]
    if fmt == "ids":
        env.stdout.write(f"{record.get(id_key, '')}\n")
        return
    rows = [{"field": key, "value": record.get(key)} for key in keys]
    render_rows(env, rows, ["field", "value"], fmt, tz=tz)


def flat_metrics(record: Mapping[str, Any], prefix: str = "") -> Iterator[dict[str, Any]]:
    """``{"metric": "a.b.c", "value": v}`` rows of a nested document, for tsv and csv.

    A list of objects is keyed by each object's first value (``agents.alice.live``,
    ``waiting.idle.5-15m.count``), so a metric keeps its name from one snapshot to the next.
    """
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flat_metrics(value, f"{name}.")
        elif isinstance(value, (list, tuple)) and value and all(isinstance(item, Mapping) for item in value):
            for item in value:
                label, *rest = item.items()
                yield from flat_metrics(dict(rest), f"{name}.{label[1]}.")
        else:
            yield {"metric": name, "value": value}


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
        self.summary = Summary(dry_run=dry_run)
        self._table: list[ItemResult] = []
        self._started = False
        self.interrupted = False

    def __enter__(self) -> MutationPrinter:
        self._opened = False
        return self

    def _open(self) -> None:
        """The document's head or the header line, written with the first result (or at a clean end),
        so a mutation that fails before doing anything prints nothing on standard output."""
        if self._opened:
            return
        self._opened = True
        out = self.env.stdout
        if self.fmt == "json":
            # A dry run recorded nothing: it has no operation (D8).
            out.write('{"operation": %s, "dry_run": %s, "results": [' % (
                json.dumps(None if self.dry_run else self.operation), "true" if self.dry_run else "false"))
        elif self.fmt in ("tsv", "csv"):
            sep = "\t" if self.fmt == "tsv" else ","
            out.write(sep.join(("id", "result", "reason")) + "\n")

    def add(self, results: Iterable[ItemResult]) -> None:
        out = self.env.stdout
        self._open()
        for item in results:
            if self.dry_run:
                item = as_dry_run(item)
            self.summary.add(item)
            if self.env.reader_gone:  # `| head` has what it wanted: count, print no more
                continue
            if self.fmt == "json":
                out.write(",\n  " if self._started else "\n  ")
                out.write(json.dumps(item.as_json(), default=str))
                self._started = True
            elif self.fmt == "jsonl":
                out.write(json.dumps(item.as_json(), default=str) + "\n")
            elif self.fmt == "ids":
                if item.result in ("changed", "would_change"):
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
        failed = exc_info[0] is not None and not issubclass(exc_info[0], (KeyboardInterrupt, Interrupted))
        if failed and not self.summary.total:
            return  # nothing was done: the error alone says what happened (a read-only database, ...)
        self._open()
        out = self.env.stdout
        if self.fmt == "json":
            out.write(("\n" if self._started else "") + '], "summary": %s}\n' % json.dumps(self.summary.counts))
        elif self.fmt in ("table", "plain", "markdown") and self._table:
            render_rows(self.env, (item.as_json() for item in self._table), ["id", "result", "reason"], self.fmt)
        out.flush()
        prefix = "dry run, nothing changed: " if self.dry_run else ""
        interrupted = " (interrupted)" if self.interrupted or exc_info[0] is KeyboardInterrupt else ""
        stopped = " (stopped by the error below)" if failed else ""
        operation = "" if self.dry_run else f" (operation {self.operation})"
        self.env.note(f"{prefix}{self.what}: {self.summary.line()}{interrupted}{stopped}{operation}")


class _CsvLine:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text


# -- progress ----------------------------------------------------------------------
class _NoProgress:
    shown = False

    def advance(self, amount: int = 1) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass


class _RichProgress:
    shown = True

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


# -- watching ----------------------------------------------------------------------------
def watch(env: Environment, draw: Callable[[Environment], None], *, fmt: str | None, interval: float,
          heading: Callable[[], str], sleep: Callable[[float], None] | None = None) -> None:
    """Draw a snapshot every ``interval`` seconds until Ctrl-C, which ends the watch normally.

    ``draw`` prints one snapshot to the environment it is given, through this
    module's renderers.  At a terminal, ``table`` output is redrawn in place
    (Rich Live): the snapshot is drawn into a buffer as wide as the terminal
    and shown under ``heading()``; Ctrl-C leaves the last snapshot
    on the screen and the cursor after it.  Anywhere else each snapshot is
    printed in turn in the chosen format and flushed: JSON formats as one
    document per line, the others followed by a blank line.
    """
    import time

    sleep = sleep or time.sleep
    live = env.stdout_isatty and choose_format(fmt, env) == "table"
    try:
        if live:
            _watch_live(env, draw, interval=interval, heading=heading, sleep=sleep)
            return
        while True:
            draw(env)
            if choose_format(fmt, env) not in ("json", "jsonl"):
                env.stdout.write("\n")
            env.stdout.flush()
            sleep(interval)
    except KeyboardInterrupt:
        return


def _watch_live(env: Environment, draw: Callable[[Environment], None], *, interval: float,
                heading: Callable[[], str], sleep: Callable[[float], None]) -> None:
    import io
    from dataclasses import replace

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    console = _console(env)

    def snapshot():
        buffer = io.StringIO()
        draw(replace(env, stdout=_TerminalBuffer(buffer), width=console.width))
        top = Text(f"{heading()}  (every {_seconds(interval)}; Ctrl-C to stop)", style="dim")
        return Group(top, Text.from_ansi(buffer.getvalue().rstrip("\n")))

    with Live(snapshot(), console=console, auto_refresh=False, transient=False,
              vertical_overflow="ellipsis") as screen:
        while True:
            sleep(interval)
            screen.update(snapshot(), refresh=True)


def _seconds(interval: float) -> str:
    from chatctl.parsing.timeparse import format_duration

    return format_duration(dt.timedelta(seconds=interval))


class _TerminalBuffer:
    """A text buffer that says it is a terminal, so a snapshot is drawn as it would be on screen."""

    def __init__(self, buffer) -> None:
        self._buffer = buffer

    def write(self, text: str) -> int:
        return self._buffer.write(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return True
