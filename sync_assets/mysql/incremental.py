"""Incremental sync: the rows changed since the watermark are staged, then upserted on the
primary key; rows whose primary key MySQL no longer has are deleted.

The rows with `watermark - overlap <= cursor <= snapshot maximum` (plus NULL cursors) are
copied into a temporary table batch by batch, and each batch is written while MySQL sends the
next, so the two servers work at once; MySQL's row count starts as soon as its last row is
sent. Within the first share of the table (the usual run) a batch is written by an UPDATE of
the changed rows and an INSERT of the new ones, both by key lookups, so rows read again
unchanged are not even locked; beyond it, by a single INSERT ... ON CONFLICT pass. All of it
happens in the caller's one transaction. The figures behind these choices are in
docs/performance.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.pg import copy_statement, exact_row_count, ident
from sync_assets.mysql import deletes, upsert_sql
from sync_assets.mysql.job import (
    FullRefreshNeededError,
    Job,
    copy_in_batches,
    guard_deletes,
    source_counter,
    sync_enum_checks,
    temp_table,
)
from sync_assets.mysql.naming import mq
from sync_assets.mysql.plan import Plan
from sync_assets.mysql.snapshot import Snapshot
from sync_assets.mysql.state import TableState
from sync_assets.mysql.stream import copy_query
from sync_assets.mysql.type_rules import cursor_kind
from sync_assets.mysql.types import ColumnMapping, row_expression

logger = logging.getLogger(__name__)

# Up to this share of the target's size, the staged rows are matched by primary-key lookups;
# PostgreSQL's default costs would hash-join them against the whole table far earlier.
LOOKUP_SHARE = 0.1


def incremental(
    job: Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    plan: Plan,
    snap: Snapshot,
    state: TableState | None,
) -> int:
    """Upsert the changed rows and delete the vanished ones; returns the table's row count."""
    assert state is not None
    for m in plan.widened:
        pg.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                job.target_ident, ident(m.target), sql.SQL(m.pg_type)
            )
        )
        job.report.widened_columns.append(m.target)
    sync_enum_checks(pg, job.target_ident, plan.mappings)  # before any new value arrives
    stage = temp_table(pg, "_sync_stage", plan.mappings)
    where, params = _cursor_bounds(job, state, snap)
    copy_stmt = copy_statement(stage, [m.target for m in plan.mappings])
    _prefer_rowid_ordered_reads(my)
    select = f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql} {where}"
    writer = _BatchWriter(job, pg, plan, stage)
    with source_counter(job, my) as source_count:
        # each batch is written while MySQL sends the next; the count starts after its last row
        with _planner_lookups(pg):
            copy_in_batches(
                job, my, pg, select, params, copy_stmt, writer.write, source_count.start
            )
        with job.report.timed("count"):
            current = exact_row_count(pg, job.schema, job.target)
        job.report.source_row_count = source_count.result()
    with job.report.timed("deletes"):
        return _delete_missing(job, pg, my, plan, current)


def _cursor_bounds(job: Job, state: TableState, snap: Snapshot) -> tuple[str, tuple[Any, ...]]:
    """WHERE clause: cursor in [watermark - overlap, snapshot maximum], plus NULL cursors."""
    col = next(c for c in job.source.columns if c.name == job.cursor)
    c = mq(col.name)
    if cursor_kind(col) == "temporal":
        lower = f"{c} >= CAST(%s AS DATETIME(6)) - INTERVAL %s SECOND"
        upper = f"{c} <= CAST(%s AS DATETIME(6))"
    else:
        lower = f"{c} >= CAST(%s AS DECIMAL(65,0)) - %s"
        upper = f"{c} <= CAST(%s AS DECIMAL(65,0))"
    nulls = f" OR {c} IS NULL" if col.nullable else ""
    if snap.upper is None:
        return f"WHERE FALSE{nulls}", ()
    return (
        f"WHERE ({lower} AND {upper}){nulls}",
        (state.watermark, job.options.overlap_seconds, snap.upper),
    )


def _check_booleans(pg: psycopg.Connection, plan: Plan, stage: sql.Identifier) -> None:
    """A BOOLEAN copy of a TINYINT(1) column stays one only while MySQL holds just 0 and 1."""
    columns = [m.target for m in plan.mappings if m.pg_type == "boolean"]
    if not columns:
        return
    row = pg.execute(upsert_sql.non_boolean_values(stage, columns)).fetchone() or ()
    for column, bad in zip(columns, row, strict=True):
        if bad:
            raise FullRefreshNeededError(f"column {column!r} now holds values other than 0/1")


def _prefer_rowid_ordered_reads(my: pymysql.Connection) -> None:
    """Changed rows are found through the cursor column's index; fetched in index order, each
    costs a random read of the table's clustered index. Multi-range read sorts their primary
    keys first and reads the table's pages in order, which matters once the table outgrows the
    buffer pool. Session-only and result-neutral; a server refusing the switch reads as before."""
    try:
        with my.cursor() as cur:
            cur.execute("SET SESSION optimizer_switch = 'mrr=on,mrr_cost_based=off'")
    except pymysql.MySQLError as exc:
        logger.debug("multi-range read not available: %s", exc)


class _BatchWriter:
    """Writes each batch of staged rows that is new or changed, then empties the stage; rows
    read again unchanged (the overlap window) are left alone.

    While the rows staged so far are at most LOOKUP_SHARE of the target's size (the usual
    run): UPDATE the changed ones, then INSERT the new ones, both by key lookups. INSERT ... ON
    CONFLICT DO UPDATE ... WHERE <changed> would also skip unchanged rows, but it locks each one
    first, and a lock is a WAL record plus, after a checkpoint, a full image of the row's page,
    where the lookups write nothing. Beyond that share: ON CONFLICT, whose single pass costs
    less than two lookups per row."""

    def __init__(self, job: Job, pg: psycopg.Connection, plan: Plan, stage: sql.Identifier) -> None:
        self.job, self.pg, self.plan, self.stage = job, pg, plan, stage
        self.upsert = upsert_sql.Upsert(job.target_ident, stage, plan.mappings, job.pk_targets)
        self.lookup_bytes = LOOKUP_SHARE * _relation_size(pg, job.target_ident)
        self.staged_bytes = 0

    def write(self) -> None:
        job, pg = self.job, self.pg
        _check_booleans(pg, self.plan, self.stage)
        self.staged_bytes += _relation_size(pg, self.stage)
        with job.report.timed("upsert"):
            if self.upsert.others and self.staged_bytes <= self.lookup_bytes:
                job.report.rows_updated += max(pg.execute(self.upsert.update_changed()).rowcount, 0)
                job.report.rows_inserted += max(pg.execute(self.upsert.insert_new()).rowcount, 0)
            else:
                row = pg.execute(self.upsert.on_conflict()).fetchone()
                job.report.rows_inserted += int(row[0]) if row else 0
                job.report.rows_updated += int(row[1]) if row else 0
            pg.execute(sql.SQL("TRUNCATE {}").format(self.stage))


def _relation_size(pg: psycopg.Connection, table: sql.Identifier) -> int:
    row = pg.execute("SELECT pg_relation_size(%s::regclass)", (table.as_string(pg),)).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def _planner_lookups(pg: psycopg.Connection) -> Iterator[None]:
    """Nested-loop joins only, for the block (transaction-local settings, restored after it;
    after an error the transaction's rollback restores them)."""
    saved = pg.execute(
        "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"
    ).fetchone()
    pg.execute(_SET_JOINS, ("off", "off"))
    yield
    pg.execute(_SET_JOINS, saved)


_SET_JOINS = (
    "SELECT set_config('enable_hashjoin', %s, true), set_config('enable_mergejoin', %s, true)"
)


# "auto": key ranges where the key allows (`deletes.range_key`), else every key streamed;
# "keys": always stream (the benchmark and tests compare both methods on the same data).
DELETE_METHOD = "auto"


def _delete_missing(
    job: Job, pg: psycopg.Connection, my: pymysql.Connection, plan: Plan, current: int
) -> int:
    """Remove rows whose primary key MySQL no longer has from the `current` rows; returns the
    table's row count afterwards."""
    mode = job.options.deletes
    if mode == "off" or (mode == "auto" and current == job.report.source_row_count):
        return current
    pk = set(job.pk_targets)
    key_mappings: list[ColumnMapping] = [m for m in plan.mappings if m.target in pk]
    key = deletes.range_key(key_mappings) if DELETE_METHOD != "keys" else None
    diff = None
    if key is not None:
        rows = max(current, job.report.source_row_count)
        diff = deletes.find_differences(job, pg, my, key, rows)
    if key is None or diff is None:
        return _stream_missing(job, pg, my, key_mappings, current)
    gone = deletes.collect_deletes(job, pg, my, key, diff)
    row = pg.execute(sql.SQL("SELECT count(*) FROM {}").format(gone)).fetchone()
    to_delete = int(row[0]) if row else 0
    guard_deletes(job, current, job.report.source_row_count, to_delete)
    if to_delete:
        cur = pg.execute(
            sql.SQL("DELETE FROM {} AS t USING {} AS g WHERE t.{} = g.{}").format(
                job.target_ident, gone, ident(key.target), ident(key.target)
            )
        )
        job.report.rows_deleted = cur.rowcount
    return current - job.report.rows_deleted


def _stream_missing(
    job: Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    key_mappings: list[ColumnMapping],
    current: int,
) -> int:
    """Every MySQL key streamed into a temporary table, then the target's rows whose key is
    not among them deleted (any key type: PostgreSQL compares the keys as it stores them)."""
    keys = temp_table(pg, "_sync_keys", key_mappings)
    copy_stmt = copy_statement(keys, [m.target for m in key_mappings])
    select = f"SELECT {row_expression(key_mappings)} FROM {job.source_sql}"
    with pg.cursor() as cur:
        source_keys = copy_query(
            my, select, (), cur, copy_stmt, job.options.batch_rows * 4, job.options.fast_reader
        ).rows
    pg.execute(sql.SQL("ANALYZE {}").format(keys))
    missing = upsert_sql.missing_from(keys, key_mappings)
    row = pg.execute(
        sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(job.target_ident, missing)
    ).fetchone()
    to_delete = int(row[0]) if row else 0
    guard_deletes(job, current, source_keys, to_delete)
    if to_delete:
        cur = pg.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(job.target_ident, missing))
        job.report.rows_deleted = cur.rowcount
    return current - job.report.rows_deleted
