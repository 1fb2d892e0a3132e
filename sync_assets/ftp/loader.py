"""Loading one file's lines into its table: chunked parse, typing, COPY, rejects.

A `FileLoader` works inside the caller's transaction: table evolution (new columns, integer →
double widening), the rows' COPY and the rejects' COPY all commit or roll back together with
the file's ledger row.
"""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from sync_assets.core.pg import COPY_NULL, copy_line, copy_statement, ident
from sync_assets.ftp import store
from sync_assets.ftp.formats import FileFormat, LineParser, RejectedLine
from sync_assets.ftp.types import (
    BIGINT,
    BadValue,
    Converter,
    converter_for,
    float_converter,
    infer_type,
)

FAILPOINT_ENV = "SYNC_ASSETS_FTP_FAILPOINT"
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
class LoadCounts:
    lines_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    newest_values: list[str] = field(default_factory=list)
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
    ) -> None:
        self.cur = cur
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

    def set_columns(self, columns: Sequence[str]) -> None:
        self.fmt = FileFormat(**{**self.fmt.__dict__, "columns": tuple(columns)})
        self.parser = LineParser(self.fmt)

    # --- per chunk ----------------------------------------------------------------------

    def load_chunk(self, lines: Sequence[ChunkLine]) -> None:
        records: list[tuple[int, bytes, object]] = []
        for item in lines:
            if item.text is None:
                self.counts.lines_read += 1
                self._reject(item.line_no, item.raw, f"undecodable as {self.fmt.encoding}")
                continue
            if not item.text.strip():
                continue  # blank lines are neither rows nor rejects
            self.counts.lines_read += 1
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
                store.widen_to_double(self.cur, self.schema, self.table, column)
                self.columns[column] = "double precision"
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
            store.add_column(self.cur, self.schema, self.table, column, pg_type)
            self.columns[column] = pg_type
            self.counts.new_columns.append(column)

    def _convert(
        self,
        columns: Sequence[str],
        records: Sequence[tuple[int, bytes, object]],
        rows: Sequence[Sequence[str | None]],
    ) -> tuple[list[str], list[tuple[int, bytes, str]], set[str]]:
        converters: list[Converter] = [
            converter_for(self.columns[c], self.fmt.decimal) for c in columns
        ]
        nulls, suffix, escapes = self.nulls, self._suffix, _ESCAPES
        out: list[str] = []
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
            out.append("\t".join(cells) + f"\t{line_no}{suffix}")
        return out, bad, widen

    def _widens(self, column: str, value: str | None) -> bool:
        if self.columns.get(column) != BIGINT or value is None:
            return False
        try:
            float_converter(self.fmt.decimal)(value)
        except BadValue:
            return False
        return True

    def _copy(self, columns: Sequence[str], out: list[str]) -> None:
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
