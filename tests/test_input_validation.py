"""Hostile and broken input, end to end: what reaches the command line.

The parsers have their own property tests (test_parsing_time.py,
test_parsing_filters.py, test_output.py); these drive the real commands with
arbitrary text where a user or a script supplies text - durations, business
hours, timestamps, filter expressions, id streams and event lines - and check
what the user sees and what the database holds:

* a refusal is exit 2 with exactly one line on stderr, never a traceback;
* a refused command changes nothing (every table compared before and after);
* bad event lines are reported with their line number and skipped, and
  nothing of theirs is written;
* filter values that look like SQL are inert.

Huge inputs (millions of ids, a million event lines) are in the slow tests at
the end: they run chatctl as a subprocess and watch its peak memory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from chatctl.storage.models import metadata

NOW = "2026-11-30T10:00:00Z"
TRACEBACK = re.compile(r"Traceback|unexpected error|File \"", re.I)
# Text a user could type or a script could pass: any printable or control
# character except NUL, which no argv can carry.
ARG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
TIME_LIKE = st.one_of(
    ARG_TEXT,
    st.from_regex(r"\A[+-]?\d{0,6}(\.\d{0,3})?(s|m|h|d|w|y|ms|us|S|M|H|D)?\Z"),
    st.from_regex(r"\AP(\d{0,4}[YMWD])*(T(\d{0,4}(\.\d*)?[HMS])*)?\Z"),
    st.from_regex(r"\A\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?\Z"),
)


def examples(count: int = 15):
    """The same examples on both backends, drawn from a fixed seed (derandomize): a failure on one
    backend reruns identically, and PostgreSQL is searched as hard as SQLite."""
    return settings(max_examples=count, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.filter_too_much])


@pytest.fixture
def demo(cli):
    result = cli("demo", "load", "--chats", "60", "--agents", "4", "--now", NOW)
    assert result.exit_code == 0, result
    return cli


def dump(engine) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order."""
    tables = {}
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            tables[table.name] = [tuple(row) for row in connection.execute(select(table).order_by(*order))]
    return tables


def assert_refused_cleanly(result, before, engine, *, allowed=(0, 1, 2)) -> None:
    assert not TRACEBACK.search(result.stderr), result
    assert result.exit_code in allowed, result
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("chatctl: "), result
        assert dump(engine) == before, f"a refused command changed the database: {result!r}"


# -- durations, business hours, holidays, zones (prefs set) ---------------------------------
PREF_VALUES = {
    "inactivity_timeout": TIME_LIKE,
    "pending_timeout": TIME_LIKE,
    "ticket_archive_after": TIME_LIKE,
    "business_hours": st.one_of(ARG_TEXT, st.from_regex(
        r"\A((mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))? \d{1,2}:\d{2}-\d{1,2}:\d{2}[;,]? ?){0,3}\Z")),
    "holidays": st.one_of(ARG_TEXT, st.from_regex(r"\A(\d{4}-\d{2}-\d{2}[, ]*){0,3}\Z")),
    "timezone": st.one_of(ARG_TEXT, st.sampled_from(["Africa/Johannesburg", "UTC", "../../etc/passwd",
                                                     "Europe/Nowhere", "posix/UTC", ""])),
    "agent_max_chats": st.one_of(ARG_TEXT, st.integers(-10**20, 10**20).map(str)),
    "inactivity_action": st.one_of(ARG_TEXT, st.sampled_from(["close", "ticket", "CLOSE", " ticket "])),
}


def test_prefs_set_refuses_bad_values_cleanly(demo, engine):
    @examples(60)
    @given(st.sampled_from(sorted(PREF_VALUES)).flatmap(lambda key: st.tuples(st.just(key), PREF_VALUES[key])))
    def check(item):
        key, value = item
        before = dump(engine)
        result = demo("prefs", "set", key, "--", value)
        assert_refused_cleanly(result, before, engine, allowed=(0, 2))
        if result.exit_code == 0:
            shown = demo("prefs", "get", key)
            assert shown.exit_code == 0, shown

    check()


# -- timestamps -------------------------------------------------------------------------------
def test_audit_since_refuses_bad_timestamps_cleanly(demo, engine):
    @examples()
    @given(TIME_LIKE)
    def check(value):
        before = dump(engine)
        result = demo("audit", "list", "--since", value, "-o", "json")
        assert_refused_cleanly(result, before, engine, allowed=(0, 2))
        assert dump(engine) == before  # a list never writes

    check()


def test_sweep_as_of_refuses_bad_timestamps_cleanly(demo, engine):
    @examples(12)
    @given(TIME_LIKE)
    def check(value):
        before = dump(engine)
        result = demo("sweep", "run", "--dry-run", "--as-of", value, "-o", "json")
        # A dry run that is accepted only records its sweep-run row; a refused one writes nothing.
        assert_refused_cleanly(result, before, engine, allowed=(0, 2))

    check()


# -- filter expressions -----------------------------------------------------------------------
FIELDS = ["status", "channel", "agent", "customer", "flagged", "tagged", "created", "closed", "closed_by",
          "reason", "idle", "age", "archived", "chat", "nosuch", "STATUS", ""]
EXPRESSION = st.one_of(
    ARG_TEXT,
    st.builds(lambda field, op, value: f"{field}{op}{value}", st.sampled_from(FIELDS),
              st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "~", "==", "=~", " = ", ""]),
              st.one_of(ARG_TEXT, TIME_LIKE, st.sampled_from(["live", "none", "yes", "'quoted'", '"x y"']))),
)


def test_chats_filter_refuses_bad_expressions_cleanly(demo, engine):
    @examples()
    @given(st.lists(EXPRESSION, min_size=1, max_size=3))
    def check(words):
        before = dump(engine)
        result = demo("chats", "filter", "--count", "--", *words)
        assert_refused_cleanly(result, before, engine, allowed=(0, 2))
        assert dump(engine) == before

    check()


def test_tickets_close_where_refuses_bad_expressions_cleanly(demo, engine):
    @examples()
    @given(st.lists(EXPRESSION, min_size=1, max_size=3))
    def check(words):
        before = dump(engine)
        args = ["tickets", "close", "--dry-run", "--yes", "-o", "json"]
        for word in words:
            args += ["--where", word]
        result = demo(*args)
        # A dry run changes nothing whatever it selects.
        assert_refused_cleanly(result, before, engine, allowed=(0, 1, 2))
        assert dump(engine) == before

    check()


SQL_VALUES = [
    "x'; DROP TABLE chats; --",
    "'; DELETE FROM audit_events; --",
    "1 OR 1=1",
    "%' OR '1'='1",
    "\\'; UPDATE chats SET status='closed'; --",
    "$$; DROP TABLE tickets; $$",
    "%",
    "_",
    "' UNION SELECT id FROM agents --",
]


def test_sql_looking_filter_values_are_inert(demo, engine):
    for value in SQL_VALUES:
        _check_inert(demo, engine, value)


def _check_inert(demo, engine, value):
    before = dump(engine)
    with engine.connect() as connection:
        chats = connection.execute(text(
            "SELECT c.close_reason, u.display_name, u.address FROM chats c JOIN customers u ON u.id = c.customer_id"
        )).all()

    def expected(field, op):
        def values(row):
            return [row.close_reason] if field == "reason" else [row.display_name, row.address]
        if op == "~":
            return sum(any(v is not None and value.lower() in v.lower() for v in values(row)) for row in chats)
        return sum(any(v == value for v in values(row)) for row in chats)

    for field in ("customer", "reason"):
        for op in ("=", "~"):
            result = demo("chats", "filter", "--count", f"{field}{op}{value}")
            assert result.exit_code in (0, 2), result
            if result.exit_code == 0:
                # The value is compared as text: it matches exactly what Python finds, wildcards included.
                count = int(result.stdout.strip().splitlines()[-1].split()[-1])
                assert count == expected(field, op), (field, op, result)
    for word in (f"reason={value}", f"agent={value}"):
        result = demo("tickets", "close", "--where", word, "--yes", "-o", "json")
        assert result.exit_code in (0, 2), result
    assert dump(engine) == before
    with engine.connect() as connection:
        for table in ("chats", "tickets", "audit_events", "agents"):
            connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


# -- id streams -------------------------------------------------------------------------------
ID_LINE = st.one_of(
    st.integers(1, 80).map(str),
    st.integers(-5, 2**64).map(str),
    st.sampled_from(["", "  ", "# a comment", "7 # trailing", "0", "-1", "1e3", "0x10", "１２", "٣", "1.0", "+5",
                     "9" * 40, "\t3\t", "3\r"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n"), max_size=12),
)


def test_id_stream_refuses_bad_ids_cleanly(demo, engine):
    @examples()
    @given(st.lists(ID_LINE, max_size=12))
    def check(lines):
        before = dump(engine)
        result = demo("chats", "close", "-", "--reason", "property", "-o", "json", input="\n".join(lines) + "\n")
        assert_refused_cleanly(result, before, engine, allowed=(0, 1, 2))
        if result.exit_code != 2:
            document = result.json()
            assert {item["result"] for item in document["results"]} <= {"changed", "skipped", "not_found"}

    check()


def test_a_bad_id_late_in_the_stream_refuses_the_whole_stream(demo, engine):
    before = dump(engine)
    lines = [str(n) for n in range(1, 61)] * 100 + ["12abc"]
    result = demo("chats", "close", "-", input="\n".join(lines) + "\n")
    assert result.exit_code == 2, result
    assert "line 6001" in result.stderr and len(result.stderr.splitlines()) == 1
    assert dump(engine) == before


# -- event lines ------------------------------------------------------------------------------
KEYS = ["type", "at", "chat", "customer", "channel", "agent", "text", "status", "name", "extra"]
JSON_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**64), st.floats(allow_nan=False),
                        st.text(max_size=8))
EVENT_VALUES = {
    "type": st.one_of(st.sampled_from(["chat_started", "customer_message", "agent_message", "presence",
                                       "Chat_Started", ""]), JSON_SCALAR),
    "at": st.one_of(st.sampled_from(["2026-11-30T09:00:00Z", "2026-11-30T09:00", "2026-11-30 09:00:00+02:00",
                                     "2026-02-30T09:00Z", "yesterday", ""]), JSON_SCALAR),
    "chat": st.one_of(st.integers(1, 120), st.integers(-2, 2**60), JSON_SCALAR),
    "customer": st.one_of(st.sampled_from(["+27820000001", "+27820000002", "web-9"]), JSON_SCALAR),
    "channel": st.one_of(st.sampled_from(["whatsapp", "sms", "WhatsApp", "bad channel"]), JSON_SCALAR),
    "agent": st.one_of(st.sampled_from(["alice", "bob", "nobody"]), JSON_SCALAR),
    "status": st.one_of(st.sampled_from(["online", "offline", "away"]), JSON_SCALAR),
}
EVENT_OBJECT = st.fixed_dictionaries(
    {"type": EVENT_VALUES["type"], "at": EVENT_VALUES["at"]},
    optional={key: EVENT_VALUES.get(key, JSON_SCALAR) for key in KEYS if key not in ("type", "at", "text")},
)
RAW_LINE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85"
                                 "\u2028\u2029"), max_size=30)
EVENT_LINE = st.one_of(
    EVENT_OBJECT.map(lambda data: ("event", data)),
    RAW_LINE.map(lambda raw: ("raw", raw)),
    st.sampled_from(["[]", "null", "42", '"chat_started"', "{", '{"type": "presence"}']).map(lambda r: ("raw", r)),
)
BAD_LINE = re.compile(r"^chatctl: line (\d+): .+$")


def _event_file(items, path: Path) -> tuple[str, dict[int, dict]]:
    """Write the lines; events carrying a text get the marker L<line> so rows can be traced back."""
    lines, events = [], {}
    for number, (kind, value) in enumerate(items, 1):
        if kind == "event":
            value = dict(value)
            if "chat" in value or value.get("type") != "presence":
                value["text"] = f"L{number}"
            events[number] = value
            lines.append(json.dumps(value))
        else:
            lines.append(value)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path), events


def test_event_lines_bad_ones_are_reported_and_skipped(demo, engine, tmp_path):
    @examples(25)
    @given(st.lists(EVENT_LINE, min_size=1, max_size=12))
    def check(items):
        with engine.connect() as connection:
            chats_before = set(connection.execute(text("SELECT id FROM chats")).scalars())
            messages_before = connection.execute(text("SELECT max(id) FROM messages")).scalar() or 0
        path, events = _event_file(items, tmp_path / "events.jsonl")
        result = demo("-q", "events", "ingest", path, "-o", "json")
        assert not TRACEBACK.search(result.stderr), result
        assert result.exit_code in (0, 1), result
        summary = result.json()
        reported = [BAD_LINE.match(line) for line in result.stderr.splitlines()]
        assert all(reported), result
        numbers = [int(match.group(1)) for match in reported]
        assert numbers == sorted(set(numbers)) and all(1 <= n <= len(items) for n in numbers), result
        assert len(numbers) == summary["bad_lines"] and (result.exit_code == 1) == bool(numbers), result
        blank = {n for n, (kind, value) in enumerate(items, 1) if kind == "raw" and not value.strip()}
        assert not blank & set(numbers), "a blank line was reported as bad"
        bad = set(numbers)
        with engine.connect() as connection:
            bodies = connection.execute(
                text("SELECT body FROM messages WHERE id > :m"), {"m": messages_before}).scalars().all()
            chats_after = set(connection.execute(text("SELECT id FROM chats")).scalars())
        traced = [int(body[1:]) for body in bodies if re.fullmatch(r"L\d+", body or "")]
        assert not bad & set(traced), f"a message of a bad line was written: {result!r}"
        started = {events[n].get("chat") for n in events if n not in bad and events[n].get("type") == "chat_started"}
        generated = {item["chat"] for item in summary["generated_chats"]}
        assert chats_after - chats_before <= started | generated, result

    check()


# -- huge inputs: flat memory ----------------------------------------------------------------------
def _peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def feed(args: list[str], lines, env: dict | None = None) -> tuple[int, int, int, str]:
    """Run chatctl with ``lines`` piped in; return (exit code, peak RSS KiB, bytes fed, stderr)."""
    import tempfile

    errors = tempfile.TemporaryFile()  # a file, not a pipe: bad-line reports must never block the child
    process = subprocess.Popen([sys.executable, "-m", "chatctl", *args], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=errors,
                               env={**os.environ, **(env or {})})
    peak = 0
    fed = 0
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _peak_rss_kib(process.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    chunk: list[str] = []
    try:
        for line in lines:
            chunk.append(line)
            if len(chunk) >= 20_000:
                data = ("\n".join(chunk) + "\n").encode()
                process.stdin.write(data)
                fed += len(data)
                chunk = []
        if chunk:
            data = ("\n".join(chunk) + "\n").encode()
            process.stdin.write(data)
            fed += len(data)
        process.stdin.close()
    except BrokenPipeError:
        pass
    code = process.wait()
    errors.seek(0)
    stderr = errors.read().decode(errors="replace")
    done.set()
    watcher.join()
    return code, peak, fed, stderr


@pytest.fixture
def sqlite_desk(tmp_path):
    url = f"sqlite:///{tmp_path / 'desk.db'}"
    subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, "db", "init"], check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "chatctl", "--database-url", url, "demo", "load", "--chats", "500",
                    "--now", NOW], check=True, capture_output=True)
    return url


@pytest.mark.slow
def test_huge_id_stream_streams_with_flat_memory(sqlite_desk):
    """3,000,000 ids (~24 MB of text) through ``chats close - --dry-run``: the peak RSS of the
    process stays far below the input size, and no higher than for 300,000 ids plus a margin."""
    args = ["--database-url", sqlite_desk, "-q", "chats", "close", "-", "--dry-run", "-o", "ids",
            "--batch-size", "20000"]
    small = feed(args, (str(n) for n in range(1_000_000, 1_300_000)))
    big = feed(args, (str(n) for n in range(1_000_000, 4_000_000)))
    for code, peak, fed, stderr in (small, big):
        assert code == 1 and not TRACEBACK.search(stderr), stderr  # every id is not found: exit 1
        assert peak > 0
    code, peak, fed, stderr = big
    print(f"ids: {fed:,} bytes -> peak {peak:,} KiB (300,000 ids: {small[2]:,} bytes -> {small[1]:,} KiB)")
    assert fed > 23_000_000
    assert peak < 120 * 1024, f"peak RSS {peak} KiB for {fed} bytes of ids"
    assert peak < small[1] + 30 * 1024, f"memory grew with the input: {small[1]} KiB -> {peak} KiB"


@pytest.mark.slow
def test_event_file_of_300000_lines_streams_with_flat_memory(sqlite_desk):
    """300,000 event lines (~30 MB: new chats, messages, presence) through ``events ingest -``:
    the peak RSS stays far below the input size and does not grow with it (20,000 lines
    for comparison)."""

    def events(count, base):
        for n in range(count):
            chat = base + n // 4
            kind = n % 4
            at = f"2026-11-30T09:{(n // 60) % 60:02d}:{n % 60:02d}Z"
            if kind == 0:
                yield json.dumps({"type": "chat_started", "chat": chat, "customer": f"+2782{chat}",
                                  "channel": "webchat", "at": at, "text": "hi"})
            elif kind == 3 and n % 400 == 3:
                yield json.dumps({"type": "presence", "agent": "nobody-here", "status": "online", "at": at})
            else:
                yield json.dumps({"type": "customer_message", "chat": chat, "text": "more", "at": at})

    args = ["--database-url", sqlite_desk, "-q", "events", "ingest", "-"]
    small = feed(args, events(20_000, 10_000_000))
    big = feed(args, events(300_000, 20_000_000))
    code, peak, fed, stderr = big
    print(f"events: {fed:,} bytes -> peak {peak:,} KiB (20,000 lines: {small[2]:,} bytes -> {small[1]:,} KiB)")
    assert code == 1, stderr  # the presence lines name an unknown agent: reported and skipped
    assert not TRACEBACK.search(stderr), stderr[-2000:]
    assert all(BAD_LINE.match(line) for line in stderr.splitlines()), stderr[-2000:]
    assert fed > 30_000_000
    assert peak < 150 * 1024, f"peak RSS {peak} KiB for {fed} bytes of events"
    assert peak < small[1] + 40 * 1024, f"memory grew with the input: {small[1]} KiB -> {peak} KiB"
