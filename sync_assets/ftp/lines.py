"""Bytes → records: a file's complete records in numbered chunks, and their decoding.

Pure (no server, no database): a `LineReader` reads a byte stream in large blocks and hands
out chunks of complete records (a partial last line waits unless `take_tail`), skipping a
preamble and taking the header record; `decode_chunk` decodes a chunk's records at once,
record by record only when some bytes are bad or a record holds a line break.

A record is one physical line, except in CSV where a quoted field may hold line breaks
(ftp/quoting.py): such a record is its lines joined by b"\n" and is numbered by its first
line. UTF-16 files are read as UTF-8 (ftp/transcode.py; `reader_format`), with byte offsets
counted in the file's own bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from sync_assets.ftp.formats import FileFormat, UnparsableFileError
from sync_assets.ftp.quoting import QuoteScanner, RecordAssembler, Run
from sync_assets.ftp.transcode import UTF16_BOMS, is_utf16, utf8_blocks, utf16_size

BLOCK_BYTES = 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class ChunkLine:
    line_no: int
    raw: bytes
    text: str | None  # None: the bytes did not decode


@dataclass
class RawChunk:
    """Complete records of a file as read (without newline), numbered from `first_line`."""

    first_line: int
    raws: list[bytes]
    # Computed ahead by FileLoader.prepare: (the fast path object that made it, the chunk's
    # COPY data or None if the chunk is not for the fast path); used only if that object is
    # still the loader's current fast path.
    prepared: tuple[object, bytes | None] | None = None
    # Each record's first line number, when they are not first_line, first_line + 1, ...
    # (a record before has several lines). Such a chunk holds a quote: never on the fast path.
    numbers: list[int] | None = None


def reader_format(fmt: FileFormat) -> FileFormat:
    """The format of the records a LineReader hands on for a file read as `fmt`: a UTF-16
    file's come out as UTF-8 (so the loader and the COPY fast path see UTF-8)."""
    return dataclasses.replace(fmt, encoding="utf-8") if is_utf16(fmt.encoding) else fmt


class LineReader:
    """Complete records of a byte stream, in chunks, with line numbers and bytes consumed.

    `fmt` (the file's format; None: plain lines of an ASCII-compatible encoding) says whether
    the stream is UTF-16 (transcoded) and whether quoted line breaks join lines (CSV).
    `line_no` and `bytes_consumed` count the physical lines and file bytes consumed: a record
    still open at the end (a growing file) is not consumed.
    """

    def __init__(
        self,
        stream: IO[bytes],
        take_tail: bool,
        first_line: int,
        preamble: int,
        want_header: bool,
        fmt: FileFormat | None = None,
    ) -> None:
        self.stream = stream
        self.take_tail = take_tail
        self.line_no = first_line
        self.preamble = preamble
        self.want_header = want_header
        self.header: str | None = None
        self._read = 0  # file bytes of the lines counted in line_no
        self._bom = 0  # a UTF-16 BOM dropped at the start: consumed with the first line
        self._utf16 = fmt.encoding if fmt and is_utf16(fmt.encoding) else None
        self._measure = utf16_size if self._utf16 else len
        self._records = _assembler(fmt) if fmt else None

    @property
    def bytes_consumed(self) -> int:
        return self._read + (self._bom if self.line_no else 0)

    def chunks(self, encoding: str, size: int) -> Iterator[RawChunk]:
        """Chunks of up to `size` records (without their newline), read in large blocks;
        `encoding`: of the records handed on (`reader_format`), for the header."""
        pending = _Pending()
        for numbers, raws in self._record_runs():
            if self.want_header:
                numbers, raws = self._take_header(numbers, raws, encoding)
            pending.add(numbers, raws)
            while len(pending.raws) >= size:
                yield pending.take(size)
        if pending.raws:
            yield pending.take(len(pending.raws))

    def _take_header(self, numbers: range | list[int], raws: list[bytes], encoding: str) -> Run:
        """The first non-blank record is the header; the records after it are data."""
        for index, raw in enumerate(raws):
            if raw.strip():
                self.header = _decode_header(raw, encoding)
                self.want_header = False
                return numbers[index + 1 :], raws[index + 1 :]
        return range(0), []

    def _record_runs(self) -> Iterator[Run]:
        """Records after the preamble (physical lines), in runs."""
        for lines, may_quote in self._line_blocks():
            first = self.line_no - len(lines) + 1
            if self.preamble:
                skip = min(self.preamble, len(lines))
                self.preamble -= skip
                lines, first = lines[skip:], first + skip
            if not lines:
                continue
            if self._records is None:
                yield range(first, first + len(lines)), lines
            else:
                yield from self._records.feed(first, lines, may_quote)
        if self._records is not None:
            yield from self._records.finish(self.take_tail)
            held = self._records.held  # open at the end of a growing file: next run
            if held:
                self.line_no -= len(held)
                self._read -= self._measure(b"\n".join(held) + b"\n")

    def _line_blocks(self) -> Iterator[tuple[list[bytes], bool]]:
        """Lists of complete lines (and whether one may hold a quote); counts lines and
        bytes read as it goes."""
        rest = b""
        for block in self._blocks():
            rest += block
            cut = rest.rfind(b"\n")
            if cut < 0:
                if len(rest) > MAX_LINE_BYTES:  # memory stays bounded, even for odd files
                    raise UnparsableFileError(f"a line is longer than {MAX_LINE_BYTES} bytes")
                continue
            complete, rest = rest[: cut + 1], rest[cut + 1 :]
            lines = complete.split(b"\n")
            lines.pop()  # the empty string after the last newline
            self.line_no += len(lines)
            self._read += self._measure(complete)
            yield lines, b'"' in complete
        if rest and self.take_tail:
            self.line_no += 1
            self._read += self._measure(rest)
            yield [rest], b'"' in rest
        # else: a partial last line waits for the next run

    def _blocks(self) -> Iterator[bytes]:
        """The stream in blocks; a UTF-16 stream as UTF-8, without its BOM."""
        if self._utf16 is None:
            while block := self.stream.read(BLOCK_BYTES):
                yield block
            return
        head = b""
        if self.line_no == 0:  # the start of the file
            head = self.stream.read(2)
            if head == UTF16_BOMS[self._utf16]:
                head, self._bom = b"", 2
        yield from utf8_blocks(self.stream, self._utf16, BLOCK_BYTES, head)


class _Pending:
    """Records read and not yet handed out, with their line numbers (a range while they are
    consecutive, which is the common case and costs nothing per line)."""

    def __init__(self) -> None:
        self.raws: list[bytes] = []
        self.numbers: range | list[int] = range(0)

    def add(self, numbers: range | list[int], raws: list[bytes]) -> None:
        if not raws:
            return
        mine = self.numbers
        if isinstance(mine, list):
            mine.extend(numbers)
        elif isinstance(numbers, range) and (not mine or mine.stop == numbers.start):
            self.numbers = range(mine.start if mine else numbers.start, numbers.stop)
        else:
            self.numbers = [*mine, *numbers]
        self.raws.extend(raws)

    def take(self, size: int) -> RawChunk:
        raws = self.raws[:size]
        del self.raws[:size]
        numbers, self.numbers = _compact(self.numbers[:size]), _compact(self.numbers[size:])
        listed = None if isinstance(numbers, range) else numbers
        return RawChunk(numbers[0], raws, numbers=listed)


def _compact(numbers: range | list[int]) -> range | list[int]:
    """A range when the (increasing) numbers are consecutive."""
    if isinstance(numbers, range):
        return numbers
    if not numbers:
        return range(0)
    if numbers[-1] - numbers[0] == len(numbers) - 1:
        return range(numbers[0], numbers[-1] + 1)
    return numbers


def _assembler(fmt: FileFormat) -> RecordAssembler | None:
    """Joins the lines of quoted line breaks (CSV), or None: each line is a record."""
    if not fmt.log_format.quoted_line_breaks:
        return None
    encoding = reader_format(fmt).encoding
    try:
        delimiter = fmt.delimiter.encode("utf-8" if encoding == "utf-8-sig" else encoding)
    except (UnicodeEncodeError, LookupError):
        return None
    if not delimiter or b'"' in delimiter or b"\n" in delimiter:
        return None
    return RecordAssembler(QuoteScanner(delimiter))


def _decode_header(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        raise UnparsableFileError(f"the header line is not valid {encoding}") from None


def decode_chunk(
    raws: list[bytes], first: int, encoding: str, numbers: list[int] | None = None
) -> list[ChunkLine]:
    """Decode records (without newline) at once, one by one only when some bytes are bad or
    a record holds a line break; numbered `numbers` if given, else from `first`."""
    try:
        texts: list[str | None] = list(b"\n".join(raws).decode(encoding).split("\n"))
        if len(texts) != len(raws):  # quoted line breaks
            texts = [_decode_or_none(raw, encoding) for raw in raws]
    except UnicodeDecodeError:
        texts = [_decode_or_none(raw, encoding) for raw in raws]
    line_nos = range(first, first + len(raws)) if numbers is None else numbers
    return [
        ChunkLine(line_no, raw, None if text is None else text.rstrip("\r\n"))
        for line_no, raw, text in zip(line_nos, raws, texts, strict=True)
    ]


def _decode_or_none(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None
