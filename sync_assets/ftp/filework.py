"""One remote file, start to end: download, load in one transaction, delete after commit.

A `FileWorker` owns one PostgreSQL connection and one FTP session; a run has a few of them
loading files side by side (`parallel_files`), each file in its own transaction. What they
share is a `RunContext`: the ledger, the stable-file looks, the schema gate, the report.

Over 400 lines on purpose: it is one idea, a file's life (plan the version, download, load,
confirm, record, delete), and each step uses the worker's connection, FTP session and run
context. The pieces that stand alone live elsewhere: bytes → lines (lines.py), parsing and
typing (formats.py, loader.py, fastpath.py), whose fault (faults.py), the ledger (store.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ftplib
import gzip
import hashlib
import io
import logging
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING
from zoneinfo import ZoneInfo

import psycopg

from sync_assets.core.failpoint import failpoint
from sync_assets.ftp import listtime, rotation, store
from sync_assets.ftp.client import ShortTransferError
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.faults import (
    FileChangedError,
    FileFaultError,
    NotConfirmedError,
    describe_fault,
    is_file_fault,
)
from sync_assets.ftp.formats import (
    Detection,
    FileFormat,
    detect_stream,
    header_columns,
    is_gzip,
)
from sync_assets.ftp.lines import LineReader, reader_format
from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.loader import FileLoader
from sync_assets.ftp.parallel import (
    NeedsSchemaChangeError,
    RunStoppedError,
    SchemaGate,
    Snapshot,
    StableLooks,
)
from sync_assets.ftp.report import FileOutcome, IngestReport
from sync_assets.ftp.store import FileIdentity, LedgerEntry
from sync_assets.ftp.types import numeric_in_text, parse_timestamp
from sync_assets.resources import SourceUnavailableError

if TYPE_CHECKING:
    from sync_assets.ftp.sessions import RemoteClient

HEAD_BYTES = 1024


@dataclass
class RunContext:
    """What the workers of one run share (the ledger dict: each path has one worker)."""

    source: SourceConfig
    report: IngestReport
    log: logging.Logger
    delete_after: bool
    ledger: dict[str, LedgerEntry]
    looks: StableLooks
    gate: SchemaGate
    stop: threading.Event = field(default_factory=threading.Event)
    # Consumed content of other paths a new path may continue (rotation.py).
    seen: list[rotation.Seen] = field(default_factory=list)
    # When this run's listing was taken (the listed-time rule, listtime.py).
    listed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    newest: list[datetime] = field(default_factory=list)
    # Masks the servers' secrets in error texts that are stored or logged.
    redact: Callable[[str], str] = str
    _newest_lock: threading.Lock = field(default_factory=threading.Lock)

    def stopping(self) -> bool:
        return self.stop.is_set()

    def note_newest(self, stamps: list[datetime]) -> None:
        if stamps:
            with self._newest_lock:
                self.newest = [max([*self.newest, *stamps])]

    def fully_consumed(self, path: str) -> bool:
        """Committed with every byte consumed (no partial last line waiting)."""
        entry = self.ledger.get(path)
        return (
            self.delete_after
            and entry is not None
            and entry.status == store.LOADED
            and entry.offset_bytes >= entry.size
        )


class FileWorker:
    """Loads files with its own connection and FTP session (one file at a time)."""

    def __init__(self, ctx: RunContext, conn: psycopg.Connection, client: RemoteClient) -> None:
        self.ctx = ctx
        self.conn = conn
        self.client = client
        self.source = ctx.source
        self.log = ctx.log

    def process(self, index: int, remote: RemoteFile, exclusive: bool = False) -> FileOutcome:
        """Load one file (the `index`-th of the run), then delete it if asked to;
        `exclusive`: in the schema gate's exclusive mode from the start."""
        looks = self.ctx.looks
        snap = looks.early(remote.path)
        if snap is None:
            verdict = looks.verdict(remote.path)
            if isinstance(verdict, str):
                return FileOutcome(remote.path, verdict)
            snap = verdict
        outcome = self._ingest(index, remote, snap, exclusive)
        # Whatever happened, the second look has the last word (nothing was written if it
        # did not confirm the file, see _confirm).
        why = looks.confirm(remote.path, snap)
        if why is not None:
            return FileOutcome(remote.path, why)
        if outcome.status in ("loaded", "unchanged") and self.ctx.fully_consumed(remote.path):
            outcome.deleted = self.delete(remote.path)
        return outcome

    def _confirm(self, path: str, snap: Snapshot) -> None:
        """Before anything of a file is written: the second look must confirm `snap`."""
        why = self.ctx.looks.confirm(path, snap)
        if why is not None:
            raise NotConfirmedError(why)

    # --- one file -----------------------------------------------------------------------

    def _ingest(
        self, index: int, remote: RemoteFile, snap: Snapshot, exclusive: bool
    ) -> FileOutcome:
        entry = self.ctx.ledger.get(remote.path)
        known = entry is not None and entry.status not in (*GONE, store.FAILED)
        same = known and entry and (snap.size, snap.mtime) == (entry.size, entry.mtime)
        if same and entry and not tail_due(entry, self.source.final_line_seconds):
            self._remember_listing(remote, entry, snap)
            return FileOutcome(remote.path, "unchanged", entry.version)
        try:
            try:
                return self._load(index, remote, snap, entry, exclusive)
            except ClaimLostError:  # another path took the content over: a file of its own
                return self._load(index, remote, snap, entry, exclusive, rotated=False)
        except NotConfirmedError as exc:
            return FileOutcome(remote.path, exc.status)
        except FileChangedError as exc:
            return FileOutcome(remote.path, "unstable", error=str(exc))
        except ftplib.error_perm as exc:  # gone or not readable since the listing: next run
            reason = self.client.resource.redact(str(exc))
            if self.ctx.looks.confirm(remote.path, snap) is None:
                self.log.warning(f"{remote.path}: cannot be read now ({reason}); skipped")
            return FileOutcome(remote.path, "unreadable", error=reason)
        except SourceUnavailableError as exc:  # its transfer failed, retries included
            if not self._server_answers(remote.path):
                raise  # the server is gone: the run stops
            # The server answers, only this file's transfer fails (a 451, a data connection
            # it keeps dropping): skipped, read again next run, never marked failed.
            reason = str(exc)  # built without secrets by the client
            self.log.warning(f"{remote.path}: cannot be transferred now ({reason}); skipped")
            return FileOutcome(remote.path, "unreadable", error=reason)
        except FileFaultError as fault:
            try:
                return self._record_failure(remote, snap, entry, fault.reason)
            except NotConfirmedError as not_confirmed:
                return FileOutcome(remote.path, not_confirmed.status)

    def _server_answers(self, path: str) -> bool:
        """Whether the FTP server still answers (a fresh session if needed, with retries)."""
        try:
            self.client.stat(path)
        except SourceUnavailableError:
            return False
        return True

    @contextmanager
    def _file_boundary(self, path: str) -> Iterator[None]:
        """Around everything done with a downloaded file's bytes (gunzip, decoding, detection,
        parsing on both paths, typing, COPY): an exception that is the file's fault becomes a
        FileFaultError (the file is marked failed, the others load); one about the servers or
        the run (see `is_file_fault`) goes on up and stops the run, recording nothing."""
        try:
            yield
        except Exception as exc:
            if isinstance(exc, ClaimLostError) or not is_file_fault(exc, self.conn):
                raise  # a lost takeover is replanned by _load
            reason = self.ctx.redact(describe_fault(exc))
            # Where it was raised, for whoever fixes the parser (the stack is not stored).
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{Path(frame.filename).name}:{frame.lineno}"
            self.log.info(f"{path}: {reason} (raised at {where})")
            raise FileFaultError(reason) from exc

    def _remember_listing(self, remote: RemoteFile, entry: LedgerEntry, snap: Snapshot) -> None:
        """Found unchanged by SIZE+MDTM on a LIST server: keep its listed time, so that the
        next runs recognise it from the listing alone."""
        listed = listtime.listed_to_record(remote, snap.mtime, self.ctx.listed_at)
        if listed is None or listed == entry.listed_mtime:
            return
        self._confirm(remote.path, snap)
        store.record_listed(self.conn, self.source.name, [(remote.path, entry.version, listed)])
        entry.listed_mtime = listed

    def _plan(
        self, remote: RemoteFile, snap: Snapshot, entry: LedgerEntry | None
    ) -> tuple[FileOutcome, LedgerEntry | None]:
        """Resume (same version, from the stored offset) or start a version from byte 0 (then
        maybe continuing another path's content, see `_predecessor`). Returns the plan and the
        ledger row it resumes."""
        if entry is None or entry.status in GONE:
            version = 1 if entry is None else entry.version + 1
            return FileOutcome(remote.path, "loaded", version), None
        if entry.offset_bytes == 0 and entry.rows_loaded + entry.rows_rejected == 0:
            return FileOutcome(remote.path, "loaded", entry.version), None
        can_resume = (
            entry.status in (store.LOADED, store.REJECTED, store.FAILED)
            and entry.format is not None
            and not FileFormat.from_json(entry.format).compressed
            and snap.size >= entry.offset_bytes
            and self._head_unchanged(remote.path, entry)
        )
        if can_resume:
            resumed = FileOutcome(
                remote.path, "loaded", entry.version, resumed_from=entry.offset_bytes
            )
            return resumed, entry
        outcome = FileOutcome(remote.path, "loaded", entry.version + 1, replaced=True)
        if not _may_be_same_compressed_file(entry, snap):
            self._warn_replaced(outcome)  # else decided once its bytes are hashed (_load)
        return outcome, None

    def _predecessor(
        self, remote: RemoteFile, snap: Snapshot, tmp: IO[bytes]
    ) -> LedgerEntry | None:
        """Content the ledger saw under another path that this file, downloaded whole into
        `tmp`, starts with (compared on the local bytes; the server is asked only whether a
        matching old path still holds its content)."""
        tmp.seek(0)
        if not self.ctx.seen or is_gzip(remote.path, tmp.read(HEAD_BYTES)):
            return None

        def read(path: str, offset: int, length: int) -> bytes:
            if path == remote.path:
                tmp.seek(offset)
                return tmp.read(length)
            buffer = io.BytesIO()
            with contextlib.suppress(ShortTransferError):  # the caller compares lengths
                self.client.download(path, offset, buffer, length)
            return buffer.getvalue()

        seen = rotation.find_predecessor(remote.path, snap.size, self.ctx.seen, read)
        if seen is not None:
            self.log.info(
                f"{remote.path}: starts with the {seen.offset_bytes} bytes already loaded"
                f" from {seen.path} (rotated or moved): loading from there"
            )
        return seen

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
        self._confirm(outcome.path, snap)
        with self.conn.transaction(), self.conn.cursor() as cur:
            store.save_entry(cur, touched, self.ctx.report.run_id)
        self.ctx.ledger[outcome.path] = touched
        self.log.info(f"{outcome.path}: same compressed bytes, new mtime: nothing to load")
        return True

    def _head_unchanged(self, path: str, entry: LedgerEntry) -> bool:
        try:
            head = self.client.read_head(path, entry.head_len)
        except ShortTransferError:
            return False  # shorter than the bytes we hashed: replaced
        return len(head) == entry.head_len and _digest(head) == entry.head_hash

    def _load(
        self,
        index: int,
        remote: RemoteFile,
        snap: Snapshot,
        entry: LedgerEntry | None,
        exclusive: bool,
        rotated: bool = True,
    ) -> FileOutcome:
        """Plan, download and write one file; `rotated`: it may continue another path's
        content (see `_predecessor`)."""
        outcome, resumed = self._plan(remote, snap, entry)
        start = outcome.resumed_from
        # A resumed download starts up to TAIL_BYTES earlier: the ledger's tail hash covers
        # the last bytes before the new offset (rotation.py), not only this run's.
        base = start - min(rotation.TAIL_BYTES, start)
        with tempfile.TemporaryFile(prefix="sync_assets_ftp_") as tmp:
            try:
                got = self.client.download(remote.path, base, tmp, snap.size - base)
            except ShortTransferError as exc:
                raise FileChangedError(f"{remote.path} is shorter than listed: {exc}") from None
            seen = self._predecessor(remote, snap, tmp) if rotated and start == 0 else None
            if seen is not None:  # rotated or moved: only what follows the seen content
                outcome.resumed_from = start = seen.offset_bytes
                outcome.moved_from, resumed = seen.path, seen
            outcome.bytes_read = got - (start - base)
            with self._file_boundary(remote.path):
                tmp.seek(0)
                head = tmp.read(HEAD_BYTES) if start == 0 else b""
                gz = start == 0 and is_gzip(remote.path, head)
                # A .gz never resumes: its ledger hash covers every compressed byte (head_len
                # = size), so a touched or re-uploaded identical file is recognised, not
                # reloaded.
                digest = _file_digest(tmp) if gz else _digest(head)
                head_hash, head_len = (digest, got) if gz else (digest, len(head))
                if gz and self._touched_only(outcome, entry, snap, head_hash):
                    return FileOutcome(remote.path, "unchanged", outcome.version - 1)
                download = _Download(remote, snap, tmp, gz, head_hash, head_len, base, start)
                if resumed:  # the ledger keeps the hash of the version's first bytes
                    download.head_hash, download.head_len = resumed.head_hash, resumed.head_len
                if outcome.moved_from:
                    download.predecessor = resumed
                if outcome.replaced:
                    download.previous = entry
                self._write(index, download, outcome, resumed, exclusive)
        failpoint("after_commit")
        return outcome

    def _write(
        self,
        index: int,
        download: _Download,
        outcome: FileOutcome,
        resumed: LedgerEntry | None,
        exclusive: bool,
    ) -> LedgerEntry:
        """The file's rows, rejects and ledger row in one transaction. Among parallel files,
        one that must change the table's columns is rolled back and redone alone."""
        while True:
            try:
                with self.ctx.gate.enter(index, exclusive, self.ctx.stopping) as ddl_allowed:
                    return self._transaction(download, outcome, resumed, ddl_allowed)
            except NeedsSchemaChangeError:
                if exclusive:
                    raise  # cannot happen: DDL is allowed in exclusive mode
                exclusive = True

    def _transaction(
        self, download: _Download, outcome: FileOutcome, resumed: LedgerEntry | None, ddl: bool
    ) -> LedgerEntry:
        remote, snap, tmp = download.remote, download.snap, download.tmp
        tmp.seek(download.start - download.base)
        with self.conn.transaction(), self.conn.cursor() as cur:
            if not self.ctx.delete_after:
                # Nothing is deleted after this commit: it need not wait for the WAL to reach
                # the disk. A PostgreSQL crash right after it may lose this transaction whole
                # (rows and ledger row together), and the next run loads the file again. With
                # DELETE_AFTER_SYNC the commit stays synchronous: durable before the DELE.
                cur.execute("SET LOCAL synchronous_commit = off")
            stream: IO[bytes] = gzip.GzipFile(fileobj=tmp, mode="rb") if download.gz else tmp
            new_entry = self._stream_into_table(
                cur, download, outcome, stream, resumed, ddl_allowed=ddl
            )
            self._confirm(remote.path, snap)  # nothing commits before the second look
            new_entry.head_hash, new_entry.head_len = download.head_hash, download.head_len
            self._bookkeep(cur, download, new_entry)
            store.save_entry(cur, new_entry, self.ctx.report.run_id)
        self.ctx.ledger[remote.path] = new_entry
        return new_entry

    def _bookkeep(self, cur: psycopg.Cursor, download: _Download, new_entry: LedgerEntry) -> None:
        """The ledger's part of a file's transaction besides its own row: the tail hash and
        listed time of that row, the content it takes over, the version it replaces."""
        if not download.gz:
            new_entry.tail_hash, new_entry.tail_len = rotation.tail_window(
                download.tmp, download.base, new_entry.offset_bytes
            )
        new_entry.listed_mtime = listtime.listed_to_record(
            download.remote, download.snap.mtime, self.ctx.listed_at
        )
        if download.predecessor and not store.claim(
            cur, download.predecessor, download.remote.path
        ):
            raise ClaimLostError(download.remote.path)  # rolls this transaction back
        if download.previous is not None:
            store.retire(cur, download.previous)

    def _stream_into_table(
        self,
        cur: psycopg.Cursor,
        download: _Download,
        outcome: FileOutcome,
        stream: IO[bytes],
        resumed: LedgerEntry | None,
        ddl_allowed: bool,
    ) -> LedgerEntry:
        source, remote, snap, gz = self.source, download.remote, download.snap, download.gz
        # A file whose preamble/header was never complete has consumed nothing: start over.
        fresh = resumed is None or resumed.lines_consumed == 0
        if not fresh and resumed is not None and resumed.format:
            detection = Detection(FileFormat.from_json(resumed.format))
        else:
            detection = detect_stream(remote.path, stream, source, compressed=gz)
        fmt = detection.fmt
        identity = FileIdentity(
            source.name, remote.path, outcome.version, snap.mtime, self.ctx.report.run_id
        )
        columns = store.table_columns(cur, source.schema, source.table_name)
        outcome.type_warnings = self._numeric_in_text(remote.path, columns, detection)
        loader = FileLoader(
            cur,
            source.schema,
            source.table_name,
            reader_format(fmt),  # UTF-16 is read as UTF-8
            identity,
            source.null_values,
            columns=columns,
            ddl_allowed=ddl_allowed,
            sampled=detection.values,
        )
        age = (datetime.now(UTC) - snap.mtime).total_seconds() if snap.mtime else 0.0
        reader = LineReader(
            stream,
            take_tail=gz or age >= source.final_line_seconds,
            first_line=0 if fresh or resumed is None else resumed.lines_consumed,
            preamble=source.skip_lines if fresh else 0,
            want_header=fresh and fmt.log_format.fixed_columns and source.header,
            fmt=fmt,
        )
        self._load_chunks(loader, reader, loader.fmt)
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
            format=dataclasses.replace(loader.fmt, encoding=fmt.encoding).to_json(),
        )

    def _numeric_in_text(
        self, path: str, columns: dict[str, str], detection: Detection
    ) -> list[tuple[str, str]]:
        """The table's text columns this file's values would have made numeric (logged)."""
        fmt = detection.fmt
        found = numeric_in_text(columns, detection.values, fmt.decimal, fmt.thousands)
        for column, would_be in found:
            self.log.warning(
                f"{path}: column {column!r} is text in the table, but this file's values "
                f"would make it {would_be}: they are loaded as text"
            )
        return found

    def _load_chunks(self, loader: FileLoader, reader: LineReader, fmt: FileFormat) -> None:
        # One chunk ahead: the next chunk is read and prepared while PostgreSQL absorbs the
        # current one (the fast path calls `ahead` once the current chunk's data is sent).
        chunks = reader.chunks(fmt.encoding, self.source.chunk_lines)
        upcoming = next(chunks, None)
        while upcoming is not None:
            if self.ctx.stopping():
                raise RunStoppedError("the run is stopping")
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

    def _note_newest(self, values: list[str]) -> None:
        stamps = []
        for value in values:
            try:
                stamp = parse_timestamp(value)
                if stamp.tzinfo is None:
                    stamp = stamp.replace(tzinfo=ZoneInfo(self.source.timezone))
                stamps.append(stamp.astimezone(UTC))
            except (ValueError, OverflowError):  # e.g. year 9999 at -05:00 is past 9999 in UTC
                continue
        self.ctx.note_newest(stamps)

    def _record_failure(
        self, remote: RemoteFile, snap: Snapshot, entry: LedgerEntry | None, reason: str
    ) -> FileOutcome:
        """The file cannot be loaded: recorded (its rows were rolled back), kept on the
        server, retried only when it changes or on `reingest`."""
        self._confirm(remote.path, snap)
        version = entry.version if entry else 1
        if entry is not None and entry.status in GONE:
            version, entry = entry.version + 1, None  # a new version: nothing consumed
        self.log.error(f"{remote.path}: cannot be loaded: {reason}")
        failed = LedgerEntry(
            source=self.source.name,
            path=remote.path,
            version=version,
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
            store.save_entry(cur, failed, self.ctx.report.run_id)
        self.ctx.ledger[remote.path] = failed
        return FileOutcome(remote.path, "failed", failed.version, error=reason)

    # --- deletion after commit ----------------------------------------------------------

    def delete(self, path: str) -> bool:
        """Delete a committed, fully consumed file if it is still exactly what we loaded."""
        entry = self.ctx.ledger.get(path)
        if not self.ctx.delete_after or entry is None or entry.status != store.LOADED:
            return False
        if entry.offset_bytes < entry.size:
            return False  # a partial last line is still waiting
        try:
            stat = self.client.stat(path)
            if stat is None or stat != (entry.size, entry.mtime):
                self.log.info(f"{path}: changed since it was loaded; not deleted")
                return False
            self.client.delete(path)
        except (SourceUnavailableError, OSError, EOFError) as exc:
            error = self.client.resource.redact(str(exc))
        except Exception as exc:  # ftplib.error_perm etc.: recorded, retried next run
            error = self.client.resource.redact(f"{type(exc).__name__}: {exc}")
        else:
            error = None
        store.record_delete(self.conn, self.source.name, path, error)
        if error is not None:
            self.log.warning(f"{path}: delete failed (retried next run): {error}")
            self.ctx.report.delete_errors[path] = error
            return False
        entry.status = store.DELETED
        return True


class ClaimLostError(RuntimeError):
    """The content a new path would continue was taken over by another path first."""


# Ledger statuses of a path whose content is no longer there: it starts a new version.
GONE = (store.DELETED, store.MOVED)


def tail_due(entry: LedgerEntry, final_line_seconds: float) -> bool:
    """An unchanged file whose last line (without newline) has now waited long enough."""
    if entry.status != store.LOADED or entry.offset_bytes >= entry.size or not entry.mtime:
        return False
    return (datetime.now(UTC) - entry.mtime).total_seconds() >= final_line_seconds


@dataclass
class _Download:
    """A file's bytes as downloaded (to a temporary file) and what they were read as."""

    remote: RemoteFile
    snap: Snapshot
    tmp: IO[bytes]
    gz: bool
    head_hash: str | None
    head_len: int
    base: int = 0  # the file offset of tmp's first byte
    start: int = 0  # the offset the load starts at (the bytes before it: hash window only)
    predecessor: LedgerEntry | None = None  # content of another path this one continues
    previous: LedgerEntry | None = None  # this path's version being replaced


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(handle: IO[bytes]) -> str:
    handle.seek(0)
    return hashlib.file_digest(handle, "sha256").hexdigest()


def _may_be_same_compressed_file(entry: LedgerEntry, snap: Snapshot) -> bool:
    """Whether the ledger holds a whole-file hash of a .gz of exactly this size."""
    compressed = entry.format is not None and FileFormat.from_json(entry.format).compressed
    return compressed and entry.status == store.LOADED and entry.head_len == snap.size
