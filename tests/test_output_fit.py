"""Views that read at a glance: times since ("12m") in tables, machine formats keep
timestamps, and a table that fits the terminal by leaving out its least important
columns (``--wide`` keeps them), never cutting an id."""

from __future__ import annotations

import datetime as dt

import pytest
from chat_rows import Rows
from freezegun import freeze_time
from rich.cells import cell_len

from chatctl.output import bar_text, relative_time

M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)
NOW = dt.datetime(2026, 11, 30, 10, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("delta", "text"), [
    (dt.timedelta(seconds=0), "0s"), (dt.timedelta(seconds=59), "59s"), (M, "1m"), (12 * M + dt.timedelta(seconds=59), "12m"),
    (H, "1h"), (3 * H + 5 * M, "3h5m"), (10 * H + 59 * M, "10h"), (47 * H, "47h"), (50 * H, "2d2h"),
    (dt.timedelta(days=12, hours=3), "12d"), (-5 * M, "in 5m"),
])
def test_relative_time(delta, text):
    assert relative_time(delta) == text


def test_bar_text_draws_eighths():
    assert bar_text(0.5, 4) == "██"
    assert bar_text(1.0, 3) == "███"
    assert bar_text(1 / 16, 2) == "▏"
    assert bar_text(0, 5) == "" and bar_text(None, 5) == "" and bar_text(7, 2) == "██"


@pytest.fixture
def desk(engine):
    with freeze_time(NOW):
        rows = Rows(engine)
        rows.agent("alice")
        waiting = rows.chat(agent="alice", ago=H, customer_wrote=12 * M, channel="whatsapp",
                            customer="a-very-long-customer-address@example.com")
        answered = rows.chat(agent="alice", ago=2 * H, customer_wrote=3 * H / 2, agent_wrote=40 * M)
    return {"waiting": waiting, "answered": answered}


def run(cli, *args, columns: int, tty: bool = True):
    with freeze_time(NOW):
        result = cli("--no-color", "chats", "list", "live", *args, tty=tty, env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result
    return result.stdout


def table(text: str) -> dict[str, dict[str, str]]:
    """The table's rows by id, cells split under the header's column starts."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [index for index, char in enumerate(header) if char != " " and (index == 0 or header[index - 1] == " ")]
    names = header.split()
    out = {}
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, starts[1:] + [None])]
        out[cells[0]] = dict(zip(names, cells))
    return out


def test_table_shows_waiting_and_idle_as_time_since(cli, desk):
    rows = table(run(cli, columns=200))
    waiting, answered = rows[str(desk["waiting"])], rows[str(desk["answered"])]
    assert (waiting["waiting"], waiting["idle"]) == ("12m", "12m")
    assert (answered["waiting"], answered["idle"]) == ("", "40m")  # answered: nobody is waiting


def test_machine_formats_keep_the_timestamps(cli, desk):
    tsv = run(cli, "-o", "tsv", columns=80, tty=False).splitlines()
    header = tsv[0].split("\t")
    assert "last_customer_message_at" in header and "last_activity_at" in header and "channel" in header
    row = dict(zip(header, next(line for line in tsv if line.startswith(f"{desk['waiting']}\t")).split("\t")))
    assert row["last_customer_message_at"] == (NOW - 12 * M).isoformat()
    listed = run(cli, "-o", "json", columns=80, tty=False)
    assert f'"last_activity_at": "{(NOW - 40 * M).isoformat()}"' in listed


def test_table_fits_80_columns_leaving_out_the_least_important_columns(cli, desk):
    narrow = run(cli, columns=80)
    assert all(cell_len(line) <= 80 for line in narrow.splitlines()), narrow
    header = set(narrow.splitlines()[0].split())
    # channel goes first, then idle, then agent (the long customer address needs the room)
    assert {"id", "customer", "waiting"} <= header and not {"channel", "idle", "agent"} & header
    header = set(run(cli, columns=95).splitlines()[0].split())
    assert "channel" not in header and {"idle", "agent", "customer"} <= header
    wide = run(cli, columns=160)
    assert {"channel", "customer", "agent", "waiting", "idle"} <= set(wide.splitlines()[0].split())
    assert all(cell_len(line) <= 160 for line in wide.splitlines())


def test_wide_keeps_every_column_however_narrow(cli, desk):
    text = run(cli, "--wide", columns=60)
    assert {"channel", "customer", "agent", "waiting", "idle"} <= set(text.splitlines()[0].split())
    assert "a-very-long-customer-address@example.com" in text  # whole, never wrapped or cut


def test_ids_are_never_cut(cli, engine):
    with freeze_time(NOW):
        rows = Rows(engine)
        rows.agent("alice")
        big = rows.chat(123456789012, agent="alice", customer="x" * 60)
    text = run(cli, columns=40)
    assert str(big) in text.split()
