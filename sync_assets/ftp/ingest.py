"""`ingest_source`: one run of one log source, exactly once, deleting only after commit.

A run: take the source's advisory lock; list the remote files; compare with the ledger; look
twice (with a pause) at the files that need work so that only stable, old-enough files are
read; for each file, in one transaction, load the new complete lines and update its ledger
row; after the commit, delete the remote file if asked to and it is still unchanged.
"""

from __future__ import annotations

import dataclasses
import ftplib
import gzip
import hashlib
import logging
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO
from zoneinfo import ZoneInfo

import psycopg

from sync_assets.core.locks import advisory_lock
from sync_assets.ftp import store
from sync_assets.ftp.client import FTPClient, RetryPolicy, ShortTransferError
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.formats import (
    SAMPLE_BYTES,
    FileFormat,
    UnparsableFileError,
    detect_format,
    header_columns,
    is_gzip,
)
from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.loader import FileIdentity, FileLoader, RawChunk, failpoint
from sync_assets.ftp.store import LedgerEntry
from sync_assets.ftp.types import parse_timestamp
from sync_assets.resources import FTPResource, PostgresResource, SourceUnavailableError

HEAD_BYTES = 1024
BLOCK_BYTES = 1024 * 1024
MAX_LINE_BYTES = 16 * 1024 * 1024


def lock_name(source: SourceConfig) -> str:
    """The advisory lock that keeps two runs (or a run and `reingest`) of a source apart."""
    return f"sync_assets.ftp:{source.name}"


@dataclass
class FileOutcome:
    """What happened to one remote file in this run."""

    path: str
    status: str  # loaded|rejected|failed|unstable|too_young|unreadable|vanished|unchanged
    version: int = 1
    lines_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    bytes_read: int = 0
    resumed_from: int = 0
    replaced: bool = False
    deleted: bool = False
    fast_chunks: int = 0
    error: str | None = None


@dataclass
class IngestReport:
    source: str
    schema: str
    table: str
    run_id: str
    files_seen: int = 0
    files: list[FileOutcome] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delete_errors: dict[str, str] = field(default_factory=dict)
    newest_record: datetime | None = None
    duration_seconds: float = 0.0
    reconnects: int = 0

    def _count(self, *statuses: str) -> int:
        return sum(1 for f in self.files if f.status in statuses)

    @property
    def files_loaded(self) -> int:
        return self._count("loaded", "rejected")

    @property
    def files_skipped(self) -> int:
        return self._count("unstable", "too_young", "unreadable", "vanished")

    @property
    def files_failed(self) -> int:
        return self._count("failed")

    @property
    def files_replaced(self) -> int:
        return sum(1 for f in self.files if f.replaced)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)

    @property
    def lines_read(self) -> int:
        return sum(f.lines_read for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes_read for f in self.files)

    @property
    def unbalanced_files(self) -> list[str]:
        """Files whose lines read differ from rows loaded + rows rejected (should be none)."""
        return [f.path for f in self.files if f.lines_read != f.rows_loaded + f.rows_rejected]

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        if self.newest_record is None:
            return None
        return ((now or datetime.now(UTC)) - self.newest_record).total_seconds()


class FileChangedError(RuntimeError):
    """The file changed while we read it: it is left for the next run."""


@dataclass
class Snapshot:
    size: int
    mtime: datetime | None

    def matches(self, other: Snapshot | None) -> bool:
        return other is not None and (self.size, self.mtime) == (other.size, other.mtime)


def ingest_source(
    ftp_resource: FTPResource,
    postgres_resource: PostgresResource,
    source: SourceConfig,
    log: logging.Logger | None = None,
    run_id: str | None = None,
) -> IngestReport:
    """Run one source once (the asset calls this; so do benchmarks and reliability tests)."""
    started = time.monotonic()
    report = IngestReport(source.name, source.schema, source.table_name, run_id or uuid.uuid4().hex)
    logger = log or logging.getLogger(__name__)
    with postgres_resource.connection(autocommit=True) as lock_conn, advisory_lock(
        lock_conn, lock_name(source), source.lock_wait_seconds
    ), postgres_resource.connection(autocommit=True) as conn:  # fmt: skip
        _prepare(conn, source)
        client = FTPClient(
            ftp_resource, RetryPolicy(source.retries, source.retry_backoff_seconds), logger
        )
        try:
            _Run(conn, client, ftp_resource, source, report, logger).execute()
        finally:
            report.reconnects = client.reconnects
            client.close()
    report.duration_seconds = time.monotonic() - started
    return report


def _prepare(conn: psycopg.Connection, source: SourceConfig) -> None:
    """Tables and session settings. `conn` is in autocommit: each file is one explicit
    transaction (`conn.transaction()`), never a savepoint inside a forgotten one."""
    store.ensure_meta_tables(conn)
    store.ensure_target_table(conn, source.schema, source.table_name)
    # Naive timestamps in files are read in the source's zone (COPY into timestamptz).
    conn.execute("SELECT set_config('TimeZone', %s, false)", (source.timezone,))
    # 28.11.2026 is day.month in European exports; ISO dates are unaffected.
    conn.execute("SET DateStyle = 'ISO, DMY'")


class _Run:
    def __init__(
        self,
        conn: psycopg.Connection,
        client: FTPClient,
        resource: FTPResource,
        source: SourceConfig,
        report: IngestReport,
        log: logging.Logger,
    ) -> None:
        self.conn = conn
        self.client = client
        self.source = source
        self.report = report
        self.log = log
        self.delete_after = resource.should_delete_after_sync
        self.root = (source.directory or resource.directory or "/").rstrip("/") or "/"
        self.ledger = store.load_ledger(conn, source.name)
        self.newest: list[datetime] = []

    # --- planning -----------------------------------------------------------------------

    def execute(self) -> None:
        self.root = self.client.absolute(self.root)
        files = self._list()
        self.report.files_seen = len(files)
        to_load: list[RemoteFile] = []
        to_delete: list[RemoteFile] = []
        for remote in files:
            verdict = self._classify(remote)
            if verdict == "load":
                to_load.append(remote)
            elif verdict == "delete":
                to_delete.append(remote)
        stable = self._stable(to_load)
        for remote in to_load:
            snapshot = stable.get(remote.path)
            if isinstance(snapshot, str):
                self.report.files.append(FileOutcome(remote.path, snapshot))
                continue
            outcome = self._ingest(remote, snapshot)
            self.report.files.append(outcome)
            if outcome.status in ("loaded", "unchanged") and self._fully_consumed(remote.path):
                self._delete(remote.path)
        for remote in to_delete:
            self._delete(remote.path)
        if self.newest:
            self.report.newest_record = max(self.newest)

    def _list(self) -> list[RemoteFile]:
        prefix = self.root.rstrip("/") + "/"
        found = []
        for path, entry in self.client.walk(self.root, self.source.recursive):
            relative = path[len(prefix) :] if path.startswith(prefix) else path
            if self.source.wants(relative):
                found.append(RemoteFile(path, relative, entry.size, entry.mtime, entry.precision))
        found.sort(key=lambda f: f.path)
        return found

    def _classify(self, remote: RemoteFile) -> str:
        entry = self.ledger.get(remote.path)
        if entry is None or entry.status == store.DELETED:
            return "load"
        if not remote.same_as(entry.size, entry.mtime) or self._tail_due(entry):
            return "load"
        if self.delete_after and entry.status == store.LOADED and self._fully_consumed(remote.path):
            return "delete"
        return "unchanged"

    def _tail_due(self, entry: LedgerEntry) -> bool:
        """An unchanged file whose last line (without newline) has now waited long enough."""
        if entry.status != store.LOADED or entry.offset_bytes >= entry.size or not entry.mtime:
            return False
        age = (datetime.now(UTC) - entry.mtime).total_seconds()
        return age >= self.source.final_line_seconds

    def _fully_consumed(self, path: str) -> bool:
        """Committed with every byte consumed (no partial last line waiting)."""
        entry = self.ledger.get(path)
        return (
            self.delete_after
            and entry is not None
            and entry.status == store.LOADED
            and entry.offset_bytes >= entry.size
        )

    def _snapshots(self, files: list[RemoteFile]) -> dict[str, Snapshot | None]:
        """Precise size/mtime now: MLSD listings are precise; LIST servers need SIZE+MDTM."""
        if self.client.has_mlst:
            wanted = {f.path for f in files}
            found = {
                path: Snapshot(entry.size, entry.mtime)
                for path, entry in self.client.walk(self.root, self.source.recursive)
                if path in wanted
            }
            return {f.path: found.get(f.path) for f in files}
        result: dict[str, Snapshot | None] = {}
        for remote in files:
            stat = self.client.stat(remote.path)
            result[remote.path] = Snapshot(*stat) if stat else None
        return result

    def _stable(self, files: list[RemoteFile]) -> dict[str, Snapshot | str]:
        """Two looks, `stable_seconds` apart: only unchanged, old-enough files are read."""
        if not files:
            return {}
        first = (
            {f.path: Snapshot(f.size, f.mtime) for f in files}
            if self.client.has_mlst
            else self._snapshots(files)
        )
        if self.source.stable_seconds > 0:
            time.sleep(self.source.stable_seconds)
            second = self._snapshots(files)
        else:
            second = first
        now = datetime.now(UTC)
        verdicts: dict[str, Snapshot | str] = {}
        for remote in files:
            look1, look2 = first.get(remote.path), second.get(remote.path)
            if look1 is None or look2 is None:
                verdicts[remote.path] = "vanished"
            elif not look1.matches(look2):
                verdicts[remote.path] = "unstable"
            elif look2.mtime and (now - look2.mtime).total_seconds() < self.source.min_age_seconds:
                verdicts[remote.path] = "too_young"
            else:
                verdicts[remote.path] = look2
        return verdicts

    # --- one file -----------------------------------------------------------------------

    def _ingest(self, remote: RemoteFile, snap: Snapshot) -> FileOutcome:
        entry = self.ledger.get(remote.path)
        known = entry is not None and entry.status not in (store.DELETED, store.FAILED)
        same = known and entry and (snap.size, snap.mtime) == (entry.size, entry.mtime)
        if same and entry and not self._tail_due(entry):
            return FileOutcome(remote.path, "unchanged", entry.version)
        try:
            return self._load(remote, snap, entry)
        except FileChangedError as exc:
            return FileOutcome(remote.path, "unstable", error=str(exc))
        except ftplib.error_perm as exc:  # gone or not readable since the listing: next run
            reason = self.client.resource.redact(str(exc))
            self.log.warning(f"{remote.path}: cannot be read now ({reason}); skipped")
            return FileOutcome(remote.path, "unreadable", error=reason)
        except (
            UnparsableFileError,
            OSError,
            EOFError,
            zlib.error,
            UnicodeError,
            psycopg.DataError,
        ) as exc:
            if isinstance(exc, ConnectionError | TimeoutError):
                raise
            return self._record_failure(remote, snap, entry, exc)

    def _plan(self, remote: RemoteFile, snap: Snapshot, entry: LedgerEntry | None) -> FileOutcome:
        """Resume (same version, from the stored offset) or start a version from byte 0."""
        if entry is None:
            return FileOutcome(remote.path, "loaded", 1)
        if entry.status == store.DELETED:
            return FileOutcome(remote.path, "loaded", entry.version + 1)
        if entry.offset_bytes == 0 and entry.rows_loaded + entry.rows_rejected == 0:
            return FileOutcome(remote.path, "loaded", entry.version)
        can_resume = (
            entry.status in (store.LOADED, store.REJECTED, store.FAILED)
            and entry.format is not None
            and not FileFormat.from_json(entry.format).compressed
            and snap.size >= entry.offset_bytes
            and self._head_unchanged(remote.path, entry)
        )
        if can_resume:
            return FileOutcome(
                remote.path, "loaded", entry.version, resumed_from=entry.offset_bytes
            )
        outcome = FileOutcome(remote.path, "loaded", entry.version + 1, replaced=True)
        if not _may_be_same_compressed_file(entry, snap):
            self._warn_replaced(outcome)  # else decided once its bytes are hashed (_load)
        return outcome

    def _warn_replaced(self, outcome: FileOutcome) -> None:
        self.log.warning(
            f"{outcome.path}: replaced (shrank or its first bytes changed): "
            f"loading it as version {outcome.version}"
        )

    def _touched_only(
        self, outcome: FileOutcome, entry: LedgerEntry | None, snap: Snapshot, digest: str
    ) -> bool:
        """A compressed file re-uploaded or touched with the very same bytes: nothing to load
        (a .gz cannot resume, so without this its lines would load a second time)."""
        if not (outcome.replaced and entry and _may_be_same_compressed_file(entry, snap)):
            return False
        if entry.head_hash != digest:
            self._warn_replaced(outcome)
            return False
        touched = dataclasses.replace(entry, mtime=snap.mtime)
        with self.conn.transaction(), self.conn.cursor() as cur:
            store.save_entry(cur, touched, self.report.run_id)
        self.ledger[outcome.path] = touched
        self.log.info(f"{outcome.path}: same compressed bytes, new mtime: nothing to load")
        return True

    def _head_unchanged(self, path: str, entry: LedgerEntry) -> bool:
        try:
            head = self.client.read_head(path, entry.head_len)
        except ShortTransferError:
            return False  # shorter than the bytes we hashed: replaced
        return len(head) == entry.head_len and _digest(head) == entry.head_hash

    def _load(self, remote: RemoteFile, snap: Snapshot, entry: LedgerEntry | None) -> FileOutcome:
        outcome = self._plan(remote, snap, entry)
        start = outcome.resumed_from
        resumed = entry if start else None
        with tempfile.TemporaryFile(prefix="sync_assets_ftp_") as tmp:
            try:
                got = self.client.download(remote.path, start, tmp, snap.size - start)
            except ShortTransferError as exc:
                raise FileChangedError(f"{remote.path} is shorter than listed: {exc}") from None
            outcome.bytes_read = got
            tmp.seek(0)
            head = tmp.read(HEAD_BYTES) if start == 0 else b""
            tmp.seek(0)
            gz = start == 0 and is_gzip(remote.path, head)
            # A .gz never resumes: its ledger hash covers every compressed byte (head_len =
            # size), so a touched or re-uploaded identical file is recognised, not reloaded.
            head_hash, head_len = (_file_digest(tmp), got) if gz else (_digest(head), len(head))
            if gz and self._touched_only(outcome, entry, snap, head_hash):
                return FileOutcome(remote.path, "unchanged", outcome.version - 1)
            tmp.seek(0)
            with self.conn.transaction(), self.conn.cursor() as cur:
                stream: IO[bytes] = gzip.GzipFile(fileobj=tmp, mode="rb") if gz else tmp
                new_entry = self._stream_into_table(cur, remote, snap, outcome, stream, resumed, gz)
                new_entry.head_hash = resumed.head_hash if resumed else head_hash
                new_entry.head_len = resumed.head_len if resumed else head_len
                store.save_entry(cur, new_entry, self.report.run_id)
        self.ledger[remote.path] = new_entry
        failpoint("after_commit")
        return outcome

    def _stream_into_table(
        self,
        cur: psycopg.Cursor,
        remote: RemoteFile,
        snap: Snapshot,
        outcome: FileOutcome,
        stream: IO[bytes],
        resumed: LedgerEntry | None,
        gz: bool,
    ) -> LedgerEntry:
        source = self.source
        # A file whose preamble/header was never complete has consumed nothing: start over.
        fresh = resumed is None or resumed.lines_consumed == 0
        if not fresh and resumed is not None and resumed.format:
            fmt = FileFormat.from_json(resumed.format)
        else:
            fmt = detect_format(remote.path, stream.read(SAMPLE_BYTES), source, compressed=gz)
            stream.seek(0)
        identity = FileIdentity(
            source.name, remote.path, outcome.version, snap.mtime, self.report.run_id
        )
        loader = FileLoader(
            cur, source.schema, source.table_name, fmt, identity, source.null_values
        )
        age = (datetime.now(UTC) - snap.mtime).total_seconds() if snap.mtime else 0.0
        reader = _LineReader(
            stream,
            take_tail=gz or age >= source.final_line_seconds,
            first_line=0 if fresh or resumed is None else resumed.lines_consumed,
            preamble=source.skip_lines if fresh else 0,
            want_header=fresh and fmt.kind == "csv" and source.header,
        )
        # One chunk ahead: the next chunk is read and prepared while PostgreSQL absorbs the
        # current one (the fast path calls `ahead` once the current chunk's data is sent).
        chunks = reader.chunks(fmt.encoding, source.chunk_lines)
        upcoming = next(chunks, None)
        while upcoming is not None:
            chunk, upcoming, fetched = upcoming, None, False

            def ahead() -> None:
                nonlocal upcoming, fetched
                if not fetched:
                    fetched = True
                    upcoming = next(chunks, None)
                    if upcoming is not None:
                        loader.prepare(upcoming)

            if reader.header is not None and not loader.fmt.columns:
                loader.set_columns(header_columns(reader.header, fmt.delimiter))
            loader.load_chunk(chunk, ahead)
            ahead()
        if reader.header is not None and not loader.fmt.columns:
            loader.set_columns(header_columns(reader.header, fmt.delimiter))
        counts = loader.finish()
        outcome.lines_read = counts.lines_read
        outcome.rows_loaded = counts.rows_loaded
        outcome.rows_rejected = counts.rows_rejected
        outcome.fast_chunks = counts.fast_chunks
        self._note_newest(counts.newest_values)
        prior_rows = resumed.rows_loaded if resumed else 0
        prior_rejects = resumed.rows_rejected if resumed else 0
        total_rows = prior_rows + counts.rows_loaded
        all_rejected = total_rows == 0 and prior_rejects + counts.rows_rejected > 0
        outcome.status = "rejected" if all_rejected else "loaded"
        consumed_bytes = snap.size if gz else outcome.resumed_from + reader.bytes_consumed
        consumed_lines = reader.line_no
        if not gz and (reader.preamble or reader.want_header):
            # Only part of the preamble/header has arrived (no data row can precede it): keep
            # nothing consumed, so the next run reads the head again instead of as data.
            consumed_bytes = consumed_lines = 0
        return LedgerEntry(
            source=source.name,
            path=remote.path,
            version=outcome.version,
            size=snap.size,
            mtime=snap.mtime,
            head_hash=None,
            head_len=0,
            offset_bytes=consumed_bytes,
            lines_consumed=consumed_lines,
            rows_loaded=total_rows,
            rows_rejected=prior_rejects + counts.rows_rejected,
            status=store.REJECTED if all_rejected else store.LOADED,
            format=loader.fmt.to_json(),
        )

    def _note_newest(self, values: list[str]) -> None:
        for value in values:
            try:
                stamp = parse_timestamp(value)
            except ValueError:
                continue
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=ZoneInfo(self.source.timezone))
            self.newest.append(stamp.astimezone(UTC))
        if len(self.newest) > 1:
            self.newest = [max(self.newest)]

    def _record_failure(
        self, remote: RemoteFile, snap: Snapshot, entry: LedgerEntry | None, exc: BaseException
    ) -> FileOutcome:
        """The file cannot be parsed at all: recorded, kept on the server, retried if changed."""
        reason = f"{type(exc).__name__}: {exc}"[:2000]
        self.log.error(f"{remote.path}: cannot be loaded: {reason}")
        failed = LedgerEntry(
            source=self.source.name,
            path=remote.path,
            version=entry.version if entry else 1,
            size=snap.size,
            mtime=snap.mtime,
            head_hash=entry.head_hash if entry else None,
            head_len=entry.head_len if entry else 0,
            offset_bytes=entry.offset_bytes if entry else 0,
            lines_consumed=entry.lines_consumed if entry else 0,
            rows_loaded=entry.rows_loaded if entry else 0,
            rows_rejected=entry.rows_rejected if entry else 0,
            status=store.FAILED,
            format=entry.format if entry else None,
            error=reason,
        )
        with self.conn.transaction(), self.conn.cursor() as cur:
            store.save_entry(cur, failed, self.report.run_id)
        self.ledger[remote.path] = failed
        return FileOutcome(remote.path, "failed", failed.version, error=reason)

    # --- deletion after commit ----------------------------------------------------------

    def _delete(self, path: str) -> None:
        """Delete a committed, fully consumed file if it is still exactly what we loaded."""
        entry = self.ledger.get(path)
        if not self.delete_after or entry is None or entry.status != store.LOADED:
            return
        if entry.offset_bytes < entry.size:
            return  # a partial last line is still waiting
        try:
            stat = self.client.stat(path)
            if stat is None or stat != (entry.size, entry.mtime):
                self.log.info(f"{path}: changed since it was loaded; not deleted")
                return
            self.client.delete(path)
        except (SourceUnavailableError, OSError, EOFError) as exc:
            error = self.client.resource.redact(str(exc))
        except Exception as exc:  # ftplib.error_perm etc.: recorded, retried next run
            error = self.client.resource.redact(f"{type(exc).__name__}: {exc}")
        else:
            error = None
        store.record_delete(self.conn, self.source.name, path, error)
        if error is None:
            entry.status = store.DELETED
            self.report.deleted.append(path)
            for outcome in self.report.files:
                if outcome.path == path:
                    outcome.deleted = True
        else:
            self.log.warning(f"{path}: delete failed (retried next run): {error}")
            self.report.delete_errors[path] = error


class _LineReader:
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


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(handle: IO[bytes]) -> str:
    handle.seek(0)
    return hashlib.file_digest(handle, "sha256").hexdigest()


def _may_be_same_compressed_file(entry: LedgerEntry, snap: Snapshot) -> bool:
    """Whether the ledger holds a whole-file hash of a .gz of exactly this size."""
    compressed = entry.format is not None and FileFormat.from_json(entry.format).compressed
    return compressed and entry.status == store.LOADED and entry.head_len == snap.size
