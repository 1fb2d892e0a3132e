"""Loading one file's lines into its table: chunked parse, typing, COPY, rejects.

A `FileLoader` works inside the caller's transaction: table evolution (new columns, integer →
double widening), the rows' COPY and the rejects' COPY all commit or roll back together with
the file's ledger row.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from sync_assets.core.pg import COPY_NULL, copy_line, copy_statement, ident
from sync_assets.ftp import store
from sync_assets.ftp.formats import FileFormat, LineParser, RejectedLine
from sync_assets.ftp.parallel import NeedsSchemaChangeError
from sync_assets.ftp.types import (
    BIGINT,
    BadValue,
    Converter,
    converter_for,
    float_converter,
    infer_type,
)

FAILPOINT_ENV = "SYNC_ASSETS_FTP_FAILPOINT"
# COPY data is handed to psycopg in pieces of this size (a failpoint between pieces).
WRITE_BYTES = 1024 * 1024
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_copies_written = 0


def failpoint(name: str) -> None:
    """Crash-test hook: SIGKILL this process at the named point (e.g. `mid_copy:2`).

    Only active when SYNC_ASSETS_FTP_FAILPOINT names the point; `name:N` fires at its N-th
    passage. It simulates a power cut in the real code path, which no mock can.
    """
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    global _copies_written
    _copies_written += 1
    if _copies_written >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


NUL_REASON = "NUL character (PostgreSQL text cannot hold it)"


@dataclass
class FileIdentity:
    source: str
    path: str
    version: int
    mtime: datetime | None
    run_id: str


@dataclass
class ChunkLine:
    line_no: int
    raw: bytes
    text: str | None  # None: the bytes did not decode


@dataclass
class RawChunk:
    """Complete lines of a file as read (bytes, newline included), numbered from `first_line`."""

    first_line: int
    raws: list[bytes]
    # Computed ahead by FileLoader.prepare: (the fast path object that made it, the chunk's
    # COPY data or None if the chunk is not for the fast path); used only if that object is
    # still the loader's current fast path.
    prepared: tuple[object, bytes | None] | None = None


class _FastPathMismatchError(RuntimeError):
    """COPY took a different number of rows than lines given: redo the chunk line by line."""


@dataclass
class LoadCounts:
    lines_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    newest_values: list[str] = field(default_factory=list)
    fast_chunks: int = 0  # chunks PostgreSQL parsed itself (the rest went line by line)
    new_columns: list[str] = field(default_factory=list)


class FileLoader:
    def __init__(
        self,
        cur: psycopg.Cursor,
        schema: str,
        table: str,
        fmt: FileFormat,
        identity: FileIdentity,
        null_values: Iterable[str],
        ddl_allowed: bool = True,
    ) -> None:
        self.cur = cur
        # False while other files load in parallel transactions: a needed column change
        # raises NeedsSchemaChangeError (the caller redoes the file alone) instead of taking
        # a table lock the other transactions would wait for, and they for it.
        self.ddl_allowed = ddl_allowed
        self.schema = schema
        self.table = table
        self.fmt = fmt
        self.identity = identity
        self.nulls = frozenset(null_values)
        self.parser = LineParser(fmt)
        self.counts = LoadCounts()
        self.columns = store.table_columns(cur, schema, table)
        self._rejects = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115
        mtime = identity.mtime.isoformat() if identity.mtime else None
        consts = [identity.path, str(identity.version), mtime, identity.run_id]
        self._suffix = "\t" + copy_line(consts)
        self._fast: _FastCopy | None | bool = None

    def set_columns(self, columns: Sequence[str]) -> None:
        self.fmt = FileFormat(**{**self.fmt.__dict__, "columns": tuple(columns)})
        self.parser = LineParser(self.fmt)
        self._fast = None

    # --- per chunk ----------------------------------------------------------------------

    def load_chunk(self, chunk: RawChunk, ahead: Callable[[], None] | None = None) -> None:
        """Fast path (PostgreSQL parses and types the CSV) when the chunk is clean; otherwise,
        or if COPY refuses it, the same chunk line by line with rejects (exactly the same rows:
        the fast attempt runs in a savepoint that is rolled back).

        `ahead` (reading and preparing the next chunk) is called by the fast path once all of
        this chunk's data is sent, while PostgreSQL is still absorbing it; the caller runs it
        itself if the fast path did not."""
        if self._fast_path_possible(chunk) and self.fast.load(chunk, ahead):
            self.counts.lines_read += len(chunk.raws)
            self.counts.fast_chunks += 1
            self._track_newest_raw(chunk)
            return
        self.load_lines(decode_chunk(chunk.raws, chunk.first_line, self.fmt.encoding))

    def prepare(self, chunk: RawChunk) -> None:
        """Compute the chunk's fast-path COPY data ahead (bytes work only, no database), with
        the fast path as it is now; if that changes before the chunk is loaded (new columns,
        widening), `_FastCopy.load` sees another owner and recomputes."""
        fast = self._fast
        if isinstance(fast, _FastCopy):
            chunk.prepared = (fast, fast.copy_data(chunk))

    def _fast_path_possible(self, chunk: RawChunk) -> bool:
        if self.fmt.kind != "csv" or not self.fmt.columns:
            return False
        if any(c not in self.columns for c in self.fmt.columns):
            self._evolve(self.fmt.columns, self._sample_rows(chunk.raws[:1000]))
        return self.fast is not None

    def _sample_rows(self, raws: list[bytes]) -> list[list[str]]:
        """Parsed fields of some lines (bad ones skipped): for typing and newest-record time."""
        rows = []
        for item in decode_chunk(raws, 0, self.fmt.encoding):
            if item.text is None or not item.text.strip():
                continue
            try:
                rows.append(self.parser.parse_fields_checked(item.text))
            except RejectedLine:
                continue
        return rows

    def _track_newest_raw(self, chunk: RawChunk) -> None:
        ends = [*chunk.raws[:20], *chunk.raws[-50:]]
        self._track_newest(self.fmt.columns, self._sample_rows(ends))

    @property
    def fast(self) -> _FastCopy | None:
        if self._fast is None and self.fmt.kind == "csv" and self.fmt.columns:
            self._fast = _FastCopy.build(self)
        return self._fast or None

    def load_lines(self, lines: Sequence[ChunkLine]) -> None:
        records: list[tuple[int, bytes, object]] = []
        for item in lines:
            if item.text is None:
                self.counts.lines_read += 1
                self._reject(item.line_no, item.raw, f"undecodable as {self.fmt.encoding}")
                continue
            if not item.text.strip():
                continue  # blank lines are neither rows nor rejects
            self.counts.lines_read += 1
            if "\x00" in item.text:
                self._reject(item.line_no, item.raw, NUL_REASON)
                continue
            try:
                records.append((item.line_no, item.raw, self._parse(item.text)))
            except RejectedLine as exc:
                self._reject(item.line_no, item.raw, str(exc))
        if records:
            self._copy_records(records)

    def _parse(self, text: str) -> object:
        if self.fmt.kind == "csv":
            if not self.fmt.columns:  # no header: columns named by position
                count = len(self.parser.parse_fields(text))
                self.set_columns([f"column_{i}" for i in range(1, count + 1)])
            return self.parser.parse_fields_checked(text)
        return self.parser.parse(text)

    def _chunk_columns(self, records: Sequence[tuple[int, bytes, object]]) -> list[str]:
        if self.fmt.kind == "csv":
            return list(self.fmt.columns)
        seen: dict[str, None] = {}
        for _, _, rec in records:
            seen.update(dict.fromkeys(rec))  # type: ignore[arg-type]
        return list(seen)

    def _copy_records(self, records: list[tuple[int, bytes, object]]) -> None:
        columns = self._chunk_columns(records)
        rows = (
            [rec for _, _, rec in records]
            if self.fmt.kind == "csv"
            else [[rec.get(c) for c in columns] for _, _, rec in records]  # type: ignore[attr-defined]
        )
        self._evolve(columns, rows)
        while True:
            out, bad, widen = self._convert(columns, records, rows)
            if not widen:
                break
            for column in widen:
                self._check_ddl_allowed()
                store.widen_to_double(self.cur, self.schema, self.table, column)
                self.columns[column] = "double precision"
            self._fast = None  # column types changed: rebuild the fast path's rewrites
        for line_no, raw, reason in bad:
            self._reject(line_no, raw, reason)
        if out:
            self._copy(columns, out)
        self._track_newest(columns, rows)

    def _evolve(self, columns: Sequence[str], rows: Sequence[Sequence[str | None]]) -> None:
        for index, column in enumerate(columns):
            if column in self.columns:
                continue
            sample = (r[index] for r in rows if r[index] is not None and r[index] not in self.nulls)
            pg_type = infer_type(sample, self.fmt.decimal)
            self._check_ddl_allowed()
            store.add_column(self.cur, self.schema, self.table, column, pg_type)
            self.columns[column] = pg_type
            self._fast = None  # new column types: rebuild the fast path's rewrites
            self.counts.new_columns.append(column)

    def _check_ddl_allowed(self) -> None:
        if not self.ddl_allowed:
            raise NeedsSchemaChangeError(f"{self.identity.path} changes the table's columns")

    def _convert(
        self,
        columns: Sequence[str],
        records: Sequence[tuple[int, bytes, object]],
        rows: Sequence[Sequence[str | None]],
    ) -> tuple[list[tuple[int, bytes, str]], list[tuple[int, bytes, str]], set[str]]:
        converters: list[Converter] = [
            converter_for(self.columns[c], self.fmt.decimal) for c in columns
        ]
        nulls, suffix, escapes = self.nulls, self._suffix, _ESCAPES
        out: list[tuple[int, bytes, str]] = []
        bad: list[tuple[int, bytes, str]] = []
        widen: set[str] = set()
        for (line_no, raw, _), values in zip(records, rows, strict=True):
            cells: list[str] = []
            try:
                for convert, value in zip(converters, values, strict=True):
                    if value is None or value in nulls:
                        cells.append(COPY_NULL)
                    else:
                        cells.append(convert(value).translate(escapes))
            except BadValue as exc:
                index = len(cells)  # the column whose value failed
                if self._widens(columns[index], values[index]):
                    widen.add(columns[index])
                bad.append((line_no, raw, f"column {columns[index]!r}: {exc}"))
                continue
            out.append((line_no, raw, "\t".join(cells) + f"\t{line_no}{suffix}"))
        return out, bad, widen

    def _widens(self, column: str, value: str | None) -> bool:
        if self.columns.get(column) != BIGINT or value is None:
            return False
        try:
            float_converter(self.fmt.decimal)(value)
        except BadValue:
            return False
        return True

    def _copy(self, columns: Sequence[str], lines: list[tuple[int, bytes, str]]) -> None:
        """COPY the lines in a savepoint; lines PostgreSQL refuses (a value our checks let
        through) become rejects, found by halving, and the others load."""
        try:
            with self.cur.connection.transaction():
                self._copy_text(columns, [text for _, _, text in lines])
            return
        except psycopg.DataError as exc:
            if len(lines) == 1:
                line_no, raw, _ = lines[0]
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self._reject(line_no, raw, f"refused by PostgreSQL: {reason}")
                return
        middle = len(lines) // 2
        self._copy(columns, lines[:middle])
        self._copy(columns, lines[middle:])

    def _copy_text(self, columns: Sequence[str], out: list[str]) -> None:
        statement = copy_statement(
            ident(self.schema, self.table),
            [*columns, "_line_number", "_source_file", "_file_version", "_file_mtime", "_run_id"],
        )
        with self.cur.copy(statement) as copy:
            copy.write("".join(out).encode("utf-8"))
            failpoint("mid_copy")
        loaded = self.cur.rowcount
        self.counts.rows_loaded += loaded if loaded >= 0 else len(out)

    def _track_newest(self, columns: Sequence[str], rows: Sequence[Sequence[str | None]]) -> None:
        """Candidates for the newest record time: the chunk's first timestamp column.

        Logs are written in time order, so the ends of each chunk are enough (parsing every
        value would cost more than the load itself).
        """
        for index, column in enumerate(columns):
            if self.columns.get(column, "").startswith("timestamp"):
                ends = [*rows[:20], *rows[-50:]]
                values = [r[index] for r in ends if r[index] and r[index] not in self.nulls]
                self.counts.newest_values.extend(v for v in values if v is not None)
                return

    # --- rejects ------------------------------------------------------------------------

    def _reject(self, line_no: int, raw: bytes, reason: str) -> None:
        self.counts.rows_rejected += 1
        text = raw.decode(self.fmt.encoding, errors="backslashreplace").rstrip("\r\n")
        ident_ = self.identity
        line = copy_line(
            [
                ident_.source,
                ident_.path,
                str(ident_.version),
                str(line_no),
                text.replace("\x00", "\\x00"),
                reason.replace("\x00", ""),
                ident_.run_id,
            ]
        )
        self._rejects.write(line.encode("utf-8"))

    def finish(self) -> LoadCounts:
        """Write the spooled rejects (same transaction) and return the counts."""
        if self.counts.rows_rejected:
            self._rejects.seek(0)
            with self.cur.copy(store.copy_rejects_statement()) as copy:
                while block := self._rejects.read(1024 * 1024):
                    copy.write(block)
        self._rejects.close()
        return self.counts


# Python codec names (as codecs.lookup spells them) → PostgreSQL client encodings.
PG_ENCODINGS = {
    "utf-8": "UTF8",
    "utf-8-sig": "UTF8",
    "cp1252": "WIN1252",
    "latin-1": "LATIN1",
    "iso8859-1": "LATIN1",
    "iso8859-15": "LATIN9",
}


class _FastCopy:
    """COPY a clean chunk as CSV straight into the typed table; PostgreSQL parses the values.

    Python only rewrites bytes, with whole-chunk C operations (no loop per line in the common
    case): decimal commas → points in the double columns (numpy finds each comma's field),
    and each line's number in front of it (one `bytes %` for the chunk); a chunk with NULL
    sentinels goes line by line (sentinels → empty, i.e. NULL).
    The provenance constant per file is not sent per line: the target's column defaults read
    it from transaction-local settings set right before each COPY (see store.SETTINGS).
    A chunk with quotes, blank lines or NULs is not attempted; a value or field count that
    PostgreSQL refuses makes the COPY fail inside a savepoint, and the caller redoes the chunk
    line by line — so the rows are the same either way.
    """

    def __init__(self, loader: FileLoader, pg_encoding: str) -> None:
        self.loader = loader
        fmt = loader.fmt
        self.delimiter = fmt.delimiter.encode("ascii")
        self.width = len(fmt.columns)
        # The sentinels as bytes of the file's encoding ("utf-8-sig" would prefix a BOM to
        # each, and no field would ever match: NaN loaded as NaN on this path only).
        encoding = "utf-8" if fmt.encoding == "utf-8-sig" else fmt.encoding
        self.null_bytes = frozenset(v.encode(encoding) for v in loader.nulls if v)
        # Cheap pre-filter of the fields that may be a sentinel: their length and first byte.
        np = _numpy()
        self.null_longest = max(map(len, self.null_bytes), default=0)
        self.null_first = np.zeros(256, dtype=bool)
        self.null_first[[v[0] for v in self.null_bytes]] = True
        self.double_indexes = [
            index
            for index, column in enumerate(fmt.columns)
            if fmt.decimal == "," and loader.columns.get(column) == "double precision"
        ]
        if self.delimiter == b",":  # no field can hold a comma: nothing to rewrite
            self.double_indexes = []
        self.double_mask = np.zeros(self.width, dtype=bool)
        self.double_mask[self.double_indexes] = True
        # PostgreSQL reads a few forms the line path refuses (`now`, `epoch`, `Infinity`,
        # month or zone names): fields of the double and timestamp columns must start (a
        # timestamp) and end (both) like a value the line path reads, else the chunk goes
        # line by line, so that both paths load the same rows (fuzz-tested).
        types = [loader.columns.get(column) for column in fmt.columns]
        self.time_indexes = [i for i, t in enumerate(types) if t and t.startswith("timestamp")]
        doubles = [i for i, t in enumerate(types) if t == "double precision"]
        self.checked_indexes = [*self.time_indexes, *doubles]
        # Each line is its number, the delimiter and the rewritten line (`%` escaped).
        self.line_format = b"%d" + self.delimiter.replace(b"%", b"%%") + b"%b\n"
        ident_ = loader.identity
        mtime = ident_.mtime.isoformat() if ident_.mtime else ""
        self.settings = sql.SQL("SELECT {}").format(
            sql.SQL(", ").join(
                sql.SQL("set_config({}, {}, true)").format(
                    sql.Literal(store.SETTINGS[column][0]), sql.Literal(value)
                )
                for column, value in (
                    ("_source_file", ident_.path),
                    ("_file_version", str(ident_.version)),
                    ("_file_mtime", mtime),
                    ("_run_id", ident_.run_id),
                )
            )
        )
        columns = ["_line_number"]
        self.statement = sql.SQL(
            "COPY {} ({}) FROM STDIN WITH (FORMAT csv, DELIMITER {}, NULL '', ENCODING {})"
        ).format(
            ident(loader.schema, loader.table),
            sql.SQL(", ").join(ident(c) for c in [*columns, *fmt.columns]),
            sql.Literal(fmt.delimiter),
            sql.Literal(pg_encoding),
        )

    @staticmethod
    def build(loader: FileLoader) -> _FastCopy | bool:
        fmt = loader.fmt
        pg_encoding = PG_ENCODINGS.get(fmt.encoding)
        if pg_encoding is None or len(fmt.delimiter) != 1 or fmt.delimiter in '"\r\n\\':
            return False
        if not fmt.delimiter.isascii() or len(fmt.columns) < 2:
            return False
        if "" not in loader.nulls:  # COPY's NULL '' would make empty fields NULL: not wanted
            return False
        return _FastCopy(loader, pg_encoding)

    def copy_data(self, chunk: RawChunk) -> bytes | None:
        """The chunk's COPY data, or None when it is not for the fast path (quotes, NULs, a
        stray CR, or a line with the wrong field count, which includes blank lines)."""
        data = b"\n".join(chunk.raws)
        if b"\r" in data:  # CRLF files: drop the CRs (a stray CR elsewhere: no fast path)
            data = data.replace(b"\r\n", b"\n").removesuffix(b"\r")
        if b'"' in data or b"\x00" in data or b"\r" in data:
            return None  # the line-by-line path decides
        lines = self._rewrite(data + b"\n")
        if lines is None:
            return None
        return self._numbered(lines, chunk.first_line)

    def load(self, chunk: RawChunk, ahead: Callable[[], None] | None = None) -> bool:
        prepared, chunk.prepared = chunk.prepared, None
        data = prepared[1] if prepared and prepared[0] is self else self.copy_data(chunk)
        if data is None:
            return False
        lines = len(chunk.raws)  # CRLF → LF keeps the count
        cur = self.loader.cur
        try:
            with cur.connection.transaction():  # a savepoint inside the file's transaction
                # The file's provenance for the columns' defaults: transaction-local, set in
                # the savepoint right before the COPY that reads it.
                cur.execute(self.settings)
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
            return False  # a value, a field count or a byte PostgreSQL refuses
        self.loader.counts.rows_loaded += lines
        return True

    def _numbered(self, lines: list[bytes], first: int) -> bytes:
        """COPY lines: each line's number (first, first+1, ...), then its rewritten fields.

        The numbers are sent rather than drawn from a sequence by PostgreSQL: `nextval()` per
        row (a volatile default, which also turns off COPY's batched inserts) cost the server
        more than typing all the values of the row. Each line's number (with the newline
        before it and the delimiter after) is formatted once per process and reused by every
        file (`_line_heads`), so a chunk is one C-level join; beyond the cached numbers, one
        `bytes %` over the chunk formats them.
        """
        count = len(lines)
        heads = _line_heads(self.delimiter, first + count)
        if heads is not None:
            parts: list[bytes] = [b""] * (2 * count)
            parts[0::2] = heads[first : first + count]
            parts[1::2] = lines
            parts[0] = parts[0][1:]  # no newline before the first line
            return b"".join(parts) + b"\n"
        values: list[int | bytes] = [0] * (2 * count)
        values[0::2] = range(first, first + count)
        values[1::2] = lines
        return (self.line_format * count) % tuple(values)

    def _rewrite(self, data: bytes) -> list[bytes] | None:
        """The chunk's lines with decimal commas → points in the double columns; None if some
        line has the wrong field count. `data` is the lines, each ending with a newline.

        Whole-chunk array operations find where each line's fields are (no Python work per
        field); chunks with NULL sentinels (`-`, `NaN`, ...) go line by line.
        """
        np = _numpy()
        codes = np.frombuffer(data, dtype=np.uint8)
        ends = np.flatnonzero(codes == NEWLINE)
        delims = np.flatnonzero(codes == self.delimiter[0])
        count, step = len(ends), self.width - 1
        if len(delims) != count * step:
            return None
        # Field ends in order: line i's delimiters, then its newline (if the counts fit).
        stops = np.empty((count, self.width), dtype=np.int64)
        stops[:, :step] = delims.reshape(count, step)
        stops[:, step] = ends
        stops = stops.ravel()
        starts = np.empty_like(stops)
        starts[0], starts[1:] = 0, stops[:-1] + 1
        if (starts > stops).any():  # a line with too many delimiters, another too few
            return None
        if self._has_null_sentinel(data, codes, starts, stops):
            return self._rewrite_lines(data.split(b"\n")[:-1])
        if self._postgres_only_forms(codes, starts.reshape(count, -1), stops.reshape(count, -1)):
            return None
        if self.double_indexes:
            data = self._points(data, codes, stops)
        lines = data.split(b"\n")
        lines.pop()  # the empty string after the last newline
        return lines

    def _postgres_only_forms(self, codes: Any, starts: Any, stops: Any) -> bool:
        """Whether a non-empty field of a timestamp column does not start with a digit, or
        one of a timestamp or double column does not end like a value (one gather per
        column, no work per field in Python). `starts`/`stops`: one row per line."""
        for index in self.checked_indexes:
            first, end = starts[:, index], stops[:, index]
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
        lengths = stops - starts
        maybe = (lengths > 0) & (lengths <= self.null_longest) & self.null_first[codes[starts]]
        candidates = np.flatnonzero(maybe)
        nulls = self.null_bytes
        return any(
            data[a:b] in nulls
            for a, b in zip(starts[candidates].tolist(), stops[candidates].tolist(), strict=True)
        )

    def _points(self, data: bytes, codes: Any, stops: Any) -> bytes:
        """Decimal commas → points, only in the double columns: a comma's field is the
        number of field ends before it, modulo the width (every line has `width` fields)."""
        np = _numpy()
        commas = np.flatnonzero(codes == COMMA)
        if not len(commas):
            return data
        wanted = self.double_mask[np.searchsorted(stops, commas) % self.width]
        if wanted.all():
            return data.replace(b",", b".")  # one C-level pass, the common case
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


NEWLINE = ord("\n")
# Line numbers whose COPY prefix (b"\n<number><delimiter>") is kept, per delimiter: enough for
# typical log files, about 4 MB each.
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


COMMA = ord(",")
_np: Any = None
_DIGITS = b"0123456789"
_VALUE_ENDS = _DIGITS + b". Zz"  # 5, 5., a trailing space, 2026-11-28T10:00Z
_DIGIT: Any = None
_VALUE_END: Any = None


def _postgres_only(field: bytes, timestamp: bool) -> bool:
    """The per-line form of _FastCopy._postgres_only_forms for one field."""
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
