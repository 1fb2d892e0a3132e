"""`ingest_source`: one run of one log source, exactly once, deleting only after commit.

A run: take the source's advisory lock; list the remote files; compare with the ledger; look
twice (with a pause) at the files that need work so that only stable, old-enough files are
committed; load the files, `parallel_files` at a time, each in one transaction with its ledger
row; after each commit, delete the remote file if asked to and it is still unchanged.

The pause between the two looks is not idle: workers already download and load files whose
first look is old enough, but each file's transaction waits for the second look and commits
only if it confirmed the size/mtime that was read (`filework`, `parallel`).

Over 400 lines on purpose: one run's steps (listing, classification, looks, pool, report)
share the run's state; what stands alone lives elsewhere (listed times: listtime.py, moved
content: rotation.py, one file: filework.py).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from sync_assets.core.locks import advisory_lock
from sync_assets.core.names import ftp_source_lock
from sync_assets.core.secrets import redact
from sync_assets.ftp import listtime, rotation, store
from sync_assets.ftp.client import FTPClient
from sync_assets.ftp.config import SourceConfig
from sync_assets.ftp.filework import FileWorker, RunContext, tail_due
from sync_assets.ftp.formats import PROVENANCE
from sync_assets.ftp.listing import RemoteFile
from sync_assets.ftp.parallel import SchemaGate, Snapshot, StableLooks
from sync_assets.ftp.report import WAITING_STATUSES, FileOutcome, IngestReport
from sync_assets.ftp.retry import RetryPolicy
from sync_assets.ftp.sessions import open_client
from sync_assets.resources import FTPResource, PostgresResource, SourceUnavailableError

if TYPE_CHECKING:
    from sync_assets.ftp.sessions import RemoteClient

__all__ = [
    "FileOutcome",
    "IngestReport",
    "classify",
    "ingest_source",
    "list_files",
    "pending_bytes",
    "source_root",
]


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
    with (
        postgres_resource.connection(autocommit=True) as lock_conn,
        advisory_lock(lock_conn, ftp_source_lock(source.name), source.lock_wait_seconds),
        postgres_resource.connection(autocommit=True) as conn,
    ):
        store.ensure_meta_tables(conn)
        store.ensure_target_table(conn, source.schema, source.table_name)
        _session(conn, source)
        run = _Run(conn, ftp_resource, postgres_resource, source, report, logger)
        try:
            run.execute()
        finally:
            run.close()
    report.duration_seconds = time.monotonic() - started
    return report


def source_root(ftp_resource: FTPResource, source: SourceConfig) -> str:
    """The source's directory (FTP_DIR when it names none), maybe relative to the login's."""
    return (source.directory or ftp_resource.directory or "/").rstrip("/") or "/"


def list_files(client: RemoteClient, root: str, source: SourceConfig) -> list[RemoteFile]:
    """The files of `source` under `root` (absolute), sorted by path."""
    prefix = root.rstrip("/") + "/"
    found = []
    for path, entry in client.walk(root, source.recursive):
        relative = path[len(prefix) :] if path.startswith(prefix) else path
        if source.wants(relative):
            listed = entry.mtime if entry.precision > 1 else None
            found.append(
                RemoteFile(path, relative, entry.size, entry.mtime, entry.precision, listed)
            )
    found.sort(key=lambda f: f.path)
    return found


def classify(
    remote: RemoteFile, entry: store.LedgerEntry | None, source: SourceConfig, delete_after: bool
) -> str:
    """What a run does with a listed file: `load` (new, changed, or a due last line),
    `delete` (loaded whole, to delete with DELETE_AFTER_SYNC) or `unchanged`."""
    if entry is None or entry.status in (store.DELETED, store.MOVED):
        return "load"
    if not unchanged(remote, entry):
        return "load"
    if tail_due(entry, source.final_line_seconds):
        return "load"
    if delete_after and entry.status == store.LOADED and entry.offset_bytes >= entry.size:
        return "delete"
    return "unchanged"


def unchanged(remote: RemoteFile, entry: store.LedgerEntry) -> bool:
    """The listing shows the version the ledger has: the same listed time as recorded (LIST
    servers, listtime.py), else the same size and mtime within the listing's precision."""
    return listtime.unchanged_by_listing(remote, entry) or remote.same_as(entry.size, entry.mtime)


def pending_bytes(remote: RemoteFile, entry: store.LedgerEntry | None) -> int:
    """Bytes of `remote` not loaded yet: past the stored offset of a file that grew, else all."""
    if entry is not None and entry.status == store.LOADED and remote.size >= entry.offset_bytes:
        return remote.size - entry.offset_bytes
    return remote.size


def _backlog_bytes(
    files: list[RemoteFile], outcomes: list[FileOutcome], ledger: dict[str, store.LedgerEntry]
) -> int:
    """Bytes of the files left for a later run (the report's `files_waiting`)."""
    waiting = {o.path for o in outcomes if o.status in WAITING_STATUSES}
    return sum(pending_bytes(f, ledger.get(f.path)) for f in files if f.path in waiting)


def _session(conn: psycopg.Connection, source: SourceConfig) -> None:
    """Session settings of every connection that loads. Connections are in autocommit: each
    file is one explicit transaction (`conn.transaction()`), never a savepoint inside a
    forgotten one."""
    # Naive timestamps in files are read in the source's zone (COPY into timestamptz).
    conn.execute("SELECT set_config('TimeZone', %s, false)", (source.timezone,))
    # 28.11.2026 is day.month in European exports; ISO dates are unaffected.
    conn.execute("SET DateStyle = 'ISO, DMY'")


class _Run:
    def __init__(
        self,
        conn: psycopg.Connection,
        ftp_resource: FTPResource,
        postgres: PostgresResource,
        source: SourceConfig,
        report: IngestReport,
        log: logging.Logger,
    ) -> None:
        self.conn = conn
        self.ftp_resource = ftp_resource
        self.postgres = postgres
        self.source = source
        self.report = report
        self.log = log
        self.client = self._client()
        self.clients = [self.client]
        self.root = source_root(ftp_resource, source)
        self.ledger = store.load_ledger(conn, source.name)
        self.delete_after = ftp_resource.should_delete_after_sync
        self.list_offset = listtime.parse_offset(ftp_resource.list_time_offset)

    def _client(self) -> RemoteClient:
        policy = RetryPolicy(self.source.retries, self.source.retry_backoff_seconds)
        return open_client(self.ftp_resource, policy, self.log)

    def close(self) -> None:
        self.report.reconnects = sum(c.reconnects for c in self.clients)
        self.client.close()

    # --- planning -----------------------------------------------------------------------

    def execute(self) -> None:
        self.root = self.client.absolute(self.root)
        listed_at = datetime.now(UTC)
        files = self._list()
        self.report.files_seen = len(files)
        verdicts = {remote.path: self._classify(remote) for remote in files}
        kept = listtime.listed_to_keep(files, self.ledger, verdicts, listed_at)
        store.record_listed(self.conn, self.source.name, kept)
        to_load = [remote for remote in files if verdicts[remote.path] == "load"]
        to_delete = [remote for remote in files if verdicts[remote.path] == "delete"]
        looks = StableLooks(self._first_look(to_load), self.source.min_age_seconds)
        counter = _RowCounter(self.postgres, self.source, self.log)  # before any commit
        workers = max(1, min(self.source.parallel_files, len(to_load)))
        ctx = RunContext(
            self.source,
            self.report,
            self.log,
            self.delete_after,
            self.ledger,
            looks,
            SchemaGate(parallel=workers > 1),
            redact=self._redact,
            listed_at=listed_at,
        )
        if to_load:  # what rotated or moved files may continue
            retired = store.load_retired(self.conn, self.source.name)
            changed = {remote.path for remote in to_load}
            ctx.seen = rotation.seen_content(self.ledger, retired, files, changed)
        failed_before = {p for p, e in self.ledger.items() if e.status == store.FAILED}
        pool = _Pool(self, ctx, to_load, workers, first_alone=self._fresh_table())
        try:
            outcomes = pool.run(lambda: self._second_look(looks))
        finally:
            before = counter.result()
            self.report.stable_wait_seconds = looks.wait_seconds
        committed = sum(o.rows_loaded for o in outcomes if o.status in ("loaded", "rejected"))
        self.report.table_rows = None if before is None else before + committed
        self.report.files = outcomes
        self.report.backlog_bytes = _backlog_bytes(files, outcomes, self.ledger)
        self._note_failures(files, outcomes, failed_before)
        deleted = [o.path for o in outcomes if o.deleted]
        main = FileWorker(ctx, self.conn, self.client)
        deleted += [r.path for r in to_delete if main.delete(r.path)]
        self.report.deleted = deleted
        if ctx.newest:
            self.report.newest_record = max(ctx.newest)

    def _redact(self, text: str) -> str:
        return redact(self.ftp_resource.redact(text), [self.postgres.password])

    def _note_failures(
        self, files: list[RemoteFile], outcomes: list[FileOutcome], failed_before: set[str]
    ) -> None:
        """Which files failed for the first time (an alert per file keys on these), and
        every listed file whose ledger status is `failed` now (this run's or earlier)."""
        self.report.newly_failed = [
            o.path for o in outcomes if o.status == "failed" and o.path not in failed_before
        ]
        for remote in files:
            entry = self.ledger.get(remote.path)
            if entry is not None and entry.status == store.FAILED:
                self.report.failed_files[remote.path] = entry.error or ""

    def _fresh_table(self) -> bool:
        """No data column yet: the first file will define them (and lock the table for it)."""
        with self.conn.cursor() as cur:
            columns = store.table_columns(cur, self.source.schema, self.source.table_name)
        return all(c in PROVENANCE or c == "_ingested_at" for c in columns)

    def _list(self) -> list[RemoteFile]:
        files = list_files(self.client, self.root, self.source)
        if self.client.has_mlst or not files:
            return files
        modified = self.client.modified if isinstance(self.client, FTPClient) else None
        files, self.list_offset = listtime.to_utc(
            files, self.ledger, self.list_offset, modified, self.log
        )
        return files

    def _classify(self, remote: RemoteFile) -> str:
        return classify(remote, self.ledger.get(remote.path), self.source, self.delete_after)

    # --- the stable-file rule -----------------------------------------------------------

    def _snapshots(self, paths: list[str]) -> dict[str, Snapshot | None]:
        """Precise size/mtime now: MLSD listings are precise; LIST servers need SIZE+MDTM."""
        if self.client.has_mlst:
            wanted = set(paths)
            found = {
                path: Snapshot(entry.size, entry.mtime)
                for path, entry in self.client.walk(self.root, self.source.recursive)
                if path in wanted
            }
            return {path: found.get(path) for path in paths}
        result: dict[str, Snapshot | None] = {}
        for path in paths:
            stat = self.client.stat(path)
            result[path] = Snapshot(*stat) if stat else None
        return result

    def _first_look(self, files: list[RemoteFile]) -> dict[str, Snapshot | None]:
        if self.client.has_mlst:
            return {f.path: Snapshot(f.size, f.mtime) for f in files}
        return self._snapshots([f.path for f in files]) if files else {}

    def _second_look(self, looks: StableLooks) -> None:
        """`stable_seconds` after the first look, look again (the workers already read)."""
        paths = list(looks.first)
        if self.source.stable_seconds > 0 and paths:
            pause = looks.taken_at + self.source.stable_seconds - time.monotonic()
            time.sleep(max(0.0, pause))
            looks.settle(self._snapshots(paths))
        else:
            looks.settle(looks.first)


class _RowCounter:
    """count(*) of the table as it was before the run's first commit, taken in a thread while
    the run works (the final `count(*)` of a large table was on the critical path).

    The count's snapshot is taken before `__init__` returns, so before any worker starts; the
    run's committed rows are added to it. Exact because nothing else writes the table meanwhile:
    one source per table, and its runs and `reingest` hold the source's lock. None if the
    count took longer than store.ROW_COUNT_TIMEOUT or failed (the caller then estimates).
    """

    def __init__(self, postgres: PostgresResource, source: SourceConfig, log: logging.Logger):
        self.postgres = postgres
        self.source = source
        self.log = log
        self.rows: int | None = None
        self._snapshot = threading.Event()
        self._thread = threading.Thread(target=self._count, name="ftp-row-count", daemon=True)
        self._thread.start()
        self._snapshot.wait()

    def _count(self) -> None:
        try:
            with self.postgres.connection() as conn, conn.cursor() as cur:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                conn.execute("SELECT 1")  # the transaction's snapshot is taken here
                self._snapshot.set()
                self.rows = store.exact_row_count(cur, self.source.schema, self.source.table_name)
        except (psycopg.Error, SourceUnavailableError) as exc:
            self.log.info(f"row count of the table not taken ({exc}); an estimate is reported")
        finally:
            self._snapshot.set()

    def result(self) -> int | None:
        self._thread.join()
        return self.rows


def _file_line(index: int, total: int, outcome: FileOutcome) -> str:
    """One info line per file: `file 3 of 12: /x/a.csv: loaded, 500 rows (2 rejected), 41 kB`."""
    rejected = f" ({outcome.rows_rejected} rejected)" if outcome.rows_rejected else ""
    size = f", {outcome.bytes_read / 1000:,.0f} kB" if outcome.bytes_read else ""
    return (
        f"file {index + 1} of {total}: {outcome.path}: {outcome.status},"
        f" {outcome.rows_loaded} rows{rejected}{size}"
    )


class _Pool:
    """`size` worker threads, each with its own PostgreSQL connection and FTP session, taking
    the files in listing order. A worker that fails stops the others after their current
    file; the first error is raised once all have stopped."""

    def __init__(
        self, owner: _Run, ctx: RunContext, files: list[RemoteFile], size: int, first_alone: bool
    ) -> None:
        self.owner = owner
        # A new table gets its columns from the first file, in a transaction that locks the
        # table until it commits: that file loads alone, the others start after it.
        self.first_alone = first_alone and size > 1
        self._first_done = threading.Event()
        self.ctx = ctx
        self.files = files
        self.size = size
        self.outcomes: list[FileOutcome | None] = [None] * len(files)
        self.errors: list[BaseException] = []
        self._next = 0
        self._lock = threading.Lock()

    def run(self, meanwhile: Callable[[], None]) -> list[FileOutcome]:
        """Load every file; `meanwhile` (the second look) runs in this thread."""
        threads = [
            threading.Thread(target=self._work, name=f"ftp-file-{i}", daemon=True)
            for i in range(self.size if self.files else 0)
        ]
        for thread in threads:
            thread.start()
        try:
            meanwhile()
        except BaseException as exc:
            self.ctx.looks.abort()  # no second look: nothing read early may commit
            self._fail(exc)
        finally:
            self._join(threads)
        if self.errors:
            raise self.errors[0]
        return [o for o in self.outcomes if o is not None]

    def _join(self, threads: list[threading.Thread]) -> None:
        try:
            for thread in threads:
                thread.join()
        except BaseException as exc:  # interrupted while waiting: stop the workers, wait
            self.ctx.looks.abort()
            self._fail(exc)
            for thread in threads:
                thread.join()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)
        # The others finish the file they are on (it commits if the second look confirms it).
        self.ctx.stop.set()
        self.ctx.gate.wake()
        self._first_done.set()

    def _take(self) -> tuple[int, RemoteFile] | None:
        with self._lock:
            if self.ctx.stopping() or self._next >= len(self.files):
                return None
            index, self._next = self._next, self._next + 1
            self.ctx.gate.started(index)
        if index > 0 and self.first_alone:
            self._first_done.wait()
            if self.ctx.stopping():
                self.ctx.gate.finished(index)
                return None
        return index, self.files[index]

    def _finished(self, index: int) -> None:
        self.ctx.gate.finished(index)
        if index == 0:
            self._first_done.set()

    def _work(self) -> None:
        try:
            with self._worker() as worker:
                while item := self._take():
                    index, remote = item
                    try:
                        alone = index == 0 and self.first_alone
                        outcome = worker.process(index, remote, exclusive=alone)
                        self.outcomes[index] = outcome
                        self.owner.log.info(_file_line(index, len(self.files), outcome))
                    finally:
                        self._finished(index)
        except BaseException as exc:
            if not self.ctx.stopping() or not self.errors:
                self._fail(exc)

    @contextmanager
    def _worker(self) -> Iterator[FileWorker]:
        client = self.owner._client()
        with self._lock:
            self.owner.clients.append(client)
        try:
            with self.owner.postgres.connection(autocommit=True) as conn:
                _session(conn, self.ctx.source)
                yield FileWorker(self.ctx, conn, client)
        finally:
            client.close()
