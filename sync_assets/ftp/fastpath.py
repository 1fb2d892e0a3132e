"""The COPY fast path: a clean CSV chunk goes straight into the typed table by COPY.

PostgreSQL parses and types the values; Python only rewrites bytes, with whole-chunk C
operations (numpy, `bytes.join`, `bytes %`), no loop per line in the common case:
decimal commas → points in the double columns, each line's number in front of it, and NULL
sentinels → empty fields (that case line by line). The provenance constant per file is not
sent per line: the target's column defaults read it from transaction-local settings set
once per file before its first COPY (see store.SETTINGS).

A chunk with quotes, blank lines, NULs or a form only PostgreSQL reads is not attempted, and
one whose COPY PostgreSQL refuses is rolled back (savepoint): the caller then loads it line by
line, so the rows are the same either way. Costs and their history: docs/performance.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psycopg
from psycopg import sql

from sync_assets.core.failpoint import failpoint
from sync_assets.core.pg import ident
from sync_assets.ftp import store
from sync_assets.ftp.formats import FileFormat
from sync_assets.ftp.lines import RawChunk
from sync_assets.ftp.store import FileIdentity
from sync_assets.ftp.types import DOUBLE

# COPY data is handed to psycopg in pieces of this size (a failpoint between pieces).
WRITE_BYTES = 1024 * 1024

# Python codec names (as codecs.lookup spells them) → PostgreSQL client encodings.
PG_ENCODINGS = {
    "utf-8": "UTF8",
    "utf-8-sig": "UTF8",
    "cp1252": "WIN1252",
    "latin-1": "LATIN1",
    "iso8859-1": "LATIN1",
    "iso8859-15": "LATIN9",
}


class _FastPathMismatchError(RuntimeError):
    """COPY took a different number of rows than lines given: redo the chunk line by line."""


class ChunkRewriter:
    """The pure half of the fast path: a chunk's bytes → its COPY csv data, or None."""

    def __init__(
        self,
        fmt: FileFormat,
        nulls: Iterable[str],
        column_types: Mapping[str, str],
        pg_encoding: str,
    ) -> None:
        self.delimiter = fmt.delimiter.encode("ascii")
        self.width = len(fmt.columns)
        # The sentinels as bytes of the file's encoding ("utf-8-sig" would prefix a BOM to
        # each, and no field would ever match: NaN loaded as NaN on this path only).
        encoding = "utf-8" if fmt.encoding == "utf-8-sig" else fmt.encoding
        self.null_bytes = frozenset(v.encode(encoding) for v in nulls if v)
        # Cheap pre-filter of the fields that may be a sentinel: their length and first byte.
        np = _numpy()
        self.null_longest = max(map(len, self.null_bytes), default=0)
        self.null_first = np.zeros(256, dtype=bool)
        self.null_first[[v[0] for v in self.null_bytes]] = True
        types = [column_types.get(column) for column in fmt.columns]
        doubles = [i for i, t in enumerate(types) if t == DOUBLE]
        # With a comma delimiter no field can hold a comma: nothing to rewrite.
        self.double_indexes = doubles if fmt.decimal == "," and self.delimiter != b"," else []
        self.double_mask = np.zeros(self.width, dtype=bool)
        self.double_mask[self.double_indexes] = True
        # PostgreSQL reads a few forms the line path refuses (`now`, `epoch`, `Infinity`,
        # month or zone names): fields of the double and timestamp columns must start (a
        # timestamp) and end (both) like a value the line path reads, else the chunk goes
        # line by line, so that both paths load the same rows (fuzz-tested).
        self.time_indexes = [i for i, t in enumerate(types) if t and t.startswith("timestamp")]
        self.checked_indexes = [*self.time_indexes, *doubles]
        # Each line is its number, the delimiter and the rewritten line (`%` escaped).
        self.line_format = b"%d" + self.delimiter.replace(b"%", b"%%") + b"%b\n"
        self.pg_encoding = pg_encoding
        self.columns = fmt.columns
        self.delimiter_text = fmt.delimiter
        # COPY's text format costs PostgreSQL less than csv; it reads a backslash as an
        # escape (doubled below) and refuses a few delimiters, which keep csv.
        self.text_format = fmt.delimiter not in TEXT_FORBIDDEN_DELIMITERS

    @staticmethod
    def build(
        fmt: FileFormat, nulls: Iterable[str], column_types: Mapping[str, str]
    ) -> ChunkRewriter | None:
        """The rewriter for this format, or None when the format rules the fast path out."""
        pg_encoding = PG_ENCODINGS.get(fmt.encoding)
        if pg_encoding is None or len(fmt.delimiter) != 1 or fmt.delimiter in '"\r\n\\':
            return None
        if not fmt.delimiter.isascii() or len(fmt.columns) < 2:
            return None
        nulls = frozenset(nulls)
        if "" not in nulls:  # COPY's NULL '' would make empty fields NULL: not wanted
            return None
        return ChunkRewriter(fmt, nulls, column_types, pg_encoding)

    # --- bytes (pure) -------------------------------------------------------------------

    def copy_data(self, chunk: RawChunk) -> bytes | None:
        """The chunk's COPY data, or None when it is not for the fast path (quotes, NULs, a
        stray CR, or a line with the wrong field count, which includes blank lines)."""
        raws: list[bytes] | None = chunk.raws
        data = b"\n".join(chunk.raws)
        if b"\r" in data:  # CRLF files: drop the CRs (a stray CR elsewhere: no fast path)
            data = data.replace(b"\r\n", b"\n").removesuffix(b"\r")
            raws = None  # the lines changed: taken from `data` below
        if b'"' in data or b"\x00" in data or b"\r" in data:
            return None  # the line-by-line path decides
        rewritten = self._rewrite(data + b"\n", raws)
        if rewritten is None:
            return None
        lines, commas_to_points = rewritten
        out = self._numbered(lines, chunk.first_line)
        if commas_to_points:  # every comma is in a double column (the prefixes hold none)
            out = out.replace(b",", b".")
        if self.text_format and b"\\" in out:
            out = out.replace(b"\\", b"\\\\")  # a backslash is itself, not an escape
        return out

    def _numbered(self, lines: list[bytes], first: int) -> bytes:
        """COPY lines: each line's number (first, first+1, ...), then its rewritten fields.

        The numbers are sent rather than drawn from a sequence by PostgreSQL (a volatile
        default per row turns off COPY's batched inserts). Each number's prefix is formatted
        once per process and reused by every file (`_line_heads`), so a chunk is one
        C-level join; beyond the cached numbers, one `bytes %` over the chunk formats them.
        """
        count = len(lines)
        heads = _line_heads(self.delimiter, first + count)
        if heads is not None:
            parts: list[bytes] = [b""] * (2 * count + 1)
            parts[0:-1:2] = heads[first : first + count]
            parts[1::2] = lines
            parts[0] = parts[0][1:]  # no newline before the first line
            parts[-1] = b"\n"
            return b"".join(parts)
        values: list[int | bytes] = [0] * (2 * count)
        values[0::2] = range(first, first + count)
        values[1::2] = lines
        return (self.line_format * count) % tuple(values)

    def _rewrite(self, data: bytes, raws: list[bytes] | None) -> tuple[list[bytes], bool] | None:
        """The chunk's lines, and whether every comma of them becomes a point (decimal commas
        in the double columns); None if some line has the wrong field count. `data` is the
        lines, each ending with a newline; `raws` the same lines as a list, if at hand.

        Whole-chunk array operations find where each line's fields are (no Python work per
        field); chunks with NULL sentinels (`-`, `NaN`, ...) go line by line.
        """
        np = _numpy()
        codes = np.frombuffer(data, dtype=np.uint8)
        newlines = codes == NEWLINE
        count, width = int(np.count_nonzero(newlines)), self.width
        # Field ends in order: each line's delimiters, then its newline. Every line has
        # `width` fields iff there are count * width ends and every width-th is a newline.
        stops = np.flatnonzero(newlines | (codes == self.delimiter[0]))
        if len(stops) != count * width or not newlines[stops[width - 1 :: width]].all():
            return None
        starts = np.empty_like(stops)
        starts[0], starts[1:] = 0, stops[:-1] + 1
        if self._has_null_sentinel(data, codes, starts, stops):
            lines = self._rewrite_lines(data.split(b"\n")[:-1])
            return None if lines is None else (lines, False)
        if self._postgres_only_forms(codes, starts, stops):
            return None
        whole = False
        if self.double_indexes:
            rewritten = self._points(data, codes, stops)
            if rewritten is None:
                whole = True  # every comma is a decimal comma: replaced in the output
            elif rewritten is not data:
                data, raws = rewritten, None
        if raws is None or len(raws) != count:
            raws = data.split(b"\n")
            raws.pop()  # the empty string after the last newline
        return raws, whole

    def _postgres_only_forms(self, codes: Any, starts: Any, stops: Any) -> bool:
        """Whether a non-empty field of a timestamp column does not start with a digit, or
        one of a timestamp or double column does not end like a value (one gather per
        column, no work per field in Python). `starts`/`stops`: every field, in order."""
        width = self.width
        for index in self.checked_indexes:
            first, end = starts[index::width], stops[index::width]
            filled = end > first
            if not _VALUE_END[codes[end[filled] - 1]].all():
                return True
            if index in self.time_indexes and not _DIGIT[codes[first[filled]]].all():
                return True
        return False

    def _has_null_sentinel(self, data: bytes, codes: Any, starts: Any, stops: Any) -> bool:
        """Whether some field is exactly a NULL sentinel (other than the empty string, which
        COPY's `NULL ''` already makes NULL). Candidates by length and first byte first."""
        if not self.null_bytes:
            return False
        np = _numpy()
        # 1 <= length <= longest, in one unsigned comparison (length - 1 wraps around at 0).
        short = np.flatnonzero((stops - starts - 1).view(np.uint64) < self.null_longest)
        candidates = short[self.null_first[codes[starts[short]]]]
        nulls = self.null_bytes
        return any(
            data[a:b] in nulls
            for a, b in zip(starts[candidates].tolist(), stops[candidates].tolist(), strict=True)
        )

    def _points(self, data: bytes, codes: Any, stops: Any) -> bytes | None:
        """Decimal commas → points, only in the double columns: a comma's field is the
        number of field ends before it, modulo the width (every line has `width` fields).
        None when every comma is in a double column (the caller replaces them all at once,
        the common case); `data` itself when there is nothing to replace."""
        np = _numpy()
        commas = np.flatnonzero(codes == COMMA)
        if not len(commas):
            return data
        wanted = self.double_mask[np.searchsorted(stops, commas) % self.width]
        if wanted.all():
            return None
        if not wanted.any():
            return data
        buffer = bytearray(data)
        np.frombuffer(buffer, dtype=np.uint8)[commas[wanted]] = ord(".")
        return bytes(buffer)

    def _rewrite_lines(self, raws: list[bytes]) -> list[bytes] | None:
        """Line by line (NULL sentinels present): sentinels → empty, decimal commas → points."""
        delim, width = self.delimiter, self.width
        doubles, nulls = self.double_indexes, self.null_bytes
        out = []
        for line in raws:
            fields = line.split(delim)
            if len(fields) != width:
                return None
            for index in doubles:
                fields[index] = fields[index].replace(b",", b".")
            if not nulls.isdisjoint(fields):
                fields = [b"" if f in nulls else f for f in fields]
            if any(_postgres_only(fields[i], i in self.time_indexes) for i in self.checked_indexes):
                return None  # see _postgres_only_forms
            out.append(delim.join(fields))
        return out


class FastCopy:
    """The fast path of one file for one set of column types (rebuilt when they change):
    COPY csv of clean chunks into `schema.table`, the file's provenance in settings."""

    def __init__(
        self,
        cur: psycopg.Cursor,
        schema: str,
        table: str,
        rewriter: ChunkRewriter,
        identity: FileIdentity,
    ) -> None:
        self.cur = cur
        self.rewriter = rewriter
        self._provenance_set = False
        self.settings = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL("set_config({}, {}, true)").format(
                    sql.Literal(store.SETTINGS[column][0]), sql.Literal(value)
                )
                for column, value in identity.provenance().items()
            )
        )
        self.statement = sql.SQL(
            "COPY {} ({}) FROM STDIN WITH (FORMAT {}, DELIMITER {}, NULL '', ENCODING {})"
        ).format(
            ident(schema, table),
            sql.SQL(", ").join(ident(c) for c in ["_line_number", *rewriter.columns]),
            sql.SQL("text" if rewriter.text_format else "csv"),
            sql.Literal(rewriter.delimiter_text),
            sql.Literal(rewriter.pg_encoding),
        )

    @staticmethod
    def build(
        cur: psycopg.Cursor,
        schema: str,
        table: str,
        fmt: FileFormat,
        nulls: Iterable[str],
        column_types: Mapping[str, str],
        identity: FileIdentity,
    ) -> FastCopy | None:
        """The fast path for this file, or None when its format rules it out."""
        rewriter = ChunkRewriter.build(fmt, nulls, column_types)
        return None if rewriter is None else FastCopy(cur, schema, table, rewriter, identity)

    def copy_data(self, chunk: RawChunk) -> bytes | None:
        return self.rewriter.copy_data(chunk)

    def load(self, chunk: RawChunk, ahead: Callable[[], None] | None = None) -> int | None:
        """COPY the chunk in a savepoint: the rows loaded, or None when the chunk is not for
        the fast path or PostgreSQL refused it (nothing of it written).

        `ahead` (the caller's next chunk) runs once all of this chunk's data is sent, while
        PostgreSQL is still absorbing it."""
        prepared, chunk.prepared = chunk.prepared, None
        data = prepared[1] if prepared and prepared[0] is self else self.copy_data(chunk)
        if data is None:
            return None
        lines = len(chunk.raws)  # CRLF → LF keeps the count
        cur = self.cur
        if not self._provenance_set:
            # The file's provenance for the columns' defaults: transaction-local, set once
            # before this fast path's first COPY and outside the chunks' savepoints, so that a
            # chunk rolled back to its savepoint does not take them with it (one statement
            # per file instead of one per chunk). This object lives in one transaction.
            cur.execute(self.settings)
            self._provenance_set = True
        try:
            with cur.connection.transaction():  # a savepoint inside the file's transaction
                with cur.copy(self.statement) as copy:
                    view = memoryview(data)
                    for start in range(0, len(data), WRITE_BYTES):
                        copy.write(view[start : start + WRITE_BYTES])
                        failpoint("mid_copy")
                    if ahead is not None:  # next chunk, while PostgreSQL absorbs this one
                        ahead()
                if cur.rowcount != lines:
                    raise _FastPathMismatchError(f"{cur.rowcount} rows for {lines} lines")
        except (psycopg.DataError, _FastPathMismatchError):
            return None  # a value, a field count or a byte PostgreSQL refuses
        return lines


NEWLINE = ord("\n")
# Delimiters COPY's text format refuses (a backslash before them would be an escape).
TEXT_FORBIDDEN_DELIMITERS = "\\.abcdefghijklmnopqrstuvwxyz0123456789"
COMMA = ord(",")
# Line numbers whose COPY prefix (b"\n<number><delimiter>") is kept, per delimiter: enough for
# typical log files (memory: docs/performance.md).
CACHED_LINE_NUMBERS = 100_000
_heads: dict[bytes, list[bytes]] = {}
_heads_lock = threading.Lock()


def _line_heads(delimiter: bytes, end: int) -> list[bytes] | None:
    """The cached prefixes of line numbers 0..CACHED_LINE_NUMBERS, if `end` is within them."""
    if end > CACHED_LINE_NUMBERS:
        return None
    heads = _heads.get(delimiter)
    if heads is None:
        with _heads_lock:
            heads = _heads.get(delimiter)
            if heads is None:
                head = b"\n%d" + delimiter.replace(b"%", b"%%")
                heads = _heads[delimiter] = list(map(head.__mod__, range(CACHED_LINE_NUMBERS)))
    return heads


_np: Any = None
_DIGITS = b"0123456789"
_VALUE_ENDS = _DIGITS + b". Zz"  # 5, 5., a trailing space, 2026-11-28T10:00Z
_DIGIT: Any = None
_VALUE_END: Any = None


def _postgres_only(field: bytes, timestamp: bool) -> bool:
    """The per-line form of ChunkRewriter._postgres_only_forms for one field."""
    if not field:
        return False
    return field[-1] not in _VALUE_ENDS or (timestamp and field[0] not in _DIGITS)


def _numpy() -> Any:
    """numpy, imported on first use (a pandas dependency; not needed to load definitions)."""
    global _np, _DIGIT, _VALUE_END
    if _np is None:
        import numpy

        _DIGIT, _VALUE_END = numpy.zeros(256, dtype=bool), numpy.zeros(256, dtype=bool)
        _DIGIT[list(_DIGITS)] = True
        _VALUE_END[list(_VALUE_ENDS)] = True
        _np = numpy
    return _np
