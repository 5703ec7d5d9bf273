"""The one renderer and the id streams: formats, streaming, TTY defaults."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from chatctl.context import Environment
from chatctl.domain.batches import ItemResult
from chatctl.parsing.ids import IdSpool
from chatctl.errors import UsageError
from chatctl.output import MutationPrinter, render_rows

ROWS = [
    {"id": 1, "status": "live", "flagged": True, "at": dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc),
     "body": "tab\there\nnewline"},
    {"id": 2, "status": "closed", "flagged": False, "at": None, "body": "plain"},
]


def env(tty: bool = False) -> Environment:
    return Environment(stdout=io.StringIO(), stderr=io.StringIO(), stdout_isatty=tty, stderr_isatty=tty)


@pytest.mark.parametrize("tty, expected", [(True, "table"), (False, "tsv")])
def test_default_format_follows_the_terminal(tty, expected):
    from chatctl.output import choose_format

    assert choose_format(None, env(tty)) == expected


def test_tsv_one_record_per_line_with_iso_times():
    e = env()
    render_rows(e, ROWS, ["id", "status", "flagged", "at", "body"], "tsv")
    lines = e.stdout.getvalue().splitlines()
    assert lines[0] == "id\tstatus\tflagged\tat\tbody"
    assert lines[1].split("\t") == ["1", "live", "true", "2026-11-30T09:00:00+00:00", "tab here newline"]
    assert len(lines) == 3


def test_csv_quotes_properly():
    e = env()
    render_rows(e, [{"id": 1, "body": 'say "hi", bye'}], ["id", "body"], "csv")
    parsed = list(csv.reader(io.StringIO(e.stdout.getvalue())))
    assert parsed == [["id", "body"], ["1", 'say "hi", bye']]


def test_json_is_one_document_with_offsets_in_display_zone():
    from zoneinfo import ZoneInfo

    e = env()
    render_rows(e, ROWS, ["id"], "json", tz=ZoneInfo("Africa/Johannesburg"))
    document = json.loads(e.stdout.getvalue())
    assert [row["id"] for row in document] == [1, 2]
    assert document[0]["at"] == "2026-11-30T11:00:00+02:00"
    empty = env()
    render_rows(empty, [], ["id"], "json")
    assert json.loads(empty.stdout.getvalue()) == []


@pytest.mark.parametrize("fmt", ["jsonl", "ids", "tsv", "csv"])
def test_streaming_formats_write_each_row_before_the_next_is_read(fmt):
    """Streaming means row n is on stdout before row n+1 is produced (a slow query, a pipe to `head`)."""
    e = env()
    written_before: list[int] = []

    def rows():
        for number in range(3):
            written_before.append(len(e.stdout.getvalue().splitlines()))
            yield {"id": number + 1}

    render_rows(e, rows(), ["id"], fmt)
    header = 1 if fmt in ("tsv", "csv") else 0
    assert written_before == [header, header + 1, header + 2], written_before
    lines = e.stdout.getvalue().splitlines()[header:]
    ids = [str(json.loads(line)["id"]) for line in lines] if fmt == "jsonl" else lines
    assert ids == ["1", "2", "3"]


def test_markdown_and_plain_use_tabulate():
    e = env()
    render_rows(e, ROWS, ["id", "status"], "markdown")
    assert e.stdout.getvalue().splitlines()[1].startswith("|--")
    plain = env()
    render_rows(plain, ROWS, ["id", "status"], "plain")
    assert "closed" in plain.stdout.getvalue()


def test_table_without_color_has_no_escape_codes():
    e = env(tty=False)
    render_rows(e, ROWS, ["id", "status"], "table")
    assert "\x1b[" not in e.stdout.getvalue()
    assert "live" in e.stdout.getvalue()


def test_mutation_json_document_shape():
    e = env()
    with MutationPrinter(e, "json", operation="01OP", dry_run=True, what="close") as printer:
        printer.add([ItemResult(1, "changed"), ItemResult(2, "skipped", "already closed")])
        printer.add([ItemResult(3, "not_found", "no such id")])
    document = json.loads(e.stdout.getvalue())
    assert document == {  # D8: a dry run records no operation and says what it would change
        "operation": None,
        "dry_run": True,
        "results": [
            {"id": 1, "result": "would_change", "reason": None},
            {"id": 2, "result": "skipped", "reason": "already closed"},
            {"id": 3, "result": "not_found", "reason": "no such id"},
        ],
        "summary": {"would_change": 1, "skipped": 1, "not_found": 1, "refused": 0},
    }
    assert printer.summary.failed
    assert "dry run" in e.stderr.getvalue()


def test_id_spool_ignores_blank_lines_and_comments_and_batches():
    lines = ["# header\n", "1\n", "\n", "  2  # trailing comment\n", "3\n"]
    spool = IdSpool.from_lines(lines)
    assert spool.count == 3
    assert list(spool.batches(2)) == [[1, 2], [3]]


@pytest.mark.parametrize("bad", ["abc", "-4", "0", "1.5", "99999999999999999999999", "1_000", "\u0663"])
def test_id_spool_refuses_bad_ids_with_line_number(bad):
    with pytest.raises(UsageError, match="line 2"):
        IdSpool.from_lines(["1\n", f"{bad}\n"])


def test_id_spool_streams_a_large_input_with_flat_memory():
    import tracemalloc

    def lines():
        for number in range(1, 300_001):
            yield f"{number}\n"

    tracemalloc.start()
    spool = IdSpool.from_lines(lines())
    total = sum(len(batch) for batch in spool.batches(5000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert total == 300_000
    assert peak < 20 * 1024 * 1024  # 300,000 ids spill to disk past 8 MiB


def test_id_stream_property_any_text_is_ids_or_one_usage_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.text(max_size=30), max_size=20))
    def check(lines):
        try:
            spool = IdSpool.from_lines(line + "\n" for line in lines)
        except UsageError as error:
            assert "\n" not in error.message
            return
        ids = [value for batch in spool.batches(7) for value in batch]
        assert len(ids) == spool.count
        assert all(0 < value < 2**63 for value in ids)

    check()


def test_negative_durations_render():
    from chatctl.output import human_value

    assert human_value(dt.timedelta(minutes=-90), None, machine=False) == "-1h30m"
