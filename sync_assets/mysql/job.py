"""The shared job object of one sync attempt, and the steps both modes use with it.

`Job` carries what every step needs (the source table, target names, options, report), so the
steps in `full_refresh`, `incremental` and `verify` take one argument instead of ten.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.pg import derived_name, ident, short_hash
from sync_assets.core.progress import Progress
from sync_assets.mysql import config
from sync_assets.mysql.catalog import SourceTable
from sync_assets.mysql.naming import mq
from sync_assets.mysql.report import SyncReport
from sync_assets.mysql.stream import (
    StreamStats,
    abandon_unread,
    copy_query,
    pipelined,
    read_chunks,
)
from sync_assets.mysql.types import ColumnMapping, enum_values


class DeleteGuardError(RuntimeError):
    """The source would wipe out (a large share of) the copy; nothing was written."""


class BooleanGuessError(Exception):
    """A TINYINT(1) column created as BOOLEAN without scanning the table holds another value."""


class FullRefreshNeededError(Exception):
    """An incremental attempt found that only a full refresh can be right (reason given)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Job:
    """Everything one attempt needs, so helpers take one argument instead of ten."""

    source: SourceTable
    database: str
    names: dict[str, str]
    options: config.TableOptions
    schema: str
    target: str
    cursor: str | None
    report: SyncReport
    log: Any
    scan_booleans: bool = False  # set after a guessed BOOLEAN column met another value

    @property
    def target_ident(self) -> sql.Identifier:
        return ident(self.schema, self.target)

    @property
    def source_sql(self) -> str:
        return f"{mq(self.database)}.{mq(self.source.name)}"

    @property
    def pk_targets(self) -> list[str]:
        return [self.names[c] for c in self.source.primary_key]


def copy_rows(
    job: Job,
    my: pymysql.Connection,
    pg: psycopg.Connection,
    select_sql: str,
    params: tuple[Any, ...],
    copy_stmt: sql.Composable,
    expected_rows: int | None = None,
) -> StreamStats:
    """Stream `select_sql` into `copy_stmt`, counting rows, adjusted values and bytes; progress
    (rows, rows/s, time left against `expected_rows`) is logged every few seconds."""
    progress = Progress(job.log, f"{job.target}: copy", expected_rows)
    with job.report.timed("copy"), pg.cursor() as cur:
        stats = copy_query(
            my,
            select_sql,
            params,
            cur,
            copy_stmt,
            job.options.batch_rows,
            job.options.fast_reader,
            progress.update,
        )
    _count_copied(job, stats)
    return stats


def _count_copied(job: Job, stats: StreamStats) -> None:
    job.report.rows_read += stats.rows
    job.report.adjusted_values += stats.adjusted
    job.report.bytes_copied += stats.bytes


def copy_in_batches(
    job: Job,
    my: pymysql.Connection,
    pg: psycopg.Connection,
    select_sql: str,
    params: tuple[Any, ...],
    copy_stmt: sql.Composable,
    after_batch: Callable[[], None],
    on_read_end: Callable[[], None],
) -> StreamStats:
    """Stream `select_sql` into `copy_stmt` one batch at a time, calling `after_batch` after
    each (it works on what the batch staged) while the reader thread goes on reading MySQL:
    the batch is every chunk that arrived meanwhile. `on_read_end` runs in the reader thread as
    soon as MySQL has sent the last row, while batches may still be queued here."""
    progress = Progress(job.log, f"{job.target}: copy", None)
    stats = StreamStats()
    started = time.monotonic()

    def read_end() -> None:  # in the reader thread; a phase of its own, so no `timed`
        job.report.phase_seconds["source_read"] = round(time.monotonic() - started, 3)
        on_read_end()

    my_cur = my.cursor()
    my_cur.execute(select_sql, params or None)
    chunks = read_chunks(my_cur, job.options.batch_rows, stats, job.options.fast_reader)
    # closing(): after an error in a batch the reader thread is stopped before anyone else
    # (the count, the caller closing the connection) touches the MySQL connection
    batches = pipelined(chunks, on_end=read_end, gather=True)
    try:
        with job.report.timed("copy"), closing(batches), pg.cursor() as cur:
            for batch in batches:
                with cur.copy(copy_stmt) as copy:
                    copy.write(batch)
                after_batch()
                progress.update(stats.rows)
    except BaseException:
        abandon_unread(my_cur)
        raise
    _count_copied(job, stats)
    return stats


class SourceCount:
    """COUNT(*) of the source in the read snapshot, on the MySQL connection in a worker thread,
    while PostgreSQL does its share: the two servers work at once. `start` (from any thread,
    once the connection is free) begins it; `result` waits for it, starting it if needed."""

    def __init__(self, job: Job, my: pymysql.Connection, pool: ThreadPoolExecutor) -> None:
        self._job, self._my, self._pool = job, my, pool
        self._future: Future[int] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._future is None:
                self._future = self._pool.submit(self._count)

    def result(self) -> int:
        self.start()
        assert self._future is not None
        return self._future.result()

    def _count(self) -> int:
        with self._job.report.timed("source_count"), self._my.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {self._job.source_sql}")
            row = cur.fetchone()
        return int(row[0]) if row else 0


@contextmanager
def source_counter(job: Job, my: pymysql.Connection) -> Iterator[SourceCount]:
    """A `SourceCount`, not started; leaving the block waits for a started count, so nothing
    else uses `my` meanwhile."""
    with ThreadPoolExecutor(1, thread_name_prefix="mysql-count") as pool:
        yield SourceCount(job, my, pool)


@contextmanager
def counting_source(job: Job, my: pymysql.Connection) -> Iterator[SourceCount]:
    """A `SourceCount` started at once (the caller must not use `my` until it is done)."""
    with source_counter(job, my) as count:
        count.start()
        yield count


def temp_table(pg: psycopg.Connection, name: str, mappings: list[ColumnMapping]) -> sql.Identifier:
    """A temporary table (dropped at commit) with the columns' COPY types."""
    table = sql.Identifier(name)
    pg.execute(
        sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP").format(
            table,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(ident(m.target), sql.SQL(m.copy_type)) for m in mappings
            ),
        )
    )
    return table


def guard_deletes(job: Job, current: int, remaining_source: int, to_delete: int) -> None:
    """Refuse to empty the copy, or to delete more than the configured share of it."""
    limit = job.options.max_delete_fraction
    if current == 0 or to_delete == 0:
        return
    if remaining_source == 0 and limit < 1:
        raise DeleteGuardError(
            f"MySQL table {job.source.name!r} returned no rows while {job.schema}.{job.target}"
            f" holds {current}; refusing to wipe the copy (set max_delete_fraction: 1.0 for"
            " this table if the source was emptied on purpose)"
        )
    if to_delete > limit * current:
        raise DeleteGuardError(
            f"syncing {job.source.name!r} would delete {to_delete} of {current} rows"
            f" ({to_delete / current:.0%}), more than max_delete_fraction={limit:.0%};"
            " nothing was written (raise the limit for this table if this is intended)"
        )


_ENUM_CHECK = re.compile(r"_enum_[0-9a-f]{8}$")


def sync_enum_checks(
    pg: psycopg.Connection, table: sql.Identifier, mappings: list[ColumnMapping]
) -> None:
    """One CHECK per ENUM column allowing its values (plus '', MySQL's value for invalid
    input). The name carries a hash of the values, so a changed ENUM replaces its CHECK (before
    new values arrive) and an unchanged one costs nothing."""
    wanted: dict[str, tuple[str, list[str]]] = {}
    for m in mappings:
        if m.source.data_type == "enum":
            values = enum_values(m.source.column_type)
            name = derived_name(m.target, "enum_" + short_hash("\x00".join(values)))
            wanted[name] = (m.target, values)
    present = {
        name
        for (name,) in pg.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
            (table.as_string(pg),),
        ).fetchall()
        if _ENUM_CHECK.search(name)
    }
    for name in present - set(wanted):
        pg.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, ident(name)))
    for name in set(wanted) - present:
        column, values = wanted[name]
        pg.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IN ({}))").format(
                table,
                ident(name),
                ident(column),
                sql.SQL(", ").join(sql.Literal(v) for v in [*values, ""]),
            )
        )
