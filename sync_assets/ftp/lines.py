"""Bytes → lines: a file's complete lines in numbered chunks, and their decoding.

Pure (no server, no database): a `LineReader` reads a byte stream in large blocks and hands
out chunks of complete lines (a partial last line waits unless `take_tail`), skipping a
preamble and taking the header line; `decode_chunk` decodes a chunk's lines at once, line by
line only when some bytes are bad.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from sync_assets.ftp.formats import UnparsableFileError

BLOCK_BYTES = 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024


@dataclass
class ChunkLine:
    line_no: int
    raw: bytes
    text: str | None  # None: the bytes did not decode


@dataclass
class RawChunk:
    """Complete lines of a file as read (without newline), numbered from `first_line`."""

    first_line: int
    raws: list[bytes]
    # Computed ahead by FileLoader.prepare: (the fast path object that made it, the chunk's
    # COPY data or None if the chunk is not for the fast path); used only if that object is
    # still the loader's current fast path.
    prepared: tuple[object, bytes | None] | None = None


class LineReader:
    """Complete lines of a byte stream, in chunks, with line numbers and bytes consumed."""

    def __init__(
        self,
        stream: IO[bytes],
        take_tail: bool,
        first_line: int,
        preamble: int,
        want_header: bool,
    ) -> None:
        self.stream = stream
        self.take_tail = take_tail
        self.line_no = first_line
        self.preamble = preamble
        self.want_header = want_header
        self.header: str | None = None
        self.bytes_consumed = 0

    def chunks(self, encoding: str, size: int) -> Iterator[RawChunk]:
        """Chunks of up to `size` lines (without their newline), read in large blocks."""
        pending: list[bytes] = []
        first = self.line_no + 1
        for lines in self._line_blocks():
            for index, line in enumerate(lines):
                if not (self.preamble or self.want_header):
                    pending.extend(lines[index:] if index else lines)
                    break
                first += 1
                if self.preamble:
                    self.preamble -= 1
                elif line.strip():
                    self.header = _decode_header(line, encoding)
                    self.want_header = False
            while len(pending) >= size:
                yield RawChunk(first, pending[:size])
                first += size
                del pending[:size]
        if pending:
            yield RawChunk(first, pending)

    def _line_blocks(self) -> Iterator[list[bytes]]:
        """Lists of complete lines; counts lines and bytes consumed as it goes."""
        rest = b""
        while block := self.stream.read(BLOCK_BYTES):
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
            self.bytes_consumed += len(complete)
            yield lines
        if rest and self.take_tail:
            self.line_no += 1
            self.bytes_consumed += len(rest)
            yield [rest]
        # else: a partial last line waits for the next run


def _decode_header(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        raise UnparsableFileError(f"the header line is not valid {encoding}") from None


def decode_chunk(raws: list[bytes], first: int, encoding: str) -> list[ChunkLine]:
    """Decode lines (without newline) at once, line by line only when some bytes are bad."""
    try:
        texts: list[str | None] = list(b"\n".join(raws).decode(encoding).split("\n"))
    except UnicodeDecodeError:
        texts = [_decode_or_none(raw, encoding) for raw in raws]
    return [
        ChunkLine(first + i, raw, None if text is None else text.rstrip("\r\n"))
        for i, (raw, text) in enumerate(zip(raws, texts, strict=True))
    ]


def _decode_or_none(raw: bytes, encoding: str) -> str | None:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return None
