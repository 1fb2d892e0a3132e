"""Sync one MySQL table into PostgreSQL: the plain-Python entry point the asset runs.

`sync_table(mysql, postgres, options)` reads the table in one consistent MySQL snapshot and
writes it in one PostgreSQL transaction, under a per-table advisory lock. The steps live in
their own modules: `plan` (incremental or full refresh, and why), `full_refresh`,
`incremental` (with `upsert_sql`), `verify`, around the shared `job.Job`.

A crash or kill at any point rolls the PostgreSQL transaction back: the table and its
watermark stay as they were, and the next run starts from the same place.
"""

from __future__ import annotations

import logging
import time
from contextlib import closing
from typing import Any

from sync_assets.core.locks import advisory_lock
from sync_assets.core.names import mysql_table_lock
from sync_assets.core.pg import check_identifier, table_columns
from sync_assets.mysql import config
from sync_assets.mysql.catalog import read_source_table
from sync_assets.mysql.full_refresh import full_refresh
from sync_assets.mysql.incremental import incremental
from sync_assets.mysql.job import BooleanGuessError, DeleteGuardError, FullRefreshNeededError, Job
from sync_assets.mysql.naming import lower_names
from sync_assets.mysql.plan import INCREMENTAL, Plan, PlanInputs, choose_cursor, plan_sync
from sync_assets.mysql.report import SyncReport
from sync_assets.mysql.snapshot import not_boolean, open_read_snapshot, snapshot_facts
from sync_assets.mysql.state import TableState, ensure_bookkeeping, load_state, save_state
from sync_assets.mysql.stream import raw_connection
from sync_assets.mysql.type_rules import normalise_pg_type
from sync_assets.mysql.verify import verify_values

__all__ = ["DeleteGuardError", "SyncReport", "sync_table"]

logger = logging.getLogger(__name__)

# Each reason to start over can happen once (see `_attempts`).
MAX_ATTEMPTS = 3


def sync_table(
    mysql: Any,
    postgres: Any,
    options: config.TableOptions,
    log: Any = None,
    target_schema: str | None = None,
    force_full: str | None = None,
) -> SyncReport:
    """Sync MySQL table `options.name` into `<target_schema>.<lower-cased name>`; with
    `force_full` (the reason: an operator asked for it) as a full refresh."""
    started = time.monotonic()
    log = log or logger
    schema = check_identifier(target_schema or config.target_schema(), "target schema")
    with closing(mysql.connect()) as meta_conn:
        source = read_source_table(meta_conn, mysql.database, options.name)
    target = check_identifier(options.name.lower(), "table name")
    names = lower_names([c.name for c in source.columns], "column")
    report = SyncReport(options.name, schema, target)
    cursor = choose_cursor(source, options)
    job = Job(source, mysql.database, names, options, schema, target, cursor, report, log)
    with postgres.connection(autocommit=True) as lock_conn:
        ensure_bookkeeping(lock_conn, schema)
        with advisory_lock(lock_conn, mysql_table_lock(schema, target), options.lock_wait_seconds):
            _attempts(job, mysql, postgres, force_full)
    report = job.report
    report.duration_seconds = time.monotonic() - started
    log.info(
        f"{target}: {report.mode} ({report.reason}); read {report.rows_read} rows,"
        f" +{report.rows_inserted} ~{report.rows_updated} -{report.rows_deleted},"
        f" {report.row_count} rows now, {report.duration_seconds:.2f}s"
    )
    return report


def _attempts(job: Job, mysql: Any, postgres: Any, force_full: str | None = None) -> None:
    """Sync, starting over (a new snapshot; the failed attempt wrote nothing) when a run finds
    it must be a full refresh, or that a column guessed BOOLEAN holds another value. Each can
    happen once, so there are at most three attempts."""
    restarts: list[str] = []
    for _ in range(MAX_ATTEMPTS):
        try:
            _attempt(job, mysql, postgres, force_full)
            job.report.notes.extend(restarts)
            return
        except FullRefreshNeededError as exc:
            force_full = exc.reason
            restarts.append(f"started over as a full refresh: {exc.reason}")
        except BooleanGuessError:
            job.scan_booleans = True
            restarts.append(
                "started over: a TINYINT(1) column created as boolean holds other values"
                " (its type is now decided by a scan)"
            )
        job.log.info(f"{job.target}: {restarts[-1]}")
        job.report = SyncReport(job.source.name, job.schema, job.target)
    raise RuntimeError(f"{job.target}: no attempt completed")  # unreachable, see above


def _attempt(job: Job, mysql: Any, postgres: Any, force_full: str | None) -> None:
    with postgres.connection(autocommit=True) as pg, closing(raw_connection(mysql)) as my:
        state = load_state(pg, job.schema, job.target)
        existing = {
            name: normalise_pg_type(pg_type)
            for name, pg_type in table_columns(pg, job.schema, job.target).items()
        }
        open_read_snapshot(my)
        with job.report.timed("snapshot_facts"):
            snap = snapshot_facts(job, my)
        inputs = PlanInputs(
            job.source,
            job.names,
            job.cursor,
            job.options.mode,
            existing,
            state,
            force_full=force_full,
            scan_booleans=job.scan_booleans,
        )
        plan = plan_sync(inputs)
        if plan.scan_pending:
            plan = plan_sync(inputs, not_boolean(job, my, plan.to_scan))
        _report_plan(job, plan, state.watermark if state else None, snap.watermark)
        with job.report.timed("write_transaction"), pg.transaction():
            if plan.mode == INCREMENTAL:
                job.report.row_count = incremental(job, pg, my, plan, snap, state)
            else:
                full_refresh(job, pg, my, plan, existing)
            if job.options.verify_values:
                with job.report.timed("verify"):
                    verify_values(job, pg, my, plan)
            cursor_target = job.names[job.cursor] if job.cursor else None
            save_state(
                pg,
                job.schema,
                job.target,
                job.source.name,
                TableState(plan.mode, cursor_target, snap.watermark, job.pk_targets),
            )
        my.rollback()  # ends the read-only snapshot


def _report_plan(job: Job, plan: Plan, previous: str | None, watermark: str | None) -> None:
    report = job.report
    report.mode, report.reason = plan.mode, plan.reason
    job.log.info(f"{job.target}: {plan.mode} ({plan.reason}); watermark {previous} → {watermark}")
    report.previous_watermark = previous
    report.watermark = watermark
    report.primary_key = job.pk_targets
    report.added_columns.extend(plan.added)
    report.columns = [(m.target, m.pg_type) for m in plan.mappings]
    report.columns += list(plan.dropped.items())
    report.dropped_columns = sorted(plan.dropped)
