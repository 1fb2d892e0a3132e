"""Full refresh: COPY into a staging table created in the same transaction, add the keys, then
drop the old table and move the new one in; readers see the old table until the commit.

The staging table lives in a schema of its own (`state.staging_schema`) under the target's
name, so it moves in with SET SCHEMA and its indexes already carry their final names.
"""

from __future__ import annotations

import psycopg
import pymysql
from psycopg import sql

from sync_assets.core.pg import copy_statement, derived_name, exact_row_count, ident
from sync_assets.mysql.job import (
    BooleanGuessError,
    Job,
    copy_rows,
    counting_source,
    guard_deletes,
    sync_enum_checks,
)
from sync_assets.mysql.plan import Plan
from sync_assets.mysql.state import staging_schema
from sync_assets.mysql.type_rules import cursor_kind
from sync_assets.mysql.types import row_expression
from sync_assets.mysql.upsert_sql import column_list


def full_refresh(
    job: Job,
    pg: psycopg.Connection,
    my: pymysql.Connection,
    plan: Plan,
    existing: dict[str, str],
) -> None:
    """Load a staging table, swap it in for the old one (`existing`: its columns), count."""
    staging_name = staging_schema(job.schema)
    staging = ident(staging_name, job.target)
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
    select = f"SELECT {row_expression(plan.mappings)} FROM {job.source_sql}"
    try:
        stats = copy_rows(job, my, pg, select, (), copy_stmt, expected_rows=job.source.row_estimate)
    except psycopg.errors.InvalidTextRepresentation:
        if plan.guessed:  # most likely a guessed boolean; if not, the next attempt says so
            raise BooleanGuessError from None
        raise
    with counting_source(job, my) as source_count:
        with job.report.timed("keys"):
            _add_keys(job, pg, staging, with_primary=not key_first)
            sync_enum_checks(pg, staging, plan.mappings)
        if existing:
            current = exact_row_count(pg, job.schema, job.target)
            guard_deletes(job, current, stats.rows, max(current - stats.rows, 0))
            job.report.rows_replaced = current
            _carry_dropped(job, pg, staging, plan, existing)
            _carry_grants(pg, job.target_ident, staging)
        with job.report.timed("count"):
            job.report.row_count = exact_row_count(pg, staging_name, job.target)
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


def _key_grows_with_the_load(job: Job) -> bool:
    """A single integer primary key arrives in ascending order (InnoDB reads a table in key
    order; auto-increment keys are near-ascending elsewhere), so PostgreSQL appends each entry
    at the index's right edge during COPY: cheaper than sorting and building it afterwards.
    Other keys (text collated differently, composites) are built after the load."""
    if len(job.source.primary_key) != 1:
        return False
    column = next(c for c in job.source.columns if c.name == job.source.primary_key[0])
    return cursor_kind(column) == "integer"


def _primary_key(job: Job) -> sql.Composable:
    """`, CONSTRAINT <t>_pkey PRIMARY KEY (...)` for CREATE TABLE."""
    return sql.SQL(", CONSTRAINT {} PRIMARY KEY ({})").format(
        ident(derived_name(job.target, "pkey")), column_list(job.pk_targets)
    )


def _add_keys(
    job: Job, pg: psycopg.Connection, staging: sql.Identifier, with_primary: bool
) -> None:
    """Create the unique keys, and the primary key unless it was declared before the load.

    The indexes get their final names already: the staging schema holds nothing else, and the
    old table's indexes are gone from the target schema before the new table moves in."""
    if job.pk_targets and with_primary:
        pg.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
                staging, ident(derived_name(job.target, "pkey")), column_list(job.pk_targets)
            )
        )
    for i, key in enumerate(job.source.unique_keys, start=1):
        pg.execute(
            sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
                ident(derived_name(job.target, f"key{i}")),
                staging,
                column_list([job.names[c] for c in key]),
            )
        )


def _carry_dropped(
    job: Job,
    pg: psycopg.Connection,
    staging: sql.Identifier,
    plan: Plan,
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
