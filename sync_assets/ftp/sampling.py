"""What detection looks at: the fields that hold values, past an empty stretch, bounded.

A machine's export may start with hours of empty fields (a night without production): its
first lines then say nothing about a column's decimal separator or type. Detection keeps up to
`KEPT_VALUES` values per column, skipping empty fields and NULL sentinels, and reads on past
the sampled head (at most `LOOK_AHEAD_BYTES` more) while some column has fewer than
`SETTLED_VALUES`. The decimal separator (formats.py) and the type of each new column
(loader.py) are decided from these values, not from the first lines.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO

SETTLED_VALUES = 20
KEPT_VALUES = 200
LOOK_AHEAD_BYTES = 8 * 1024 * 1024
READ_BLOCK = 1024 * 1024
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d+\.\d+$")


class ValueSample:
    """Up to KEPT_VALUES non-null values per field position of a delimited file's data lines."""

    def __init__(self, width: int, nulls: Iterable[str], delimiter: str) -> None:
        self.width = width
        self.nulls = frozenset(nulls)
        self.delimiter = delimiter
        self.values: list[list[str]] = [[] for _ in range(width)]
        self._open = list(range(width))  # positions still taking values

    def add(self, fields: Sequence[str]) -> None:
        """One data line's fields; a line of another width (a reject later) is skipped."""
        if len(fields) != self.width:
            return
        nulls, full = self.nulls, False
        for index in self._open:
            value = fields[index]
            if value not in nulls and value.strip():
                kept = self.values[index]
                kept.append(value)
                full = full or len(kept) >= KEPT_VALUES
        if full:
            self._open = [i for i in self._open if len(self.values[i]) < KEPT_VALUES]

    def add_text(self, text: str, split: Callable[[str], list[str]]) -> None:
        """Values of the columns not settled yet from a block of whole lines. Past the head
        most lines hold nothing new (the empty stretch): one regex per such column finds the
        lines of the right width where it is not empty, so Python sees only those."""
        if '"' in text:  # quoted fields: line by line
            for line in text.split("\n"):
                self.add(split(line.rstrip("\r")))
            return
        nulls, lines = self.nulls, "\n" + text
        for index in self._open:
            kept = self.values[index]
            if len(kept) >= SETTLED_VALUES:
                continue
            for match in self._field_pattern(index).finditer(lines):
                value = match.group(1)
                if value not in nulls and value.strip():
                    kept.append(value)
                    if len(kept) >= KEPT_VALUES:
                        break

    def _field_pattern(self, index: int) -> re.Pattern[str]:
        """A whole line of `width` fields whose `index`-th field is not empty (group 1), after
        its newline: a literal first character lets the regex engine jump from newline to
        newline; possessive quantifiers never backtrack inside a field."""
        d = re.escape(self.delimiter)
        field = rf"[^{d}\r\n]"
        before, after = index, self.width - 1 - index
        return re.compile(
            rf"\n(?:{field}*+{d}){{{before}}}({field}++)(?:{d}{field}*+){{{after}}}\r?$", re.M
        )

    @property
    def settled(self) -> bool:
        """Every column has SETTLED_VALUES values: enough to decide its type."""
        return all(len(kept) >= SETTLED_VALUES for kept in self.values)

    def decimal(self) -> str | None:
        """`,` or `.` by the values written with one; None when no value shows either."""
        comma = point = 0
        for kept in self.values:
            for value in kept:
                value = value.strip()
                comma += bool(_DECIMAL_COMMA.match(value))
                point += bool(_DECIMAL_POINT.match(value))
        if comma == point == 0:
            return None
        return "," if comma > point else "."

    def by_name(self, names: Sequence[str]) -> dict[str, list[str]]:
        return {name: kept for name, kept in zip(names, self.values, strict=False) if kept}


def fill(
    sample: ValueSample,
    lines: Iterable[str],
    further: Iterator[str],
    split: Callable[[str], list[str]],
) -> None:
    """All of `lines` (the head), then `further` texts only while the sample is not settled."""
    for line in lines:
        sample.add(split(line))
    while not sample.settled:
        text = next(further, None)
        if text is None:
            return
        sample.add_text(text, split)


def further_texts(head: bytes, blocks: Iterable[bytes], encoding: str) -> Iterator[str]:
    """Whole lines after the head's last complete line, one text per block: the head's cut
    line continued, then `blocks`, decoded incrementally (a character cut between two blocks
    is whole). What follows the last newline is left out: it may be a line cut by the bound
    (and a file's last line without newline waits for the loader too)."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    text = decoder.decode(head)
    pending = text[text.rfind("\n") + 1 :]
    for block in blocks:
        text = pending + decoder.decode(block)
        cut = text.rfind("\n") + 1
        pending = text[cut:]
        if cut:
            yield text[: cut - 1]


def blocks(stream: IO[bytes], limit: int = LOOK_AHEAD_BYTES) -> Iterator[bytes]:
    """Blocks read from `stream` (lazily, only as far as they are consumed), `limit` bytes
    at most."""
    taken = 0
    while taken < limit:
        block = stream.read(min(READ_BLOCK, limit - taken))
        if not block:
            return
        taken += len(block)
        yield block
