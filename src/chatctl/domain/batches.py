"""The batch runner: a bulk action applied in set-based batches of one
transaction each, with one result per item and a summary.

The ids come from ``chatctl.parsing.ids`` (argv or a stream, validated before
anything is written) or from a selection replayed by keyset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from chatctl.interruption import stop_on_signals
from chatctl.storage.retry import retry_serialization
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
