"""The shared job object of one sync attempt, and the steps both modes use with it.

`Job` carries what every step needs (the source table, target names, options, report), so the
steps in `full_refresh`, `incremental` and `verify` take one argument instead of ten.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
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
from sync_assets.mysql.stream import StreamStats, copy_query
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
    job.report.rows_read += stats.rows
    job.report.adjusted_values += stats.adjusted
    job.report.bytes_copied += stats.bytes
    return stats


@contextmanager
def counting_source(job: Job, my: pymysql.Connection) -> Iterator[Future[int]]:
    """COUNT(*) of the source in the read snapshot, on the MySQL connection in a worker thread,
    while PostgreSQL does its share (building keys, upserting, counting the target): the two
    servers work at once. The caller must not use `my` until the future is done."""

    def count() -> int:
        with job.report.timed("source_count"), my.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {job.source_sql}")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    with ThreadPoolExecutor(1, thread_name_prefix="mysql-count") as pool:
        yield pool.submit(count)


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
