"""RFC 4180 records: which physical lines of a CSV file make one record.

A quoted field may hold the delimiter, doubled quotes and line breaks. Python's csv module
(strict) parses a record once it is whole (formats.split_fields); this module only decides,
from bytes, where records end, reading quotes as that parser does: a quote opens a quoted
field only at the start of a field; inside one, `""` is a quote and a lone quote closes it;
a quote anywhere else is a plain character. Possessive regular expressions (linear): one match
runs over all the lines of a block that end outside quotes; only a line that opens a quoted
field, and the lines of its record, are looked at one by one.

A record whose quote is still open after MAX_RECORD_LINES physical lines or MAX_RECORD_BYTES,
or whose quote closes on a later line in a way csv refuses (a stray quote paired with the bad
one), is given up: its first line alone is the record (the loader rejects it: malformed
quoting) and reading resumes at the next physical line, so a bad quote never swallows the
rest of a file.
At the end of the bytes read, an open record is either not consumed (a growing file: it waits
for the next run) or given up the same way (`finish(take=True)`: the file is complete).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

MAX_RECORD_LINES = 100
MAX_RECORD_BYTES = 1024 * 1024

# Records in file order: their first physical line numbers (a range when each is one line)
# and their raw bytes (the lines of a multi-line record joined by b"\n", CRs kept).
Run = tuple[range | list[int], list[bytes]]


class QuoteScanner:
    """Whether a quoted field is open at the end of a line, from a field start or from inside
    a quoted field."""

    def __init__(self, delimiter: bytes) -> None:
        d = re.escape(delimiter)
        if len(delimiter) == 1:
            other, plain_start = b"[^" + d + b"]", b'[^"' + d + b"]"
        else:
            other = b"(?:(?!" + d + b")[\\s\\S])"
            plain_start = b'(?!")' + other
        quoted = b'[^"]*+(?:""[^"]*+)*+'  # inside a quoted field: up to its closing quote
        field = b'(?:"' + quoted + b'"' + other + b"*+|" + plain_start + other + b"*+)?+"
        fields = b"(?:" + field + d + b")*+"
        self._open_from_start = re.compile(fields + b'"' + quoted)
        self._open_from_inside = re.compile(
            quoted + b'(?:"' + other + b"*+" + d + fields + b'"' + quoted + b")?"
        )
        # Consecutive lines that each end outside quotes (read from a record start): a whole
        # block of them in one C-level match, so only a line that opens costs Python work.
        if len(delimiter) == 1:
            in_line, plain_in_line = b"[^" + d + b"\n]", b'[^"' + d + b"\n]"
        else:
            in_line = b"(?:(?!" + d + b")[^\n])"
            plain_in_line = b'(?!")' + in_line
        quoted_in_line = b'[^"\n]*+(?:""[^"\n]*+)*+'
        field_in_line = (
            b'(?:"' + quoted_in_line + b'"' + in_line + b"*+|"
            + plain_in_line + in_line + b"*+)?+"
        )  # fmt: skip
        closed_line = b"(?:" + field_in_line + d + b")*+" + field_in_line
        self._closed_lines = re.compile(b"(?:" + closed_line + b"\n)*+")
        # A whole record as csv (strict) parses it: a closing quote is followed by the
        # delimiter or the end; no line break outside quotes (lines are joined by b"\n").
        strict = b'(?:"' + quoted + b'"|(?!")(?:(?!' + d + b")[^\r\n])++)?+"
        self._well_formed = re.compile(strict + b"(?:" + d + strict + b")*+\r?")

    def closed_until(self, block: bytes, start: int) -> int:
        """Where the first line (from `start`, each ending with b"\\n") that opens a
        quoted field starts; len(block) when none does."""
        match = self._closed_lines.match(block, start)
        return match.end() if match else start

    def opens(self, line: bytes) -> bool:
        """A line read from the start of a record ends inside a quoted field."""
        return self._open_from_start.fullmatch(line) is not None

    def stays_open(self, line: bytes) -> bool:
        """A line read from inside a quoted field ends inside one (the same or a later)."""
        return self._open_from_inside.fullmatch(line) is not None

    def well_formed(self, record: bytes) -> bool:
        """A record of several lines parses: else its quote paired with a stray one later."""
        return self._well_formed.fullmatch(record) is not None


class RecordAssembler:
    """Physical lines in, records out; holds the lines of a record whose quote is open."""

    def __init__(self, scanner: QuoteScanner) -> None:
        self.scanner = scanner
        self.held: list[bytes] = []
        self.held_first = 0
        self._held_bytes = 0

    def feed(self, first: int, lines: list[bytes], may_quote: bool = True) -> Iterator[Run]:
        """Records of `lines` (numbered from `first`); `may_quote` False: none has a quote."""
        if not self.held and not may_quote:
            yield range(first, first + len(lines)), lines
            return
        work = [(first, lines)]  # a given-up record's lines go back in front of the rest
        while work:
            yield from self._scan(*work.pop(), work)

    def finish(self, take: bool) -> Iterator[Run]:
        """At the end of the bytes: an open record is given up if `take`, else left held."""
        while take and self.held:
            first, rest = self.held_first + 1, self.held[1:]
            yield self._give_up()
            yield from self.feed(first, rest)

    def _scan(
        self, first: int, lines: list[bytes], work: list[tuple[int, list[bytes]]]
    ) -> Iterator[Run]:
        block = b"\n".join(lines) + b"\n"
        offset = start = i = 0
        count = len(lines)
        while i < count:
            if not self.held:  # over the lines that end outside quotes, at C speed
                end = self.scanner.closed_until(block, offset)
                i += block.count(b"\n", offset, end)
                offset = end
                if i >= count:
                    break
                if start < i:
                    yield range(first + start, first + i), lines[start:i]
                self._hold(first + i, lines[i])
                offset += len(lines[i]) + 1
                i += 1
                continue
            line = lines[i]
            self.held.append(line)
            self._held_bytes += len(line) + 1
            offset += len(line) + 1
            i += 1
            closed = b'"' in line and not self.scanner.stays_open(line)
            if closed and self.scanner.well_formed(record := b"\n".join(self.held)):
                yield [self.held_first], [record]
                self.held = []
                start = i
            elif closed or self._too_long():
                work.append((first + i, lines[i:]))
                work.append((self.held_first + 1, self.held[1:]))
                yield self._give_up()
                return
        if not self.held and start < count:
            yield range(first + start, first + count), lines[start:]

    def _too_long(self) -> bool:
        return len(self.held) >= MAX_RECORD_LINES or self._held_bytes > MAX_RECORD_BYTES

    def _hold(self, number: int, line: bytes) -> None:
        self.held, self.held_first, self._held_bytes = [line], number, len(line) + 1

    def _give_up(self) -> Run:
        """The open record's first line as a record of its own (the caller reads the others
        again, from a field start)."""
        run: Run = (range(self.held_first, self.held_first + 1), self.held[:1])
        self.held = []
        return run


# --- for detection: records of sampled text -------------------------------------------------

_QUOTED = re.compile(r'"[^"]*"')


def sample_records(lines: list[str], delimiter: str) -> list[str]:
    """Sampled lines as the reader would join them into records with this delimiter."""
    encoded = [line.encode("utf-8", "surrogatepass") for line in lines]
    assembler = RecordAssembler(QuoteScanner(delimiter.encode("utf-8")))
    runs = [*assembler.feed(1, encoded), *assembler.finish(take=True)]
    return [raw.decode("utf-8", "surrogatepass") for _, raws in runs for raw in raws]


def outside_quotes(record: str) -> str:
    """The record without its quoted sections (delimiters inside quotes do not count)."""
    return _QUOTED.sub("", record) if '"' in record else record
