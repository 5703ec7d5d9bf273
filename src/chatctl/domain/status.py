"""The desk at a glance (``chatctl status``) and its monitoring check (``status --check``).

``desk_status`` reads everything from one connection the caller opened with
``storage.engine.read_snapshot`` (one read-only transaction, REPEATABLE READ
on PostgreSQL), so the figures agree with each other even while the desk is
busy.  Each part is one set-based statement whose cutoffs are computed here
from ``now`` and bound as parameters:

* the chat views (R1, R2): one grouped pass over the live and pending chats
  gives the live, pending and tagged views' counts, the idle-time buckets,
  each agent's live and unanswered chats and the open chats started in the
  last 24 hours.  On PostgreSQL it reads the index of the open chats in id
  order (``ix_chats_open_glance``, revision 0009), which holds every column
  it counts: an index-only pass over the open chats, never the whole table,
  and the tagged chats joined by merging that id order with
  ``comment_mentions (chat_id)``.  Each agent's tagged view and closed-today
  (a range of the closed chats' index) are one statement each;
* tickets (R13): one grouped pass over the tickets that are not archived;
* sweeps: each job's latest run and latest success, all jobs in one statement;
* response times: ``domain.response_times`` over the last 24 hours; of the
  chats started in them it counts only the closed and converted ones, the
  views' pass having counted the open ones.

The shapes of the JSON document are in docs/glance.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, distinct, func, literal, select, text, true, union_all

from chatctl.domain.chats.views import new_condition, unread_condition
from chatctl.domain.prefs import get_preferences
from chatctl.domain.response_times import first_response, time_to_close
from chatctl.domain.sweeps.jobs import ARCHIVE_DUE, NOT_ARCHIVED, UNANSWERED
from chatctl.errors import ConfigError, UsageError
from chatctl.parsing.timeparse import format_duration, parse_duration
from chatctl.storage.models import OPEN_CHATS, Agent, Chat, CommentMention, SweepRun, Ticket, UTCDateTime
from chatctl.vocabulary import CLOSED_BY, OPEN_CHAT_STATUSES, SWEEP_JOBS, TICKET_REASONS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
RESPONSE_WINDOW = DAY
ARCHIVE_HORIZON = DAY
DEFAULT_SWEEP_EXPECTED_EVERY = 10 * MINUTE


@dataclass(frozen=True)
class Bucket:
    """``[low, high)``; ``high`` None is open-ended."""

    label: str
    low: dt.timedelta
    high: dt.timedelta | None


def _buckets(*edges: tuple[str, dt.timedelta]) -> tuple[Bucket, ...]:
    """Buckets from their upper edges: ("<5m", 5m), ("5-15m", 15m), ... and the last, open one."""
    out, low = [], dt.timedelta(0)
    for label, high in edges:
        out.append(Bucket(label, low, high))
        low = high
    return tuple(out)


# Live chats by time since their last activity (R4 closes them at inactivity_timeout, 30m by default).
IDLE_BUCKETS = _buckets(("<5m", 5 * MINUTE), ("5-15m", 15 * MINUTE), ("15-30m", 30 * MINUTE),
                        ("30m-1h", HOUR), ("1-4h", 4 * HOUR)) + (Bucket(">4h", 4 * HOUR, None),)
# Open tickets by age (R13 archives them at ticket_archive_after, 90 days by default).
TICKET_AGE_BUCKETS = _buckets(("<1d", DAY), ("1-7d", 7 * DAY), ("7-30d", 30 * DAY),
                              ("30-90d", 90 * DAY)) + (Bucket(">90d", 90 * DAY, None),)


def _bucket_counts(counts: Sequence[int], buckets: Sequence[Bucket]) -> list[dict[str, Any]]:
    return [{"bucket": bucket.label, "count": count} for bucket, count in zip(buckets, counts)]


def _newer_than(column, now: dt.datetime, buckets: Sequence[Bucket]) -> list:
    """``column > now - high`` for each bounded bucket: counts of "younger than high"."""
    return [column > now - bucket.high for bucket in buckets if bucket.high is not None]


def _split(total: int, younger: Sequence[int]) -> list[int]:
    """Counts per bucket from the total and the cumulative "younger than each upper edge" counts."""
    edges = [*younger, total]
    return [edges[0]] + [edges[index] - edges[index - 1] for index in range(1, len(edges))]


# -- the parts ---------------------------------------------------------------------------
MARKERS = ("count", "new", "unread", "flagged", "unassigned")
# The live and pending chats, as the condition of their partial indexes, values written out: a
# planner proves an index's condition from literals, not from parameters (a statement psycopg
# has prepared may be planned for any value).
OPEN = text(f"({OPEN_CHATS})")


def _chat_views(connection: Connection, now: dt.datetime) -> dict[str, Any]:
    """The live, pending and tagged views' counts, idle buckets of live chats, each agent's
    live and unanswered chats, and the open chats started in the response-time window: one
    pass over the open chats (on PostgreSQL over ``ix_chats_open_glance`` alone, which holds
    every column below)."""

    c = Chat  # the sweep jobs' conditions name the table, not an alias
    # The tagged view of every agent: open chats someone is tagged in.  Both sides are in chat
    # id order (the open chats' index, comment_mentions (chat_id)): PostgreSQL merges them.
    mentioned = select(CommentMention.chat_id).distinct().subquery("mentioned")
    tagged = mentioned.c.chat_id.is_not(None)
    markers = {"count": true(), "new": new_condition(c), "unread": unread_condition(c),
               "flagged": c.flagged.is_(True), "unassigned": c.agent_id.is_(None)}
    younger = _newer_than(c.last_activity_at, now, IDLE_BUCKETS)
    started = and_(c.created_at >= now - RESPONSE_WINDOW, c.created_at < now)
    count = func.count()
    query = (select(c.status, c.agent_id, count.label("count"),
                    *(count.filter(markers[key]).label(key) for key in MARKERS[1:4]),
                    *(count.filter(and_(tagged, markers[key])).label(f"tagged_{key}") for key in MARKERS),
                    count.filter(text(UNANSWERED.sql)).label("unanswered"),
                    func.min(c.last_customer_message_at).filter(text(UNANSWERED.sql)).label("waiting_since"),
                    *(count.filter(condition).label(f"younger_{index}") for index, condition in enumerate(younger)),
                    count.filter(started).label("started"))
             .select_from(c).outerjoin(mentioned, mentioned.c.chat_id == c.id)
             .where(OPEN).group_by(c.status, c.agent_id))
    views = {view: dict.fromkeys(MARKERS, 0) for view in (*OPEN_CHAT_STATUSES, "tagged")}
    per_agent: dict[int, dict[str, int]] = {}
    idle_younger = [0] * len(younger)
    unanswered = open_started = 0
    waiting_since: dt.datetime | None = None
    for row in connection.execute(query):
        figures = views[row.status]
        for key in MARKERS[:4]:
            figures[key] += getattr(row, key)
        for key in MARKERS:
            views["tagged"][key] += getattr(row, f"tagged_{key}")
        if row.agent_id is None:
            figures["unassigned"] += row.count
        open_started += row.started
        if row.status == "live":
            unanswered += row.unanswered
            if row.waiting_since is not None and (waiting_since is None or row.waiting_since < waiting_since):
                waiting_since = row.waiting_since
            for index in range(len(younger)):
                idle_younger[index] += getattr(row, f"younger_{index}")
            if row.agent_id is not None:
                per_agent[row.agent_id] = {"live": row.count, "unanswered": row.unanswered}
    idle = _bucket_counts(_split(views["live"]["count"], idle_younger), IDLE_BUCKETS)
    return {"views": views, "per_agent": per_agent, "idle": idle, "unanswered": unanswered,
            "waiting_since": waiting_since, "open_started": open_started}


def _tagged_per_agent(connection: Connection, open_tagged: int) -> dict[int, int]:
    """Each agent's tagged view: the open chats they are tagged in.

    Closing or converting a chat removes its tags (R9), so tags normally sit on
    open chats only: when the chats with a tag are exactly the ``open_tagged``
    the views' pass counted, the tags alone answer (a small table).  Tags left
    on a finished chat (the clean-up sweep's work) make it join the chats.
    """

    per_agent = select(CommentMention.agent_id, func.count(distinct(CommentMention.chat_id))) \
        .group_by(CommentMention.agent_id)
    tagged_chats = connection.execute(select(func.count(distinct(CommentMention.chat_id)))).scalar_one()
    if tagged_chats != open_tagged:
        per_agent = per_agent.join(Chat, Chat.id == CommentMention.chat_id) \
            .where(Chat.status.in_(OPEN_CHAT_STATUSES))
    return dict(connection.execute(per_agent).all())


def oldest_unanswered(connection: Connection, now: dt.datetime, *,
                      since: dt.datetime | None = None) -> dict[str, Any] | None:
    """The live chat whose customer has waited longest for an answer (R5's "unanswered").

    ``since``, when the caller knows it (the views' pass), is that customer's
    message time: the chat is then one index look-up instead of a walk past
    every answered chat with an older customer message.
    """

    c = Chat  # the sweep jobs' conditions name the table, not an alias
    query = (select(c.id, c.last_customer_message_at, Agent.handle)
             .outerjoin(Agent, Agent.id == c.agent_id)
             .where(c.status == "live", text(UNANSWERED.sql))
             .order_by(c.last_customer_message_at, c.id).limit(1))
    if since is not None:
        query = query.where(c.last_customer_message_at == since)
    row = connection.execute(query).first()
    if row is None:
        return None
    return {"chat_id": row.id, "agent": row.handle, "since": row.last_customer_message_at,
            "waiting_s": (now - row.last_customer_message_at).total_seconds()}


def unassigned_live(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(Chat)
                              .where(Chat.agent_id.is_(None), Chat.status == "live")).scalar_one()


def _closed_today(connection: Connection, now: dt.datetime, tz: dt.tzinfo) -> dict[str, Any]:
    """Chats in the closed view closed since midnight in the display time zone, by who closed them."""

    midnight = start_of_day(now, tz)
    by = dict(connection.execute(select(Chat.closed_by, func.count())
                                 .where(Chat.status == "closed", Chat.closed_at >= midnight)
                                 .group_by(Chat.closed_by)).all())
    return {"count": sum(by.values()), "since": midnight,
            **{f"by_{who}": by.get(who, 0) for who in CLOSED_BY}}


def start_of_day(now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """Midnight of ``now``'s day in ``tz``, as UTC."""
    local = now.astimezone(tz)
    return dt.datetime(local.year, local.month, local.day, tzinfo=tz).astimezone(dt.timezone.utc)


def _tickets(connection: Connection, now: dt.datetime, archive_after: dt.timedelta) -> dict[str, Any]:
    """Tickets not archived (the tickets view): open ones by age and reason, per agent, and how many
    the archive sweep takes within the next day (R13)."""

    t = Ticket  # the sweep jobs' conditions name the table, not an alias
    count = func.count()
    younger = _newer_than(t.created_at, now, TICKET_AGE_BUCKETS)
    # The archive job's own condition, as of a day from now.
    due = text(ARCHIVE_DUE.sql).bindparams(bindparam("archive_cutoff", now + ARCHIVE_HORIZON - archive_after,
                                                     type_=UTCDateTime()))
    query = (select(t.status, t.reason, t.agent_id, count.label("count"), count.filter(due).label("due"),
                    *(count.filter(condition).label(f"younger_{index}") for index, condition in enumerate(younger)))
             .where(text(NOT_ARCHIVED.sql)).group_by(t.status, t.reason, t.agent_id))
    figures = {"open": 0, "closed": 0, "unassigned": 0, "archive_next_day": 0}
    by_reason = dict.fromkeys(TICKET_REASONS, 0)
    per_agent: dict[int, int] = {}
    open_younger = [0] * len(younger)
    for row in connection.execute(query):
        figures[row.status] = figures.get(row.status, 0) + row.count
        figures["archive_next_day"] += row.due
        if row.status != "open":
            continue
        by_reason[row.reason] = by_reason.get(row.reason, 0) + row.count
        if row.agent_id is None:
            figures["unassigned"] += row.count
        else:
            per_agent[row.agent_id] = per_agent.get(row.agent_id, 0) + row.count
        for index in range(len(younger)):
            open_younger[index] += getattr(row, f"younger_{index}")
    return {**figures, "by_age": _bucket_counts(_split(figures["open"], open_younger), TICKET_AGE_BUCKETS),
            "by_reason": by_reason, "per_agent": per_agent}


def _online_agents(connection: Connection) -> list[tuple[int, str]]:
    """The online (and active) agents' ids and handles, by handle."""
    return [tuple(row) for row in connection.execute(
        select(Agent.id, Agent.handle).where(Agent.presence == "online", Agent.active.is_(True))
        .order_by(Agent.handle))]


def _agents(online: Sequence[tuple[int, str]], chats: Mapping[int, Mapping[str, int]], tagged: Mapping[int, int],
            tickets: Mapping[int, int], max_chats: int) -> list[dict[str, Any]]:
    """Online agents (by handle) and their load against agent_max_chats (0: no limit)."""

    rows = []
    for agent_id, handle in online:
        live = chats.get(agent_id, {}).get("live", 0)
        rows.append({"agent": handle, "live": live, "unanswered": chats.get(agent_id, {}).get("unanswered", 0),
                     "tagged": tagged.get(agent_id, 0), "open_tickets": tickets.get(agent_id, 0),
                     "max_chats": max_chats or None, "load": (live / max_chats) if max_chats else None})
    return rows


def _offline_holding(online: Sequence[tuple[int, str]], chats: Mapping[int, Mapping[str, int]]) -> int:
    """Live chats assigned to agents who are not online (drain candidates)."""

    ids = {agent_id for agent_id, _handle in online}
    return sum(figures["live"] for agent_id, figures in chats.items() if agent_id not in ids)


def sweep_jobs(connection: Connection, now: dt.datetime, expected_every: dt.timedelta) -> list[dict[str, Any]]:
    """Each job's latest run (not a dry run) and latest success; overdue when that success is older
    than ``expected_every`` or there is none.  Every job's two rows come back from one statement."""

    parts = []
    for job in SWEEP_JOBS:
        for kind, where in (("last", ()), ("success", (SweepRun.status == "ok",))):
            latest = (select(SweepRun.id, SweepRun.started_at, SweepRun.finished_at, SweepRun.status,
                             SweepRun.counts)
                      .where(SweepRun.dry_run.is_(False),
                             (literal(",") + SweepRun.jobs + literal(",")).like(f"%,{job},%"), *where)
                      .order_by(SweepRun.started_at.desc(), SweepRun.id.desc()).limit(1).subquery())
            parts.append(select(literal(job).label("job"), literal(kind).label("kind"), latest))
    found = {(row.job, row.kind): row for row in connection.execute(union_all(*parts))}
    jobs = []
    for job in SWEEP_JOBS:
        last, success = found.get((job, "last")), found.get((job, "success"))
        succeeded_at = (success.finished_at or success.started_at) if success is not None else None
        counts = ((last.counts or {}).get("jobs") or {}).get(job, {}) if last is not None else {}
        jobs.append({
            "job": job,
            "last_run": last.id if last is not None else None,
            "last_run_at": last.started_at if last is not None else None,
            "result": last.status if last is not None else None,
            "changed": counts.get("changed") if last is not None else None,
            "last_success_at": succeeded_at,
            "overdue": succeeded_at is None or now - succeeded_at > expected_every,
        })
    return jobs


def response_times(connection: Connection, now: dt.datetime, *, open_started: int | None = None) -> dict[str, Any]:
    """First responses and times to close over the last 24 hours; ``open_started``: the live and
    pending chats started in them, when the views' pass has counted them."""
    edges = [now - RESPONSE_WINDOW, now]
    (first,), every = first_response(connection, edges, open_started=open_started)
    closing, = time_to_close(connection, edges)
    return {"window_s": RESPONSE_WINDOW.total_seconds(),
            "first_response": {"chats": first.count, "answered": first.timed, **first.percentiles(),
                               "sampled_every": every},
            "time_to_close": {"closed": closing.count, **closing.percentiles()}}


# -- the whole desk ----------------------------------------------------------------------------
def desk_status(connection: Connection, *, now: dt.datetime, tz: dt.tzinfo,
                expected_every: dt.timedelta = DEFAULT_SWEEP_EXPECTED_EVERY,
                prefs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Everything ``chatctl status`` shows, as of ``now`` (the JSON document of docs/glance.md).

    ``prefs``: the desk's preferences, when the caller has read them in the same snapshot."""

    if prefs is None:
        prefs = get_preferences(connection)
    chats = _chat_views(connection, now)
    tickets = _tickets(connection, now, prefs["ticket_archive_after"])
    online = _online_agents(connection)
    live = chats["views"]["live"]
    return {
        "as_of": now,
        "timezone": str(tz),
        "views": {
            "live": live,
            "pending": chats["views"]["pending"],
            "tagged": chats["views"]["tagged"],
            "closed_today": _closed_today(connection, now, tz),
            "open_tickets": {"count": tickets["open"], "unassigned": tickets["unassigned"]},
        },
        "waiting": {
            "idle": chats["idle"],
            "unanswered": chats["unanswered"],
            "oldest_unanswered": oldest_unanswered(connection, now, since=chats["waiting_since"])
            if chats["waiting_since"] is not None else None,
            "held_by_offline_agents": _offline_holding(online, chats["per_agent"]),
        },
        "agents": _agents(online, chats["per_agent"],
                          _tagged_per_agent(connection, chats["views"]["tagged"]["count"]), tickets["per_agent"],
                          prefs["agent_max_chats"]),
        "tickets": {key: tickets[key] for key in ("open", "closed", "by_age", "by_reason", "archive_next_day")},
        "sweeps": {"expected_every_s": expected_every.total_seconds(),
                   "jobs": sweep_jobs(connection, now, expected_every)},
        "response_times": response_times(connection, now, open_started=chats["open_started"]),
    }


# -- status --check ----------------------------------------------------------------------------
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Threshold:
    """A warning and a critical level for one figure; breached when the figure is above the level."""

    name: str
    warning: Any
    critical: Any

    def state(self, value: Any) -> int:
        if value is None:
            return OK
        if value > self.critical:
            return CRITICAL
        return WARNING if value > self.warning else OK


@dataclass(frozen=True)
class Thresholds:
    waiting: Threshold
    unassigned: Threshold
    sweep: Threshold


# name: (kind, default); sweep levels default to sweep_expected_every and three times it.
CHECK_DEFAULTS = {
    "waiting_warning": 10 * MINUTE,
    "waiting_critical": 30 * MINUTE,
    "unassigned_warning": 5,
    "unassigned_critical": 20,
}


def sweep_expected_every(profile: Mapping[str, Any]) -> dt.timedelta:
    value = profile.get("sweep_expected_every")
    return DEFAULT_SWEEP_EXPECTED_EVERY if value is None else _profile_duration("sweep_expected_every", value)


def thresholds(flags: Mapping[str, str | int | None], profile: Mapping[str, Any]) -> Thresholds:
    """Each level from its flag, else the profile's ``check_<name>``, else the default.

    A bad flag is a usage error; a bad profile value a configuration error.
    """

    expected = sweep_expected_every(profile)
    defaults = {**CHECK_DEFAULTS, "sweep_warning": expected}
    levels: dict[str, Any] = {}
    for name in ("waiting_warning", "waiting_critical", "unassigned_warning", "unassigned_critical",
                 "sweep_warning", "sweep_critical"):
        counted = name.startswith("unassigned")
        flag, key = flags.get(name), f"check_{name}"
        if flag is not None:
            levels[name] = _count(f"--{name.replace('_', '-')}", flag, UsageError) if counted else \
                parse_duration(str(flag))
        elif key in profile:
            levels[name] = _count(key, profile[key], ConfigError) if counted else \
                _profile_duration(key, profile[key])
        elif name == "sweep_critical":
            levels[name] = 3 * levels["sweep_warning"]
        else:
            levels[name] = defaults[name]
    for figure in ("waiting", "unassigned", "sweep"):
        if levels[f"{figure}_critical"] < levels[f"{figure}_warning"]:
            raise UsageError(f"the {figure} critical level ({_level(levels[f'{figure}_critical'])}) is below "
                             f"its warning level ({_level(levels[f'{figure}_warning'])})")
    return Thresholds(*(Threshold(figure, levels[f"{figure}_warning"], levels[f"{figure}_critical"])
                        for figure in ("waiting", "unassigned", "sweep")))


def _count(name: str, value: Any, error) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise error(f"{name}: {value!r} is not a whole number >= 0")
    return number


def _profile_duration(key: str, value: Any) -> dt.timedelta:
    try:
        return parse_duration(str(value))
    except UsageError as error:
        raise ConfigError(f"profile key {key}: {error.message}") from None


def _level(value: Any) -> str:
    return format_duration(value) if isinstance(value, dt.timedelta) else str(value)


def check(connection: Connection, *, now: dt.datetime, levels: Thresholds,
          expected_every: dt.timedelta) -> dict[str, Any]:
    """The three monitored figures against their levels: the plugin state, and one line per breach
    (one OK line when nothing is breached)."""
    oldest = oldest_unanswered(connection, now)
    waiting = dt.timedelta(seconds=oldest["waiting_s"]) if oldest else None
    unassigned = unassigned_live(connection)
    successes = [job["last_success_at"] for job in sweep_jobs(connection, now, expected_every)
                 if job["last_success_at"] is not None]
    last_success = max(successes) if successes else None
    sweep_age = now - last_success if last_success is not None else None

    results = []
    state = levels.waiting.state(waiting)
    results.append({"check": "waiting", "state": STATE_NAMES[state], "value_s": _seconds(waiting),
                    "chat_id": oldest["chat_id"] if oldest else None,
                    "warning_s": _seconds(levels.waiting.warning), "critical_s": _seconds(levels.waiting.critical),
                    "line": (f"customer waiting {_level(_whole(waiting))} for an answer (chat {oldest['chat_id']}), "
                             f"{_breach(state, levels.waiting)}") if state else None})
    state = levels.unassigned.state(unassigned)
    results.append({"check": "unassigned", "state": STATE_NAMES[state], "value": unassigned,
                    "warning": levels.unassigned.warning, "critical": levels.unassigned.critical,
                    "line": f"{unassigned} unassigned live chats, {_breach(state, levels.unassigned)}"
                    if state else None})
    state = CRITICAL if last_success is None else levels.sweep.state(sweep_age)
    results.append({"check": "sweep", "state": STATE_NAMES[state], "value_s": _seconds(sweep_age),
                    "last_success_at": last_success, "warning_s": _seconds(levels.sweep.warning),
                    "critical_s": _seconds(levels.sweep.critical),
                    "line": None if not state else "no successful sweep run on record" if last_success is None
                    else f"last successful sweep {_level(_whole(sweep_age))} ago, {_breach(state, levels.sweep)}"})
    worst = max(STATE_NAMES_BY_WORD[result["state"]] for result in results)
    lines = [f"{result['state']}: {result['line']}" for result in
             sorted(results, key=lambda result: -STATE_NAMES_BY_WORD[result["state"]]) if result["line"]]
    if not lines:
        lines = ["OK: " + ", ".join((
            f"oldest unanswered customer {_level(_whole(waiting))}" if waiting is not None
            else "no customer waiting for an answer",
            f"{unassigned} unassigned live chats",
            f"last successful sweep {_level(_whole(sweep_age))} ago"))]
    for result in results:
        del result["line"]
    return {"state": STATE_NAMES[worst], "exit_code": worst, "as_of": now, "lines": lines, "checks": results}


STATE_NAMES_BY_WORD = {word: code for code, word in STATE_NAMES.items()}


def _breach(state: int, threshold: Threshold) -> str:
    word, level = ("critical", threshold.critical) if state == CRITICAL else ("warning", threshold.warning)
    return f"above the {word} level of {_level(level)}"


def _whole(value: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(seconds=max(0, int(value.total_seconds())))


def _seconds(value: dt.timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
