"""Loading one file's lines into its table: chunked parse, typing, COPY, rejects.

A `FileLoader` works inside the caller's transaction: table evolution (new columns, integer →
double widening), the rows' COPY and the rejects' COPY all commit or roll back together with
the file's ledger row.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from sync_assets.core.failpoint import failpoint
from sync_assets.core.pg import COPY_ESCAPES, COPY_NULL, copy_line, copy_statement, ident
from sync_assets.ftp import store
from sync_assets.ftp.fastpath import FastCopy
from sync_assets.ftp.formats import FileFormat, LineParser, RejectedLine
from sync_assets.ftp.lines import ChunkLine, RawChunk, decode_chunk
from sync_assets.ftp.parallel import NeedsSchemaChangeError
from sync_assets.ftp.store import FileIdentity
from sync_assets.ftp.types import (
    BIGINT,
    BadValue,
    Converter,
    converter_for,
    float_converter,
    infer_type,
)

NUL_REASON = "NUL character (PostgreSQL text cannot hold it)"


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
        *,
        columns: Mapping[str, str],
        ddl_allowed: bool = True,
        sampled: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """`columns`: the target table's column name → type as the transaction sees it
        (store.table_columns); the loader keeps it current as it adds or widens columns.
        `sampled`: values per column found by detection (formats.Detection), past any empty
        stretch at the file's start: a new column's type is inferred from them too."""
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
        self.sampled = sampled or {}
        self.parser = LineParser(fmt)
        # Fields under the header's names (csv), else each record names its columns.
        self._fixed_columns = fmt.log_format.fixed_columns
        self.counts = LoadCounts()
        self.columns = dict(columns)
        self._rejects = tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024)  # noqa: SIM115
        mtime = identity.mtime.isoformat() if identity.mtime else None
        consts = [identity.path, str(identity.version), mtime, identity.run_id]
        self._suffix = "\t" + copy_line(consts)
        self._fast: FastCopy | None | bool = None  # None: to build; False: not for this file

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
        loaded = self.fast.load(chunk, ahead) if self._fast_path_possible(chunk) else None
        if loaded is not None:
            self.counts.rows_loaded += loaded
            self.counts.lines_read += len(chunk.raws)
            self.counts.fast_chunks += 1
            self._track_newest_raw(chunk)
            return
        self.load_lines(
            decode_chunk(chunk.raws, chunk.first_line, self.fmt.encoding, chunk.numbers)
        )

    def prepare(self, chunk: RawChunk) -> None:
        """Compute the chunk's fast-path COPY data ahead (bytes work only, no database), with
        the fast path as it is now; if that changes before the chunk is loaded (new columns,
        widening), `FastCopy.load` sees another owner and recomputes."""
        fast = self._fast
        if isinstance(fast, FastCopy):
            chunk.prepared = (fast, fast.copy_data(chunk))

    def _fast_path_possible(self, chunk: RawChunk) -> bool:
        if not self.fmt.log_format.fast_path_applies(self.fmt):
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
    def fast(self) -> FastCopy | None:
        """The fast path for the current columns and types (None if the format rules it out)."""
        if self._fast is None and self.fmt.log_format.fast_path_applies(self.fmt):
            built = FastCopy.build(
                self.cur,
                self.schema,
                self.table,
                self.fmt,
                self.nulls,
                self.columns,
                self.identity,
            )
            self._fast = built or False
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
        if self._fixed_columns:
            if not self.fmt.columns:  # no header: columns named by position
                count = len(self.parser.parse_fields(text))
                self.set_columns([f"column_{i}" for i in range(1, count + 1)])
            return self.parser.parse_fields_checked(text)
        return self.parser.parse(text)

    def _chunk_columns(self, records: Sequence[tuple[int, bytes, object]]) -> list[str]:
        if self._fixed_columns:
            return list(self.fmt.columns)
        seen: dict[str, None] = {}
        for _, _, rec in records:
            seen.update(dict.fromkeys(rec))  # type: ignore[arg-type]
        return list(seen)

    def _copy_records(self, records: list[tuple[int, bytes, object]]) -> None:
        columns = self._chunk_columns(records)
        rows = (
            [rec for _, _, rec in records]
            if self._fixed_columns
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
            sample = [r[index] for r in rows if r[index] is not None and r[index] not in self.nulls]
            sample.extend(self.sampled.get(column, ()))
            pg_type = infer_type(sample, self.fmt.decimal, thousands=self.fmt.thousands)
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
            converter_for(self.columns[c], self.fmt.decimal, self.fmt.thousands) for c in columns
        ]
        nulls, suffix, escapes = self.nulls, self._suffix, COPY_ESCAPES
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
            float_converter(self.fmt.decimal, self.fmt.thousands)(value)
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
