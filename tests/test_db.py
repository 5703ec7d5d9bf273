"""The schema and the database: init, status, upgrade and downgrade, check, unreachable servers."""

from __future__ import annotations

from chatctl.storage import schema


def test_db_init_twice_is_harmless(cli):
    first = cli("db", "init")
    second = cli("db", "init")
    assert first.exit_code == 0 and second.exit_code == 0, (first, second)
    assert "already at" in second.stderr


def test_db_status_json(cli):
    result = cli("db", "status", "-o", "json")
    assert result.exit_code == 0, result
    status = result.json()
    assert status["at_head"] is True
    assert status["revision"] == status["head"]


def test_commands_refuse_database_without_schema(tmp_path, bare_cli):
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()  # a database file, without chatctl's tables
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = bare_cli(["--database-url", url, "agents", "list"])
    assert result.exit_code == 3
    assert "chatctl db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_downgrade_and_upgrade_keep_data(cli):
    """The round trip on both backends: down to base (nothing usable: exit 3), up again, data written after
    the first upgrade kept by the next one."""
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    assert cli("db", "downgrade", "base", "--yes").exit_code == 0
    assert cli("agents", "list").exit_code == 3
    assert cli("db", "upgrade").exit_code == 0
    assert cli("agents", "add", "alice", "--name", "Alice").exit_code == 0
    again = cli("db", "upgrade")
    assert again.exit_code == 0
    listed = cli("agents", "list", "-o", "json")
    assert [agent["handle"] for agent in listed.json()] == ["alice"]
    assert cli("db", "status", "-o", "json").json()["at_head"] is True


def test_unreachable_server_exit_3_without_password(bare_cli):  # port 1: no server needed
    result = bare_cli(["--database-url", "postgresql://ops:s3cr3t-pw@127.0.0.1:1/desk", "agents", "list"])
    assert result.exit_code == 3
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "***" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_bad_url_exit_3(bare_cli):
    result = bare_cli(["--database-url", "mysql://root:hunter2@db/x", "agents", "list"])
    assert result.exit_code == 3
    assert "hunter2" not in result.stderr
    garbage = bare_cli(["--database-url", "not a url", "agents", "list"])
    assert garbage.exit_code == 3 and "Traceback" not in garbage.stderr


def test_db_check_finds_violations(cli, engine):
    import datetime as dt

    from sqlalchemy import insert

    from chatctl.storage.models import Agent, Chat, Comment, Customer

    now = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
    assert cli("db", "check").exit_code == 0
    with engine.begin() as connection:
        connection.execute(insert(Agent).values(id=1, handle="a", name="A", role="agent", presence="online",
                                                active=True, created_at=now))
        connection.execute(insert(Customer).values(id=1, display_name="C", address="+1", created_at=now))
        connection.execute(insert(Chat).values(id=7, customer_id=1, channel="sms", status="closed", created_at=now,
                                               last_activity_at=now, closed_at=now, closed_by="agent"))
        connection.execute(insert(Comment).values(chat_id=7, agent_id=1, body="left behind", created_at=now))
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 1
    broken = [row for row in result.json() if row["violations"]]
    assert broken[0]["examples"] == [1] and broken[0]["check"] == "comments on closed or converted chats"


def test_db_check_reports_words_outside_the_vocabulary(cli, engine):
    import datetime as dt

    from sqlalchemy import insert

    from chatctl.storage.models import Agent, Chat, Customer, Message, Ticket

    now = dt.datetime(2026, 11, 30, 9, tzinfo=dt.timezone.utc)
    with engine.begin() as connection:
        connection.execute(insert(Agent).values(id=1, handle="a", name="A", role="boss", presence="online",
                                                active=True, created_at=now))
        connection.execute(insert(Customer).values(id=1, display_name="C", address="+1", created_at=now))
        connection.execute(insert(Chat).values(id=7, customer_id=1, channel="sms", status="limbo", created_at=now,
                                               last_activity_at=now))
        connection.execute(insert(Chat).values(id=8, customer_id=1, channel="sms", status="closed", created_at=now,
                                               last_activity_at=now, closed_at=now, closed_by="robot"))
        connection.execute(insert(Ticket).values(id=3, chat_id=8, status="open", reason="lost", created_at=now))
        connection.execute(insert(Message).values(id=5, chat_id=8, direction="inbound", kind="sticker", body="",
                                                  created_at=now))
    result = cli("db", "check", "-o", "json")
    assert result.exit_code == 1
    broken = {row["check"]: row["examples"] for row in result.json() if row["violations"]}
    assert broken == {
        "chats in an unknown status": [7],
        "chats closed by an unknown party": [8],
        "tickets in an unknown status or with an unknown reason": [3],
        "agents with an unknown role or presence": [1],
        "messages with an unknown direction or kind": [5],
    }


# -- the at-head check every command makes ----------------------------------------------
def test_head_constant_is_alembic_head():
    # Commands compare the database with schema.HEAD without importing Alembic;
    # a new revision must move it.
    from alembic.script import ScriptDirectory

    assert schema.HEAD == ScriptDirectory.from_config(schema.alembic_config()).get_current_head()


def _elsewhere(engine):
    """Alembic's ``include_object``: leave out an index the tables describe for the other database only."""

    def include(item, name, kind, reflected, compare_to) -> bool:
        return not (kind == "index" and not reflected and item.info.get("only", engine.dialect.name)
                    != engine.dialect.name)

    return include


def test_tables_describe_the_migrated_schema(engine):
    """The Core tables chatctl queries through are exactly what the revisions create."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from chatctl.storage.models import metadata

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "include_object": _elsewhere(engine)})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_partial_indexes_have_the_conditions_the_tables_describe(engine):
    """Alembic compares index columns, not the condition of a partial index: this does."""
    import re

    from sqlalchemy import inspect

    from chatctl.storage.models import metadata

    def plain(condition: str) -> str:  # PostgreSQL prints ((status)::text = 'live'::text)
        return " ".join(re.sub(r"::\w+|[()]", "", condition).split())

    inspector = inspect(engine)
    described = {index.name: index.info for table in metadata.sorted_tables for index in table.indexes
                 if "where" in index.info}
    assert described, "no partial index described"
    for name, info in described.items():
        found = [index for index in inspector.get_indexes(name.split("_")[1]) if index["name"] == name]
        if info.get("only", engine.dialect.name) != engine.dialect.name:
            assert found == [], f"{name} is for {info['only']} only"
            continue
        condition = found[0]["dialect_options"].get(f"{engine.dialect.name}_where")
        assert condition is not None and plain(str(condition)) == info["where"], (name, condition)


def test_current_revision_reads_the_version_table(engine):
    with engine.connect() as connection:
        assert schema.current_revision(connection) == schema.HEAD


def test_a_database_behind_head_is_refused_with_the_fix(cli, engine):
    schema.downgrade(engine, "0003")
    result = cli("chats", "list", "live")
    assert result.exit_code == 3
    assert f"the database schema is at 0003, chatctl needs {schema.HEAD}" in result.stderr
    assert "chatctl db upgrade" in result.stderr
    assert cli("db", "upgrade").exit_code == 0
    assert cli("chats", "list", "live").exit_code == 0


# -- upgrading a populated desk ------------------------------------------------------------
# The revision before the partial chat indexes (0007), and the views whose plans they serve.
BEFORE_PARTIAL_INDEXES = "0006"
VIEWS = [dict(view="live"), dict(view="live", sort="new"), dict(view="live", unread=True),
         dict(view="live", new=True), dict(view="pending"), dict(view="closed"),
         dict(view="closed", sort="new"), dict(view="live", agent="alice"), dict(view="live", agent=None, limit=None)]


def _table_rows(connection) -> dict[str, list[tuple]]:
    """Every row of every table, in the columns the database has now (a later revision may add some)."""
    from sqlalchemy import inspect, select

    from chatctl.storage.models import metadata

    rows = {}
    for table in metadata.sorted_tables:
        if table.name == "alembic_version" or not inspect(connection).has_table(table.name):
            continue
        present = {column["name"] for column in inspect(connection).get_columns(table.name)}
        columns = [column for column in table.columns if column.name in present]
        keys = [column for column in table.primary_key.columns if column.name in present] or columns
        rows[table.name] = [dict(row) for row in connection.execute(select(*columns).order_by(*keys)).mappings()]
    return rows


def _view_statements(connection, views=VIEWS) -> list[tuple[int, str, object]]:
    """The statements each view (its index in ``views``) sends for its first page, or all of it."""
    from sqlalchemy import event

    from chatctl.domain.chats.views import ViewOptions, list_view

    captured, current = [], [0]

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "FROM chats" in statement:
            captured.append((current[0], statement, parameters))

    event.listen(connection, "before_cursor_execute", listener)
    try:
        for index, view in enumerate(views):
            current[0] = index
            list(list_view(connection, ViewOptions(**{"limit": 50, **view})).rows)
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    return captured


def _reads_chats_through_an_index(connection, statement: str, parameters) -> str:
    """The plan's access to chats, asserted to go through an index (never a whole-table scan)."""
    if connection.dialect.name == "sqlite":
        details = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        access = [detail for detail in details if detail.split()[1:2] == ["chats"]]
        assert access and all(" USING " in detail and "INDEX" in detail or "PRIMARY KEY" in detail
                              for detail in access), (statement, details)
        return " ".join(access)
    # PostgreSQL: with sequential scans priced out, a Seq Scan left in the plan means no index can serve it.
    connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()[0]["Plan"]

    def nodes(node):
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    on_chats = [node for node in nodes(plan) if node.get("Relation Name") == "chats"]
    assert on_chats and not any(node["Node Type"] == "Seq Scan" for node in on_chats), (statement, plan)
    return " ".join(node.get("Index Name", "") for node in on_chats)


def _demo_desk_at(engine, revision: str, operation_id: str, *, analyse: bool = True) -> None:
    """The schema at ``revision`` and a 400-chat demo desk on it: chats in every status, tags, tickets."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    from chatctl.domain import demo

    schema.downgrade(engine, revision)
    with engine.begin() as connection:
        demo.load(connection, chats=400, agents=6, seed=3, now=dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc),
                  zone=ZoneInfo("UTC"), append=False, actor="ops:test", operation_id=operation_id)
        if analyse:
            connection.exec_driver_sql("ANALYZE")


def test_upgrade_onto_a_populated_desk_keeps_the_data_and_every_view_index_backed(database_url):
    """db upgrade from the revision before the partial chat indexes, on a desk with chats in every
    status: every row is still there, unchanged, and every view still reads chats through an index."""
    from chatctl.storage.engine import create_engine

    engine = create_engine(database_url)
    try:
        _demo_desk_at(engine, BEFORE_PARTIAL_INDEXES, "UPGRADE-TEST")
        with engine.begin() as connection:
            before = _table_rows(connection)
            statements = _view_statements(connection)
            assert {index for index, _, _ in statements} == set(range(len(VIEWS)))
            for _, statement, parameters in statements:
                _reads_chats_through_an_index(connection, statement, parameters)
            statuses = {status for (status,) in connection.exec_driver_sql("SELECT DISTINCT status FROM chats")}
        assert statuses == {"live", "pending", "closed", "converted"}

        from chatctl.cli import run

        assert run(["--database-url", database_url, "db", "upgrade"]) == 0
        engine.dispose()  # SQLite connections prepared EXPLAINs before the upgrade; start afresh
        with engine.begin() as connection:
            assert schema.current_revision(connection) == schema.HEAD
            upgraded = _table_rows(connection)
            # Every row keeps its values; a column a later revision added is beside them.
            assert {name: [{key: row[key] for key in (before[name][0] if before[name] else row)} for row in rows]
                    for name, rows in upgraded.items() if name in before} == before
            after = _view_statements(connection)
            assert [statement for _, statement, _ in after] == [statement for _, statement, _ in statements]
            used: dict[int, str] = {}
            for index, statement, parameters in after:
                used[index] = used.get(index, "") + " " + _reads_chats_through_an_index(connection, statement, parameters)
        # The live view by customer activity reads the index of open chats alone; the closed
        # view the index of closed chats, newest first.
        assert "ix_chats_open_last_customer" in used[0], used
        assert "ix_chats_closed" in used[VIEWS.index(dict(view="closed"))], used
    finally:
        engine.dispose()


# The revision before the index status reads the open chats through (0009).
BEFORE_GLANCE_INDEX = "0008"


def _status_statements(connection, now) -> tuple[dict, list[tuple[str, object]]]:
    """``status``'s document as of ``now`` and the statements it sends that read chats."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import event

    from chatctl.domain.status import desk_status

    captured = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "FROM chats" in statement:
            captured.append((statement, parameters))

    event.listen(connection, "before_cursor_execute", listener)
    try:
        document = desk_status(connection, now=now, tz=ZoneInfo("UTC"))
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    return document, captured


def test_upgrade_to_the_glance_index_keeps_status_and_reads_the_open_chats_from_the_index_alone(database_url):
    """db upgrade from 0008 on a desk with chats in every status and tags: every row unchanged, the
    same status document, and on PostgreSQL the views' pass reads chats by an index-only scan of
    ix_chats_open_glance alone (on a desk this small once whole-table scans are priced out; the
    planner picks it by itself on a big desk: tests/test_query_plans.py).  SQLite gets no such
    index; a downgrade drops it."""
    import datetime as dt

    from sqlalchemy import inspect

    from chatctl.cli import run
    from chatctl.storage.engine import create_engine

    now = dt.datetime(2026, 11, 30, 10, tzinfo=dt.timezone.utc)
    engine = create_engine(database_url)
    postgresql = engine.dialect.name == "postgresql"

    def views_pass(statements):
        (statement, parameters), = [(text, parameters) for text, parameters in statements
                                    if "comment_mentions" in text and "GROUP BY chats.status" in text]
        return statement, parameters

    def analyse():
        if postgresql:  # VACUUM sets the visibility map an index-only scan is priced on
            from pgserver import wait_until

            def marked() -> bool:  # a snapshot open from the load may keep one VACUUM from marking
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE chats")
                    visible, pages = connection.exec_driver_sql(
                        "SELECT relallvisible, relpages FROM pg_class WHERE relname = 'chats'").one()
                return visible >= pages

            assert wait_until(marked, timeout=60, interval=1)
        else:
            with engine.begin() as connection:
                connection.exec_driver_sql("ANALYZE")

    try:
        _demo_desk_at(engine, BEFORE_GLANCE_INDEX, "GLANCE-TEST", analyse=False)
        analyse()
        with engine.begin() as connection:
            before = _table_rows(connection)
            status_before, _ = _status_statements(connection, now)
        assert status_before["views"]["live"]["count"] and status_before["views"]["tagged"]["count"]

        assert run(["--database-url", database_url, "db", "upgrade"]) == 0
        engine.dispose()
        analyse()
        with engine.begin() as connection:
            assert schema.current_revision(connection) == schema.HEAD
            assert _table_rows(connection) == before
            status_after, statements = _status_statements(connection, now)
            assert status_after == status_before
            indexes = {index["name"] for index in inspect(connection).get_indexes("chats")}
            assert ("ix_chats_open_glance" in indexes) is postgresql
            if postgresql:
                statement, parameters = views_pass(statements)
                # A table this small is cheapest to scan whole: price that out, and the bitmap scans.
                for scan in ("seqscan", "bitmapscan"):
                    connection.exec_driver_sql(f"SET LOCAL enable_{scan} = off")
                plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar()[0]

                def nodes(node):
                    yield node
                    for child in node.get("Plans", []):
                        yield from nodes(child)

                on_chats = [(node["Node Type"], node.get("Index Name")) for node in nodes(plan["Plan"])
                            if node.get("Relation Name") == "chats"]
                assert on_chats == [("Index Only Scan", "ix_chats_open_glance")], on_chats

        schema.downgrade(engine, BEFORE_GLANCE_INDEX)
        with engine.begin() as connection:
            assert "ix_chats_open_glance" not in {index["name"] for index in inspect(connection).get_indexes("chats")}
            assert _table_rows(connection) == before
    finally:
        engine.dispose()


# The revision before one agent's chats were indexed while open only (0010), and what reads them.
BEFORE_OPEN_AGENT_INDEX = "0009"
AGENT_VIEWS = [dict(view="live", agent="alice"), dict(view="pending", agent="alice"),
               dict(view="live", agent="alice", sort="new"), dict(view="closed", agent="alice"),
               dict(view="closed", agent="alice", sort="new"), dict(view="tickets", agent="alice"),
               dict(view="live", agent=None, limit=None)]


def _agent_statements(connection) -> list[tuple[int, str, object]]:
    """The agent views' statements (their index in ``AGENT_VIEWS``), then the agent loads of
    assignment and a drain's chats (one index past them)."""
    from sqlalchemy import event

    from chatctl.domain.agents.assignment import agent_loads, open_chat_ids

    captured = _view_statements(connection, AGENT_VIEWS)
    agents = [agent_id for (agent_id,) in connection.exec_driver_sql("SELECT id FROM agents ORDER BY id")]

    def listener(conn, cursor, statement, parameters, context, executemany):
        captured.append((len(AGENT_VIEWS), statement, parameters))

    event.listen(connection, "before_cursor_execute", listener)
    try:
        agent_loads(connection, agents)
        open_chat_ids(connection, agents[0])
    finally:
        event.remove(connection, "before_cursor_execute", listener)
    return captured


def test_upgrade_to_the_open_agent_index_keeps_the_data_and_every_agent_query_index_backed(database_url):
    """db upgrade from 0009 on a desk with chats in every status: every row unchanged; one agent's
    views, the agent loads and a drain's chats still read chats through an index, the open ones
    through the new index of open chats alone; the old index of every chat is gone, and a
    downgrade puts it back."""
    from sqlalchemy import inspect

    from chatctl.cli import run
    from chatctl.storage.engine import create_engine

    engine = create_engine(database_url)
    old, new = "ix_chats_agent_status_last_customer", "ix_chats_open_agent_last_customer"

    def indexes(connection) -> set[str]:
        return {index["name"] for index in inspect(connection).get_indexes("chats")}

    try:
        _demo_desk_at(engine, BEFORE_OPEN_AGENT_INDEX, "AGENT-INDEX-TEST")
        with engine.begin() as connection:
            assert old in indexes(connection) and new not in indexes(connection)
            before = _table_rows(connection)
            statements = _agent_statements(connection)
            closed_by_alice = connection.exec_driver_sql(
                "SELECT count(*) FROM chats JOIN agents ON agents.id = chats.agent_id "
                "WHERE agents.handle = 'alice' AND chats.status = 'closed'").scalar()
        assert closed_by_alice, "alice has closed chats to list"

        assert run(["--database-url", database_url, "db", "upgrade"]) == 0
        engine.dispose()  # SQLite connections prepared EXPLAINs before the upgrade; start afresh
        with engine.begin() as connection:
            assert schema.current_revision(connection) == schema.HEAD
            assert new in indexes(connection) and old not in indexes(connection)
            assert _table_rows(connection) == before
            after = _agent_statements(connection)
            assert [statement for _, statement, _ in after] == [statement for _, statement, _ in statements]
            used: dict[int, str] = {}
            for index, statement, parameters in after:
                if "FROM chats" not in statement:
                    continue
                if AGENT_VIEWS[index:index + 1] and AGENT_VIEWS[index]["view"] == "closed" \
                        and "closed_at IS NULL" in statement:
                    # The closed view's second segment, the closed chats without a closed_at (none,
                    # by the desk's invariants), read when the agent's closed chats do not fill a
                    # page: no index of open chats holds them now (the trade of revision 0010).
                    continue
                used[index] = used.get(index, "") + " " + _reads_chats_through_an_index(
                    connection, statement, parameters)
        if connection.dialect.name == "sqlite":  # PostgreSQL's choice on a desk this small says little
            for index, view in enumerate(AGENT_VIEWS):
                if view["view"] in ("live", "pending") and view.get("agent") and view.get("sort") is None:
                    assert new in used[index], (view, used[index])
            assert new in used[len(AGENT_VIEWS)], used

        schema.downgrade(engine, BEFORE_OPEN_AGENT_INDEX)
        with engine.begin() as connection:
            assert old in indexes(connection) and new not in indexes(connection)
            assert _table_rows(connection) == before
    finally:
        engine.dispose()
