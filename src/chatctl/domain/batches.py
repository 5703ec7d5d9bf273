"""The batch runner: a bulk action applied in set-based batches of one
transaction each, with one result per item and a summary.

The ids come from ``chatctl.parsing.ids`` (argv or a stream, validated before
anything is written) or from a selection replayed by keyset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from chatctl.vocabulary import DRY_RUN_ITEM_RESULTS, ITEM_RESULTS

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


class Items(Protocol):
    """What a bulk action runs over: ids from the command line (``IdSpool``) or a selection."""

    count: int | None
    def batches(self, size: int) -> Iterator[list[int]]: ...
    def close(self) -> None: ...


@dataclass
class ItemResult:
    id: Any
    result: str
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "result": self.result, "reason": self.reason}


# One batch of a bulk action: changes the batch's items in the caller's
# transaction and returns one result per item, in input order.
Apply: TypeAlias = "Callable[[Connection, list[int]], list[ItemResult]]"


@dataclass
class Summary:
    """Items per result; a dry run counts ``would_change`` where a real run counts ``changed`` (D8)."""

    dry_run: bool = False
    counts: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = dict.fromkeys(DRY_RUN_ITEM_RESULTS if self.dry_run else ITEM_RESULTS, 0)

    def add(self, result: ItemResult) -> None:
        self.counts[result.result] += 1

    @property
    def failed(self) -> bool:
        """Some items were not found or refused: exit 1 (SPEC 2.4)."""
        return bool(self.counts["not_found"] or self.counts["refused"])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def line(self) -> str:
        return ", ".join(f"would change {n}" if key == "would_change" else f"{n} {key.replace('_', ' ')}"
                         for key, n in self.counts.items())


def as_dry_run(result: ItemResult) -> ItemResult:
    """What a dry run reports for an item: ``would_change`` instead of ``changed`` (D8)."""
    return ItemResult(result.id, "would_change", result.reason) if result.result == "changed" else result


def run_batches(
    engine: Engine,
    batches: Iterable[list[int]],
    apply: Apply,
    on_results: Callable[[list[ItemResult]], None],
    *,
    dry_run: bool = False,
) -> None:
    """Apply each batch in its own transaction, committing as it goes.

    SIGINT or SIGTERM stops the run between batches (``chatctl.interruption``):
    every finished batch stays committed with its audit rows, the one in
    flight commits or rolls back whole, and ``Interrupted`` propagates so the
    CLI reports what was done and exits 130 or 143.

    A dry run executes the very same statements and rolls each batch back,
    which is what makes its report exact.

    A batch that loses a serialization race (SQLSTATE 40001) is run again
    whole (``chatctl.storage.retry``).
    """
    # Here, not at the top: the views import this module for its result types, and
    # chatctl chats list/show must not pay for the signal machinery at start-up.
    from chatctl.interruption import stop_on_signals
    from chatctl.storage.retry import retry_serialization

    def one_batch(unique: list[int], stop) -> list[ItemResult]:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                with stop.cancellable(connection):
                    results = apply(connection, unique)
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return results

    with stop_on_signals() as stop:
        for batch in batches:
            stop.check()
            unique = list(dict.fromkeys(batch))
            on_results(retry_serialization(lambda: one_batch(unique, stop)))


def refuse_every(reason: str) -> Callable[[Connection, list[int]], list[ItemResult]]:
    """A batch function that changes nothing and refuses every item with ``reason``
    (an action the actor may not take at all, reported item by item like any refusal)."""

    def apply(connection: Connection, ids: list[int]) -> list[ItemResult]:
        return [ItemResult(item, "refused", reason) for item in ids]

    return apply


# -- selection by filter (``--where``) ----------------------------------------------------
NO_LONGER_MATCHES = "no longer matches the filter"


class Selection:
    """The rows a filter matches, replayed as id batches by keyset (``Items``).

    The one bulk engine runs it exactly as it runs ids from standard input:
    progress, dry run, signals and the summary behave the same.  Each batch is
    read in its own short transaction; ``still_matching`` re-checks the filter
    under the action's lock, so a row that changed in between is reported, not
    acted on.
    """

    def __init__(self, engine: Engine, id_column: Any, where: Any) -> None:
        self.engine = engine
        self.id_column = id_column
        self.where = where
        self.count: int | None = None
        self.text = ""  # the filter as typed, for messages and audit reasons

    def counted(self) -> int:
        """How many rows the filter selects now (for the prompt and the progress bar's total)."""
        from sqlalchemy import func, select

        with self.engine.connect() as connection:
            self.count = connection.execute(
                select(func.count()).select_from(self.id_column.table).where(self.where)).scalar_one()
        return self.count

    def batches(self, size: int) -> Iterator[list[int]]:
        from sqlalchemy import BigInteger, bindparam, select

        last = 0
        while True:
            with self.engine.connect() as connection:
                ids = connection.execute(
                    select(self.id_column).where(self.id_column > bindparam(None, last, type_=BigInteger()),
                                                 self.where)
                    .order_by(self.id_column).limit(size)).scalars().all()
            if ids:
                yield ids
            if len(ids) < size:
                return
            last = ids[-1]

    def close(self) -> None:
        pass

    def still_matching(self, apply: Apply) -> Apply:
        """``apply`` for the batch's rows that still match, locked; the others are ``skipped``."""
        from sqlalchemy import select

        from chatctl.storage.dialects import dialect
        from chatctl.storage.sql import ids_match

        def checked(connection: Connection, ids: list[int]) -> list[ItemResult]:
            query = select(self.id_column).where(ids_match(connection, self.id_column, ids), self.where)
            # Locked in id order (PostgreSQL); a SQLite writer already holds the database lock.
            locked = dialect(connection).locked(query.order_by(self.id_column), of=self.id_column.table)
            matching = set(connection.execute(locked).scalars())
            done = {item.id: item for item in apply(connection, [i for i in ids if i in matching])} \
                if matching else {}
            return [done.get(item) or ItemResult(item, "skipped", NO_LONGER_MATCHES) for item in ids]

        return checked
