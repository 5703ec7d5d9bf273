"""Big tables: the hot queries use indexes on a large desk (PostgreSQL).

A desk of ~200,000 chats is built once for the module: ``chatctl demo load``
of a quarter of that, multiplied server-side with ``INSERT ... SELECT`` (chats,
comments, tags and tickets, ids shifted), plus 400,000 audit rows, then
``ANALYZE``.  Each test runs the real command through ``chatctl.cli.run`` with a
``before_cursor_execute`` listener that captures the SQL it sends, and asserts
on ``EXPLAIN (FORMAT JSON)`` of those very statements with their captured
parameters: no Seq Scan on ``chats``, ``tickets`` or ``audit_events``, and the
table is reached through an index.  A hand-written copy of a query could not
catch a regression in the code; this can.

Filter fields that cannot use an index (``channel``, ``closed_by``, ``reason``,
``flagged``, ``tagged=no``, any ``~`` contains) are listed in
docs/benchmarks.md ("Big tables") with the reason.
"""

from __future__ import annotations

import contextlib
import io
import os

import pytest
from conftest import _admin_execute

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

DEMO_CHATS = 50_000
COPIES = 4  # the demo desk and three shifted copies: 200,000 chats
AUDIT_ROWS = 400_000
NOW = "2026-11-30T10:00:00Z"
BIG = ("chats", "tickets", "audit_events")
INDEX_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


class _Enough(BaseException):
    """Stop a streaming command once the statement under test was captured."""


def _multiply(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        max_chat = pg.execute("SELECT max(id) FROM chats").fetchone()[0]
        max_comment = pg.execute("SELECT coalesce(max(id), 0) FROM comments").fetchone()[0]
        max_ticket = pg.execute("SELECT coalesce(max(id), 0) FROM tickets").fetchone()[0]
        for k in range(1, COPIES):
            shift = {"c": k * max_chat, "m": k * max_comment, "t": k * max_ticket}
            pg.execute(
                "INSERT INTO chats (id, customer_id, channel, status, agent_id, assigned_at, reassign_count, "
                "flagged, flagged_by, flagged_at, flag_note, created_at, last_customer_message_at, "
                "last_agent_message_at, last_activity_at, agent_seen_at, pending_since, closed_at, closed_by, "
                "close_reason) SELECT id + %(c)s, customer_id, channel, status, agent_id, assigned_at, "
                "reassign_count, flagged, flagged_by, flagged_at, flag_note, created_at, "
                "last_customer_message_at, last_agent_message_at, last_activity_at, agent_seen_at, "
                "pending_since, closed_at, closed_by, close_reason FROM chats WHERE id <= %(c0)s",
                {**shift, "c0": max_chat})
            pg.execute("INSERT INTO comments (id, chat_id, agent_id, body, created_at) SELECT id + %(m)s, "
                       "chat_id + %(c)s, agent_id, body, created_at FROM comments WHERE id <= %(m0)s",
                       {**shift, "m0": max_comment})
            pg.execute("INSERT INTO comment_mentions (comment_id, agent_id, chat_id) SELECT comment_id + %(m)s, "
                       "agent_id, chat_id + %(c)s FROM comment_mentions WHERE comment_id <= %(m0)s",
                       {**shift, "m0": max_comment})
            pg.execute("INSERT INTO tickets (id, chat_id, status, reason, agent_id, created_at, closed_at, "
                       "archived_at) SELECT id + %(t)s, chat_id + %(c)s, status, reason, agent_id, created_at, "
                       "closed_at, archived_at FROM tickets WHERE id <= %(t0)s", {**shift, "t0": max_ticket})
        for table in ("chats", "comments", "tickets", "audit_events"):
            pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        pg.execute(
            "INSERT INTO audit_events (at, actor, action, entity_type, entity_id, before, after, operation_id, "
            "reason) SELECT timestamptz '2026-06-01' + g * interval '20 seconds', 'system', 'chats.close', "
            "'chat', (g %% %(n)s + 1)::text, '{\"status\": \"live\"}', '{\"status\": \"closed\"}', "
            "'op' || lpad((g / 1000)::text, 8, '0'), NULL FROM generate_series(1, %(rows)s) g",
            {"n": COPIES * max_chat, "rows": AUDIT_ROWS})
        pg.execute("VACUUM ANALYZE")


@pytest.fixture(scope="module")
def big_url(pg_server, pg_template):
    from conftest import invoke

    name = f"big_{os.getpid()}"
    _admin_execute(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin_execute(pg_server, f"CREATE DATABASE {name} TEMPLATE {pg_template}")
    url = f"{pg_server}/{name}"
    result = invoke(["--database-url", url, "demo", "load", "--chats", DEMO_CHATS, "--now", NOW])
    assert result.exit_code == 0, result
    _multiply(url)
    yield url
    _admin_execute(pg_server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def pg(big_url):
    import psycopg

    with psycopg.connect(big_url, autocommit=True) as connection:
        yield connection


def captured_statements(url: str, *args: str, stop_after: int | None = None) -> list[tuple[str, dict]]:
    """Run ``chatctl ARGS`` for real and return the statements on the big tables it sent."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from chatctl.cli import run

    captured: list[tuple[str, dict]] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if executemany or not any(f" {table}" in statement for table in BIG):
            return
        if statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
            captured.append((statement, dict(parameters or {})))
            if stop_after is not None and len(captured) >= stop_after:
                raise _Enough

    event.listen(Engine, "before_cursor_execute", listener)
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(["--database-url", url, *args])
        assert code in (0, 1), (args, code, err.getvalue())
    except _Enough:
        pass
    finally:
        event.remove(Engine, "before_cursor_execute", listener)
    assert captured, f"chatctl {' '.join(args)} sent no statement on {BIG}: {err.getvalue()}"
    return captured


def plan_of(pg, statement: str, parameters: dict) -> dict:
    with pg.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
        return cursor.fetchone()[0][0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def assert_indexed(pg, statement: str, parameters: dict, *, tables=BIG, driving: str | None = None) -> dict:
    """No Seq Scan on ``tables``; ``driving`` (when given) is read through an index."""
    plan = plan_of(pg, statement, parameters)
    every = list(nodes(plan))
    seq = [node["Relation Name"] for node in every
           if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in tables]
    shown = " ".join(statement.split())[:300]
    assert not seq, f"Seq Scan on {seq} in:\n{shown}\n{_outline(plan)}"
    if driving is not None:
        indexed = [node for node in every if node["Node Type"] in INDEX_NODES
                   and (node.get("Relation Name") == driving
                        or (node.get("Index Name") or "").startswith(_index_prefix(driving)))]
        assert indexed, f"{driving} not read through an index in:\n{shown}\n{_outline(plan)}"
    return plan


def _index_prefix(table: str) -> str:
    return {"chats": "ix_chats", "tickets": "ix_tickets", "audit_events": "ix_audit"}.get(table, table)


def _outline(plan: dict, depth: int = 0) -> str:
    line = "  " * depth + plan["Node Type"] + "".join(
        f" {key}={plan[key]}" for key in ("Relation Name", "Index Name", "Index Cond", "Filter") if key in plan)
    return "\n".join([line] + [_outline(child, depth + 1) for child in plan.get("Plans", [])])


def _first(statements, table):
    for statement, parameters in statements:
        if f"FROM {table}" in statement:
            return statement, parameters
    raise AssertionError(f"no statement reading {table}: {[s[:80] for s, _ in statements]}")


# -- the views ------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("chats", "list", "live", "--limit", "50"),
    ("chats", "list", "live", "--limit", "50", "--sort", "new"),
    ("chats", "list", "live", "--limit", "50", "--unread"),
    ("chats", "list", "live", "--limit", "50", "--new"),
    ("chats", "list", "pending", "--limit", "50"),
    ("chats", "list", "closed", "--limit", "50"),
    ("chats", "list", "live", "--limit", "50", "--agent", "alice"),
    ("chats", "list", "live", "--limit", "50", "--agent", "alice", "--sort", "new"),
    ("chats", "list", "closed", "--limit", "50", "--agent", "alice"),
    ("chats", "list", "tagged", "--agent", "alice", "--limit", "50"),
], ids=lambda args: " ".join(args[2:]))
def test_chat_views_use_indexes(big_url, pg, args):
    statements = captured_statements(big_url, *args, "-o", "json")
    for statement, parameters in statements:
        assert_indexed(pg, statement, parameters)
    statement, parameters = _first(statements, "chats")
    plan = assert_indexed(pg, statement, parameters, driving="chats")
    if "--agent" in args and "live" in args and "--sort" not in args:
        # One agent's page, not a walk of every live chat filtered by agent (revisions 0004, 0010).
        assert "ix_chats_open_agent_last_customer" in str(plan), _outline(plan)
    if "closed" in args:
        # One agent's closed chats: the closed chats newest first, keeping the agent's (revision 0010).
        assert "ix_chats_closed" in str(plan), _outline(plan)


def test_live_view_second_page_uses_the_index(big_url, pg):
    """--after continues with a keyset range on the same index, not an OFFSET."""
    out, err = io.StringIO(), io.StringIO()
    from chatctl.cli import run

    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert run(["--database-url", big_url, "chats", "list", "live", "--limit", "50", "-o", "json"]) == 0
    cursor = err.getvalue().split("--after", 1)[1].split()[0]
    statements = captured_statements(big_url, "chats", "list", "live", "--limit", "50", "--after", cursor,
                                     "-o", "json")
    statement, parameters = _first(statements, "chats")
    plan = assert_indexed(pg, statement, parameters, driving="chats")
    assert "ix_chats_open_last_customer" in str(plan)


@pytest.mark.parametrize("args", [
    ("tickets", "list"),
    ("tickets", "list", "--status", "open"),
    ("tickets", "list", "--agent", "alice"),
    ("tickets", "list", "--archived"),
    ("chats", "list", "tickets", "--limit", "50"),
], ids=" ".join)
def test_ticket_views_use_indexes(big_url, pg, args):
    statements = captured_statements(big_url, *args, "-o", "json")
    statement, parameters = _first(statements, "tickets")
    assert_indexed(pg, statement, parameters, driving="tickets")


@pytest.mark.parametrize("args", [
    ("audit", "list", "--entity", "chat:4242"),
    ("audit", "list", "--entity", "ticket:17"),
    ("audit", "list", "--operation", "op00000123"),
    ("audit", "list", "--since", "2026-08-01T00:00Z"),
], ids=" ".join)
def test_audit_list_uses_indexes(big_url, pg, args):
    statements = captured_statements(big_url, *args, "-o", "json")
    statement, parameters = _first(statements, "audit_events")
    assert_indexed(pg, statement, parameters, driving="audit_events")


# -- status -------------------------------------------------------------------------------
def _all_visible(pg, table: str) -> None:
    """VACUUM ``table`` until its visibility map marks every page, as autovacuum leaves a settled
    desk: an index-only scan is priced, and runs, on it.  (A snapshot still open from the load,
    an autovacuum's, can keep the first VACUUM from marking the pages it has just written.)"""
    from pgserver import wait_until

    def marked() -> bool:
        pg.execute(f"VACUUM {table}")
        visible, pages = pg.execute("SELECT relallvisible, relpages FROM pg_class WHERE relname = %s",
                                    (table,)).fetchone()
        return visible >= pages

    assert wait_until(marked, timeout=60, interval=1), f"{table}: pages left not all-visible"


def test_status_reads_chats_through_indexes_and_the_open_chats_from_one_index_alone(big_url, pg):
    """No statement of ``status`` scans the chats table: the views' pass is an index-only scan of
    the open chats' index (revision 0009), merged in id order with the tagged chats."""
    _all_visible(pg, "chats")
    statements = captured_statements(big_url, "status", "-o", "json")
    on_chats = [(statement, parameters) for statement, parameters in statements if "FROM chats" in statement]
    for statement, parameters in on_chats:
        assert_indexed(pg, statement, parameters, tables=("chats",), driving="chats")
    (statement, parameters), = [(statement, parameters) for statement, parameters in on_chats
                                if "comment_mentions" in statement and "GROUP BY chats.status" in statement]
    plan = plan_of(pg, statement, parameters)
    reads = [(node["Node Type"], node.get("Index Name")) for node in nodes(plan)
             if node.get("Relation Name") == "chats"]
    assert reads == [("Index Only Scan", "ix_chats_open_glance")], _outline(plan)


# -- chats filter, per field with an index --------------------------------------------
def _customer(pg, column: str) -> str:
    return pg.execute(f"SELECT {column} FROM customers ORDER BY id DESC LIMIT 1").fetchone()[0]


FILTERS = [
    ["status=pending"],
    ["status=live"],
    ["agent=alice"],
    ["agent=none"],
    ["tagged=yes"],
    ["closed>-1h"],
    ["closed<2026-01-01"],
    ["status=live", "idle>2h"],
    ["status=live", "age<1h"],
    ["status=closed", "created>-1d"],
    ["customer=<address>"],
    ["customer=<name>"],
]


@pytest.mark.parametrize("expressions", FILTERS, ids=" ".join)
def test_chat_filter_fields_with_an_index_use_it(big_url, pg, expressions):
    words = [w.replace("<address>", _customer(pg, "address")).replace("<name>", _customer(pg, "display_name"))
             for w in expressions]
    # The first keyset batch (1000 rows): the command streams every match, one batch at a time.
    statements = captured_statements(big_url, "chats", "filter", *words, "-o", "jsonl", stop_after=1)
    statement, parameters = statements[0]
    # The chats are found through an index.  The joined ticket of each row of the
    # batch may be hash-joined: see "Big tables" in docs/benchmarks.md.
    assert_indexed(pg, statement, parameters, tables=("chats", "audit_events"), driving="chats")
    count = captured_statements(big_url, "chats", "filter", *words, "--count")
    matched = pg.execute(*count[0]).fetchone()[0]
    total = pg.execute("SELECT count(*) FROM chats").fetchone()[0]
    # Counting a large share of the desk (status=live is a quarter of it; tagged=yes is a
    # semi-join of every tag) may rightly be a scan; a selective count must use an index.
    if matched < total * 0.05 and expressions != ["tagged=yes"]:
        assert_indexed(pg, *count[0], tables=("chats",))


@pytest.mark.parametrize("expressions", [
    ["status=open", "age>=30d"],
    ["agent=alice"],
    ["archived=yes"],
], ids=" ".join)
def test_tickets_close_where_selection_uses_indexes(big_url, pg, expressions):
    statements = captured_statements(big_url, "tickets", "close", "--where", *expressions, "--dry-run", "--yes",
                                     "-o", "jsonl", stop_after=1)
    statement, parameters = statements[0]
    assert_indexed(pg, statement, parameters, driving="tickets")


# -- the sweep selection queries ------------------------------------------------------------
SWEEP_JOBS = ["inactivity", "pending", "agent-timeout", "archive", "unattended"]


@pytest.mark.parametrize("job", SWEEP_JOBS)
def test_sweep_selection_queries_use_indexes(big_url, pg, job, monkeypatch):
    """The dry-run count and the first batch claim of each job, as the sweep sends them.

    The real run is stopped before its first claim executes (nothing changes) and
    without the job lock, so the module's desk stays as loaded.
    """
    monkeypatch.setenv("CHATCTL_SWEEP_NO_LOCK", "1")
    counted = captured_statements(big_url, "sweep", "run", job, "--as-of", NOW, "--dry-run", "-o", "json")
    claims = captured_statements(big_url, "sweep", "run", job, "--as-of", NOW, "--batch-size", "1000", "-o", "json",
                                 stop_after=1)
    table = "tickets" if job == "archive" else "chats"
    for statement, parameters in claims:
        assert_indexed(pg, statement, parameters, tables=(table, "audit_events"), driving=table)
    for statement, parameters in counted:
        if job == "archive":
            # The demo desk carries a backlog: a sixth of all tickets are due for archiving, and
            # counting a sixth of a table is rightly a scan.  A desk archived daily has a day's
            # worth due, which the (archived_at, created_at, id) index serves (the claim above).
            continue
        assert_indexed(pg, statement, parameters, tables=(table,), driving=table)
