"""Filter expressions (SPEC 2.2): parsing words, checking fields and values, compiling to SQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from chatctl.parsing import filters
from chatctl.parsing.filters import (
    CHAT_FIELDS,
    OPERATORS,
    TICKET_FIELDS,
    Condition,
    FieldKind,
    TypedCondition,
    compile_chat_filter,
    compile_ticket_filter,
    parse_expression,
    parse_expressions,
    validate,
)
from chatctl.errors import ExitCode, UsageError
from chatctl import vocabulary
from chatctl.storage.models import Agent, Chat, Comment, CommentMention, Customer, Ticket

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
JOHANNESBURG = ZoneInfo("Africa/Johannesburg")
INJECTION = "'; drop table chats; --"


# ---------------------------------------------------------------------------
# Parsing words


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("status=live", Condition("status", "=", "live")),
        ("status!=closed", Condition("status", "!=", "closed")),
        ("idle>2h", Condition("idle", ">", "2h")),
        ("idle>=2h", Condition("idle", ">=", "2h")),
        ("age<30d", Condition("age", "<", "30d")),
        ("age<=30d", Condition("age", "<=", "30d")),
        ("customer~acme", Condition("customer", "~", "acme")),
        ("created>-2h", Condition("created", ">", "-2h")),
        ("created>=2026-11-30T09:00:00+02:00", Condition("created", ">=", "2026-11-30T09:00:00+02:00")),
    ],
)
def test_parse_expression_reads_each_operator(word: str, expected: Condition) -> None:
    assert parse_expression(word) == expected


def test_parse_expression_allows_spaces_around_the_operator() -> None:
    assert parse_expression("  status = live ") == Condition("status", "=", "live")
    assert parse_expression("idle >= 2h") == Condition("idle", ">=", "2h")


def test_parse_expression_keeps_spaces_inside_the_value() -> None:
    assert parse_expression("created>=2026-11-30 09:00") == Condition("created", ">=", "2026-11-30 09:00")


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ('customer~"acme corp"', "acme corp"),
        ("customer~'acme corp'", "acme corp"),
        ('customer~ "acme" ', "acme"),
        ('customer~""', ""),
        ('customer~"=sign"', "=sign"),
        ('customer~"it\'s"', "it's"),
        ("customer~a=b", "a=b"),
    ],
)
def test_parse_expression_strips_one_pair_of_quotes(word: str, value: str) -> None:
    assert parse_expression(word).value == value


def test_parse_expression_lowercases_field_and_accepts_dashes() -> None:
    assert parse_expression("Status=Live") == Condition("status", "=", "Live")
    assert parse_expression("closed-by=system") == Condition("closed_by", "=", "system")


@pytest.mark.parametrize(
    ("word", "reason"),
    [
        ("statuslive", "no operator"),
        ("", "no operator"),
        ("status!live", "no operator"),
        ("=live", "the field is missing"),
        ("  >2h", "the field is missing"),
        ("status=", "the value is missing"),
        ("status=  ", "the value is missing"),
        ("status==live", "use one operator"),
        ("idle=>2h", "use one operator"),
        ("idle<>2h", "use one operator"),
        ('customer~"acme', "not closed"),
        ("customer~acme'", "not opened"),
        ("customer~'", "not closed"),
        ("two words=1", "is not a field name"),
        ("9lives=1", "is not a field name"),
    ],
)
def test_parse_expression_refuses_malformed_words_listing_the_operators(word: str, reason: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_expression(word)
    message = str(raised.value)
    assert reason in message
    assert "FIELD OP VALUE" in message
    assert "=, !=, <, <=, >, >=, ~" in message
    assert "\n" not in message
    assert raised.value.exit_code == ExitCode.USAGE


def test_parse_expressions_parses_each_word_as_one_expression() -> None:
    assert parse_expressions(["status=live", "idle>2h", 'customer~"acme"']) == [
        Condition("status", "=", "live"),
        Condition("idle", ">", "2h"),
        Condition("customer", "~", "acme"),
    ]
    assert parse_expressions([]) == []


def test_condition_prints_as_field_operator_value() -> None:
    assert str(parse_expression("idle >= 2h")) == "idle>=2h"


def test_operators_are_the_documented_ones() -> None:
    assert OPERATORS == ("=", "!=", "<", "<=", ">", ">=", "~")


@given(st.one_of(st.text(), st.text(st.sampled_from(list("status=!<>~'\" idleage2h-0")))))
def test_parse_expression_returns_a_condition_or_a_usage_error(word: str) -> None:
    try:
        condition = parse_expression(word)
    except UsageError:
        return
    assert condition.operator in OPERATORS
    assert condition.field


# ---------------------------------------------------------------------------
# The field registries


def test_chat_fields_are_those_of_the_spec() -> None:
    assert set(CHAT_FIELDS) == {
        "status", "channel", "agent", "customer", "flagged", "tagged", "created", "closed",
        "closed_by", "reason", "idle", "age",
    }


def test_ticket_fields_are_those_of_the_spec() -> None:
    assert set(TICKET_FIELDS) == {
        "status", "reason", "agent", "created", "closed", "archived", "age", "chat",
    }


@pytest.mark.parametrize(
    ("fields", "name", "kind"),
    [
        (CHAT_FIELDS, "status", FieldKind.ENUM),
        (CHAT_FIELDS, "channel", FieldKind.CHANNEL),  # any lower-case word (D5)
        (CHAT_FIELDS, "agent", FieldKind.AGENT_HANDLE),
        (CHAT_FIELDS, "customer", FieldKind.TEXT),
        (CHAT_FIELDS, "flagged", FieldKind.BOOL),
        (CHAT_FIELDS, "tagged", FieldKind.BOOL),
        (CHAT_FIELDS, "created", FieldKind.TIMESTAMP),
        (CHAT_FIELDS, "idle", FieldKind.DURATION_SINCE),
        (CHAT_FIELDS, "age", FieldKind.DURATION_SINCE),
        (TICKET_FIELDS, "reason", FieldKind.ENUM),
        (TICKET_FIELDS, "archived", FieldKind.BOOL),
        (TICKET_FIELDS, "chat", FieldKind.ID),
    ],
)
def test_fields_have_the_expected_kind(fields, name: str, kind: FieldKind) -> None:
    assert fields[name].kind == kind


def test_enum_fields_offer_the_desk_vocabulary() -> None:
    assert CHAT_FIELDS["status"].choices == vocabulary.CHAT_STATUSES
    assert CHAT_FIELDS["channel"].choices == vocabulary.CHANNELS
    assert CHAT_FIELDS["closed_by"].choices == vocabulary.CLOSED_BY
    assert TICKET_FIELDS["status"].choices == vocabulary.TICKET_STATUSES
    assert TICKET_FIELDS["reason"].choices == vocabulary.TICKET_REASONS


def test_module_help_names_every_field() -> None:
    # The module docstring is the help text; a field missing from it is undiscoverable.
    for name in {*CHAT_FIELDS, *TICKET_FIELDS}:
        assert f"``{name}``" in filters.__doc__


# ---------------------------------------------------------------------------
# Validating fields, operators and values


def typed(word: str, fields=CHAT_FIELDS, **context) -> TypedCondition:
    return validate([parse_expression(word)], fields, **context)[0]


def test_validate_refuses_an_unknown_field_naming_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as raised:
        typed("foo=1")
    assert str(raised.value) == (
        "unknown field 'foo': use one of age, agent, channel, closed, closed_by, created, "
        "customer, flagged, idle, reason, status, tagged"
    )


def test_validate_names_the_ticket_fields_for_tickets() -> None:
    with pytest.raises(UsageError, match="use one of age, agent, archived, chat, closed, created, reason, status$"):
        typed("tagged=yes", TICKET_FIELDS)


@pytest.mark.parametrize(
    ("word", "accepted"),
    [
        ("status~live", "use =, !="),
        ("status>live", "use =, !="),
        ("flagged~yes", "use =, !="),
        ("agent<alice", "use =, !="),
        ("customer>acme", "use =, !=, ~"),
        ("idle=2h", "use <, <=, >, >="),
        ("age!=2h", "use <, <=, >, >="),
        ("created=2026-11-30", "use <, <=, >, >="),
    ],
)
def test_validate_refuses_operators_that_do_not_apply_to_the_field(word: str, accepted: str) -> None:
    with pytest.raises(UsageError) as raised:
        typed(word)
    assert "does not apply to" in str(raised.value)
    assert str(raised.value).endswith(accepted)


def test_validate_refuses_contains_on_ticket_ids() -> None:
    with pytest.raises(UsageError, match="does not apply to chat"):
        typed("chat~12", TICKET_FIELDS)


def test_validate_reads_enum_values_ignoring_case() -> None:
    assert typed("status=LIVE").value == "live"
    assert typed("channel=WhatsApp").value == "whatsapp"


def test_validate_refuses_an_unknown_enum_value_naming_the_accepted_ones() -> None:
    with pytest.raises(UsageError) as raised:
        typed("status=open")
    assert str(raised.value) == "status=open: bad value 'open': use one of live, pending, closed, converted"


def test_validate_accepts_none_only_for_nullable_enums() -> None:
    assert typed("closed_by=none").value is None
    with pytest.raises(UsageError, match="customer, agent, system, none"):
        typed("closed_by=robot")
    with pytest.raises(UsageError, match="bad value 'none'"):
        typed("status=none")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("yes", True), ("true", True), ("1", True), ("YES", True), ("no", False), ("false", False), ("0", False)],
)
def test_validate_reads_booleans(text: str, expected: bool) -> None:
    assert typed(f"flagged={text}").value is expected


def test_validate_refuses_other_boolean_words() -> None:
    with pytest.raises(UsageError, match="use yes, no, true, false, 1 or 0"):
        typed("flagged=maybe")


def test_validate_reads_timestamps_as_utc() -> None:
    assert typed("created>2026-11-30T11:00+02:00").value == NOW


def test_validate_reads_timestamps_without_offset_in_the_given_zone() -> None:
    assert typed("created>2026-11-30T11:00", tz=JOHANNESBURG).value == NOW
    assert typed("created>2026-11-30T09:00").value == NOW


def test_validate_reads_relative_timestamps_only_with_a_now() -> None:
    assert typed("created>-2h", now=NOW).value == NOW - timedelta(hours=2)
    with pytest.raises(UsageError, match="created>-2h: bad time"):
        typed("created>-2h")


def test_validate_refuses_bad_timestamps_naming_the_accepted_forms() -> None:
    with pytest.raises(UsageError) as raised:
        typed("created>yesterday", now=NOW)
    assert "created>yesterday" in str(raised.value)
    assert "-2h" in str(raised.value)
    assert "2026-11-30" in str(raised.value)


def test_validate_reads_durations() -> None:
    assert typed("idle>2h").value == timedelta(hours=2)
    assert typed("age>=P30D").value == timedelta(days=30)


def test_validate_refuses_bad_durations_naming_the_accepted_forms() -> None:
    with pytest.raises(UsageError, match=r"idle>2 hours: bad duration '2 hours'.*90s, 30m"):
        typed("idle>2 hours")


def test_validate_reads_agent_handles_and_none() -> None:
    assert typed("agent=Alice").value == "alice"
    assert typed("agent=none").value is None


def test_validate_refuses_a_malformed_handle() -> None:
    with pytest.raises(UsageError, match="bad handle"):
        typed("agent=@alice")


def test_validate_reads_chat_ids() -> None:
    assert typed("chat=42", TICKET_FIELDS).value == 42
    for bad in ("0", "-1", "4.2", "x", "99999999999999999999", "٤٢"):
        with pytest.raises(UsageError, match="use an id"):
            typed(f"chat={bad}", TICKET_FIELDS)


def test_validate_keeps_text_values_as_typed() -> None:
    assert typed("customer~Acme Corp").value == "Acme Corp"
    assert typed(f'customer~"{INJECTION}"').value == INJECTION


chat_words = st.builds(
    lambda field, operator, value: f"{field}{operator}{value}",
    st.sampled_from(sorted(CHAT_FIELDS) + ["foo"]),
    st.sampled_from(OPERATORS),
    st.one_of(st.text(), st.sampled_from(["live", "yes", "2h", "-2h", "2026-11-30", "alice", "none", "1"])),
)
ticket_words = st.builds(
    lambda field, operator, value: f"{field}{operator}{value}",
    st.sampled_from(sorted(TICKET_FIELDS) + ["foo"]),
    st.sampled_from(OPERATORS),
    st.one_of(st.text(), st.sampled_from(["open", "yes", "90d", "-2h", "2026-11-30", "bob", "none", "7"])),
)


@given(st.lists(st.one_of(st.text(), chat_words), max_size=3))
def test_compile_chat_filter_returns_clauses_or_a_usage_error(words: list[str]) -> None:
    try:
        clauses = compile_chat_filter(parse_expressions(words), NOW, JOHANNESBURG)
    except UsageError:
        return
    assert len(clauses) == len(words)


@given(st.lists(st.one_of(st.text(), ticket_words), max_size=3))
def test_compile_ticket_filter_returns_clauses_or_a_usage_error(words: list[str]) -> None:
    try:
        clauses = compile_ticket_filter(parse_expressions(words), NOW)
    except UsageError:
        return
    assert len(clauses) == len(words)


# ---------------------------------------------------------------------------
# Compiling to SQL (checked as SQLite text and bound parameters)


def compiled(clauses, dialect=None) -> tuple[str, dict]:
    statement = select(Chat.id).where(*clauses)
    result = statement.compile(dialect=dialect or sqlite.dialect())
    return " ".join(str(result).split()), result.params


def compiled_tickets(clauses) -> tuple[str, dict]:
    result = select(Ticket.id).where(*clauses).compile(dialect=sqlite.dialect())
    return " ".join(str(result).split()), result.params


def chat_sql(*words: str, tz=None) -> tuple[str, dict]:
    return compiled(compile_chat_filter(parse_expressions(words), NOW, tz))


def test_compile_status_binds_the_value() -> None:
    sql, params = chat_sql("status=live")
    assert "chats.status = ?" in sql
    assert list(params.values()) == ["live"]


@pytest.mark.parametrize(
    ("word", "sql_operator", "age"),
    [
        ("idle>2h", "<", timedelta(hours=2)),
        ("idle>=2h", "<=", timedelta(hours=2)),
        ("idle<30m", ">", timedelta(minutes=30)),
        ("idle<=30m", ">=", timedelta(minutes=30)),
    ],
)
def test_compile_idle_flips_the_comparison_onto_last_activity(word: str, sql_operator: str, age: timedelta) -> None:
    sql, params = chat_sql(word)
    assert f"chats.last_activity_at {sql_operator} ?" in sql
    assert list(params.values()) == [NOW - age]


def test_compile_age_compares_created_at_with_a_cutoff() -> None:
    sql, params = chat_sql("age>=30d")
    assert "chats.created_at <= ?" in sql
    assert list(params.values()) == [NOW - timedelta(days=30)]


def test_compile_an_age_beyond_the_calendar_reaches_the_earliest_instant() -> None:
    _, params = chat_sql("idle>999999999d")
    assert list(params.values()) == [datetime.min.replace(tzinfo=timezone.utc)]


def test_compile_timestamps_bind_aware_utc_values() -> None:
    sql, params = chat_sql("created>=2026-11-30", tz=JOHANNESBURG)
    assert "chats.created_at >= ?" in sql
    assert list(params.values()) == [datetime(2026, 11, 29, 22, 0, tzinfo=timezone.utc)]


def test_compile_relative_timestamps_count_from_now() -> None:
    _, params = chat_sql("closed>-1d")
    assert list(params.values()) == [NOW - timedelta(days=1)]


def test_compile_contains_escapes_like_wildcards() -> None:
    sql, params = chat_sql("customer~50%_off")
    assert "LIKE" in sql
    assert "ESCAPE '/'" in sql
    assert "lower(customers.display_name)" in sql
    assert "lower(customers.address)" in sql
    assert set(params.values()) == {"50/%/_off"}


def test_compile_contains_uses_ilike_on_postgresql() -> None:
    sql, params = compiled(compile_chat_filter([parse_expression("customer~acme")], NOW), postgresql.dialect())
    assert "ILIKE" in sql
    assert set(params.values()) == {"acme"}


@pytest.mark.parametrize(
    "word",
    [f'customer~"{INJECTION}"', f'customer="{INJECTION}"', f'customer!="{INJECTION}"',
     f'reason="{INJECTION}"', f"reason~'{INJECTION}'", "reason~1; drop table chats; --"],
)
def test_compile_keeps_a_hostile_value_inert_as_a_bound_parameter(word: str) -> None:
    sql, params = chat_sql(word)
    assert "drop" not in sql.lower()
    assert ";" not in sql
    assert parse_expression(word).value in params.values()


def test_compile_agent_by_handle_uses_a_bound_subquery() -> None:
    sql, params = chat_sql("agent=alice")
    assert "chats.agent_id IN (SELECT agents.id FROM agents WHERE agents.handle = ?)" in sql
    assert list(params.values()) == ["alice"]


def test_compile_agent_not_equal_keeps_unassigned_chats() -> None:
    sql, _ = chat_sql("agent!=alice", "status=live")
    assert "chats.agent_id IS NULL OR" in sql
    # The OR must stay grouped when ANDed with the other conditions.
    assert "(chats.agent_id IS NULL OR" in sql


def test_compile_agent_none_means_unassigned() -> None:
    assert "chats.agent_id IS NULL" in chat_sql("agent=none")[0]
    assert "chats.agent_id IS NOT NULL" in chat_sql("agent!=none")[0]


def test_compile_nullable_not_equal_keeps_empty_rows() -> None:
    sql, params = chat_sql("closed_by!=system")
    assert "chats.closed_by IS NOT ?" in sql
    assert list(params.values()) == ["system"]


def test_compile_flags_and_tags() -> None:
    assert "chats.flagged = 1" in chat_sql("flagged=yes")[0]
    assert "chats.flagged = 0" in chat_sql("flagged!=yes")[0]
    assert "chats.id IN (SELECT comment_mentions.chat_id FROM comment_mentions)" in chat_sql("tagged=yes")[0]
    assert "chats.id NOT IN (SELECT comment_mentions.chat_id" in chat_sql("tagged=no")[0]


def test_compile_ticket_fields() -> None:
    words = ["status=open", "reason!=manual", "archived=no", "age>90d", "chat>=10", "agent=none"]
    sql, params = compiled_tickets(compile_ticket_filter(parse_expressions(words), NOW))
    assert "tickets.status = ?" in sql
    assert "tickets.reason != ?" in sql
    assert "tickets.archived_at IS NULL" in sql
    assert "tickets.created_at < ?" in sql
    assert "tickets.chat_id >= ?" in sql
    assert "tickets.agent_id IS NULL" in sql
    assert sorted(map(str, params.values())) == sorted(
        ["open", "manual", str(NOW - timedelta(days=90)), "10"]
    )


def test_compile_archived_yes_means_an_archive_time() -> None:
    sql, _ = compiled_tickets(compile_ticket_filter([parse_expression("archived=yes")], NOW))
    assert "tickets.archived_at IS NOT NULL" in sql


def test_compile_validates_against_its_own_entity() -> None:
    chat_condition = typed("tagged=yes")
    assert len(compile_chat_filter([chat_condition], NOW)) == 1
    with pytest.raises(UsageError, match="unknown field 'tagged'"):
        compile_ticket_filter([chat_condition], NOW)


def test_compile_refuses_bad_input_with_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown field 'archived'"):
        compile_chat_filter([parse_expression("archived=yes")], NOW)
    with pytest.raises(UsageError, match="bad duration"):
        compile_chat_filter([parse_expression("idle>soon")], NOW)


def test_compile_needs_an_aware_now() -> None:
    with pytest.raises(ValueError):
        compile_chat_filter([parse_expression("idle>2h")], datetime(2026, 11, 30, 9))


@freeze_time("2040-01-01T00:00:00Z")
def test_compile_depends_on_the_now_argument_not_the_clock() -> None:
    _, params = chat_sql("idle>2h", "created>-1d")
    assert set(params.values()) == {NOW - timedelta(hours=2), NOW - timedelta(days=1)}


# ---------------------------------------------------------------------------
# Running compiled filters on real databases (SQLite and PostgreSQL)


@pytest.fixture
def desk(engine):
    """Two agents, three customers, five chats, three tickets, one tag, all relative to NOW."""
    hours = lambda count: NOW - timedelta(hours=count)  # noqa: E731
    days = lambda count: NOW - timedelta(days=count)  # noqa: E731
    chat_defaults = {"flagged": False, "closed_at": None, "closed_by": None, "close_reason": None}
    with engine.begin() as connection:
        connection.execute(insert(Agent), [
            {"id": 1, "handle": "alice", "name": "Alice", "role": "agent", "presence": "online",
             "active": True, "created_at": days(100)},
            {"id": 2, "handle": "bob", "name": "Bob", "role": "agent", "presence": "online",
             "active": True, "created_at": days(100)},
        ])
        connection.execute(insert(Customer), [
            {"id": 1, "display_name": "Acme Corp", "address": "+27820000001", "created_at": days(50)},
            {"id": 2, "display_name": "Zeta 50% Off_Shop", "address": "web-42", "created_at": days(50)},
            {"id": 3, "display_name": "Bobby", "address": "+27820000003", "created_at": days(50)},
        ])
        connection.execute(insert(Chat), [
            {**chat_defaults, "id": 1, "customer_id": 1, "channel": "whatsapp", "status": "live",
             "agent_id": 1, "created_at": days(3), "last_activity_at": hours(3)},
            {**chat_defaults, "id": 2, "customer_id": 2, "channel": "webchat", "status": "live",
             "agent_id": None, "flagged": True, "created_at": hours(1),
             "last_activity_at": NOW - timedelta(minutes=10)},
            {**chat_defaults, "id": 3, "customer_id": 1, "channel": "sms", "status": "pending",
             "agent_id": 2, "created_at": days(40), "last_activity_at": days(1)},
            {**chat_defaults, "id": 4, "customer_id": 2, "channel": "whatsapp", "status": "closed",
             "agent_id": 1, "created_at": days(2), "last_activity_at": days(2), "closed_at": days(1),
             "closed_by": "system", "close_reason": "inactivity"},
            {**chat_defaults, "id": 5, "customer_id": 3, "channel": "sms", "status": "closed",
             "agent_id": 2, "created_at": days(5), "last_activity_at": days(5), "closed_at": days(4),
             "closed_by": "agent", "close_reason": "Customer said thanks"},
        ])
        connection.execute(insert(Comment).values(id=1, chat_id=1, agent_id=1, body="@bob look",
                                                  created_at=hours(3)))
        connection.execute(insert(CommentMention).values(comment_id=1, agent_id=2, chat_id=1))
        connection.execute(insert(Ticket), [
            {"id": 10, "chat_id": 1, "status": "open", "reason": "out_of_hours", "agent_id": 1,
             "created_at": days(100), "closed_at": None, "archived_at": None},
            {"id": 11, "chat_id": 2, "status": "closed", "reason": "no_agents", "agent_id": None,
             "created_at": days(10), "closed_at": days(5), "archived_at": None},
            {"id": 12, "chat_id": 3, "status": "open", "reason": "manual", "agent_id": 2,
             "created_at": days(95), "closed_at": None, "archived_at": days(5)},
        ])
    return engine


def matching_chats(engine, *words: str, tz=None) -> set[int]:
    clauses = compile_chat_filter(parse_expressions(words), NOW, tz)
    with engine.connect() as connection:
        return set(connection.execute(select(Chat.id).where(*clauses)).scalars())


def matching_tickets(engine, *words: str) -> set[int]:
    clauses = compile_ticket_filter(parse_expressions(words), NOW)
    with engine.connect() as connection:
        return set(connection.execute(select(Ticket.id).where(*clauses)).scalars())


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["status=live"], {1, 2}),
        (["status!=live"], {3, 4, 5}),
        (["channel=whatsapp"], {1, 4}),
        (["idle>2h"], {1, 3, 4, 5}),
        (["idle<=2h"], {2}),
        (["status=live", "idle>2h"], {1}),
        (["age>=30d"], {3}),
        (["age<1d"], {2}),
        (["customer~acme"], {1, 3}),
        (["customer~ACME"], {1, 3}),
        (["customer~0000003"], {5}),
        (["customer~%"], {2, 4}),
        (["customer~_"], {2, 4}),
        (['customer="Acme Corp"'], {1, 3}),
        (['customer!="Acme Corp"'], {2, 4, 5}),
        (["customer=web-42"], {2, 4}),
        (["agent=alice"], {1, 4}),
        (["agent!=alice"], {2, 3, 5}),
        (["agent=none"], {2}),
        (["agent!=none"], {1, 3, 4, 5}),
        (["agent=nobody"], set()),
        (["agent!=nobody"], {1, 2, 3, 4, 5}),
        (["flagged=yes"], {2}),
        (["flagged=no"], {1, 3, 4, 5}),
        (["tagged=yes"], {1}),
        (["tagged=no"], {2, 3, 4, 5}),
        (["closed_by=system"], {4}),
        (["closed_by!=system"], {1, 2, 3, 5}),
        (["closed_by=none"], {1, 2, 3}),
        (["reason~THANKS"], {5}),
        (["reason!=inactivity"], {1, 2, 3, 5}),
        (["created>=-2d"], {2, 4}),
        (["closed<2026-11-29T12:00Z"], {4, 5}),
        (["closed>2026-11-27"], {4}),
    ],
)
def test_chat_filters_select_the_right_chats(desk, words: list[str], expected: set[int]) -> None:
    assert matching_chats(desk, *words) == expected


def test_chat_filter_reads_local_timestamps_in_the_given_zone(desk) -> None:
    # Midnight 30 November in Johannesburg is 22:00 UTC on the 29th.
    assert matching_chats(desk, "created>=2026-11-30", tz=JOHANNESBURG) == {2}


def test_chat_filter_hostile_value_matches_nothing_and_harms_nothing(desk) -> None:
    assert matching_chats(desk, f'customer~"{INJECTION}"') == set()
    assert matching_chats(desk, f'customer="{INJECTION}"') == set()
    assert matching_chats(desk, f'customer!="{INJECTION}"') == {1, 2, 3, 4, 5}
    with desk.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Chat)).scalar() == 5


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["status=open"], {10, 12}),
        (["archived=yes"], {12}),
        (["archived=no"], {10, 11}),
        (["age>90d"], {10, 12}),
        (["age>90d", "archived=no"], {10}),
        (["agent=none"], {11}),
        (["agent!=bob"], {10, 11}),
        (["reason=out_of_hours"], {10}),
        (["chat>=2"], {11, 12}),
        (["chat=3"], {12}),
        (["closed>-6d"], {11}),
    ],
)
def test_ticket_filters_select_the_right_tickets(desk, words: list[str], expected: set[int]) -> None:
    assert matching_tickets(desk, *words) == expected
