"""Bulk actions: ids from argv or a stream, validated before anything is
written, applied in set-based batches of one transaction each, with one
result per item (SPEC 2.3).

Ids are spooled to a temporary file as 8-byte integers while they are
validated, so a bad id on line 900,000 is refused before the first batch and
memory stays flat on any amount of input.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatctl.errors import UsageError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

RESULTS = ("changed", "skipped", "not_found", "refused")
MAX_ID = 2**63 - 1
_PACK = struct.Struct("<q")
DEFAULT_BATCH_SIZE = 2000


@dataclass
class ItemResult:
    id: Any
    result: str
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "result": self.result, "reason": self.reason}


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RESULTS, 0))

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
        return ", ".join(f"{n} {key.replace('_', ' ')}" for key, n in self.counts.items())


def parse_id(text: str, where: str = "") -> int:
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
    if value <= 0 or value > MAX_ID:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise UsageError(f"bad id {shown!r}{where}: ids are positive whole numbers")
    return value


class IdSpool:
    """Ids, validated up front, replayed in batches."""

    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        self.count = 0

    @classmethod
    def from_words(cls, words: Iterable[str]) -> IdSpool:
        spool = cls()
        for word in words:
            spool._append(parse_id(word.strip()))
        return spool

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "standard input") -> IdSpool:
        """One id per line; blank lines and ``#`` comments (whole-line or trailing) ignored."""
        spool = cls()
        for number, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                spool._append(parse_id(text, f" on line {number} of {source}"))
        return spool

    def _append(self, value: int) -> None:
        self._file.write(_PACK.pack(value))
        self.count += 1

    def batches(self, size: int) -> Iterator[list[int]]:
        self._file.seek(0)
        chunk = _PACK.size * size
        while True:
            data = self._file.read(chunk)
            if not data:
                return
            yield [value for (value,) in _PACK.iter_unpack(data)]

    def close(self) -> None:
        self._file.close()


def run_batches(
    engine: Engine,
    batches: Iterable[list[int]],
    apply: Callable[[Connection, list[int]], list[ItemResult]],
    on_results: Callable[[list[ItemResult]], None],
    *,
    dry_run: bool = False,
) -> None:
    """Apply each batch in its own transaction, committing as it goes.

    Ctrl-C between or inside a batch leaves every finished batch committed with
    its audit rows and rolls back the one in flight; the KeyboardInterrupt
    propagates so the CLI reports what was done and exits 130.

    A dry run executes the very same statements and rolls each batch back,
    which is what makes its report exact.
    """
    for batch in batches:
        unique = list(dict.fromkeys(batch))
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                results = apply(connection, unique)
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        on_results(results)


def ids_match(connection: Connection, column: Any, ids: Sequence[int]):
    """``column IN ids`` for a batch, as a bound parameter.

    On PostgreSQL the ids travel as one comma-separated text parameter turned
    into an array (``= ANY``): far cheaper to build and send than thousands
    of placeholders or a driver-dumped list.  SQLite has no round trip to
    save and takes the plain ``IN`` list.
    """
    from sqlalchemy import BigInteger, Text, any_, bindparam, cast, func, literal

    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        text = bindparam(None, ",".join(map(str, ids)), type_=Text())
        return column == any_(cast(func.string_to_array(text, cast(literal(","), Text)), ARRAY(BigInteger())))
    return column.in_(list(ids))
