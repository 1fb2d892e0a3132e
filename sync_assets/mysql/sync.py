"""Sync one MySQL table into PostgreSQL: the plain-Python entry point the asset runs.

`sync_table(mysql, postgres, options)` reads the table in one consistent MySQL snapshot and
writes it in one PostgreSQL transaction, under a per-table advisory lock:

- full refresh: COPY into a staging table created in the same transaction, add the keys, then
  drop the old table and rename the new one; readers see the old table until the commit.
- incremental: COPY the rows whose cursor is at or above (watermark - overlap) and at or below
  the snapshot's maximum into a temporary table, then upsert them on the primary key; rows whose
  values did not change are not written. Deleted rows are found by comparing primary keys.

A crash or kill at any point rolls the PostgreSQL transaction back: the table and its
watermark stay as they were, and the next run starts from the same place.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.locks import advisory_lock
from sync_assets.core.pg import check_identifier, copy_statement, ident
from sync_assets.core.progress import Progress
from sync_assets.core.settings import ConfigError
from sync_assets.mysql import config
from sync_assets.mysql.catalog import SourceTable, pg_columns, read_source_table
from sync_assets.mysql.naming import derived_name, lower_names, mq, short_hash
from sync_assets.mysql.state import (
    TableState,
    ensure_bookkeeping,
    load_state,
    save_state,
    staging_schema,
)
from sync_assets.mysql.stream import StreamStats, copy_query, raw_connection
from sync_assets.mysql.types import (
    INTEGER_TYPES,
    ColumnMapping,
    enum_values,
    map_column,
    row_expression,
    type_change,
)

logger = logging.getLogger(__name__)

TEMPORAL_CURSORS = {"date", "datetime", "timestamp"}
INTEGER_CURSORS = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}


class DeleteGuardError(RuntimeError):
    """The source would wipe out (a large share of) the copy; nothing was written."""


class _BooleanGuessError(Exception):
    """A TINYINT(1) column created as BOOLEAN without scanning the table holds another value."""


class _FullRefreshNeededError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SyncReport:
    """What one sync did; `metadata()` is what the asset reports."""

    source_table: str
    target_schema: str
    target_table: str
    mode: str = ""
    reason: str = ""
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    rows_replaced: int = 0
    row_count: int = 0
    source_row_count: int = 0
    watermark: str | None = None
    previous_watermark: str | None = None
    duration_seconds: float = 0.0
    adjusted_values: int = 0
    bytes_copied: int = 0
    columns: list[tuple[str, str]] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    widened_columns: list[str] = field(default_factory=list)
    dropped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    mismatched_rows: int | None = None  # rows (keys) that differ, when `verify_values` is on
    mismatch_sample: list[str] = field(default_factory=list)  # primary keys of a few of them

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to `phase_seconds[phase]` (where a sync spends its time)."""
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            self.phase_seconds[phase] = round(self.phase_seconds.get(phase, 0.0) + elapsed, 3)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def counts_match(self) -> bool:
        return self.row_count == self.source_row_count


@dataclass
class _Snapshot:
    """Facts read in the MySQL snapshot before the rows themselves."""

    job: _Job
    my: pymysql.Connection
    upper: str | None  # MAX(cursor) in the snapshot, as MySQL prints it: the read's bound
    watermark: str | None  # what the next run starts from: the upper bound, but never later
    # than the snapshot's NOW(), so a row stamped in the future cannot hide the rows after it

    def not_boolean(self, names: list[str]) -> set[str]:
        """Which of the TINYINT(1) columns `names` hold values other than 0/1 (a full scan:
        asked only when a full refresh cannot guess; incremental runs check the staged rows)."""
        if not names:
            return set()
        sums = ", ".join(f"COALESCE(SUM({mq(n)} NOT IN (0, 1)), 0)" for n in names)
        with self.my.cursor() as cur:
            cur.execute(f"SELECT {sums} FROM {self.job.source_sql}")
            row = cur.fetchone()
        return {n for n, bad in zip(names, row, strict=True) if int(bad)}


@dataclass
class _Plan:
    mode: str
    reason: str
    mappings: list[ColumnMapping]
    widened: list[ColumnMapping] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)  # kept target columns → their type
    guessed: set[str] = field(default_factory=set)  # TINYINT(1) made BOOLEAN without a scan


@dataclass
class _Job:
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


def sync_table(
    mysql: Any,
    postgres: Any,
    options: config.TableOptions,
    log: Any = None,
    target_schema: str | None = None,
) -> SyncReport:
    """Sync MySQL table `options.name` into `<target_schema>.<lower-cased name>`."""
    started = time.monotonic()
    log = log or logger
    schema = check_identifier(target_schema or config.target_schema(), "target schema")
    with closing(mysql.connect()) as meta_conn:
        source = read_source_table(meta_conn, mysql.database, options.name)
    target = check_identifier(options.name.lower(), "table name")
    names = lower_names([c.name for c in source.columns], "column")
    report = SyncReport(options.name, schema, target)
    job = _Job(
        source, mysql.database, names, options, schema, target, _cursor_column(source, options),
        report, log,
    )  # fmt: skip
    with postgres.connection(autocommit=True) as lock_conn:
        ensure_bookkeeping(lock_conn, schema)
        with advisory_lock(lock_conn, f"mysql:{schema}.{target}", options.lock_wait_seconds):
            _attempts(job, mysql, postgres)
    report = job.report
    report.duration_seconds = time.monotonic() - started
    log.info(
        f"{target}: {report.mode} ({report.reason}); read {report.rows_read} rows,"
        f" +{report.rows_inserted} ~{report.rows_updated} -{report.rows_deleted},"
        f" {report.row_count} rows now, {report.duration_seconds:.2f}s"
    )
    return report


def _attempts(job: _Job, mysql: Any, postgres: Any) -> None:
    """Sync, starting over (a new snapshot; the failed attempt wrote nothing) when a run finds
    it must be a full refresh, or that a column guessed BOOLEAN holds another value. Each can
    happen once, so there are at most three attempts."""
    force_full: str | None = None
    restarts: list[str] = []
    for _ in range(3):
        try:
            _attempt(job, mysql, postgres, force_full)
            job.report.notes.extend(restarts)
            return
        except _FullRefreshNeededError as exc:
            force_full = exc.reason
            restarts.append(f"started over as a full refresh: {exc.reason}")
        except _BooleanGuessError:
            job.scan_booleans = True
            restarts.append(
                "started over: a TINYINT(1) column created as boolean holds other values"
                " (its type is now decided by a scan)"
            )
        job.log.info(f"{job.target}: {restarts[-1]}")
        job.report = SyncReport(job.source.name, job.schema, job.target)
    raise RuntimeError(f"{job.target}: no attempt completed")  # unreachable, see above


def _cursor_column(source: SourceTable, options: config.TableOptions) -> str | None:
    by_name = {c.name: c for c in source.columns}
    if options.cursor_column:
        col = by_name.get(options.cursor_column)
        if col is None:
            raise ConfigError(
                f"mysql.tables.{options.name}.cursor_column {options.cursor_column!r} is not a"
                f" column of the table"
            )
        if col.data_type not in TEMPORAL_CURSORS | INTEGER_CURSORS:
            raise ConfigError(
                f"cursor column {col.name!r} must be a date/time or integer column,"
                f" not {col.column_type}"
            )
        return col.name
    auto = [c.name for c in source.columns if c.data_type in TEMPORAL_CURSORS and c.auto_updated]
    return auto[0] if len(auto) == 1 else None


def _attempt(job: _Job, mysql: Any, postgres: Any, force_full: str | None) -> None:
    with postgres.connection(autocommit=True) as pg, closing(raw_connection(mysql)) as my:
        state = load_state(pg, job.schema, job.target)
        existing = pg_columns(pg, job.schema, job.target)
        with my.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        with job.report.timed("snapshot_facts"):
            snap = _snapshot_facts(job, my)
        plan = _plan(job, existing, state, snap, force_full)
        report = job.report
        report.mode, report.reason = plan.mode, plan.reason
        job.log.info(
            f"{job.target}: {plan.mode} ({plan.reason});"
            f" watermark {state.watermark if state else None} → {snap.watermark}"
        )
        report.previous_watermark = state.watermark if state else None
        report.watermark = snap.watermark
        report.primary_key = job.pk_targets
        report.columns = [(m.target, m.pg_type) for m in plan.mappings]
        report.columns += list(plan.dropped.items())
        report.dropped_columns = sorted(plan.dropped)
        with report.timed("write_transaction"), pg.transaction():
            if plan.mode == "incremental":
                report.row_count = _incremental(job, pg, my, plan, snap, state)
            else:
                _full_refresh(job, pg, my, plan, existing)
            if job.options.verify_values:
                with report.timed("verify"):
                    _verify_values(job, pg, my, plan)
            cursor_target = job.names[job.cursor] if job.cursor else None
            save_state(
                pg,
                job.schema,
                job.target,
                job.source.name,
                TableState(plan.mode, cursor_target, snap.watermark, job.pk_targets),
            )
        my.rollback()  # ends the read-only snapshot


@contextmanager
def _counting_source(job: _Job, my: pymysql.Connection) -> Iterator[Future[int]]:
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


def _text(value: Any) -> str | None:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _snapshot_facts(job: _Job, my: pymysql.Connection) -> _Snapshot:
    """The cursor's maximum in the read snapshot (an index lookup when the cursor is indexed);
    the row count comes later, while PostgreSQL works (`_counting_source`)."""
    if not job.cursor:
        return _Snapshot(job, my, None, None)
    col = next(c for c in job.source.columns if c.name == job.cursor)
    upper = watermark = f"CAST(MAX({mq(col.name)}) AS CHAR)"
    future = "NULL"
    if col.data_type in TEMPORAL_CURSORS:
        watermark = f"CAST(LEAST(MAX({mq(col.name)}), NOW(6)) AS CHAR)"
        future = f"MAX({mq(col.name)}) > NOW(6)"
    with my.cursor() as cur:
        cur.execute(f"SELECT {upper}, {watermark}, {future} FROM {job.source_sql}")
        top, mark, in_future = cur.fetchone()
    if in_future and int(in_future):
        job.report.notes.append(
            f"cursor values in the future (up to {_text(top)}): watermark held at the"
            " snapshot's time; those rows are re-read (not rewritten) until then"
        )
    return _Snapshot(job, my, _text(top), _text(mark))


def _mappings(job: _Job, as_boolean: set[str]) -> list[ColumnMapping]:
    return [
        map_column(c, job.names[c.name], c.name in as_boolean, job.source.name)
        for c in job.source.columns
    ]


def _plan(
    job: _Job,
    existing: dict[str, str],
    state: TableState | None,
    snap: _Snapshot,
    force_full: str | None,
) -> _Plan:
    kept = {t: ty for t, ty in existing.items() if t not in set(job.names.values())}

    def full(reason: str) -> _Plan:
        guessed, scanned = _boolean_candidates(job, existing)
        booleans = guessed | (scanned - snap.not_boolean(sorted(scanned)))
        return _Plan(
            "full_refresh", reason, _mappings(job, booleans), dropped=kept, guessed=guessed
        )

    reason = _incremental_blocker(job, existing, state, force_full)
    if reason:
        return full(reason)
    current_bool = {
        c.name for c in job.source.columns if existing.get(job.names[c.name]) == "boolean"
    }
    mappings = _mappings(job, current_bool)
    widened: list[ColumnMapping] = []
    for m in mappings:
        old = existing.get(m.target)
        if old is None:
            job.report.added_columns.append(m.target)
            return full(f"column {m.target!r} was added in MySQL")
        change = type_change(old, m.pg_type)
        if change == "incompatible":
            return full(f"type of column {m.target!r} changed incompatibly: {old} → {m.pg_type}")
        if change == "widen":
            widened.append(m)
    return _Plan("incremental", "cursor and primary key", mappings, widened, kept)


def _boolean_candidates(job: _Job, existing: dict[str, str]) -> tuple[set[str], set[str]]:
    """The TINYINT(1) columns a full refresh makes BOOLEAN without reading the table (those
    the copy does not hold as integers already), and those it scans first (the others).

    Scanning every such column costs a pass over the table before the first row moves (0.5 s
    for 1M rows). A guess is checked by PostgreSQL itself: COPY refuses any value other than
    0/1 for a boolean, and the run then starts over with every candidate scanned."""
    candidates = {c.name for c in job.source.columns if c.bool_candidate}
    if job.scan_booleans:
        return set(), candidates
    integers = {n for n in candidates if existing.get(job.names[n], "boolean") != "boolean"}
    return candidates - integers, integers


def _incremental_blocker(
    job: _Job, existing: dict[str, str], state: TableState | None, force_full: str | None
) -> str | None:
    """Why this run cannot be incremental (None when it can)."""
    wants = job.options.mode
    if force_full:
        return force_full
    if wants == "full_refresh":
        return "full refresh configured"
    structural = None
    if not job.source.primary_key:
        structural = "the table has no primary key"
    elif not job.cursor:
        structural = "no cursor column (configure cursor_column)"
    if structural:
        if wants == "incremental":
            raise ConfigError(
                f"mysql.tables.{job.source.name}: incremental impossible: {structural}"
            )
        return structural
    if not existing:
        return "first load"
    if state is None or state.watermark is None:
        return "no watermark stored yet"
    if state.primary_key != job.pk_targets or state.cursor_column != job.names[job.cursor]:
        return "primary key or cursor column changed"
    return None


def _pg_count(pg: psycopg.Connection, table: sql.Composable) -> int:
    row = pg.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return int(row[0]) if row else 0


def _column_list(names: list[str]) -> sql.Composed:
    return sql.SQL(", ").join(ident(n) for n in names)


def _copy(job: _Job, my: pymysql.Connection, pg: psycopg.Connection, select_sql: str,
          params: tuple[Any, ...], copy_stmt: sql.Composable,
          expected_rows: int | None = None) -> StreamStats:  # fmt: skip
    progress = Progress(job.log, f"{job.target}: copy", expected_rows)
    with job.report.timed("copy"), pg.cursor() as cur:
        stats = copy_query(
            my, select_sql, params, cur, copy_stmt, job.options.batch_rows,
            job.options.fast_reader, progress.update,
        )  # fmt: skip
    job.report.rows_read += stats.rows
    job.report.adjusted_values += stats.adjusted
    job.report.bytes_copied += stats.bytes
    return stats


def _guard_deletes(job: _Job, current: int, remaining_source: int, to_delete: int) -> None:
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


# --- full refresh -----------------------------------------------------------------------------


def _full_refresh(
    job: _Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    plan: _Plan,
    existing: dict[str, str],
) -> None:
    """Load a staging table, swap it in for the old one (`existing`: its columns), count."""
    staging = ident(staging_schema(job.schema), job.target)
    columns = [(m.target, m.pg_type) for m in plan.mappings] + list(plan.dropped.items())
    pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(staging))
    key_first = _key_grows_with_the_load(job)
    pg.execute(
        sql.SQL("CREATE TABLE {} ({}{})").format(
            staging,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(ident(name), sql.SQL(pg_type)) for name, pg_type in columns
            ),
            _primary_key(job) if key_first else sql.SQL(""),
        )
    )
    copy_stmt = copy_statement(staging, [m.target for m in plan.mappings], freeze=True)
    try:
        stats = _copy(job, my, pg, f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql}",
                      (), copy_stmt, expected_rows=job.source.row_estimate)  # fmt: skip
    except psycopg.errors.InvalidTextRepresentation:
        if plan.guessed:  # most likely a guessed boolean; if not, the next attempt says so
            raise _BooleanGuessError from None
        raise
    with _counting_source(job, my) as source_count:
        with job.report.timed("keys"):
            _add_keys(job, pg, staging, with_primary=not key_first)
            sync_enum_checks(pg, staging, plan.mappings)
        if existing:
            current = _pg_count(pg, job.target_ident)
            _guard_deletes(job, current, stats.rows, max(current - stats.rows, 0))
            job.report.rows_replaced = current
            _carry_dropped(job, pg, staging, plan, existing)
            _carry_grants(pg, job.target_ident, staging)
        with job.report.timed("count"):
            job.report.row_count = _pg_count(pg, staging)
        job.report.source_row_count = source_count.result()
    if existing:
        # Readers of the old table hold the swap up; wait a bounded time, never forever.
        pg.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(f"{int(job.options.lock_wait_seconds * 1000)}ms")
            )
        )
        pg.execute(sql.SQL("DROP TABLE {}").format(job.target_ident))
    pg.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(staging, ident(job.schema)))
    job.report.rows_inserted = stats.rows
    if not job.pk_targets:
        job.report.notes.append("no primary key in MySQL: full refresh every run")


def _key_grows_with_the_load(job: _Job) -> bool:
    """A single integer primary key arrives in ascending order (InnoDB reads a table in key
    order; auto-increment keys are near-ascending elsewhere), so PostgreSQL appends each entry
    at the index's right edge during COPY: cheaper than sorting and building it afterwards.
    Other keys (text collated differently, composites) are built after the load."""
    if len(job.source.primary_key) != 1:
        return False
    column = next(c for c in job.source.columns if c.name == job.source.primary_key[0])
    return column.data_type in INTEGER_TYPES


def _primary_key(job: _Job) -> sql.Composable:
    """`, CONSTRAINT <t>_pkey PRIMARY KEY (...)` for CREATE TABLE."""
    return sql.SQL(", CONSTRAINT {} PRIMARY KEY ({})").format(
        ident(derived_name(job.target, "pkey")), _column_list(job.pk_targets)
    )


def _add_keys(
    job: _Job, pg: psycopg.Connection, staging: sql.Identifier, with_primary: bool
) -> None:
    """Create the unique keys, and the primary key unless it was declared before the load.

    The indexes get their final names already: the staging schema holds nothing else, and the
    old table's indexes are gone from the target schema before the new table moves in."""
    if job.pk_targets and with_primary:
        pg.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                staging, ident(derived_name(job.target, "pkey")), _column_list(job.pk_targets)
            )
        )
    for i, key in enumerate(job.source.unique_keys, start=1):
        pg.execute(
            sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                ident(derived_name(job.target, f"key{i}")),
                staging,
                _column_list([job.names[c] for c in key]),
            )
        )


def _carry_dropped(
    job: _Job,
    pg: psycopg.Connection,
    staging: sql.Identifier,
    plan: _Plan,
    existing: dict[str, str],
) -> None:
    """Columns dropped in MySQL keep their values, matched on the primary key."""
    if not plan.dropped:
        return
    pk = job.pk_targets
    if not pk or not all(p in existing for p in pk):
        job.report.notes.append(
            f"dropped column(s) {sorted(plan.dropped)} kept but emptied: no primary key to"
            " match old rows to new ones"
        )
        return
    pg.execute(
        sql.SQL("UPDATE {} AS s SET {} FROM {} AS o WHERE {}").format(
            staging,
            sql.SQL(", ").join(sql.SQL("{0} = o.{0}").format(ident(c)) for c in plan.dropped),
            job.target_ident,
            sql.SQL(" AND ").join(sql.SQL("s.{0} = o.{0}").format(ident(c)) for c in pk),
        )
    )


def _carry_grants(pg: psycopg.Connection, old: sql.Identifier, new: sql.Identifier) -> None:
    """Privileges granted on the old table (e.g. to a reporting role) survive the swap."""
    grants = pg.execute(
        """SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE a.grantee::regrole::text END,
                  a.privilege_type, a.is_grantable
           FROM pg_class c, aclexplode(c.relacl) a
           WHERE c.oid = %s::regclass AND a.grantee <> c.relowner""",
        (old.as_string(pg),),
    ).fetchall()
    for grantee, privilege, grantable in grants:
        role = sql.SQL("PUBLIC") if grantee is None else sql.SQL(grantee)  # regrole: quoted
        pg.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),  # a keyword from aclexplode, e.g. SELECT
                new,
                role,
                sql.SQL(" WITH GRANT OPTION" if grantable else ""),
            )
        )


def _verify_values(job: _Job, pg: psycopg.Connection, my: pymysql.Connection, plan: _Plan) -> None:
    """Compare every value of the PostgreSQL table with the MySQL snapshot, in PostgreSQL's
    own types: the snapshot's rows go into a temporary table, then EXCEPT ALL both ways.

    Still inside the read snapshot and the writing transaction, so a difference is a real one
    (e.g. a change an incremental run could not see), never a race with new writes."""
    check = _temp_table(pg, "_sync_verify", plan.mappings)
    copy_stmt = copy_statement(check, [m.target for m in plan.mappings])
    with pg.cursor() as cur:
        copy_query(my, f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql}", (),
                   cur, copy_stmt, job.options.batch_rows, job.options.fast_reader)  # fmt: skip
    source = sql.SQL("SELECT {} FROM {} AS s").format(
        sql.SQL(", ").join(_value(m, "s") for m in plan.mappings), check
    )
    copied = sql.SQL("SELECT {} FROM {} AS t").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(ident(m.target)) for m in plan.mappings),
        job.target_ident,
    )
    pk = [i for i, m in enumerate(plan.mappings) if m.target in set(job.pk_targets)] or [0]
    keys = sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in pk)
    rows = pg.execute(
        sql.SQL(
            "WITH d ({}) AS (({} EXCEPT ALL {}) UNION ALL ({} EXCEPT ALL {})),"
            " k AS (SELECT DISTINCT {} FROM d)"
            " SELECT (SELECT count(*) FROM k), k.* FROM k LIMIT 5"
        ).format(
            sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(plan.mappings))),
            source,
            copied,
            copied,
            source,
            keys,
        )
    ).fetchall()
    job.report.mismatched_rows = int(rows[0][0]) if rows else 0
    job.report.mismatch_sample = [", ".join(str(v) for v in row[1:]) for row in rows]


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


# --- incremental ------------------------------------------------------------------------------


def _cursor_bounds(job: _Job, state: TableState, snap: _Snapshot) -> tuple[str, tuple[Any, ...]]:
    """WHERE clause: cursor in [watermark - overlap, snapshot maximum], plus NULL cursors."""
    col = next(c for c in job.source.columns if c.name == job.cursor)
    c = mq(col.name)
    if col.data_type in TEMPORAL_CURSORS:
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


def _temp_table(pg: psycopg.Connection, name: str, mappings: list[ColumnMapping]) -> sql.Identifier:
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


def _value(m: ColumnMapping, alias: str) -> sql.Composable:
    """A staged value as the target column type (booleans arrive as 0/1)."""
    col = sql.SQL("{}.{}").format(sql.Identifier(alias), ident(m.target))
    return sql.SQL("({} <> 0)").format(col) if m.pg_type == "boolean" else col


def _incremental(
    job: _Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    plan: _Plan,
    snap: _Snapshot,
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
    stage = _temp_table(pg, "_sync_stage", plan.mappings)
    where, params = _cursor_bounds(job, state, snap)
    copy_stmt = copy_statement(stage, [m.target for m in plan.mappings])
    _prefer_rowid_ordered_reads(my)
    _copy(job, my, pg, f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql} {where}",
          params, copy_stmt)  # fmt: skip
    with _counting_source(job, my) as source_count:
        _check_booleans(pg, plan, stage)
        sync_enum_checks(pg, job.target_ident, plan.mappings)
        with job.report.timed("upsert"):
            _upsert(job, pg, plan, stage)
        with job.report.timed("count"):
            current = _pg_count(pg, job.target_ident)
        job.report.source_row_count = source_count.result()
    with job.report.timed("deletes"):
        return _delete_missing(job, pg, my, plan, current)


def _check_booleans(pg: psycopg.Connection, plan: _Plan, stage: sql.Identifier) -> None:
    """A BOOLEAN copy of a TINYINT(1) column stays one only while MySQL holds just 0 and 1."""
    for m in plan.mappings:
        if m.pg_type != "boolean":
            continue
        bad = pg.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE {} NOT IN (0, 1))").format(
                stage, ident(m.target)
            )
        ).fetchone()
        if bad and bad[0]:
            raise _FullRefreshNeededError(f"column {m.target!r} now holds values other than 0/1")


def _prefer_rowid_ordered_reads(my: pymysql.Connection) -> None:
    """Changed rows are found through the cursor column's index; fetched in index order, each
    costs a random read of the table's clustered index. Multi-range read sorts their primary
    keys first and reads the table's pages in order: 2-3x faster once the table outgrows the
    buffer pool. Session-only and result-neutral; a server refusing the switch reads as before."""
    try:
        with my.cursor() as cur:
            cur.execute("SET SESSION optimizer_switch = 'mrr=on,mrr_cost_based=off'")
    except pymysql.MySQLError as exc:
        logger.debug("multi-range read not available: %s", exc)


# Up to this share of the target's size, the staged rows are matched by primary-key lookups.
# PostgreSQL's default costs would hash-join them against the whole table far earlier (50k
# of 1M rows: 0.8 s joined, 0.3 s looked up).
LOOKUP_SHARE = 0.1


def _upsert(job: _Job, pg: psycopg.Connection, plan: _Plan, stage: sql.Identifier) -> None:
    """Write the staged rows that are new or changed; rows read again unchanged (the overlap
    window) are left alone.

    A few rows (the usual run): UPDATE the changed ones, then INSERT the new ones, both by key
    lookups. INSERT ... ON CONFLICT DO UPDATE ... WHERE <changed> would also skip unchanged
    rows, but it locks each one first, and a lock is a WAL record plus, after a checkpoint, a
    full image of the row's page: 144 MB of WAL for a 50,000-row window with no change, where
    the lookups write nothing, in the same time. Many rows: ON CONFLICT, whose single pass
    beats two joins over the table (1.1 s against 1.6 s for 160,000 rows)."""
    pk = set(job.pk_targets)
    others = [m for m in plan.mappings if m.target not in pk]
    if others and _few_rows(job, pg, stage):
        with _planner_lookups(pg):
            job.report.rows_updated = _update_changed(job, pg, plan, stage, others)
            job.report.rows_inserted = _insert_new(job, pg, plan, stage, others)
        return
    _upsert_on_conflict(job, pg, plan, stage, others)


def _few_rows(job: _Job, pg: psycopg.Connection, stage: sql.Identifier) -> bool:
    """The stage is at most LOOKUP_SHARE of the target's size (both sizes as stored)."""
    row = pg.execute(
        "SELECT pg_relation_size(%s::regclass), pg_relation_size(%s::regclass)",
        (stage.as_string(pg), job.target_ident.as_string(pg)),
    ).fetchone()
    return row is not None and row[0] <= LOOKUP_SHARE * row[1]


@contextmanager
def _planner_lookups(pg: psycopg.Connection) -> Iterator[None]:
    """Nested-loop joins only, for the block (transaction-local settings, restored after it;
    after an error the transaction's rollback restores them)."""
    saved = pg.execute(
        "SELECT current_setting('enable_hashjoin'), current_setting('enable_mergejoin')"
    ).fetchone()
    pg.execute("SELECT set_config('enable_hashjoin', 'off', true),"
               " set_config('enable_mergejoin', 'off', true)")  # fmt: skip
    yield
    pg.execute("SELECT set_config('enable_hashjoin', %s, true),"
               " set_config('enable_mergejoin', %s, true)", saved)  # fmt: skip


def _key_match(job: _Job, plan: _Plan) -> sql.Composable:
    """The target row t has the staged row s's primary key."""
    pk = set(job.pk_targets)
    return sql.SQL(" AND ").join(
        sql.SQL("t.{} = {}").format(ident(m.target), _value(m, "s"))
        for m in plan.mappings
        if m.target in pk
    )


def _incoming(others: list[ColumnMapping], source: str) -> list[sql.Composable]:
    """The new values of the non-key columns: from the stage `s` (booleans staged as 0/1 are
    converted), or `EXCLUDED` (already converted by the INSERT's select list)."""
    if source == "EXCLUDED":
        return [sql.SQL("EXCLUDED.{}").format(ident(m.target)) for m in others]
    return [_value(m, source) for m in others]


def _set_clause(others: list[ColumnMapping], source: str) -> sql.Composable:
    """`col = <new value>, ...` for the non-key columns."""
    return sql.SQL(", ").join(
        sql.SQL("{} = {}").format(ident(m.target), v)
        for m, v in zip(others, _incoming(others, source), strict=True)
    )


def _differs(others: list[ColumnMapping], source: str) -> sql.Composable:
    """The target row t's non-key values differ from the new ones (NULL-aware)."""
    return sql.SQL("ROW({}) IS DISTINCT FROM ROW({})").format(
        sql.SQL(", ").join(sql.SQL("t.{}").format(ident(m.target)) for m in others),
        sql.SQL(", ").join(_incoming(others, source)),
    )


def _update_changed(
    job: _Job, pg: psycopg.Connection, plan: _Plan, stage: sql.Identifier,
    others: list[ColumnMapping],
) -> int:  # fmt: skip
    cur = pg.execute(
        sql.SQL("UPDATE {} AS t SET {} FROM {} AS s WHERE {} AND {}").format(
            job.target_ident,
            _set_clause(others, "s"),
            stage,
            _key_match(job, plan),
            _differs(others, "s"),
        )
    )
    return max(cur.rowcount, 0)


def _insert_new(
    job: _Job, pg: psycopg.Connection, plan: _Plan, stage: sql.Identifier,
    others: list[ColumnMapping],
) -> int:  # fmt: skip
    """The staged rows whose key the target lacks. Should another writer insert one of those
    keys meanwhile, its row is overwritten (ON CONFLICT) rather than failing the run."""
    cur = pg.execute(
        sql.SQL(
            "{} WHERE NOT EXISTS (SELECT FROM {} AS t WHERE {}) ON CONFLICT ({}) DO UPDATE SET {}"
        ).format(
            _insert_from_stage(job, plan, stage),
            job.target_ident,
            _key_match(job, plan),
            _column_list(job.pk_targets),
            _set_clause(others, "EXCLUDED"),
        )
    )
    return max(cur.rowcount, 0)


def _insert_from_stage(job: _Job, plan: _Plan, stage: sql.Identifier) -> sql.Composed:
    """`INSERT INTO <target> AS t (<columns>) SELECT <staged values> FROM <stage> AS s`."""
    return sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} AS s").format(
        job.target_ident,
        _column_list([m.target for m in plan.mappings]),
        sql.SQL(", ").join(_value(m, "s") for m in plan.mappings),
        stage,
    )


def _upsert_on_conflict(
    job: _Job, pg: psycopg.Connection, plan: _Plan, stage: sql.Identifier,
    others: list[ColumnMapping],
) -> None:  # fmt: skip
    if others:
        action = sql.SQL("DO UPDATE SET {} WHERE {}").format(
            _set_clause(others, "EXCLUDED"), _differs(others, "EXCLUDED")
        )
    else:
        action = sql.SQL("DO NOTHING")
    row = pg.execute(
        sql.SQL(
            "WITH up AS ({} ON CONFLICT ({}) {} RETURNING (xmax = 0) AS inserted)"
            " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
        ).format(_insert_from_stage(job, plan, stage), _column_list(job.pk_targets), action)
    ).fetchone()
    job.report.rows_inserted, job.report.rows_updated = (
        (int(row[0]), int(row[1])) if row else (0, 0)
    )


def _delete_missing(
    job: _Job, pg: psycopg.Connection, my: pymysql.Connection, plan: _Plan, current: int
) -> int:
    """Remove rows whose primary key MySQL no longer has (streamed key comparison) from the
    `current` rows; returns the table's row count afterwards."""
    mode = job.options.deletes
    if mode == "off" or (mode == "auto" and current == job.report.source_row_count):
        return current
    pk = set(job.pk_targets)
    key_mappings = [m for m in plan.mappings if m.target in pk]
    keys = _temp_table(pg, "_sync_keys", key_mappings)
    copy_stmt = copy_statement(keys, [m.target for m in key_mappings])
    select = f"SELECT {row_expression(key_mappings)} FROM {job.source_sql}"
    with pg.cursor() as cur:
        source_keys = copy_query(
            my, select, (), cur, copy_stmt, job.options.batch_rows * 4, job.options.fast_reader
        ).rows
    pg.execute(sql.SQL("ANALYZE {}").format(keys))
    missing = sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS k WHERE {})").format(
        keys,
        sql.SQL(" AND ").join(
            sql.SQL("t.{} = {}").format(ident(m.target), _value(m, "k")) for m in key_mappings
        ),
    )
    row = pg.execute(
        sql.SQL("SELECT count(*) FROM {} AS t WHERE {}").format(job.target_ident, missing)
    ).fetchone()
    to_delete = int(row[0]) if row else 0
    _guard_deletes(job, current, source_keys, to_delete)
    if to_delete:
        cur = pg.execute(sql.SQL("DELETE FROM {} AS t WHERE {}").format(job.target_ident, missing))
        job.report.rows_deleted = cur.rowcount
    return current - job.report.rows_deleted
