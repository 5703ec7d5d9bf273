"""Ids from the command line or a stream (``ID...|-``), validated before
anything is written.

Ids are spooled to a temporary file as 8-byte integers while they are
validated, so a bad id on line 900,000 is refused before the first batch and
memory stays flat on any amount of input.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterable, Iterator

from chatctl.errors import UsageError

MAX_ID = 2**63 - 1
_PACK = struct.Struct("<q")
_CHUNK = 8192  # ids packed per write


def parse_id(text: str, where: str = "") -> int:
    value = _id_or_zero(text)
    if not value:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise UsageError(f"bad id {shown!r}{where}: ids are positive whole numbers")
    return value


def _id_or_zero(text: str) -> int:
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
    return value if value <= MAX_ID else 0


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
    def from_ids(cls, ids: Iterable[int]) -> IdSpool:
        """Ids the desk itself chose (already valid), e.g. an agent's open chats."""
        spool = cls()
        for value in ids:
            spool._append(value)
        return spool

    @classmethod
    def from_lines(cls, lines: Iterable[str], source: str = "standard input") -> IdSpool:
        """One id per line; blank lines and ``#`` comments (whole-line or trailing) ignored."""
        spool = cls()
        pending: list[int] = []
        for number, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                # The message is only spelled out for a bad id: a stream of a million ids pays for none.
                pending.append(_id_or_zero(text) or parse_id(text, f" on line {number} of {source}"))
                if len(pending) == _CHUNK:
                    spool._extend(pending)
                    pending = []
        spool._extend(pending)
        return spool

    def _append(self, value: int) -> None:
        self._file.write(_PACK.pack(value))
        self.count += 1

    def _extend(self, values: list[int]) -> None:
        self._file.write(struct.pack(f"<{len(values)}q", *values))
        self.count += len(values)

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
