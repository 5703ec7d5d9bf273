"""``--watch`` on ``status`` and ``chats list``, in a real process: at a terminal (a
pseudo-terminal) it redraws in place and Ctrl-C exits 0 leaving the cursor shown;
off a terminal it prints one snapshot per interval."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time

from chat_rows import Rows

SHOW_CURSOR, HIDE_CURSOR = "\x1b[?25h", "\x1b[?25l"
CURSOR_UP = "\x1b[1A"


def chatctl(url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "chatctl", "--database-url", url, *args]


def read_until(fd: int, wanted, timeout: float = 60.0) -> str:
    """Read ``fd`` until ``wanted(text)`` holds; everything read so far."""
    text, deadline = "", time.monotonic() + timeout
    while not wanted(text):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; read so far: {text[-3000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            text += chunk.decode("utf-8", "replace")
    return text


def test_watch_at_a_terminal_redraws_in_place_and_ctrl_c_exits_0(database_url, engine):
    rows = Rows(engine)
    rows.agent("alice")
    first = rows.chat(agent="alice")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    process = subprocess.Popen(chatctl(database_url, "chats", "list", "live", "--watch", "--interval", "0.5s"),
                               stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                               env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    try:
        shown = read_until(master, lambda text: str(first) in text and "Ctrl-C to stop" in text)
        assert HIDE_CURSOR in shown  # a live display, not lines scrolling by
        second = rows.chat(agent="alice")
        # The next redraws move the cursor back up over the last one and show the new chat.
        redrawn = read_until(master, lambda text: str(second) in text)
        assert CURSOR_UP in redrawn
        process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert process.wait(timeout=30) == 0
        rest = read_until(master, lambda text: False, timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    ending = shown + redrawn + rest
    # The terminal is left clean: the cursor shown again after the last hide, no traceback.
    assert ending.rfind(SHOW_CURSOR) > ending.rfind(HIDE_CURSOR)
    assert "Traceback" not in ending and "interrupted" not in ending


def test_watch_off_a_terminal_prints_one_json_document_per_interval(database_url, engine):
    rows = Rows(engine)
    rows.agent("alice")
    chat = rows.chat(agent="alice")
    process = subprocess.Popen(chatctl(database_url, "chats", "list", "live", "--watch", "--interval", "0.3s",
                                       "-o", "jsonl"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        snapshots = [json.loads(process.stdout.readline()) for _ in range(3)]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    assert all([row["id"] for row in snapshot] == [chat] for snapshot in snapshots)


def test_status_watch_off_a_terminal_one_snapshot_per_interval(database_url, engine):
    rows = Rows(engine)
    rows.agent("alice")
    rows.chat(agent="alice")
    process = subprocess.Popen(chatctl(database_url, "status", "--watch", "--interval", "0.5s", "-o", "json"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    try:
        documents = [json.loads(process.stdout.readline()) for _ in range(3)]
        took = time.monotonic() - started
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert [document["views"]["live"]["count"] for document in documents] == [1, 1, 1]
    assert documents[0]["as_of"] < documents[1]["as_of"] < documents[2]["as_of"]  # a new snapshot each time
    # at least the two intervals between three snapshots (the start-up comes on top)
    assert took >= 1.0


def test_watch_tsv_snapshots_are_separated_by_a_blank_line(database_url, engine):
    rows = Rows(engine)
    rows.agent("alice")
    chat = rows.chat(agent="alice")
    process = subprocess.Popen(chatctl(database_url, "chats", "list", "--watch", "--interval", "0.3s", "-o", "tsv"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    header = lines[0]
    assert header.startswith("id\t") and lines[1].startswith(f"{chat}\t") and lines[2] == "\n"
    assert lines[3:6] == [header, lines[1], "\n"]


def test_watch_refuses_all_and_a_bad_interval(cli):
    assert cli("chats", "list", "--watch", "--all").exit_code == 2
    result = cli("status", "--watch", "--interval", "0s")
    assert result.exit_code == 2 and "--interval" in result.stderr
